"""living catalog: this service's copy of the catalog's changes

Revision ID: a62e9c4f1b38
Revises: 5e8d20b7c1f4
Create Date: 2026-12-02 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'a62e9c4f1b38'
down_revision: str | None = '5e8d20b7c1f4'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'catalog_item',
        sa.Column('code', sa.String(length=100), nullable=False),
        sa.Column('body', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('code'),
        schema='supply',
    )


def downgrade() -> None:
    op.drop_table('catalog_item', schema='supply')
