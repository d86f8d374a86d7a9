"""item requests: the reason a refused one was refused

Revision ID: 9e4f1a7c3d20
Revises: 6a3f9d2c1e47
Create Date: 2026-12-03 07:35:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '9e4f1a7c3d20'
down_revision: str | None = '6a3f9d2c1e47'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('item_request', sa.Column('refused_reason', sa.Text(), nullable=True), schema='needs')


def downgrade() -> None:
    op.drop_column('item_request', 'refused_reason', schema='needs')
