"""needs projected with their relief operation, for exports by operation

Revision ID: a7c3e9f1d5b2
Revises: 8d3f5a1b7c24
Create Date: 2026-12-03 08:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'a7c3e9f1d5b2'
down_revision: str | None = '8d3f5a1b7c24'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('need_view', sa.Column('operation_id', sa.UUID(), nullable=True), schema='logistics')
    op.create_index(op.f('ix_need_view_operation_id'), 'need_view', ['operation_id'], unique=False, schema='logistics')


def downgrade() -> None:
    op.drop_index(op.f('ix_need_view_operation_id'), table_name='need_view', schema='logistics')
    op.drop_column('need_view', 'operation_id', schema='logistics')
