"""substitutes ship in the lot's units: accepted proposals keep their lot quantity, shipment lines the need
line quantity they credit

Revision ID: e5a1c7d3f920
Revises: c1a1m5000002
Create Date: 2026-12-02 15:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'e5a1c7d3f920'
down_revision: str | None = 'c1a1m5000002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('accepted_proposal', sa.Column('lot_quantity', sa.Integer(), nullable=True), schema='logistics')
    op.add_column('shipment_line', sa.Column('line_quantity', sa.Integer(), nullable=True), schema='logistics')


def downgrade() -> None:
    op.drop_column('shipment_line', 'line_quantity', schema='logistics')
    op.drop_column('accepted_proposal', 'lot_quantity', schema='logistics')
