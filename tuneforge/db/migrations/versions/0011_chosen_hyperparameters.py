"""hyperparameters chosen automatically

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 22:10:00.000000

A customization job's "auto" hyperparameters, with the value the job chose and why (tuneforge.training.auto).
"""

from alembic import op
import sqlalchemy as sa

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('customization_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chosen_hyperparameters', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('customization_jobs', schema=None) as batch_op:
        batch_op.drop_column('chosen_hyperparameters')
