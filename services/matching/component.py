"""The component of a change: what a continuous run has to read when its marks name the need lines and lots that
changed. Open proposals are held fixed, so only demand and supply they leave can move: starting from the changed
lines and lots, the expansion alternates

  lines → their `max_candidates_per_line` nearest lots (of the item or an allowed substitute) with units left,
  lots  → the lines with demand left of the items those lots can serve,

until nothing new is found (a lot with nothing left, or a line with nothing left, ends its branch). The lots a
line can be proposed are among its nearest with units left, so no line or lot outside the component can gain
from the change; each component is an allocation problem of its own beside the rest of the group. Past the
size or hop bound the run takes the whole item group instead (returns None)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from services.matching.capacities import is_service
from services.matching.component_repository import ComponentRepository, Point
from services.matching.policy import Policy
from services.matching.runs import lot_items_for


@dataclass(frozen=True)
class Component:
    """The lines and lots a continuous run reads, and what finding them took."""

    lines: list[uuid.UUID]
    lots: list[uuid.UUID]
    hops: int
    rows_read: int  # rows the expansion's queries returned


@dataclass(frozen=True)
class Bounds:
    max_size: int
    max_hops: int


@dataclass(frozen=True)
class Changed:
    """What a continuous run's marks name: the changed lines and lots, and how far their component may grow."""

    lines: set[uuid.UUID]
    lots: set[uuid.UUID]
    bounds: Bounds


class Source(Protocol):
    """What the expansion reads (ComponentRepository; the property tests give one over arrays)."""

    async def residual_lines(
        self, item_codes: Sequence[str], now: datetime, *, line_ids: Sequence[uuid.UUID] | None, limit: int
    ) -> list[Point]: ...

    async def residual_lots(
        self, item_codes: Sequence[str], lot_ids: Sequence[uuid.UUID], now: datetime
    ) -> list[tuple[uuid.UUID, str]]: ...

    async def nearest_lots(
        self, item_codes: Sequence[str], points: Sequence[Point], now: datetime, *, k: int, default_km: float
    ) -> list[tuple[uuid.UUID, str]]: ...


LotItems = Callable[[str], set[str]]  # a line item → the lot items that may serve it


def _catalog_lot_items(item: str) -> set[str]:
    return lot_items_for({item})


def _serving(items: tuple[str, ...], lot_items: LotItems) -> dict[str, set[str]]:
    """For each lot item, the line items of the group it may serve (itself, or as an allowed substitute)."""
    out: dict[str, set[str]] = {}
    for item in items:
        for code in lot_items(item):
            out.setdefault(code, set()).add(item)
    return out


class Expansion:
    """One component's search (see the module's doc)."""

    def __init__(
        self,
        source: Source,
        items: tuple[str, ...],
        policy: Policy,
        now: datetime,
        bounds: Bounds,
        lot_items: LotItems = _catalog_lot_items,
    ) -> None:
        self.repo, self.lot_items = source, lot_items
        self.items, self.policy, self.now, self.bounds = items, policy, now, bounds
        self.serving = _serving(items, lot_items)
        self.lines: dict[uuid.UUID, Point] = {}
        self.lots: dict[uuid.UUID, str] = {}
        self.reached_items: set[str] = set()  # line items whose lines with demand left are all in
        self.rows = 0

    def room(self) -> int:
        return self.bounds.max_size - len(self.lines) - len(self.lots)

    async def lots_of(self, lines: list[Point]) -> list[tuple[uuid.UUID, str]]:
        by_item: dict[str, list[Point]] = {}
        for p in lines:
            by_item.setdefault(p.item_code, []).append(p)
        found: dict[uuid.UUID, str] = {}
        for item, points in sorted(by_item.items()):
            rows = await self.repo.nearest_lots(
                sorted(self.lot_items(item)),
                points,
                self.now,
                k=self.policy.max_candidates_per_line,
                default_km=self.policy.default_distance_km,
            )
            self.rows += len(rows)
            found.update((i, code) for i, code in rows if i not in self.lots)
        return list(found.items())

    async def lines_of(self, lots: Iterable[tuple[uuid.UUID, str]]) -> list[Point] | None:
        items = {item for _, code in lots for item in self.serving.get(code, ())} - self.reached_items
        if not items:
            return []
        if self.room() < 0:
            return None
        self.reached_items |= items
        # The lines in already (those of the seeds) come back too: room for them.
        limit = self.room() + len(self.lines) + 1
        rows = await self.repo.residual_lines(sorted(items), self.now, line_ids=None, limit=limit)
        self.rows += len(rows)
        new = [p for p in rows if p.id not in self.lines]
        return None if len(new) > self.room() else new

    async def run(self, line_ids: set[uuid.UUID], lot_ids: set[uuid.UUID]) -> Component | None:
        limit = self.bounds.max_size + 1
        lines = await self.repo.residual_lines(self.items, self.now, line_ids=sorted(line_ids), limit=limit)
        lot_items = sorted(self.serving)
        lots = await self.repo.residual_lots(lot_items, sorted(lot_ids), self.now)
        self.rows += len(lines) + len(lots)
        hops = 0
        while lines or lots:
            if hops >= self.bounds.max_hops:
                return None
            hops += 1
            self.lines.update((p.id, p) for p in lines)
            self.lots.update(lots)
            if self.room() < 0:
                return None
            new_lots = await self.lots_of(lines)
            self.lots.update(new_lots)
            # The lines that could take the lots reached so far: the next hop's frontier (their lots follow).
            new_lines = await self.lines_of(lots + new_lots)
            if new_lines is None:
                return None
            lines, lots = new_lines, []
        if self.room() < 0:
            return None
        return Component(sorted(self.lines), sorted(self.lots), hops, self.rows)


async def component_of(
    session: AsyncSession,
    items: tuple[str, ...],
    line_ids: set[uuid.UUID],
    lot_ids: set[uuid.UUID],
    *,
    policy: Policy,
    now: datetime,
    bounds: Bounds,
) -> Component | None:
    """The component of these changed lines and lots within the item group `items`, or None when the whole group
    is to be run: past the bounds, or a group of services (capacities are not searched by place)."""
    if any(is_service(code) for code in items):
        return None
    return await Expansion(ComponentRepository(session), items, policy, now, bounds).run(line_ids, lot_ids)
