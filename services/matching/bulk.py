"""The statements of matching's batched need projection: many needs' locks, versions and dropped lines each in
one statement (see `services.matching.events.on_need_events`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.matching.models import NeedLineView


async def lock_needs(session: AsyncSession, need_ids: Sequence[uuid.UUID]) -> None:
    """`ProjectionRepository.lock_need` for many needs in one statement, taken in the order given."""
    keys = [f"need-lines:{n}" for n in need_ids]
    await session.execute(
        text(
            "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
            "FROM unnest(CAST(:keys AS text[])) WITH ORDINALITY AS t(k, i) ORDER BY i"
        ),
        {"keys": keys},
    )


async def newest_need_versions(session: AsyncSession, need_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, int]:
    stmt = (
        select(NeedLineView.need_id, func.max(NeedLineView.need_version))
        .where(NeedLineView.need_id.in_(need_ids))
        .group_by(NeedLineView.need_id)
    )
    return {row[0]: int(row[1]) for row in (await session.execute(stmt)).all()}


async def drop_older_lines_of(session: AsyncSession, versions: dict[uuid.UUID, int], keep: Sequence[uuid.UUID]) -> None:
    """`ProjectionRepository.drop_older_lines` for many needs: need id → the version whose lines stay."""
    if not versions:
        return
    t = NeedLineView.__table__
    assert isinstance(t, Table)
    await session.execute(
        text(
            f"DELETE FROM {t.fullname} v "
            "USING unnest(CAST(:ids AS uuid[]), CAST(:versions AS int[])) AS n(id, version) "
            "WHERE v.need_id = n.id AND v.need_version < n.version AND NOT (v.line_id = ANY(CAST(:keep AS uuid[])))"
        ),
        {"ids": list(versions), "versions": list(versions.values()), "keep": list(keep)},
    )
