"""living catalog: items added through the API

Revision ID: 3f7c2a9e5b10
Revises: 8a85b12252e5
Create Date: 2026-12-02 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '3f7c2a9e5b10'
down_revision: str | None = '8a85b12252e5'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'catalog_item',
        sa.Column('code', sa.String(length=100), nullable=False),
        sa.Column('body', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('code'),
        schema='needs',
    )


def downgrade() -> None:
    op.drop_table('catalog_item', schema='needs')
