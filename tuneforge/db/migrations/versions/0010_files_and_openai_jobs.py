"""uploaded files; the OpenAI side of customization jobs

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 22:00:00.000000

OpenAI's /v1/files (tuneforge.files) and /v1/fine_tuning/jobs: a job created there records the files it trains on,
its suffix and its metadata, so that one job reads the same through both APIs.
"""

from alembic import op
import sqlalchemy as sa

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('files',
    sa.Column('file_id', sa.String(length=40), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('purpose', sa.String(length=40), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.Column('uri', sa.String(length=1024), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('file_id', name=op.f('pk_files'))
    )
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_files_purpose'), ['purpose'], unique=False)
    with op.batch_alter_table('customization_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('training_file_id', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('validation_file_id', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('suffix', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('job_metadata', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('customization_jobs', schema=None) as batch_op:
        batch_op.drop_column('job_metadata')
        batch_op.drop_column('suffix')
        batch_op.drop_column('validation_file_id')
        batch_op.drop_column('training_file_id')
    with op.batch_alter_table('files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_files_purpose'))
    op.drop_table('files')
