"""customization jobs and custom models

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 08:47:04.227887
"""

from alembic import op
import sqlalchemy as sa



revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('custom_models',
    sa.Column('model_id', sa.String(length=12), nullable=False),
    sa.Column('model_arn', sa.String(length=1011), nullable=False),
    sa.Column('model_name', sa.String(length=63), nullable=False),
    sa.Column('job_id', sa.String(length=12), nullable=True),
    sa.Column('job_arn', sa.String(length=1011), nullable=True),
    sa.Column('job_name', sa.String(length=63), nullable=True),
    sa.Column('base_model_id', sa.String(length=200), nullable=False),
    sa.Column('base_model_arn', sa.String(length=1011), nullable=False),
    sa.Column('customization_type', sa.String(length=40), nullable=False),
    sa.Column('hyperparameters', sa.JSON(), nullable=False),
    sa.Column('training_data_uri', sa.String(length=1024), nullable=False),
    sa.Column('validation_data_uris', sa.JSON(), nullable=False),
    sa.Column('output_uri', sa.String(length=1024), nullable=False),
    sa.Column('training_loss', sa.Double(), nullable=True),
    sa.Column('validation_loss', sa.Double(), nullable=True),
    sa.Column('model_status', sa.String(length=20), nullable=False),
    sa.Column('failure_message', sa.String(length=4096), nullable=True),
    sa.Column('artifact_dir', sa.String(length=1024), nullable=False),
    sa.Column('artifact_kind', sa.String(length=20), nullable=False),
    sa.Column('kms_key_id', sa.String(length=2048), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('model_id', name=op.f('pk_custom_models')),
    sa.UniqueConstraint('model_arn', name=op.f('uq_custom_models_model_arn')),
    sa.UniqueConstraint('model_name', name=op.f('uq_custom_models_model_name'))
    )
    op.create_table('customization_jobs',
    sa.Column('job_id', sa.String(length=12), nullable=False),
    sa.Column('job_arn', sa.String(length=1011), nullable=False),
    sa.Column('job_name', sa.String(length=63), nullable=False),
    sa.Column('client_request_token', sa.String(length=256), nullable=True),
    sa.Column('custom_model_name', sa.String(length=63), nullable=False),
    sa.Column('role_arn', sa.String(length=2048), nullable=False),
    sa.Column('base_model_id', sa.String(length=200), nullable=False),
    sa.Column('base_model_arn', sa.String(length=1011), nullable=False),
    sa.Column('customization_type', sa.String(length=40), nullable=False),
    sa.Column('hyperparameters', sa.JSON(), nullable=False),
    sa.Column('training_data_uri', sa.String(length=1024), nullable=False),
    sa.Column('validation_data_uris', sa.JSON(), nullable=False),
    sa.Column('output_uri', sa.String(length=1024), nullable=False),
    sa.Column('kms_key_id', sa.String(length=2048), nullable=True),
    sa.Column('job_tags', sa.JSON(), nullable=False),
    sa.Column('custom_model_tags', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('status_details', sa.JSON(), nullable=False),
    sa.Column('failure_message', sa.String(length=4096), nullable=True),
    sa.Column('end_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('progress', sa.JSON(), nullable=False),
    sa.Column('training_loss', sa.Double(), nullable=True),
    sa.Column('validation_loss', sa.Double(), nullable=True),
    sa.Column('output_model_arn', sa.String(length=1011), nullable=True),
    sa.Column('work_dir', sa.String(length=1024), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('pid_started_at', sa.Double(), nullable=True),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('job_id', name=op.f('pk_customization_jobs')),
    sa.UniqueConstraint('client_request_token', name=op.f('uq_customization_jobs_client_request_token')),
    sa.UniqueConstraint('job_arn', name=op.f('uq_customization_jobs_job_arn')),
    sa.UniqueConstraint('job_name', name=op.f('uq_customization_jobs_job_name'))
    )
    with op.batch_alter_table('customization_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customization_jobs_status'), ['status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('customization_jobs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customization_jobs_status'))

    op.drop_table('customization_jobs')
    op.drop_table('custom_models')
