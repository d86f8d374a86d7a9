"""needs join relief operations; needs' copy of logistics' operations

Revision ID: 6a3f9d2c1e47
Revises: 5d2e8b41c0a7
Create Date: 2026-12-03 06:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '6a3f9d2c1e47'
down_revision: str | None = '5d2e8b41c0a7'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'operation_view',
        sa.Column('id', sa.UUID(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('region_code', sa.String(length=6), nullable=True),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_operation_view')),
        schema='needs',
    )
    op.add_column('need', sa.Column('operation_id', sa.UUID(), nullable=True), schema='needs')
    op.create_index(op.f('ix_need_operation_id'), 'need', ['operation_id'], unique=False, schema='needs')


def downgrade() -> None:
    op.drop_index(op.f('ix_need_operation_id'), table_name='need', schema='needs')
    op.drop_column('need', 'operation_id', schema='needs')
    op.drop_table('operation_view', schema='needs')
