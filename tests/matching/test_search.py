"""The spatial candidate search finds exactly what an exhaustive scan of every (line, lot) pair finds."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from services.matching import search
from services.matching.search import Found, NearestSearch, TimeLimits, unit_vectors

NOW = 1_800_000_000.0
DAY = 86400.0


def _instance(seed: int, n: int, m: int, k: int, missing: float) -> tuple[NearestSearch, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lat, lon = rng.uniform(20, 45, n), rng.uniform(100, 125, n)
    lat[rng.random(n) < missing] = np.nan
    lot_lat, lot_lon = rng.uniform(20, 45, m), rng.uniform(100, 125, m)
    lot_lon[rng.random(m) < missing] = np.nan
    limits = TimeLimits(
        # Tight deadlines and expiries, so that many of the nearest lots are infeasible and searches widen.
        deadline=np.where(rng.random(n) < 0.3, np.nan, NOW + rng.uniform(0.2, 3, n) * DAY),
        depart=NOW + np.where(rng.random(m) < 0.5, 0.0, rng.uniform(0, 2, m) * DAY),
        expires=np.where(rng.random(m) < 0.5, np.nan, NOW + rng.uniform(0.1, 4, m) * DAY),
        seconds_per_km=3600 / 40.0,
        default_km=50.0,
    )
    nearest = NearestSearch(unit_vectors(lat, lon), unit_vectors(lot_lat, lot_lon), limits, k)
    return nearest, np.arange(n, dtype=np.int64), np.arange(m, dtype=np.int64)


def _pairs(found: Found) -> dict[int, list[tuple[int, float]]]:
    line, lot, distance, _ = found.arrays()
    out: dict[int, list[tuple[int, float]]] = {}
    for i, j, d in zip(line.tolist(), lot.tolist(), distance.tolist(), strict=True):
        out.setdefault(i, []).append((j, d))
    return out


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 300),
    m=st.integers(1, 600),
    k=st.integers(1, 12),
    missing=st.sampled_from([0.0, 0.1]),
)
def test_tree_search_equals_exhaustive_scan(seed: int, n: int, m: int, k: int, missing: float) -> None:
    nearest, rows, cols = _instance(seed, n, m, k, missing)
    by_tree, exhaustive = Found(), Found()
    nearest.run(rows, cols, by_tree)
    nearest._dense(rows, cols, exhaustive)
    tree, dense = _pairs(by_tree), _pairs(exhaustive)
    assert tree.keys() == dense.keys()
    for line, got in tree.items():
        want = dense[line]
        assert [round(d, 6) for _, d in got] == [round(d, 6) for _, d in want]
        # Lots without coordinates all lie at the default distance: which of those tie is kept may differ.
        assert {j for j, d in got if d != 50.0} == {j for j, d in want if d != 50.0}


def test_lines_far_from_any_feasible_lot_fall_back_to_a_full_scan(monkeypatch) -> None:
    """A query that would have to grow past the widest allowed is replaced by a bounded full scan."""
    monkeypatch.setattr(search, "MAX_QUERY_WIDTH", 16)
    monkeypatch.setattr(search, "DENSE_LOTS", 4)
    nearest, rows, cols = _instance(7, 50, 400, 3, 0.0)
    expires = nearest.limits.expires.copy()
    expires[:390] = NOW  # all but ten lots have expired: every line must look past hundreds of nearer ones
    nearest.limits = TimeLimits(
        nearest.limits.deadline, nearest.limits.depart, expires, nearest.limits.seconds_per_km, 50.0
    )
    by_tree, exhaustive = Found(), Found()
    nearest.run(rows, cols, by_tree)
    nearest._dense(rows, cols, exhaustive)
    assert _pairs(by_tree) == _pairs(exhaustive)
    assert set(by_tree.arrays()[1].tolist()) <= set(range(390, 400))
