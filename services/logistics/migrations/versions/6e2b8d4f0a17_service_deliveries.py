"""service deliveries: what partners reported on their assignments, for the impact report

Revision ID: 6e2b8d4f0a17
Revises: 3e7b1c9d2f40
Create Date: 2026-12-02 15:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '6e2b8d4f0a17'
down_revision: str | None = '3e7b1c9d2f40'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('service_delivery',
    sa.Column('assignment_id', sa.UUID(), nullable=False),
    sa.Column('org', sa.String(length=100), nullable=False),
    sa.Column('service_code', sa.String(length=100), nullable=False),
    sa.Column('region_code', sa.String(length=6), nullable=False),
    sa.Column('units_delivered', sa.Integer(), nullable=False),
    sa.Column('people_served', sa.Integer(), nullable=False),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('assignment_id', name=op.f('pk_service_delivery')),
    schema='logistics'
    )
    op.create_index(op.f('ix_service_delivery_org'), 'service_delivery', ['org'], unique=False, schema='logistics')
    op.create_index(op.f('ix_service_delivery_region_code'), 'service_delivery', ['region_code'], unique=False, schema='logistics')


def downgrade() -> None:
    op.drop_table('service_delivery', schema='logistics')
