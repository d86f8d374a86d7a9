"""dirty_member: the need lines and lots a dirty item's change names, for component-bounded continuous runs

Revision ID: a7c3e5f1b9d2
Revises: 9b2d6e4f1a73
Create Date: 2026-12-03 07:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'a7c3e5f1b9d2'
down_revision: str | None = '9b2d6e4f1a73'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'dirty_member',
        sa.Column('item_code', sa.String(length=100), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('member_id', postgresql.UUID(as_uuid=True), nullable=False),
        sa.PrimaryKeyConstraint('item_code', 'kind', 'member_id'),
        schema='matching',
    )


def downgrade() -> None:
    op.drop_table('dirty_member', schema='matching')
