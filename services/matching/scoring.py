"""Feasible (need line, lot) pairs and their explainable scores: the hard constraints, the candidate index
(by item and substitutes, then by distance) and the weighted factors of ARCHITECTURE.md ("Matching")."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from services.matching.policy import FACTORS, Policy
from services.matching.search import Found, NearestSearch, TimeLimits, keep_nearest, unit_vectors
from shared.catalog import Catalog, get_catalog
from shared.restrictions import Destination, item_allowed, violations

URGENCY_VALUES: Mapping[str, float] = {"critical": 1.0, "high": 0.7, "normal": 0.4, "low": 0.1}
NO_DEADLINE_SLACK = 0.2
SLACK_HORIZON_DAYS = 30.0
EXPIRY_HORIZON_DAYS = 90.0
NON_PERISHABLE_EXPIRY_SHARE = 0.5
DAY = 86400.0


F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]
Obj = npt.NDArray[np.object_]


def _epoch(value: datetime | float | None) -> float:
    if value is None:
        return math.nan
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    return float(value)  # already epoch seconds


def _coord(value: Any) -> float:
    return math.nan if value is None else float(value)


def _objects(values: Iterable[Any]) -> Obj:
    items = list(values)
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _codes(values: Any) -> tuple[str, ...]:
    if not values:
        return ()
    return tuple(str(v) for v in values)


def _id(value: Any) -> str:
    """An id as one spelling (a UUID's canonical text), whether it came as a UUID or as text."""
    if value is None:
        return ""
    try:
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
    except ValueError:
        return str(value)


def _ids(values: Any) -> tuple[str, ...]:
    return tuple(sorted({_id(v) for v in values})) if values else ()


def served_groups(groups: Any) -> frozenset[str]:
    """The beneficiary groups a need serves: those it counts people of (a list names them all)."""
    if not groups:
        return frozenset()
    if isinstance(groups, Mapping):
        return frozenset(str(g) for g, count in groups.items() if count)
    return frozenset(str(g) for g in groups)


@dataclass
class LineTable:
    """Open need lines, one row each, as parallel arrays."""

    ids: list[str]
    item: Obj
    remaining: I64
    urgency: Obj
    needed_by: F64
    lat: F64
    lon: F64
    region: Obj
    site_kind: Obj
    verified: Bool
    site_fill: F64
    county_fill: F64
    # A coordinator allowed non-medical substitutes for this medical line (recorded on the line).
    override: Bool | None = None
    # The line's deadline is soft: a lot arriving after needed_by is feasible, its score lowered by lateness.
    soft: Bool | None = None
    # Where and for whom, as designated gifts ask: the line's site and need ids, the groups its need serves.
    site: Obj | None = None
    need: Obj | None = None
    groups: list[frozenset[str]] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def overridden(self) -> Bool:
        return self.override if self.override is not None else np.zeros(len(self.ids), dtype=np.bool_)

    def soft_deadline(self) -> Bool:
        return self.soft if self.soft is not None else np.zeros(len(self.ids), dtype=np.bool_)

    def hard_deadlines(self) -> F64:
        """needed_by where it bounds feasibility (hard lines), NaN (no bound) for soft ones."""
        return np.where(self.soft_deadline(), np.nan, self.needed_by)

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]]) -> LineTable:
        return cls(
            ids=[str(r["id"]) for r in rows],
            item=_objects(r["item_code"] for r in rows),
            remaining=np.array([int(r["remaining"]) for r in rows], dtype=np.int64),
            urgency=_objects(r.get("urgency") or "normal" for r in rows),
            needed_by=np.array([_epoch(r.get("needed_by")) for r in rows], dtype=np.float64),
            lat=np.array([_coord(r.get("lat")) for r in rows], dtype=np.float64),
            lon=np.array([_coord(r.get("lon")) for r in rows], dtype=np.float64),
            region=_objects(str(r.get("region_code") or "") for r in rows),
            site_kind=_objects(str(r.get("site_kind") or "") for r in rows),
            verified=np.array([bool(r.get("verified")) for r in rows], dtype=np.bool_),
            site_fill=np.array([float(r.get("site_fill") or 0.0) for r in rows], dtype=np.float64),
            county_fill=np.array([float(r.get("county_fill") or 0.0) for r in rows], dtype=np.float64),
            override=np.array([bool(r.get("substitution_override")) for r in rows], dtype=np.bool_),
            soft=np.array([r.get("deadline") == "soft" for r in rows], dtype=np.bool_),
            **_destinations(rows),
        )


def _destinations(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The LineTable columns designated gifts look at: site and need ids, the groups each need serves."""
    return {
        "site": _objects(_id(r.get("site_id")) for r in rows),
        "need": _objects(_id(r.get("need_id")) for r in rows),
        "groups": [served_groups(r.get("beneficiary_groups")) for r in rows],
    }


@dataclass
class LotTable:
    """Available supply lots, one row each, as parallel arrays."""

    ids: list[str]
    item: Obj
    available: I64
    lat: F64
    lon: F64
    available_from: F64
    expires_at: F64
    perishable: Bool
    restrict_regions: list[tuple[str, ...]]
    restrict_kinds: list[tuple[str, ...]]
    restrict_items: list[tuple[str, ...]]
    # Designated gifts (定向捐赠): only these sites, these needs, needs serving these groups (empty lists: none
    # of the lots is restricted so).
    restrict_sites: list[tuple[str, ...]] = field(default_factory=list)
    restrict_needs: list[tuple[str, ...]] = field(default_factory=list)
    restrict_groups: list[tuple[str, ...]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def destination_rule(self, j: int) -> Rule:
        """The lot's restrictions on where it goes and whom it serves (all but items), as one hashable key."""

        def at(rules: list[tuple[str, ...]]) -> tuple[str, ...]:
            return rules[j] if rules else ()

        return Rule(
            at(self.restrict_regions),
            at(self.restrict_kinds),
            at(self.restrict_sites),
            at(self.restrict_needs),
            at(self.restrict_groups),
        )

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]]) -> LotTable:
        """Rows without a `perishable` value take it from the catalog."""
        catalog: Catalog | None = None

        def perishable(row: Mapping[str, Any]) -> bool:
            nonlocal catalog
            if row.get("perishable") is not None:
                return bool(row["perishable"])
            catalog = catalog or get_catalog()
            item = catalog.get(row["item_code"])
            return bool(item and item.perishable)

        restrictions = [r.get("restrictions") or {} for r in rows]
        return cls(
            ids=[str(r["id"]) for r in rows],
            item=_objects(r["item_code"] for r in rows),
            available=np.array([int(r["available"]) for r in rows], dtype=np.int64),
            lat=np.array([_coord(r.get("lat")) for r in rows], dtype=np.float64),
            lon=np.array([_coord(r.get("lon")) for r in rows], dtype=np.float64),
            available_from=np.array([_epoch(r.get("available_from")) for r in rows], dtype=np.float64),
            expires_at=np.array([_epoch(r.get("expires_at")) for r in rows], dtype=np.float64),
            perishable=np.array([perishable(r) for r in rows], dtype=np.bool_),
            restrict_regions=[_codes(x.get("region_codes")) for x in restrictions],
            restrict_kinds=[_codes(x.get("site_kinds")) for x in restrictions],
            restrict_items=[_codes(x.get("item_codes")) for x in restrictions],
            restrict_sites=[_ids(x.get("site_ids")) for x in restrictions],
            restrict_needs=[_ids(x.get("need_ids")) for x in restrictions],
            restrict_groups=[tuple(sorted(_codes(x.get("beneficiary_groups")))) for x in restrictions],
        )


@dataclass
class Candidates:
    """Feasible (line, lot) pairs with their scores; arrays of equal length, sorted by line then distance."""

    line: I64
    lot: I64
    score: F64
    contributions: dict[str, F64]
    distance_km: F64
    substitute: Bool
    # Base units of the line's item one base unit of the lot's item counts for (1 for the item itself).
    factor: F64 = field(default_factory=lambda: np.zeros(0, dtype=np.float64))

    def __post_init__(self) -> None:
        if len(self.factor) != len(self.line):
            self.factor = np.ones(len(self.line), dtype=np.float64)

    def __len__(self) -> int:
        return len(self.line)

    def breakdown(self, i: int) -> dict[str, float]:
        return {f: round(float(self.contributions[f][i]), 3) for f in FACTORS}

    @classmethod
    def empty(cls) -> Candidates:
        return cls(
            line=np.zeros(0, dtype=np.int64),
            lot=np.zeros(0, dtype=np.int64),
            score=np.zeros(0, dtype=np.float64),
            contributions={f: np.zeros(0, dtype=np.float64) for f in FACTORS},
            distance_km=np.zeros(0, dtype=np.float64),
            substitute=np.zeros(0, dtype=np.bool_),
        )


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) or value is None else uuid.UUID(str(value))
    except ValueError:
        return None


def broken_rules(restrictions: Mapping[str, Any], line: Mapping[str, Any]) -> list[str]:
    """The rules of a lot's `restrictions` that giving it to `line` (a need line's row: its site, need, kind,
    region, item and beneficiary groups) would break, in words; empty when the donor allows it. The pair-by-pair
    form of what the candidate search masks, for proposals made before a restriction or a line changed."""
    where = Destination(
        site_id=_uuid(line.get("site_id")),
        site_kind=line.get("site_kind"),
        region_code=line.get("region_code"),
        need_ids=frozenset(n for n in [_uuid(line.get("need_id"))] if n is not None),
        groups=served_groups(line.get("beneficiary_groups")),
    )
    return violations(dict(restrictions), where, [str(line["item_code"])])


class Rule(NamedTuple):
    """A lot's restrictions on its destination (the rules of shared.restrictions but items): region prefixes,
    site kinds, designated sites, designated needs, beneficiary groups. Empty means any."""

    regions: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


def _text(values: Obj | None, n: int) -> npt.NDArray[np.str_]:
    return np.full(n, "", dtype=str) if values is None or n == 0 else values.astype(str)


class _Restrictions:
    """Line masks for donor restrictions, computed once per distinct restriction and reused across lots; each
    rule is one vectorised comparison over all lines."""

    def __init__(self, lines: LineTable) -> None:
        self._lines = lines
        self._region = _text(lines.region, len(lines))
        self._kind = _text(lines.site_kind, len(lines))
        self._cache: dict[Rule, Bool] = {}

    # The columns only designated gifts ask about, made on first use.

    @cached_property
    def _site(self) -> npt.NDArray[np.str_]:
        return _text(self._lines.site, len(self._lines))

    @cached_property
    def _need(self) -> npt.NDArray[np.str_]:
        return _text(self._lines.need, len(self._lines))

    @cached_property
    def _serves(self) -> tuple[dict[str, int], Bool]:
        """The groups any line's need serves, numbered, and line × group: the line's need serves the group."""
        groups = self._lines.groups or [frozenset()] * len(self._lines)
        number = {g: c for c, g in enumerate(sorted(frozenset().union(*groups)))}
        rows = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
        columns = np.fromiter((number[g] for served in groups for g in served), np.int64, len(rows))
        serves = np.zeros((len(groups), len(number)), dtype=np.bool_)
        serves[rows, columns] = True
        return number, serves

    def _serving(self, groups: tuple[str, ...]) -> Bool:
        number, serves = self._serves
        return np.asarray(serves[:, [number[g] for g in groups if g in number]].any(axis=1))

    def mask(self, rule: Rule) -> Bool:
        hit = self._cache.get(rule)
        if hit is None:
            hit = np.ones(len(self._region), dtype=np.bool_)
            if rule.regions:
                hit &= np.strings.startswith(self._region, np.array(rule.regions, dtype=str)[:, None]).any(axis=0)
            if rule.kinds:
                hit &= np.isin(self._kind, np.array(rule.kinds, dtype=str))
            if rule.sites:
                hit &= np.isin(self._site, np.array(rule.sites, dtype=str))
            if rule.needs:
                hit &= np.isin(self._need, np.array(rule.needs, dtype=str))
            if rule.groups:
                hit &= self._serving(rule.groups)
            self._cache[rule] = hit
        return hit


def _groups(codes: Obj) -> dict[str, I64]:
    """Indices of each distinct code, in increasing order (a dict of the codes is faster than sorting strings)."""
    if len(codes) == 0:
        return {}
    number: dict[str, int] = {}
    inverse = np.fromiter((number.setdefault(str(c), len(number)) for c in codes), np.int64, len(codes))
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(number) + 1))
    return {k: order[bounds[i] : bounds[i + 1]] for k, i in sorted(number.items())}


# Site kinds whose lines for medical-grade items are medical lines: no general-grade substitute without a
# coordinator's recorded override.
MEDICAL_SITE_KINDS = frozenset({"hospital"})


def _compatible_items(item: str, catalog: Catalog) -> list[str]:
    entry = catalog.get(item)
    subs = [s for s in (entry.substitutes if entry else []) if s != item]
    return [item, *dict.fromkeys(subs)]


def _excluded_kinds(item: str, code: str, catalog: Catalog) -> tuple[frozenset[str], frozenset[str]]:
    """Site kinds whose lines of `item` may not take lots of `code`: always, and unless overridden."""
    if code == item:
        return frozenset(), frozenset()
    entry, sub = catalog.get(item), catalog.get(code)
    rule = entry.rule_for(code) if entry else None
    always = frozenset(rule.not_for_site_kinds if rule else ())
    downgrade = entry is not None and sub is not None and entry.grade == "medical" and sub.grade != "medical"
    return always, MEDICAL_SITE_KINDS if downgrade else frozenset()


def substitution_allowed(
    item: str, code: str, site_kind: str, *, override: bool = False, catalog: Catalog | None = None
) -> bool:
    """May a line of `item` at a site of `site_kind` take a lot of `code`?"""
    catalog = catalog or get_catalog()
    if code not in _compatible_items(item, catalog):
        return False
    always, unless = _excluded_kinds(item, code, catalog)
    return site_kind not in always and (override or site_kind not in unless)


class _CandidateSearch:
    """The feasible lots of each need line: same item or an allowed substitute, the donors' restrictions, and
    (by the spatial search) arrival before the deadline and before expiry; the nearest few per line."""

    def __init__(self, lines: LineTable, lots: LotTable, policy: Policy, now: float, catalog: Catalog) -> None:
        self.lines, self.lots, self.catalog = lines, lots, catalog
        line_ok = lines.remaining > 0
        if policy.require_verified_need:
            line_ok &= lines.verified
        self.line_ok = np.flatnonzero(line_ok)
        lot_ok = np.flatnonzero(lots.available > 0)
        self.lot_groups = {k: lot_ok[v] for k, v in _groups(lots.item[lot_ok]).items()}
        self.rules = [lots.destination_rule(j) for j in range(len(lots))]
        self.restricted = np.array([any(rule) for rule in self.rules], dtype=np.bool_)
        self.restrictions = _Restrictions(lines)
        self.item_restricted = np.array([bool(r) for r in lots.restrict_items], dtype=np.bool_)
        depart = np.where(np.isnan(lots.available_from), now, np.maximum(lots.available_from, now))
        limits = TimeLimits(
            deadline=lines.hard_deadlines(),
            depart=depart,
            expires=lots.expires_at,
            seconds_per_km=3600.0 / policy.speed_kmh,
            default_km=policy.default_distance_km,
        )
        self.nearest = NearestSearch(
            unit_vectors(lines.lat, lines.lon),
            unit_vectors(lots.lat, lots.lon),
            limits,
            policy.max_candidates_per_line,
        )

    def line_groups(self) -> Iterator[tuple[str, I64]]:
        for item, group in _groups(self.lines.item[self.line_ok]).items():
            yield item, self.line_ok[group]

    def code_buckets(self, item: str, rows: I64) -> Iterator[tuple[I64, list[str]]]:
        """(lines allowed, lot item codes): the codes every line may take together, then each substitute that
        some site kinds may not take (safe substitution) with the lines that may."""
        free: list[str] = []
        kinds = self.lines.site_kind[rows]
        override = self.lines.overridden()[rows]
        for code in _compatible_items(item, self.catalog):
            if code not in self.lot_groups:
                continue
            always, unless = _excluded_kinds(item, code, self.catalog)
            if not always and not unless:
                free.append(code)
                continue
            ok = np.fromiter((k not in always and k not in unless for k in kinds), dtype=np.bool_, count=len(rows))
            ok |= override & np.fromiter((k not in always for k in kinds), dtype=np.bool_, count=len(rows))
            if ok.any():
                yield rows[ok], [code]
        if free:
            yield rows, free

    def lots_for(self, item: str, codes: list[str] | None = None) -> I64:
        """Lots of the item and its substitutes (or of `codes`) whose donors allow that item."""
        if codes is None:
            codes = [code for code in _compatible_items(item, self.catalog) if code in self.lot_groups]
        if not codes:
            return np.zeros(0, dtype=np.int64)
        cols = np.concatenate([self.lot_groups[code] for code in codes])
        restricted = cols[self.item_restricted[cols]]
        # Codes or categories (a prefix ending in '.'), decided once per distinct list.
        verdicts: dict[tuple[str, ...], bool] = {}
        for allowed in {self.lots.restrict_items[j] for j in restricted.tolist()}:
            verdicts[allowed] = item_allowed(allowed, item)
        refused = [j for j in restricted.tolist() if not verdicts[self.lots.restrict_items[j]]]
        return np.setdiff1d(cols, refused, assume_unique=True) if refused else cols

    def by_restriction(self, rows: I64, cols: I64) -> Iterator[tuple[I64, I64]]:
        """(lines allowed, lots) per distinct destination rule (region, site kind, designated site or need,
        beneficiary group) among `cols`; unrestricted lots first."""
        restricted = self.restricted[cols]
        if not restricted.all():
            yield rows, cols[~restricted]
        buckets: dict[Rule, list[int]] = {}
        for j in cols[restricted].tolist():
            buckets.setdefault(self.rules[j], []).append(j)
        for key, bucket in buckets.items():
            allowed = rows[self.restrictions.mask(key)[rows]]
            if len(allowed):
                yield allowed, np.array(bucket, dtype=np.int64)

    def pairs(self) -> Found:
        found = Found()
        for item, rows in self.line_groups():
            buckets: list[tuple[I64, I64]] = []
            for allowed, codes in self.code_buckets(item, rows):
                cols = self.lots_for(item, codes)
                if len(cols):
                    buckets.extend(self.by_restriction(allowed, cols))
            if not buckets:
                continue
            if len(buckets) == 1:
                self.nearest.run(*buckets[0], found)
                continue
            group = Found()
            for allowed, bucket in buckets:
                self.nearest.run(allowed, bucket, group)
            keep_nearest(group, self.nearest.k, found)
        return found


def build_candidates(
    lines: LineTable, lots: LotTable, policy: Policy, *, now: float, catalog: Catalog | None = None
) -> Candidates:
    """Every feasible pair, keeping the `max_candidates_per_line` nearest lots per line, with its score."""
    catalog = catalog or get_catalog()
    found = _CandidateSearch(lines, lots, policy, now, catalog).pairs()
    if not len(found):
        return Candidates.empty()
    line, lot, distance, arrival = found.arrays()
    order = np.argsort(line, kind="stable")
    line, lot, distance, arrival = line[order], lot[order], distance[order], arrival[order]
    factor = substitute_factors(lines, lots, line, lot, catalog)
    return score_pairs(lines, lots, policy, line=line, lot=lot, distance_km=distance, arrival=arrival, factor=factor)


def substitute_factors(lines: LineTable, lots: LotTable, line: I64, lot: I64, catalog: Catalog) -> F64:
    """Each pair's conversion factor: base units of the line's item one base unit of the lot counts for."""
    cache: dict[tuple[str, str], float] = {}
    out = np.ones(len(line), dtype=np.float64)
    for p, (a, b) in enumerate(zip(lines.item[line].tolist(), lots.item[lot].tolist(), strict=True)):
        if a == b:
            continue
        key = (str(a), str(b))
        if key not in cache:
            rule = catalog.substitute_rule(*key)
            cache[key] = rule.factor if rule else 1.0
        out[p] = cache[key]
    return out


def score_pairs(
    lines: LineTable,
    lots: LotTable,
    policy: Policy,
    *,
    line: I64,
    lot: I64,
    distance_km: F64,
    arrival: F64,
    factor: F64 | None = None,
) -> Candidates:
    """The weighted factors of each pair and their sum, the score (never below zero)."""
    substitute = lots.item[lot] != lines.item[line]
    factor = np.ones(len(line), dtype=np.float64) if factor is None else factor
    values = factor_values(
        lines, lots, policy, line=line, lot=lot, distance_km=distance_km, arrival=arrival, factor=factor
    )
    values["substitute"] = substitute.astype(np.float64)
    contributions: dict[str, F64] = {}
    score = np.zeros(len(line), dtype=np.float64)
    for f in FACTORS:
        values[f] *= -policy.weights[f] if f == "substitute" else policy.weights[f]
        contributions[f] = values[f]
        score += values[f]
    score -= lateness_penalty(lines, policy, line=line, arrival=arrival)
    np.maximum(score, 0.0, out=score)
    return Candidates(
        line=line,
        lot=lot,
        score=score,
        contributions=contributions,
        distance_km=distance_km,
        substitute=substitute.astype(np.bool_),
        factor=factor,
    )


def lateness_penalty(lines: LineTable, policy: Policy, *, line: I64, arrival: F64) -> F64:
    """What each pair loses for arriving after the needed_by of a soft line: the policy's points per hour late
    (0 for hard lines, which never get a late pair, and for lines without needed_by)."""
    late_hours = np.nan_to_num(np.maximum(arrival - lines.needed_by[line], 0.0) / 3600.0, nan=0.0)
    return np.where(lines.soft_deadline()[line], late_hours * policy.lateness_penalty_per_hour, 0.0)


def factor_values(
    lines: LineTable,
    lots: LotTable,
    policy: Policy,
    *,
    line: I64,
    lot: I64,
    distance_km: F64,
    arrival: F64,
    factor: F64 | None = None,
) -> dict[str, F64]:
    """Each factor's value in [0, 1] for the given pairs (all but `substitute`, which the caller knows)."""
    urgency = np.array([URGENCY_VALUES.get(u, URGENCY_VALUES["normal"]) for u in lines.urgency], dtype=np.float64)
    needed_by = lines.needed_by[line]
    slack_days = (needed_by - arrival) / DAY
    deadline_slack = np.where(
        np.isnan(needed_by), NO_DEADLINE_SLACK, 1.0 - np.clip(slack_days / SLACK_HORIZON_DAYS, 0.0, 1.0)
    )
    remaining = lines.remaining[line].astype(np.float64)
    worth = lots.available[lot].astype(np.float64) * (1.0 if factor is None else factor)
    quantity_fit = np.minimum(np.floor(worth + 1e-9), remaining) / remaining
    expires = lots.expires_at[lot]
    expiry_days = (expires - arrival) / DAY
    pressure = 1.0 - np.clip(expiry_days / EXPIRY_HORIZON_DAYS, 0.0, 1.0)
    pressure *= np.where(lots.perishable[lot], 1.0, NON_PERISHABLE_EXPIRY_SHARE)
    equity = 0.5 * (1.0 - np.clip(lines.site_fill, 0.0, 1.0)) + 0.5 * (1.0 - np.clip(lines.county_fill, 0.0, 1.0))
    return {
        "urgency": urgency[line],
        "deadline_slack": deadline_slack,
        "distance": 1.0 - np.minimum(distance_km / policy.max_distance_km, 1.0),
        "quantity_fit": quantity_fit,
        "expiry_pressure": np.where(np.isnan(expires), 0.0, pressure),
        "equity": equity[line],
    }
