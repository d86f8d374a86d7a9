"""supply's copies of logistics' relief operations and special funds

Revision ID: 9c4e1a7b3d20
Revises: 7ba12c8c22f2
Create Date: 2026-12-03 06:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '9c4e1a7b3d20'
down_revision: str | None = '7ba12c8c22f2'
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
        schema='supply',
    )
    op.create_table(
        'fund_view',
        sa.Column('id', sa.UUID(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('operation_id', sa.UUID(), nullable=True),
        sa.Column('restrictions', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_fund_view')),
        schema='supply',
    )


def downgrade() -> None:
    op.drop_table('fund_view', schema='supply')
    op.drop_table('operation_view', schema='supply')
