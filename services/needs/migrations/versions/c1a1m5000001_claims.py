"""claims: partners cover need lines themselves

Revision ID: c1a1m5000001
Revises: b7e1c0a2d913
Create Date: 2026-12-02 15:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'c1a1m5000001'
down_revision: str | None = 'b7e1c0a2d913'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('need_line', sa.Column('quantity_claimed', sa.Integer(), server_default='0', nullable=False), schema='needs')
    op.create_check_constraint(op.f('ck_need_line_claimed_nonnegative'), 'need_line', 'quantity_claimed >= 0', schema='needs')
    op.create_table('claim',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('need_id', sa.UUID(), nullable=False),
    sa.Column('org', sa.String(length=100), nullable=False),
    sa.Column('region_code', sa.String(length=6), nullable=False),
    sa.Column('status', sa.Enum('pending', 'confirmed', 'withdrawn', 'expired', 'fulfilled', name='claimstatus', native_enum=False, length=20, schema='needs'), nullable=False),
    sa.Column('lines', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('eta', sa.DateTime(timezone=True), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_by', sa.String(length=200), nullable=True),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.ForeignKeyConstraint(['need_id'], ['needs.need.id'], name=op.f('fk_claim_need_id_need')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_claim')),
    schema='needs'
    )
    op.create_index(op.f('ix_claim_created_at_id'), 'claim', ['created_at', 'id'], unique=False, schema='needs')
    op.create_index(op.f('ix_claim_expires_at'), 'claim', ['expires_at'], unique=False, schema='needs', postgresql_where="status = 'pending'")
    op.create_index(op.f('ix_claim_need_id'), 'claim', ['need_id'], unique=False, schema='needs')
    op.create_index(op.f('ix_claim_org'), 'claim', ['org'], unique=False, schema='needs')
    op.create_index(op.f('ix_claim_status'), 'claim', ['status'], unique=False, schema='needs')


def downgrade() -> None:
    op.drop_table('claim', schema='needs')
    op.drop_constraint(op.f('ck_need_line_claimed_nonnegative'), 'need_line', schema='needs', type_='check')
    op.drop_column('need_line', 'quantity_claimed', schema='needs')
