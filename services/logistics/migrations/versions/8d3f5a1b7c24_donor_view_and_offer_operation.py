"""donors projected (org and public name) and offers' relief operation, for statements and public accounts

Revision ID: 8d3f5a1b7c24
Revises: f1d3a8c2b7e4
Create Date: 2026-12-03 06:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '8d3f5a1b7c24'
down_revision: str | None = 'f1d3a8c2b7e4'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('donor_view',
    sa.Column('donor_id', sa.UUID(), nullable=False),
    sa.Column('org', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('public_name', sa.String(length=200), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('donor_id', name=op.f('pk_donor_view')),
    schema='logistics'
    )
    op.create_index(op.f('ix_donor_view_org'), 'donor_view', ['org'], unique=False, schema='logistics')
    op.add_column('offer_view', sa.Column('operation_id', sa.UUID(), nullable=True), schema='logistics')
    op.create_index(op.f('ix_offer_view_operation_id'), 'offer_view', ['operation_id'], unique=False, schema='logistics')


def downgrade() -> None:
    op.drop_index(op.f('ix_offer_view_operation_id'), table_name='offer_view', schema='logistics')
    op.drop_column('offer_view', 'operation_id', schema='logistics')
    op.drop_index(op.f('ix_donor_view_org'), table_name='donor_view', schema='logistics')
    op.drop_table('donor_view', schema='logistics')
