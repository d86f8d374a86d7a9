"""lots show what is written off

Revision ID: 5e8d20b7c1f4
Revises: 4db42340071b
Create Date: 2026-12-02 05:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '5e8d20b7c1f4'
down_revision: str | None = '4db42340071b'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('lot', sa.Column('quantity_written_off', sa.Integer(), server_default='0', nullable=False), schema='supply')
    op.create_check_constraint(
        op.f('ck_lot_written_off_within'), 'lot', 'quantity_written_off >= 0 AND quantity_reserved + quantity_written_off <= quantity',
        schema='supply',
    )
    op.add_column('lot_shipment', sa.Column('quantity_written_off', sa.Integer(), server_default='0', nullable=False), schema='supply')


def downgrade() -> None:
    op.drop_column('lot_shipment', 'quantity_written_off', schema='supply')
    op.drop_constraint(op.f('ck_lot_written_off_within'), 'lot', schema='supply')
    op.drop_column('lot', 'quantity_written_off', schema='supply')
