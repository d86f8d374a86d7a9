"""Partners' capacities in matching: their projection, what each still has to give, and the feasible (need
line, capacity) pairs with their scores. A capacity covers an area (region prefixes; none = national) and a
date window; it has `units_per_day` for each day of the window still ahead, less what open and accepted
proposals already hold. Service lines are then allocated by the same engine as goods."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from services.matching.models import CapacityView
from services.matching.repository import CapacityRepository
from services.matching.scoring import Candidates, LineTable, LotTable, score_pairs
from shared.vocabulary import SERVICE_CATEGORY

if TYPE_CHECKING:  # policy imports events, which imports this module
    from services.matching.policy import Policy

SERVICE_PREFIX = f"{SERVICE_CATEGORY}."


def is_service(code: str) -> bool:
    return code.startswith(SERVICE_PREFIX)


def days_ahead(capacity: CapacityView, today: date) -> int:
    return max(0, (capacity.ends_on - max(capacity.starts_on, today)).days + 1)


async def available_capacities(
    session: AsyncSession, service_codes: set[str], *, today: date, around_open: datetime | None = None
) -> list[dict[str, Any]]:
    """Live capacities of these services with units left, as rows of the run's supply table."""
    codes = sorted(c for c in service_codes if is_service(c))
    if not codes:
        return []
    live = await CapacityRepository(session).live_with_held(codes, today=today, around_open=around_open)
    out = []
    for cap, taken in live:
        available = cap.units_per_day * days_ahead(cap, today) - taken
        if available > 0:
            out.append(
                {
                    "id": str(cap.capacity_id),
                    "capacity": True,
                    "org": cap.org,
                    "offer_id": None,
                    "item_code": cap.service_code,
                    "available": available,
                    "region_codes": list(cap.region_codes or []),
                    "starts_on": cap.starts_on,
                    "ends_on": cap.ends_on,
                    "available_from": datetime.combine(cap.starts_on, time.min, UTC),
                    "expires_at": datetime.combine(cap.ends_on + timedelta(days=1), time.min, UTC),
                    "perishable": True,  # a day's capacity not used that day is gone
                }
            )
    return out


def covers(capacity: dict[str, Any], region_code: str, on: date) -> bool:
    """The capacity's area covers the site's region and its window the line's date."""
    regions = capacity["region_codes"]
    in_area = not regions or any(region_code.startswith(prefix) for prefix in regions)
    return in_area and capacity["starts_on"] <= on <= capacity["ends_on"]


def line_date(line: dict[str, Any], today: date) -> date:
    """The date a service line is needed on: its `needed_by`, or today when it has none."""
    needed_by = line.get("needed_by")
    return needed_by.astimezone(UTC).date() if isinstance(needed_by, datetime) else today


def capacity_candidates(
    lines: list[dict[str, Any]], caps: list[dict[str, Any]], policy: Policy, *, now: float, offset: int = 0
) -> Candidates:
    """Every feasible (line, capacity) pair with its score: the goods factors where they mean something (urgency,
    deadline slack, quantity fit, the pressure of a window ending, equity), no distance. Capacity indices start
    at `offset` (the capacities follow the lots in the run's supply table)."""
    if not caps or not lines:
        return Candidates.empty()
    today = datetime.fromtimestamp(now, UTC).date()
    by_code: dict[str, list[int]] = {}
    for j, cap in enumerate(caps):
        by_code.setdefault(cap["item_code"], []).append(j)
    pairs = [
        (i, j)
        for i, line in enumerate(lines)
        if int(line["remaining"]) > 0 and (not policy.require_verified_need or line.get("verified"))
        for j in by_code.get(line["item_code"], [])
        if covers(caps[j], str(line["region_code"]), line_date(line, today))
    ]
    if not pairs:
        return Candidates.empty()
    line = np.array([i for i, _ in pairs], dtype=np.int64)
    lot = np.array([j for _, j in pairs], dtype=np.int64)
    cap_table = LotTable.from_rows(caps)
    arrival = np.maximum(cap_table.available_from[lot], now)
    cand = score_pairs(
        LineTable.from_rows(lines),
        cap_table,
        policy,
        line=line,
        lot=lot,
        distance_km=np.zeros(len(pairs), dtype=np.float64),
        arrival=arrival,
    )
    cand.score = np.maximum(cand.score - cand.contributions["distance"], 0.0)
    cand.contributions["distance"] = np.zeros(len(pairs), dtype=np.float64)
    cand.lot = cand.lot + offset
    return cand


def merge(a: Candidates, b: Candidates) -> Candidates:
    """Two candidate sets as one, sorted by line (stable)."""
    if not len(b):
        return a
    if not len(a):
        return b
    line = np.concatenate([a.line, b.line])
    order = np.argsort(line, kind="stable")
    return Candidates(
        line=line[order],
        lot=np.concatenate([a.lot, b.lot])[order],
        score=np.concatenate([a.score, b.score])[order],
        contributions={f: np.concatenate([a.contributions[f], b.contributions[f]])[order] for f in a.contributions},
        distance_km=np.concatenate([a.distance_km, b.distance_km])[order],
        substitute=np.concatenate([a.substitute, b.substitute])[order],
        factor=np.concatenate([a.factor, b.factor])[order],
    )
