"""initial schema: registered models, aliases, tags

Revision ID: 0001
Revises:
Create Date: 2026-11-24 08:38:38.522804
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('foundation_models',
    sa.Column('model_id', sa.String(length=200), nullable=False),
    sa.Column('model_name', sa.String(length=200), nullable=False),
    sa.Column('provider_name', sa.String(length=100), nullable=False),
    sa.Column('source_kind', sa.String(length=20), nullable=False),
    sa.Column('source', sa.String(length=1024), nullable=False),
    sa.Column('checkpoint_path', sa.String(length=1024), nullable=False),
    sa.Column('input_modalities', sa.JSON(), nullable=False),
    sa.Column('output_modalities', sa.JSON(), nullable=False),
    sa.Column('customizations_supported', sa.JSON(), nullable=False),
    sa.Column('inference_types_supported', sa.JSON(), nullable=False),
    sa.Column('response_streaming_supported', sa.Boolean(), nullable=False),
    sa.Column('body_format', sa.String(length=20), nullable=True),
    sa.Column('context_length', sa.Integer(), nullable=True),
    sa.Column('lifecycle_status', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('model_id', name=op.f('pk_foundation_models'))
    )
    op.create_table('model_aliases',
    sa.Column('alias_id', sa.String(length=200), nullable=False),
    sa.Column('target_model_id', sa.String(length=200), nullable=False),
    sa.Column('body_format', sa.String(length=20), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('alias_id', name=op.f('pk_model_aliases'))
    )
    op.create_table('resource_tags',
    sa.Column('resource_arn', sa.String(length=1024), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('value', sa.String(length=256), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('resource_arn', 'key', name=op.f('pk_resource_tags'))
    )


def downgrade() -> None:
    op.drop_table('resource_tags')
    op.drop_table('model_aliases')
    op.drop_table('foundation_models')
