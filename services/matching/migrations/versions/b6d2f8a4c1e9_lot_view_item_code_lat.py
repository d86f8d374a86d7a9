"""lot_view indexes of a component's nearest-lot search: by item and latitude

Revision ID: b6d2f8a4c1e9
Revises: a7c3e5f1b9d2
"""

from collections.abc import Sequence

from alembic import op

revision: str = "b6d2f8a4c1e9"
down_revision: str | None = "a7c3e5f1b9d2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_lot_view_item_code_lat", "lot_view", ["item_code", "lat"], schema="matching")


def downgrade() -> None:
    op.drop_index("ix_lot_view_item_code_lat", table_name="lot_view", schema="matching")
