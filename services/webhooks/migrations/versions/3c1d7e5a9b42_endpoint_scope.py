"""endpoint scope: all, or only the organisation's own records

Revision ID: 3c1d7e5a9b42
Revises: 5b7c2e9d4a10
Create Date: 2026-12-08 10:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '3c1d7e5a9b42'
down_revision: str | None = '5b7c2e9d4a10'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "endpoint", sa.Column("scope", sa.String(10), nullable=False, server_default="all"), schema="webhooks"
    )


def downgrade() -> None:
    op.drop_column("endpoint", "scope", schema="webhooks")
