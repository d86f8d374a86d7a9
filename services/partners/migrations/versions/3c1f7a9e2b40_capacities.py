"""capacities

Revision ID: 3c1f7a9e2b40
Revises: dd8573ccbdb0
Create Date: 2026-12-02 15:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '3c1f7a9e2b40'
down_revision: str | None = 'dd8573ccbdb0'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('capacity',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('org', sa.String(length=100), nullable=False),
    sa.Column('service_code', sa.String(length=100), nullable=False),
    sa.Column('units_per_day', sa.Integer(), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('ends_on', sa.Date(), nullable=False),
    sa.Column('region_codes', postgresql.ARRAY(sa.String(length=6)), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('withdrawn_reason', sa.Text(), nullable=True),
    sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.CheckConstraint('units_per_day > 0', name=op.f('ck_capacity_units_positive')),
    sa.CheckConstraint('ends_on >= starts_on', name=op.f('ck_capacity_window_ordered')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_capacity')),
    schema='partners'
    )
    op.create_index(op.f('ix_capacity_org'), 'capacity', ['org'], unique=False, schema='partners')
    op.create_index(op.f('ix_capacity_service_code_status_ends_on'), 'capacity', ['service_code', 'status', 'ends_on'], unique=False, schema='partners')
    op.create_index(op.f('ix_capacity_created_at_id'), 'capacity', ['created_at', 'id'], unique=False, schema='partners')


def downgrade() -> None:
    op.drop_index(op.f('ix_capacity_created_at_id'), table_name='capacity', schema='partners')
    op.drop_index(op.f('ix_capacity_service_code_status_ends_on'), table_name='capacity', schema='partners')
    op.drop_index(op.f('ix_capacity_org'), table_name='capacity', schema='partners')
    op.drop_table('capacity', schema='partners')
