"""on-demand custom model deployments

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 20:10:00.000000

Bedrock's CreateCustomModelDeployment: a custom model served on demand (tuneforge.serving.custom_deployments).
"""

from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('custom_model_deployments',
    sa.Column('deployment_id', sa.String(length=12), nullable=False),
    sa.Column('deployment_arn', sa.String(length=1011), nullable=False),
    sa.Column('deployment_name', sa.String(length=63), nullable=False),
    sa.Column('client_request_token', sa.String(length=256), nullable=True),
    sa.Column('model_arn', sa.String(length=1011), nullable=False),
    sa.Column('description', sa.String(length=2048), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('update_model_arn', sa.String(length=1011), nullable=True),
    sa.Column('update_status', sa.String(length=20), nullable=True),
    sa.Column('failure_message', sa.String(length=4096), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('deployment_id', name=op.f('pk_custom_model_deployments')),
    sa.UniqueConstraint('client_request_token', name=op.f('uq_custom_model_deployments_client_request_token')),
    sa.UniqueConstraint('deployment_arn', name=op.f('uq_custom_model_deployments_deployment_arn')),
    sa.UniqueConstraint('deployment_name', name=op.f('uq_custom_model_deployments_deployment_name'))
    )
    with op.batch_alter_table('custom_model_deployments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_custom_model_deployments_model_arn'), ['model_arn'], unique=False)
        batch_op.create_index(batch_op.f('ix_custom_model_deployments_status'), ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('custom_model_deployments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_custom_model_deployments_status'))
        batch_op.drop_index(batch_op.f('ix_custom_model_deployments_model_arn'))
    op.drop_table('custom_model_deployments')
