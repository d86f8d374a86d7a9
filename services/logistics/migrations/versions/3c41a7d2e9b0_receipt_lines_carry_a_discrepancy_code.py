"""receipt lines carry a discrepancy code and what is written off

Revision ID: 3c41a7d2e9b0
Revises: 52f54627f641
Create Date: 2026-12-02 05:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '3c41a7d2e9b0'
down_revision: str | None = '52f54627f641'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('shipment_line', sa.Column('discrepancy_code', sa.String(length=20), nullable=True), schema='logistics')
    op.add_column('shipment_line', sa.Column('quantity_written_off', sa.Integer(), nullable=True), schema='logistics')
    # Receipts recorded before codes existed: a reason given is `other`.
    op.execute(
        "UPDATE logistics.shipment_line SET discrepancy_code = 'other' "
        "WHERE discrepancy_reason IS NOT NULL AND quantity_received IS NOT NULL AND quantity_returned > 0"
    )


def downgrade() -> None:
    op.drop_column('shipment_line', 'quantity_written_off', schema='logistics')
    op.drop_column('shipment_line', 'discrepancy_code', schema='logistics')
