"""logistics' copy of needs keeps whom they serve (beneficiary groups), for funding restrictions

Revision ID: 3e7b1c9d2f40
Revises: 064f6a5f96d0
Create Date: 2026-12-02 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '3e7b1c9d2f40'
down_revision: str | None = '064f6a5f96d0'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'need_view',
        sa.Column('beneficiary_groups', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
        schema='logistics',
    )


def downgrade() -> None:
    op.drop_column('need_view', 'beneficiary_groups', schema='logistics')
