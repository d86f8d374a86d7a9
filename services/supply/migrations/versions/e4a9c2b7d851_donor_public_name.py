"""donor public name: the name public accounts may show

Revision ID: e4a9c2b7d851
Revises: a62e9c4f1b38
Create Date: 2026-12-02 15:42:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'e4a9c2b7d851'
down_revision: str | None = 'a62e9c4f1b38'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('donor', sa.Column('public_name', sa.String(length=200), nullable=True), schema='supply')


def downgrade() -> None:
    op.drop_column('donor', 'public_name', schema='supply')
