"""feedback served by group: people served per beneficiary group

Revision ID: c5d2e8f41a07
Revises: b93d5e7f2a16
Create Date: 2026-12-02 15:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'c5d2e8f41a07'
down_revision: str | None = 'b93d5e7f2a16'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'feedback',
        sa.Column('served_by_group', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
        schema='logistics',
    )


def downgrade() -> None:
    op.drop_column('feedback', 'served_by_group', schema='logistics')
