"""batch inference jobs

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 21:40:00.000000

Bedrock's CreateModelInvocationJob (tuneforge.batch) and the slots of its queue (tuneforge.batch.queue).
"""

from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('model_invocation_jobs',
    sa.Column('job_id', sa.String(length=12), nullable=False),
    sa.Column('job_arn', sa.String(length=1011), nullable=False),
    sa.Column('job_name', sa.String(length=63), nullable=False),
    sa.Column('client_request_token', sa.String(length=256), nullable=True),
    sa.Column('role_arn', sa.String(length=2048), nullable=False),
    sa.Column('model_id', sa.String(length=2048), nullable=False),
    sa.Column('invocation_type', sa.String(length=20), nullable=False),
    sa.Column('input_config', sa.JSON(), nullable=False),
    sa.Column('output_config', sa.JSON(), nullable=False),
    sa.Column('vpc_config', sa.JSON(), nullable=True),
    sa.Column('timeout_hours', sa.Integer(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('message', sa.String(length=2048), nullable=True),
    sa.Column('end_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('counts', sa.JSON(), nullable=False),
    sa.Column('progress', sa.JSON(), nullable=False),
    sa.Column('work_dir', sa.String(length=1024), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('pid_started_at', sa.Double(), nullable=True),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('job_id', name=op.f('pk_model_invocation_jobs')),
    sa.UniqueConstraint('client_request_token', name=op.f('uq_model_invocation_jobs_client_request_token')),
    sa.UniqueConstraint('job_arn', name=op.f('uq_model_invocation_jobs_job_arn')),
    sa.UniqueConstraint('job_name', name=op.f('uq_model_invocation_jobs_job_name'))
    )
    with op.batch_alter_table('model_invocation_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_invocation_jobs_status'), ['status'], unique=False)
    op.create_table('batch_job_slots',
    sa.Column('slot', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('job_id', sa.String(length=12), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('pid_started_at', sa.Double(), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['model_invocation_jobs.job_id'], name=op.f('fk_batch_job_slots_job_id_model_invocation_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('slot', name=op.f('pk_batch_job_slots')),
    sa.UniqueConstraint('job_id', name=op.f('uq_batch_job_slots_job_id'))
    )


def downgrade() -> None:
    op.drop_table('batch_job_slots')
    with op.batch_alter_table('model_invocation_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_invocation_jobs_status'))
    op.drop_table('model_invocation_jobs')
