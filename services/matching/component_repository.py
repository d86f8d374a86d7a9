"""The queries of a component-bounded continuous run (services.matching.component): need lines with demand left
and lots with supply left around the open proposals, by id or by item, and each line's nearest such lots. Each
returns at most the rows asked for, so that what a run reads follows its component, not the item's backlog."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Float, bindparam, func, literal, select, true
from sqlalchemy.dialects.postgresql import ARRAY

from services.matching.models import LotView, NeedLineView
from services.matching.repository import (
    ACTIVE_NEED,
    AVAILABLE_LOT,
    _codes,
    _held_by_line,
    _held_by_lot,
    _ids,
    _lot_available,
    accepted_by_line,
)
from shared.db import RepositoryBase
from shared.vocabulary import Verdict

EARTH_RADIUS_KM = 6371.0088


@dataclass(frozen=True)
class Point:
    """A line of the component as its expansion sees it."""

    id: uuid.UUID
    item_code: str
    lat: float | None
    lon: float | None


class ComponentRepository(RepositoryBase[NeedLineView]):
    model = NeedLineView

    async def residual_lines(
        self, item_codes: Sequence[str], now: datetime, *, line_ids: Sequence[uuid.UUID] | None, limit: int
    ) -> list[Point]:
        """Active lines of these items with demand left once accepted and open proposals are taken off (of
        `line_ids` only, when given): at most `limit`."""
        accepted, held, v = accepted_by_line(), _held_by_line(now), NeedLineView
        left = v.quantity - func.coalesce(accepted.c.accepted, 0) - func.coalesce(held.c.held, 0)
        stmt = (
            select(v.line_id, v.item_code, v.lat, v.lon)
            .outerjoin(accepted, accepted.c.need_line_id == v.line_id)
            .outerjoin(held, held.c.need_line_id == v.line_id)
            .where(
                v.need_status.in_(ACTIVE_NEED),
                v.verification != Verdict.rejected,
                v.item_code == _codes(item_codes),
                left > 0,
            )
            .order_by(v.line_id)
            .limit(limit)
        )
        if line_ids is not None:
            stmt = stmt.where(v.line_id == _ids(line_ids))
        return [Point(*row) for row in (await self.session.execute(stmt)).all()]

    def _residual_lots(self, item_codes: Sequence[str], now: datetime) -> Any:
        pending, available = _lot_available()
        held = _held_by_lot(now)
        return (
            select(LotView.lot_id, LotView.item_code, LotView.lat, LotView.lon)
            .outerjoin(pending, pending.c.lot_id == LotView.lot_id)
            .outerjoin(held, held.c.lot_id == LotView.lot_id)
            .where(
                LotView.item_code == _codes(sorted(item_codes)),
                LotView.offer_status == "open",
                LotView.verification.in_(AVAILABLE_LOT),
                available - func.coalesce(held.c.held, 0) > 0,
            )
        )

    async def residual_lots(
        self, item_codes: Sequence[str], lot_ids: Sequence[uuid.UUID], now: datetime
    ) -> list[tuple[uuid.UUID, str]]:
        """These lots, of these items, with units left once open proposals are taken off: (id, item code)."""
        if not lot_ids:
            return []
        stmt = self._residual_lots(item_codes, now).where(LotView.lot_id == _ids(lot_ids))
        return [(row.lot_id, row.item_code) for row in (await self.session.execute(stmt)).all()]

    async def nearest_lots(
        self,
        item_codes: Sequence[str],
        points: Sequence[Point],
        now: datetime,
        *,
        k: int,
        default_km: float,
    ) -> list[tuple[uuid.UUID, str]]:
        """The `k` nearest lots of these items with units left, of each point (a lot or point without coordinates
        is `default_km` away, as in the candidate search): the distinct (id, item code)."""
        if not points:
            return []
        residual = self._residual_lots(item_codes, now).cte("residual").prefix_with("MATERIALIZED")
        at = (
            func.unnest(
                bindparam(None, [p.lat for p in points], type_=ARRAY(Float())),
                bindparam(None, [p.lon for p in points], type_=ARRAY(Float())),
            )
            .table_valued("lat", "lon")
            .render_derived(name="at")
        )
        r = residual.c
        half = func.pow(func.sin(func.radians(r.lat - at.c.lat) / 2.0), 2) + func.cos(
            func.radians(at.c.lat)
        ) * func.cos(func.radians(r.lat)) * func.pow(func.sin(func.radians(r.lon - at.c.lon) / 2.0), 2)
        km = func.coalesce(2 * EARTH_RADIUS_KM * func.asin(func.sqrt(func.least(half, literal(1.0)))), default_km)
        nearest = select(r.lot_id, r.item_code).order_by(km, r.lot_id).limit(k).lateral("nearest")
        stmt = select(nearest.c.lot_id, nearest.c.item_code).select_from(at).join(nearest, true()).distinct()
        return [(row.lot_id, row.item_code) for row in (await self.session.execute(stmt)).all()]
