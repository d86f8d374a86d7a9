"""need_line_view carries the line's deadline (hard or soft)

Revision ID: 7e4c1a9d3b52
Revises: 8d4e6a1c2f30
Create Date: 2026-12-02 15:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '7e4c1a9d3b52'
down_revision: str | None = '8d4e6a1c2f30'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'need_line_view',
        sa.Column('deadline', sa.String(length=10), server_default='hard', nullable=False),
        schema='matching',
    )


def downgrade() -> None:
    op.drop_column('need_line_view', 'deadline', schema='matching')
