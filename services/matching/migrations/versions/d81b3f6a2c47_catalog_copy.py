"""living catalog: this service's copy of the catalog's changes

Revision ID: d81b3f6a2c47
Revises: c4a9e1d2b7f3
Create Date: 2026-12-02 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'd81b3f6a2c47'
down_revision: str | None = 'c4a9e1d2b7f3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'catalog_item',
        sa.Column('code', sa.String(length=100), nullable=False),
        sa.Column('body', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('code'),
        schema='matching',
    )


def downgrade() -> None:
    op.drop_table('catalog_item', schema='matching')
