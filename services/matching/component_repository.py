"""The queries of a component-bounded continuous run (services.matching.component): need lines with demand left
and lots with supply left around the open proposals, by id or by item, and each line's nearest such lots. Each
returns at most the rows asked for, so that what a run reads follows its component, not the item's backlog."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, true

from services.matching.models import LotView, NeedLineView
from services.matching.repository import (
    ACTIVE_NEED,
    AVAILABLE_LOT,
    _codes,
    _held_by_line,
    _ids,
    accepted_by_line,
    line_totals,
    lot_totals,
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
        v = NeedLineView
        stmt: Any
        if line_ids is not None:  # a few lines: their own proposals summed, not every line's grouped
            totals = line_totals(v.line_id, now)
            stmt = select(v.line_id, v.item_code, v.lat, v.lon).join(totals, true())
            left = v.quantity - totals.c.accepted - totals.c.held
        else:
            accepted, held = accepted_by_line(), _held_by_line(now)
            left = v.quantity - func.coalesce(accepted.c.accepted, 0) - func.coalesce(held.c.held, 0)
            stmt = (
                select(v.line_id, v.item_code, v.lat, v.lon)
                .outerjoin(accepted, accepted.c.need_line_id == v.line_id)
                .outerjoin(held, held.c.need_line_id == v.line_id)
            )
        stmt = (
            stmt.where(
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

    async def residual_lots(
        self, item_codes: Sequence[str], lot_ids: Sequence[uuid.UUID], now: datetime
    ) -> list[tuple[uuid.UUID, str]]:
        """These lots, of these items, with units left once open proposals are taken off: (id, item code)."""
        if not lot_ids:
            return []
        totals = lot_totals(LotView.lot_id, now)
        stmt = (
            select(LotView.lot_id, LotView.item_code)
            .join(totals, true())
            .where(
                LotView.lot_id == _ids(lot_ids),
                LotView.item_code == _codes(sorted(item_codes)),
                LotView.offer_status == "open",
                LotView.verification.in_(AVAILABLE_LOT),
                LotView.quantity - LotView.quantity_reserved - totals.c.pending - totals.c.held > 0,
            )
        )
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
        """The `k` nearest lots of these items with units left, of each point: the distinct (id, item code). (A
        lot or point without coordinates comes out half the circumference away, not `default_km`: least() skips
        the NULL.)

        A point's lots are looked for within a radius first (a bounding box on the lot_view (item_code, lat)
        index), widened until `k` are found within it: the `k` nearest then lie inside it, and only the lots it
        holds have their units left counted, nearest first, until `k` are found."""
        found: set[tuple[uuid.UUID, str]] = set()
        left = [p for p in points if p.lat is not None and p.lon is not None]
        params = {"codes": sorted(item_codes), "now": now, "k": k, "default_km": default_km}
        radius = _FIRST_RADIUS_KM
        while left and radius < _HALF_CIRCUMFERENCE_KM:
            per_point = await self._within(left, radius, params)
            done = {i for i, lots in per_point.items() if len(lots) >= k}
            for i in done:
                found.update(per_point[i])
            left = [p for i, p in enumerate(left) if i not in done]
            radius *= _WIDEN
        rest = left + [p for p in points if p.lat is None or p.lon is None]
        if rest:
            at = {"i": list(range(len(rest))), "lat": [p.lat for p in rest], "lon": [p.lon for p in rest]}
            rows = await self.session.execute(_NEAREST, {**params, **at})
            found.update((lot_id, code) for _, lot_id, code in rows.all())
        return sorted(found)

    async def _within(
        self, points: list[Point], radius: float, params: dict[str, Any]
    ) -> dict[int, list[tuple[uuid.UUID, str]]]:
        """Each point's (by its index) nearest lots with units left within `radius` km, at most `k`."""
        boxes = [_box(p, radius) for p in points]
        at = {"i": list(range(len(points))), "lat": [p.lat for p in points], "lon": [p.lon for p in points]}
        boxed = {name: [b[n] for b in boxes] for n, name in enumerate(_BOX)}
        rows = await self.session.execute(_NEAREST_WITHIN, {**params, **at, **boxed, "radius": radius})
        per_point: dict[int, list[tuple[uuid.UUID, str]]] = {}
        for i, lot_id, code in rows.all():
            per_point.setdefault(i, []).append((lot_id, code))
        return per_point


_FIRST_RADIUS_KM, _WIDEN = 100.0, 4.0
_HALF_CIRCUMFERENCE_KM = math.pi * EARTH_RADIUS_KM  # a radius past it holds the whole sphere
_BOX = ("lat_lo", "lat_hi", "lon_lo", "lon_hi")
_MARGIN_DEG = 1e-6  # about 0.1 m: rounding never leaves a lot within the radius outside its box


def _box(p: Point, radius_km: float) -> tuple[float, float, float, float]:
    """The latitude and longitude ranges that hold every place within `radius_km` of the point (on the sphere:
    http://janmatuschek.de/LatitudeLongitudeBoundingCoordinates)."""
    assert p.lat is not None and p.lon is not None
    angle = radius_km / EARTH_RADIUS_KM
    d_lat = math.degrees(angle) + _MARGIN_DEG
    lat_lo, lat_hi = p.lat - d_lat, p.lat + d_lat
    if lat_lo <= -90 or lat_hi >= 90:  # a pole within reach: every longitude
        return max(lat_lo, -90.0), min(lat_hi, 90.0), -180.0, 180.0
    d_lon = math.degrees(math.asin(min(1.0, math.sin(angle) / math.cos(math.radians(p.lat))))) + _MARGIN_DEG
    lon_lo, lon_hi = p.lon - d_lon, p.lon + d_lon
    if lon_lo <= -180 or lon_hi >= 180:  # across the antimeridian: every longitude
        return lat_lo, lat_hi, -180.0, 180.0
    return lat_lo, lat_hi, lon_lo, lon_hi


# The great-circle distance of the candidate search (services.matching.scoring), in SQL.
_KM = f"""coalesce({2 * EARTH_RADIUS_KM!r} * asin(sqrt(least(
        pow(sin(radians(v.lat - at.lat) / 2.0), 2)
        + cos(radians(at.lat)) * cos(radians(v.lat)) * pow(sin(radians(v.lon - at.lon) / 2.0), 2),
        1.0))), :default_km)"""

# Each point's `k` nearest lots with units left (repository._lot_available, less what open proposals hold):
# candidates nearest first (OFFSET 0 keeps the sort below the count), each one's proposals summed by the lot_id
# index only until `k` have units left.
_NEAREST_SQL = """
SELECT at.i, n.lot_id, n.item_code
FROM unnest(CAST(:i AS int[]), CAST(:lat AS float8[]), CAST(:lon AS float8[]){box_arrays})
    AS at (i, lat, lon{box_names})
CROSS JOIN LATERAL (
    SELECT c.lot_id, c.item_code
    FROM (
        SELECT v.lot_id, v.item_code, v.quantity - v.quantity_reserved AS unreserved, {km} AS km
        FROM matching.lot_view AS v
        WHERE v.item_code = ANY(CAST(:codes AS varchar[]))
            AND v.offer_status = 'open'
            AND v.verification IN ({available}){within}
        ORDER BY km, v.lot_id
        OFFSET 0
    ) AS c
    CROSS JOIN LATERAL (
        SELECT
            coalesce(sum(CASE WHEN p.lot_quantity IS NOT NULL AND p.quantity > 0
                    THEN (CAST(p.accepted_quantity AS bigint) * p.lot_quantity + p.quantity - 1) / p.quantity
                    ELSE p.accepted_quantity END)
                FILTER (WHERE p.status = 'accepted' AND p.reservation_projected IS false), 0) AS pending,
            coalesce(sum(p.quantity) FILTER (WHERE p.status = 'proposed' AND p.expires_at > :now), 0) AS held
        FROM matching.proposal AS p
        WHERE p.lot_id = c.lot_id
    ) AS t
    WHERE c.unreserved - t.pending - t.held > 0
    LIMIT :k
) AS n
"""
# The box by the (item_code, lat) index. A lot or point without coordinates is half the circumference away
# (least() skips the NULL), beyond every radius: such lots are found by the unbounded search only.
_WITHIN = """
            AND v.lot_id IN (
                SELECT b.lot_id FROM matching.lot_view AS b
                WHERE b.item_code = ANY(CAST(:codes AS varchar[])) AND b.lat BETWEEN at.lat_lo AND at.lat_hi
                    AND b.lon BETWEEN at.lon_lo AND at.lon_hi
            )
            AND {km} <= :radius"""
_AVAILABLE = ", ".join(f"'{v}'" for v in AVAILABLE_LOT)
_NEAREST = text(_NEAREST_SQL.format(box_arrays="", box_names="", available=_AVAILABLE, within="", km=_KM))
_NEAREST_WITHIN = text(
    _NEAREST_SQL.format(
        box_arrays="".join(f", CAST(:{n} AS float8[])" for n in _BOX),
        box_names="".join(f", {n}" for n in _BOX),
        available=_AVAILABLE,
        within=_WITHIN.format(km=_KM),
        km=_KM,
    )
)
