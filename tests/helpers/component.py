"""A component expansion's reads over in-memory rows (those of tests/helpers/scoring.py), with the semantics of
services.matching.component_repository: lines with demand left, lots with units left, each point's nearest."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from services.matching.component_repository import Point
from tests.helpers.scoring import haversine


def line_uuid(i: int) -> uuid.UUID:
    return uuid.UUID(int=i + 1)


def lot_uuid(j: int) -> uuid.UUID:
    return uuid.UUID(int=(1 << 64) + j)


class MemorySource:
    """Rows by index; `remaining` and `available` are what open proposals leave of each."""

    def __init__(self, lines: list[dict[str, Any]], lots: list[dict[str, Any]]) -> None:
        self.lines, self.lots = lines, lots

    def _point(self, i: int) -> Point:
        row = self.lines[i]
        return Point(line_uuid(i), row["item_code"], row["lat"], row["lon"])

    async def residual_lines(
        self, item_codes: Sequence[str], now: datetime, *, line_ids: Sequence[uuid.UUID] | None, limit: int
    ) -> list[Point]:
        wanted = None if line_ids is None else set(line_ids)
        found = [
            self._point(i)
            for i, row in enumerate(self.lines)
            if row["remaining"] > 0 and row["item_code"] in item_codes and (wanted is None or line_uuid(i) in wanted)
        ]
        return sorted(found, key=lambda p: p.id)[:limit]

    def _residual(self, item_codes: Sequence[str]) -> list[int]:
        return [j for j, lot in enumerate(self.lots) if lot["available"] > 0 and lot["item_code"] in item_codes]

    async def residual_lots(
        self, item_codes: Sequence[str], lot_ids: Sequence[uuid.UUID], now: datetime
    ) -> list[tuple[uuid.UUID, str]]:
        wanted = set(lot_ids)
        return [(lot_uuid(j), self.lots[j]["item_code"]) for j in self._residual(item_codes) if lot_uuid(j) in wanted]

    async def nearest_lots(
        self, item_codes: Sequence[str], points: Sequence[Point], now: datetime, *, k: int, default_km: float
    ) -> list[tuple[uuid.UUID, str]]:
        out: dict[uuid.UUID, str] = {}
        for p in points:

            def km(j: int, p: Point = p) -> float:
                lot = self.lots[j]
                if p.lat is None or p.lon is None or lot["lat"] is None or lot["lon"] is None:
                    return default_km
                return haversine((p.lat, p.lon), (lot["lat"], lot["lon"]))

            for j in sorted(self._residual(item_codes), key=lambda j: (km(j), lot_uuid(j)))[:k]:
                out[lot_uuid(j)] = self.lots[j]["item_code"]
        return list(out.items())
