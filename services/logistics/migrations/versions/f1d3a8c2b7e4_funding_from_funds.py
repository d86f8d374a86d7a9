"""procurement funding from a fund: offer_id optional, keyed by position

Revision ID: f1d3a8c2b7e4
Revises: 6e2b8d4f0a17
Create Date: 2026-12-03 07:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'f1d3a8c2b7e4'
down_revision: str | None = '6e2b8d4f0a17'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint('pk_procurement_funding', 'procurement_funding', type_='primary', schema='logistics')
    op.alter_column('procurement_funding', 'offer_id', existing_type=sa.UUID(), nullable=True, schema='logistics')
    op.create_primary_key(
        'pk_procurement_funding', 'procurement_funding', ['procurement_id', 'position'], schema='logistics'
    )
    op.create_check_constraint(
        'ck_procurement_funding_one_source',
        'procurement_funding',
        'offer_id IS NOT NULL OR fund_id IS NOT NULL',
        schema='logistics',
    )


def downgrade() -> None:
    op.drop_constraint('ck_procurement_funding_one_source', 'procurement_funding', type_='check', schema='logistics')
    op.execute('DELETE FROM logistics.procurement_funding WHERE offer_id IS NULL')
    op.drop_constraint('pk_procurement_funding', 'procurement_funding', type_='primary', schema='logistics')
    op.alter_column('procurement_funding', 'offer_id', existing_type=sa.UUID(), nullable=False, schema='logistics')
    op.create_primary_key(
        'pk_procurement_funding', 'procurement_funding', ['procurement_id', 'offer_id'], schema='logistics'
    )
