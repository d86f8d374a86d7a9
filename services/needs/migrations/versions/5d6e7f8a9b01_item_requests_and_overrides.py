"""item requests, need lines waiting for an item, substitution overrides

Revision ID: 5d6e7f8a9b01
Revises: c1a1m5000001
Create Date: 2026-12-02 15:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '5d6e7f8a9b01'
down_revision: str | None = 'c1a1m5000001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'item_request',
        sa.Column('id', sa.UUID(), nullable=False),
        sa.Column('org', sa.String(length=100), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('unit', sa.String(length=20), nullable=False),
        sa.Column('category', sa.String(length=50), nullable=False),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('item_code', sa.String(length=100), nullable=True),
        sa.Column('requested_by', sa.String(length=200), nullable=False),
        sa.Column('decided_by', sa.String(length=200), nullable=True),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_item_request')),
        schema='needs',
    )
    op.create_index(op.f('ix_item_request_created_at_id'), 'item_request', ['created_at', 'id'], schema='needs')
    op.create_index(op.f('ix_item_request_org'), 'item_request', ['org'], schema='needs')
    op.create_index(op.f('ix_item_request_status'), 'item_request', ['status'], schema='needs')
    op.alter_column('need_line', 'item_code', existing_type=sa.String(length=100), nullable=True, schema='needs')
    op.add_column(
        'need_line', sa.Column('status', sa.String(length=20), server_default='open', nullable=False), schema='needs'
    )
    op.add_column('need_line', sa.Column('item_request_id', sa.UUID(), nullable=True), schema='needs')
    op.add_column('need_line', sa.Column('pending_reason', sa.Text(), nullable=True), schema='needs')
    op.add_column(
        'need_line',
        sa.Column('substitution_override', sa.Boolean(), server_default='false', nullable=False),
        schema='needs',
    )
    op.add_column('need_line', sa.Column('override_by', sa.String(length=200), nullable=True), schema='needs')
    op.add_column('need_line', sa.Column('override_at', sa.DateTime(timezone=True), nullable=True), schema='needs')
    op.add_column('need_line', sa.Column('override_reason', sa.Text(), nullable=True), schema='needs')
    op.create_foreign_key(
        op.f('fk_need_line_item_request_id_item_request'),
        'need_line',
        'item_request',
        ['item_request_id'],
        ['id'],
        source_schema='needs',
        referent_schema='needs',
    )
    op.create_index(op.f('ix_need_line_item_request_id'), 'need_line', ['item_request_id'], schema='needs')


def downgrade() -> None:
    op.drop_index(op.f('ix_need_line_item_request_id'), table_name='need_line', schema='needs')
    op.drop_constraint(
        op.f('fk_need_line_item_request_id_item_request'), 'need_line', schema='needs', type_='foreignkey'
    )
    for column in (
        'override_reason',
        'override_at',
        'override_by',
        'substitution_override',
        'pending_reason',
        'item_request_id',
        'status',
    ):
        op.drop_column('need_line', column, schema='needs')
    op.execute("DELETE FROM needs.need_line WHERE item_code IS NULL")
    op.alter_column('need_line', 'item_code', existing_type=sa.String(length=100), nullable=False, schema='needs')
    op.drop_table('item_request', schema='needs')
