"""change cursors: change_seq and change_xid on proposal

Revision ID: eaf35d549e04
Revises: 5b1f0c9d7a21
Create Date: 2026-12-08 10:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = 'eaf35d549e04'
down_revision: str | None = '5b1f0c9d7a21'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "matching"
# (table, the sequence its change_seq is drawn from)
TRACKED = [('proposal', 'proposal')]
SEQUENCES = ['proposal_change_seq']

# Inserts take both from the column defaults; every update (ORM, bulk UPDATE, upsert) from this trigger.
TRACK_CHANGE = f"""
CREATE FUNCTION {SCHEMA}.track_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_seq := nextval(TG_ARGV[0]::regclass);
    NEW.change_xid := pg_current_xact_id()::text::bigint;
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    for sequence in SEQUENCES:
        op.execute(f"CREATE SEQUENCE {SCHEMA}.{sequence}")
    op.execute(TRACK_CHANGE)
    for table, owner in TRACKED:
        sequence = f"{SCHEMA}.{owner}_change_seq"
        op.execute(
            f"ALTER TABLE {SCHEMA}.{table}"
            f" ADD COLUMN change_seq bigint NOT NULL DEFAULT nextval('{sequence}'),"
            f" ADD COLUMN change_xid bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint"
        )
        op.create_index(f"ix_{table}_change_xid", table, ["change_xid"], schema=SCHEMA)
        op.execute(
            f"CREATE TRIGGER {table}_track_change BEFORE UPDATE ON {SCHEMA}.{table}"
            f" FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.track_change('{sequence}')"
        )


def downgrade() -> None:
    for table, _ in reversed(TRACKED):
        op.execute(f"DROP TRIGGER {table}_track_change ON {SCHEMA}.{table}")
        op.drop_index(f"ix_{table}_change_xid", table_name=table, schema=SCHEMA)
        op.execute(f"ALTER TABLE {SCHEMA}.{table} DROP COLUMN change_seq, DROP COLUMN change_xid")
    op.execute(f"DROP FUNCTION {SCHEMA}.track_change()")
    for sequence in SEQUENCES:
        op.execute(f"DROP SEQUENCE {SCHEMA}.{sequence}")
