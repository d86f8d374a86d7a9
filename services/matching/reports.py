"""The matching service's report queries over its projection."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.matching.models import NeedLineView
from services.matching.repository import accepted_by_line


async def kpi_rows(session: AsyncSession, level: int, region_code: str | None) -> list[tuple[Any, ...]]:
    """Per region prefix of `level` characters: lines, quantity, accepted, lines matched, wait p50/p90."""
    accepted = accepted_by_line()
    v = NeedLineView
    region = func.substr(v.region_code, 1, level).label("region")
    waited = func.extract("epoch", v.first_matched_at - v.first_seen_at)
    stmt = (
        select(
            region,
            func.count(),
            func.sum(v.quantity),
            func.sum(func.coalesce(accepted.c.accepted, 0)),
            func.count(v.first_matched_at),
            func.percentile_cont(0.5).within_group(waited),
            func.percentile_cont(0.9).within_group(waited),
        )
        .outerjoin(accepted, accepted.c.need_line_id == v.line_id)
        .group_by(region)
        .order_by(region)
    )
    if region_code:
        stmt = stmt.where(v.region_code.startswith(region_code, autoescape=True))
    return [tuple(r) for r in (await session.execute(stmt)).all()]
