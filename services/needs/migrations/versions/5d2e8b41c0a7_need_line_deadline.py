"""need lines take a deadline: hard (default) or soft

Revision ID: 5d2e8b41c0a7
Revises: 5d6e7f8a9b01
Create Date: 2026-12-02 15:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '5d2e8b41c0a7'
down_revision: str | None = '5d6e7f8a9b01'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'need_line',
        sa.Column('deadline', sa.String(length=10), server_default='hard', nullable=False),
        schema='needs',
    )


def downgrade() -> None:
    op.drop_column('need_line', 'deadline', schema='needs')
