"""matching projects partners' capacities; proposals may give a capacity instead of a lot

Revision ID: 8d4e6a1c2f30
Revises: f1a2b3c4d5e6
Create Date: 2026-12-02 15:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '8d4e6a1c2f30'
down_revision: str | None = 'f1a2b3c4d5e6'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'capacity_view',
        sa.Column('capacity_id', sa.UUID(), nullable=False),
        sa.Column('org', sa.String(length=100), nullable=False),
        sa.Column('service_code', sa.String(length=100), nullable=False),
        sa.Column('units_per_day', sa.Integer(), nullable=False),
        sa.Column('starts_on', sa.Date(), nullable=False),
        sa.Column('ends_on', sa.Date(), nullable=False),
        sa.Column('region_codes', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('capacity_id'),
        schema='matching',
    )
    op.create_index(
        op.f('ix_capacity_view_service_code'), 'capacity_view', ['service_code'], schema='matching'
    )
    op.add_column('proposal', sa.Column('capacity_id', sa.UUID(), nullable=True), schema='matching')
    op.create_index(op.f('ix_proposal_capacity_id'), 'proposal', ['capacity_id'], schema='matching')
    op.alter_column('proposal', 'lot_id', existing_type=sa.UUID(), nullable=True, schema='matching')
    op.alter_column('proposal', 'offer_id', existing_type=sa.UUID(), nullable=True, schema='matching')


def downgrade() -> None:
    op.execute('DELETE FROM matching.proposal WHERE lot_id IS NULL')
    op.alter_column('proposal', 'offer_id', existing_type=sa.UUID(), nullable=False, schema='matching')
    op.alter_column('proposal', 'lot_id', existing_type=sa.UUID(), nullable=False, schema='matching')
    op.drop_index(op.f('ix_proposal_capacity_id'), table_name='proposal', schema='matching')
    op.drop_column('proposal', 'capacity_id', schema='matching')
    op.drop_index(op.f('ix_capacity_view_service_code'), table_name='capacity_view', schema='matching')
    op.drop_table('capacity_view', schema='matching')
