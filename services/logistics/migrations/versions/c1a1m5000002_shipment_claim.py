"""shipments: the partner's claim a shipment carries out

Revision ID: c1a1m5000002
Revises: c5d2e8f41a07
Create Date: 2026-12-02 15:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'c1a1m5000002'
down_revision: str | None = 'c5d2e8f41a07'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('shipment', sa.Column('claim_id', sa.UUID(), nullable=True), schema='logistics')
    op.create_unique_constraint(op.f('uq_shipment_claim_id'), 'shipment', ['claim_id'], schema='logistics')


def downgrade() -> None:
    op.drop_constraint(op.f('uq_shipment_claim_id'), 'shipment', schema='logistics', type_='unique')
    op.drop_column('shipment', 'claim_id', schema='logistics')
