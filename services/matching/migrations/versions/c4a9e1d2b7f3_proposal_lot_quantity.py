"""proposal: the quantity in the lot's unit

Revision ID: c4a9e1d2b7f3
Revises: eaf35d549e04
Create Date: 2026-12-02 15:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'c4a9e1d2b7f3'
down_revision: str | None = 'eaf35d549e04'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('proposal', sa.Column('lot_quantity', sa.Integer(), nullable=True), schema='matching')


def downgrade() -> None:
    op.drop_column('proposal', 'lot_quantity', schema='matching')
