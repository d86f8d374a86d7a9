"""delivery lease

Revision ID: 5b7c2e9d4a10
Revises: 1e6e4178bca2
Create Date: 2026-12-01 20:07:36.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '5b7c2e9d4a10'
down_revision: str | None = '1e6e4178bca2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('delivery', sa.Column('lease_id', sa.UUID(), nullable=True), schema='webhooks')


def downgrade() -> None:
    op.drop_column('delivery', 'lease_id', schema='webhooks')
