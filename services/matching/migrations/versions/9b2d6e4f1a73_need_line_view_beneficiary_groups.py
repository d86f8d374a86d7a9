"""need_line_view carries whom the line's need serves (beneficiary groups and counts)

Revision ID: 9b2d6e4f1a73
Revises: 7e4c1a9d3b52
Create Date: 2026-12-03 06:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '9b2d6e4f1a73'
down_revision: str | None = '7e4c1a9d3b52'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'need_line_view',
        sa.Column('beneficiary_groups', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
        schema='matching',
    )


def downgrade() -> None:
    op.drop_column('need_line_view', 'beneficiary_groups', schema='matching')
