"""evaluation jobs

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-04 22:45:00.000000

Bedrock's CreateEvaluationJob (tuneforge.evaluation.service): automated model evaluation.
"""

from alembic import op
import sqlalchemy as sa

revision = '0014'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('evaluation_jobs',
    sa.Column('job_id', sa.String(length=12), nullable=False),
    sa.Column('job_arn', sa.String(length=1011), nullable=False),
    sa.Column('job_name', sa.String(length=63), nullable=False),
    sa.Column('client_request_token', sa.String(length=256), nullable=True),
    sa.Column('description', sa.String(length=200), nullable=True),
    sa.Column('role_arn', sa.String(length=2048), nullable=False),
    sa.Column('application_type', sa.String(length=20), nullable=False),
    sa.Column('evaluation_config', sa.JSON(), nullable=False),
    sa.Column('inference_config', sa.JSON(), nullable=False),
    sa.Column('plan', sa.JSON(), nullable=False),
    sa.Column('output_uri', sa.String(length=1024), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('failure_messages', sa.JSON(), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=False),
    sa.Column('progress', sa.JSON(), nullable=False),
    sa.Column('end_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('work_dir', sa.String(length=1024), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('pid_started_at', sa.Double(), nullable=True),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('job_id', name=op.f('pk_evaluation_jobs')),
    sa.UniqueConstraint('client_request_token', name=op.f('uq_evaluation_jobs_client_request_token')),
    sa.UniqueConstraint('job_arn', name=op.f('uq_evaluation_jobs_job_arn')),
    sa.UniqueConstraint('job_name', name=op.f('uq_evaluation_jobs_job_name'))
    )
    with op.batch_alter_table('evaluation_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluation_jobs_status'), ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('evaluation_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluation_jobs_status'))
    op.drop_table('evaluation_jobs')
