"""proposals record the run's replacement of an open proposal; lots a line's site declined

Revision ID: 3c7d2e91a4b8
Revises: eaf35d549e04
Create Date: 2026-12-02 14:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '3c7d2e91a4b8'
down_revision: str | None = 'eaf35d549e04'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('proposal', sa.Column('replaced_by', sa.UUID(), nullable=True), schema='matching')
    op.add_column('proposal', sa.Column('replaced_reason', sa.Text(), nullable=True), schema='matching')
    op.create_table(
        'line_exclusion',
        sa.Column('need_line_id', sa.UUID(), nullable=False),
        sa.Column('lot_id', sa.UUID(), nullable=False),
        sa.Column('proposal_id', sa.UUID(), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('created_by', sa.String(length=200), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('need_line_id', 'lot_id'),
        schema='matching',
    )


def downgrade() -> None:
    op.drop_table('line_exclusion', schema='matching')
    op.drop_column('proposal', 'replaced_reason', schema='matching')
    op.drop_column('proposal', 'replaced_by', schema='matching')
