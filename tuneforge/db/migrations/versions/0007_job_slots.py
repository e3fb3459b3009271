"""job slots claimed in the database

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 19:30:00.000000

The customization-job queue's slots (tuneforge.jobs.queue) move from lock files under one host's
$TUNEFORGE_HOME to rows here, so TUNEFORGE_JOB_CONCURRENCY holds for every host that shares the database.
A row exists only while its slot is held; nothing to convert.
"""

from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('job_slots',
    sa.Column('slot', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('job_id', sa.String(length=12), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('pid_started_at', sa.Double(), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['customization_jobs.job_id'], name=op.f('fk_job_slots_job_id_customization_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('slot', name=op.f('pk_job_slots')),
    sa.UniqueConstraint('job_id', name=op.f('uq_job_slots_job_id'))
    )


def downgrade() -> None:
    op.drop_table('job_slots')
