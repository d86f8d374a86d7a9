"""assignments: accepted service proposals the partner confirms and reports done

Revision ID: 5a9c3e7b1d42
Revises: 3c1f7a9e2b40
Create Date: 2026-12-02 15:55:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '5a9c3e7b1d42'
down_revision: str | None = '3c1f7a9e2b40'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('assignment',
    sa.Column('id', sa.UUID(), nullable=False),
    sa.Column('proposal_id', sa.UUID(), nullable=False),
    sa.Column('org', sa.String(length=100), nullable=False),
    sa.Column('capacity_id', sa.UUID(), nullable=False),
    sa.Column('service_code', sa.String(length=100), nullable=False),
    sa.Column('need_id', sa.UUID(), nullable=False),
    sa.Column('need_line_id', sa.UUID(), nullable=False),
    sa.Column('site_id', sa.UUID(), nullable=True),
    sa.Column('need_org', sa.String(length=100), nullable=True),
    sa.Column('region_code', sa.String(length=6), nullable=False),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('units_delivered', sa.Integer(), nullable=True),
    sa.Column('people_served', sa.Integer(), nullable=True),
    sa.Column('served_by_group', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('confirmed_by', sa.String(length=200), nullable=True),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reported_by', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignment')),
    sa.UniqueConstraint('proposal_id', name=op.f('uq_assignment_proposal_id')),
    schema='partners'
    )
    op.create_index(op.f('ix_assignment_org'), 'assignment', ['org'], unique=False, schema='partners')
    op.create_index(op.f('ix_assignment_capacity_id'), 'assignment', ['capacity_id'], unique=False, schema='partners')
    op.create_index(op.f('ix_assignment_need_id'), 'assignment', ['need_id'], unique=False, schema='partners')
    op.create_index(op.f('ix_assignment_status'), 'assignment', ['status'], unique=False, schema='partners')
    op.create_index(op.f('ix_assignment_created_at_id'), 'assignment', ['created_at', 'id'], unique=False, schema='partners')


def downgrade() -> None:
    op.drop_table('assignment', schema='partners')
