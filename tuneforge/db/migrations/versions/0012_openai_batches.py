"""OpenAI batches

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 22:40:00.000000

/v1/batches: each OpenAI batch is a model invocation job (tuneforge.batch) reading a converted copy of an uploaded
file; this row links the two and names the result files once they are written.
"""

from alembic import op
import sqlalchemy as sa

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('openai_batches',
    sa.Column('batch_id', sa.String(length=40), nullable=False),
    sa.Column('job_id', sa.String(length=12), nullable=False),
    sa.Column('endpoint', sa.String(length=64), nullable=False),
    sa.Column('input_file_id', sa.String(length=40), nullable=False),
    sa.Column('output_file_id', sa.String(length=40), nullable=True),
    sa.Column('error_file_id', sa.String(length=40), nullable=True),
    sa.Column('refused', sa.JSON(), nullable=False),
    sa.Column('batch_metadata', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['model_invocation_jobs.job_id'], name=op.f('fk_openai_batches_job_id_model_invocation_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('batch_id', name=op.f('pk_openai_batches')),
    sa.UniqueConstraint('job_id', name=op.f('uq_openai_batches_job_id'))
    )


def downgrade() -> None:
    op.drop_table('openai_batches')
