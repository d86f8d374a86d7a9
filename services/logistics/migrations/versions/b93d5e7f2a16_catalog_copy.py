"""living catalog: this service's copy of the catalog's changes

Revision ID: b93d5e7f2a16
Revises: 3c41a7d2e9b0
Create Date: 2026-12-02 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'b93d5e7f2a16'
down_revision: str | None = '3c41a7d2e9b0'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'catalog_item',
        sa.Column('code', sa.String(length=100), nullable=False),
        sa.Column('body', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('code'),
        schema='logistics',
    )


def downgrade() -> None:
    op.drop_table('catalog_item', schema='logistics')
