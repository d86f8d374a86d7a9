"""need lines carry a coordinator's substitution override

Revision ID: f1a2b3c4d5e6
Revises: d81b3f6a2c47
Create Date: 2026-12-02 15:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'f1a2b3c4d5e6'
down_revision: str | None = 'd81b3f6a2c47'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        'need_line_view',
        sa.Column('substitution_override', sa.Boolean(), server_default='false', nullable=False),
        schema='matching',
    )


def downgrade() -> None:
    op.drop_column('need_line_view', 'substitution_override', schema='matching')
