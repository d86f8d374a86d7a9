"""dirty scope: backoff of failed continuous runs

Revision ID: 5b1f0c9d7a21
Revises: 67a44bafeeca
Create Date: 2026-12-02 10:12:40.118254
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '5b1f0c9d7a21'
down_revision: str | None = '67a44bafeeca'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('dirty_scope', sa.Column('attempts', sa.Integer(), server_default='0', nullable=False), schema='matching')
    op.add_column('dirty_scope', sa.Column('not_before', sa.DateTime(timezone=True), nullable=True), schema='matching')
    op.add_column('dirty_scope', sa.Column('last_error', sa.Text(), nullable=True), schema='matching')


def downgrade() -> None:
    op.drop_column('dirty_scope', 'last_error', schema='matching')
    op.drop_column('dirty_scope', 'not_before', schema='matching')
    op.drop_column('dirty_scope', 'attempts', schema='matching')
