"""knowledge bases keep their storage configuration typed

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 10:00:00.000000

`knowledge_bases.storage` holds the checked storage configuration (tuneforge.knowledge.stores.storage_record), so a
store opens without parsing Bedrock's storageConfiguration again; `storage_configuration` stays as sent, for
GetKnowledgeBase. Rows from before are converted here with the same field mapping, written out so that this
migration does not change when the code does.
"""

from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def _record(sent: dict | None) -> dict | None:
    if not sent:
        return None
    if sent["type"] == "RDS":
        c = sent["rdsConfiguration"]
        secret = c.get("credentialsSecretArn")
        return {"type": "RDS", "resource": c["resourceArn"].strip(), "credentials": secret.strip() if secret else None,
                "database": c["databaseName"].strip(), "table": c["tableName"].strip()}
    c = sent["redisEnterpriseCloudConfiguration"]
    secret, fields = c.get("credentialsSecretArn"), c["fieldMapping"]
    return {"type": "REDIS_ENTERPRISE_CLOUD", "endpoint": c["endpoint"].strip(), "credentials": secret.strip() if secret else None,
            "index": c["vectorIndexName"].strip(), "vector_field": fields["vectorField"].strip(),
            "text_field": fields["textField"].strip(), "metadata_field": fields["metadataField"].strip()}


def upgrade() -> None:
    with op.batch_alter_table('knowledge_bases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('storage', sa.JSON(), nullable=True))
    table = sa.table('knowledge_bases', sa.column('knowledge_base_id', sa.String()), sa.column('storage_configuration', sa.JSON()),
                     sa.column('storage', sa.JSON()))
    connection = op.get_bind()
    rows = connection.execute(sa.select(table.c.knowledge_base_id, table.c.storage_configuration)
                              .where(table.c.storage_configuration.is_not(None))).all()
    for kb_id, sent in rows:
        connection.execute(table.update().where(table.c.knowledge_base_id == kb_id).values(storage=_record(sent)))


def downgrade() -> None:
    with op.batch_alter_table('knowledge_bases', schema=None) as batch_op:
        batch_op.drop_column('storage')
