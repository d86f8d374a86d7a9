"""Matching's rules, for the scoring and allocation tests: a small catalog, line and lot rows, candidates built from
them, a plain-Python reference of feasibility (without numpy), and random small instances (Hypothesis)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from services.matching.policy import FACTORS, Policy
from services.matching.scoring import Candidates, LineTable, LotTable, build_candidates
from shared.catalog import Catalog, Item, ItemName

NOW = 1_750_000_000.0
HOUR = 3600.0
DAY = 86400.0
# Wuhan and a point about 100 km east of it (same latitude).
HERE = (30.59, 114.30)
KM_PER_DEG_LON = 2 * math.pi * 6371.0088 * math.cos(math.radians(30.59)) / 360


def at(hours: float) -> datetime:
    return datetime.fromtimestamp(NOW + hours * HOUR, UTC)


def east(km: float) -> tuple[float, float]:
    return HERE[0], HERE[1] + km / KM_PER_DEG_LON


def _item(code: str, substitutes: list[str], *, perishable: bool = False) -> Item:
    return Item(
        code=code,
        name=ItemName(zh=code, en=code),
        category=code.split(".")[0],
        unit="piece",
        unit_value_fen=100,
        perishable=perishable,
        substitutes=substitutes,
        check_by=None,
    )


# Lots of the listed codes may stand in for each item; "x.z" is not in the catalog at all.
CATALOG = Catalog(
    [
        _item("x.a", ["x.b"]),
        _item("x.b", ["x.a", "x.c"]),
        _item("x.c", []),
        _item("x.d", ["x.c"], perishable=True),
    ]
)
ITEMS = ["x.a", "x.b", "x.c", "x.d", "x.z"]
REGIONS = ["420102", "420111", "430104"]
KINDS = ["hospital", "shelter", "school"]
SITES = ["site-a", "site-b", "site-c"]
NEEDS = ["need-a", "need-b", "need-c"]
GROUPS = ["elderly", "children", "patients"]


def line_row(**kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": "line",
        "item_code": "x.a",
        "remaining": 100,
        "urgency": "normal",
        "needed_by": None,
        "lat": HERE[0],
        "lon": HERE[1],
        "region_code": "420102",
        "site_kind": "hospital",
        "verified": True,
        "site_fill": 0.0,
        "county_fill": 0.0,
    }
    row.update(kw)
    return row


def lot_row(km: float = 100.0, **kw: Any) -> dict[str, Any]:
    lat, lon = east(km)
    row: dict[str, Any] = {
        "id": "lot",
        "item_code": "x.a",
        "available": 100,
        "lat": lat,
        "lon": lon,
        "available_from": None,
        "expires_at": None,
        "perishable": False,
        "restrictions": {},
    }
    row.update(kw)
    return row


def build(lines: list[dict[str, Any]], lots: list[dict[str, Any]], policy: Policy | None = None) -> Candidates:
    return build_candidates(
        LineTable.from_rows(lines), LotTable.from_rows(lots), policy or Policy(), now=NOW, catalog=CATALOG
    )


# ---------------------------------------------------------------- a plain-Python reference of the rules


def haversine(a: tuple[float, float], b: tuple[float, float]) -> float:
    p1, p2 = math.radians(a[0]), math.radians(b[0])
    dp, dl = p2 - p1, math.radians(b[1] - a[1])
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(min(1.0, h)))


def epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


@dataclass
class Check:
    feasible: bool
    margin: float  # seconds between arrival and the nearest time limit (inf when there is none)
    distance: float
    arrival: float


def check(line: dict[str, Any], lot: dict[str, Any], policy: Policy, catalog: Catalog = CATALOG) -> Check:
    """Whether a lot may serve a line, re-derived from the rules in ARCHITECTURE.md without numpy."""
    entry = catalog.get(line["item_code"])
    compatible = lot["item_code"] == line["item_code"] or (entry is not None and lot["item_code"] in entry.substitutes)
    r = lot["restrictions"] or {}
    served = {g for g, count in (line.get("beneficiary_groups") or {}).items() if count}
    allowed = (
        (not r.get("region_codes") or any(line["region_code"].startswith(p) for p in r["region_codes"]))
        and (not r.get("site_kinds") or line["site_kind"] in r["site_kinds"])
        and (
            not r.get("item_codes")
            or any(
                line["item_code"] == c or (c.endswith(".") and line["item_code"].startswith(c)) for c in r["item_codes"]
            )
        )
        and (not r.get("site_ids") or line.get("site_id") in r["site_ids"])
        and (not r.get("need_ids") or line.get("need_id") in r["need_ids"])
        and (not r.get("beneficiary_groups") or bool(served & set(r["beneficiary_groups"])))
        and (line["verified"] or not policy.require_verified_need)
    )
    if None in (line["lat"], line["lon"], lot["lat"], lot["lon"]):
        distance = policy.default_distance_km
    else:
        distance = haversine((line["lat"], line["lon"]), (lot["lat"], lot["lon"]))
    start = max(NOW, epoch(lot["available_from"]) or NOW)
    arrival = start + distance / policy.speed_kmh * HOUR
    # A soft deadline bounds nothing (a late pair is only scored lower).
    deadline = None if line.get("deadline") == "soft" else epoch(line["needed_by"])
    expires = epoch(lot["expires_at"])
    margin = math.inf
    in_time = True
    if deadline is not None:
        in_time &= arrival <= deadline
        margin = min(margin, abs(deadline - arrival))
    if expires is not None:
        in_time &= expires > arrival
        margin = min(margin, abs(expires - arrival))
    return Check(compatible and allowed and in_time, margin, distance, arrival)


# ---------------------------------------------------------------- random small instances


coordinate = st.one_of(
    st.none(),
    st.tuples(st.floats(30.0, 31.5, allow_nan=False), st.floats(113.0, 115.0, allow_nan=False)),
)
maybe_hours = st.one_of(st.none(), st.integers(-6, 24))


def _subset(options: list[str], *, unrestricted: int = 3) -> st.SearchStrategy[list[str]]:
    """Mostly unrestricted (`unrestricted` in `unrestricted` + 1), so most instances have pairs to allocate."""
    return st.one_of(*[st.just([])] * unrestricted, st.lists(st.sampled_from(options), max_size=2, unique=True))


@st.composite
def line_rows(draw: st.DrawFn, i: int) -> dict[str, Any]:
    where = draw(coordinate)
    deadline = draw(maybe_hours)
    return line_row(
        id=f"line-{i}",
        item_code=draw(st.sampled_from(ITEMS)),
        remaining=draw(st.integers(1, 40)),
        urgency=draw(st.sampled_from(["critical", "high", "normal", "low"])),
        needed_by=None if deadline is None else at(deadline),
        deadline=draw(st.sampled_from(["hard", "soft"])),
        lat=where and where[0],
        lon=where and where[1],
        region_code=draw(st.sampled_from(REGIONS)),
        site_kind=draw(st.sampled_from(KINDS)),
        site_id=draw(st.sampled_from(SITES)),
        need_id=draw(st.sampled_from(NEEDS)),
        beneficiary_groups=draw(st.dictionaries(st.sampled_from(GROUPS), st.integers(0, 3), max_size=2)),
        verified=draw(st.booleans()),
        site_fill=draw(st.floats(0, 1)),
        county_fill=draw(st.floats(0, 1)),
    )


@st.composite
def lot_rows(draw: st.DrawFn, i: int) -> dict[str, Any]:
    where = draw(coordinate)
    start, expiry = draw(maybe_hours), draw(st.one_of(st.none(), st.integers(0, 60 * 24)))
    return lot_row(
        id=f"lot-{i}",
        item_code=draw(st.sampled_from(ITEMS)),
        available=draw(st.integers(1, 60)),
        lat=where and where[0],
        lon=where and where[1],
        available_from=None if start is None else at(start),
        expires_at=None if expiry is None else at(expiry),
        perishable=draw(st.booleans()),
        restrictions={
            "region_codes": draw(_subset(["42", "4201", "430104"])),
            "site_kinds": draw(_subset(KINDS)),
            "item_codes": draw(_subset([*ITEMS, "x."])),
            "site_ids": draw(_subset(SITES, unrestricted=7)),
            "need_ids": draw(_subset(NEEDS, unrestricted=7)),
            "beneficiary_groups": draw(_subset(GROUPS, unrestricted=7)),
        },
    )


weights = st.one_of(
    st.none(), st.fixed_dictionaries({f: st.floats(0, 50, allow_nan=False, allow_infinity=False) for f in FACTORS})
)
tier_sets = st.sampled_from([None, ((1.0, 100),), ((0.5, 300), (0.3, 100), (0.2, 10)), ((0.2, 500), (0.8, 1))])


@st.composite
def instances(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]], Policy]:
    n, m = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    lines = [draw(line_rows(i)) for i in range(n)]
    lots = [draw(lot_rows(j)) for j in range(m)]
    kw: dict[str, Any] = {
        "require_verified_need": draw(st.booleans()),
        "max_candidates_per_line": draw(st.integers(1, 7)),
        "speed_kmh": draw(st.sampled_from([20.0, 40.0, 80.0])),
        "lateness_penalty_per_hour": draw(st.sampled_from([0.0, 0.5, 3.0, 40.0])),
    }
    if (w := draw(weights)) is not None:
        kw["weights"] = w
    if (t := draw(tier_sets)) is not None:
        kw["tiers"] = t
    return lines, lots, Policy(**kw)


PROPERTY = settings(
    max_examples=60, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
