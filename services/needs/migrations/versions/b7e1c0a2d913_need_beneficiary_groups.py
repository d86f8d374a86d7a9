"""need beneficiary groups: people served per group

Revision ID: b7e1c0a2d913
Revises: 3f7c2a9e5b10
Create Date: 2026-12-02 15:35:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'b7e1c0a2d913'
down_revision: str | None = '3f7c2a9e5b10'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'need',
        sa.Column('beneficiary_groups', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
        schema='needs',
    )


def downgrade() -> None:
    op.drop_column('need', 'beneficiary_groups', schema='needs')
