"""proposal: the quantity in the lot's unit

Revision ID: c4a9e1d2b7f3
Revises: 3c7d2e91a4b8
Create Date: 2026-12-02 15:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'c4a9e1d2b7f3'
down_revision: str | None = '3c7d2e91a4b8'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('proposal', sa.Column('lot_quantity', sa.Integer(), nullable=True), schema='matching')


def downgrade() -> None:
    op.drop_column('proposal', 'lot_quantity', schema='matching')
