"""Allocation: never over-allocated, only on feasible pairs, optimal against an independent LP, maximal, and
tiers that spread scarce supply across needs."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from typing import Any
from unittest.mock import patch

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given

from services.matching import allocation
from services.matching.allocation import (
    allocate,
    greedy_allocate,
    objective_of,
    pair_values,
    tier_capacities,
    tier_values,
)
from services.matching.policy import Policy
from services.matching.scoring import Candidates, LineTable, LotTable, build_candidates
from tests.helpers.lp import lp_objective
from tests.helpers.scoring import CATALOG, NOW, PROPERTY, at, build, check, instances, line_row, lot_row

Instance = tuple[list[dict[str, Any]], list[dict[str, Any]], Policy]


def tables(instance: Instance) -> tuple[LineTable, LotTable, Candidates, Policy]:
    lines, lots, policy = instance
    line_t, lot_t = LineTable.from_rows(lines), LotTable.from_rows(lots)
    return line_t, lot_t, build_candidates(line_t, lot_t, policy, now=NOW, catalog=CATALOG), policy


@PROPERTY
@given(instances())
def test_allocation_is_feasible_optimal_and_maximal(instance: Instance) -> None:
    lines, lots, policy = instance
    line_t, lot_t, cand, _ = tables(instance)
    remaining, available = line_t.remaining, lot_t.available
    for tiered in (True, False):
        result = allocate(remaining, available, cand, policy, tiered=tiered)
        flow = result.flow
        assert result.status == "optimal"
        assert flow.dtype == np.int64 and flow.shape == (len(cand),)
        assert (flow >= 0).all()
        per_lot = np.bincount(cand.lot, weights=flow, minlength=len(lots))
        per_line = np.bincount(cand.line, weights=flow, minlength=len(lines))
        assert (per_lot <= available).all(), "a lot is over-allocated"
        assert (per_line <= remaining).all(), "a need line is over-allocated"
        for p in np.flatnonzero(flow):
            c = check(lines[cand.line[p]], lots[cand.lot[p]], policy)
            assert c.feasible or c.margin <= 1e-6, (lines[cand.line[p]], lots[cand.lot[p]])

        assert result.objective == pytest.approx(
            lp_objective(remaining, available, cand, policy, tiered), rel=1e-6, abs=1e-6
        )
        # Maximal: every tier value is positive, so no pair may have spare supply and spare demand left.
        spare = (available[cand.lot] > per_lot[cand.lot]) & (remaining[cand.line] > per_line[cand.line])
        assert not spare.any()
        assert objective_of(flow, remaining, cand, policy, tiered=tiered) == pytest.approx(result.objective, abs=1e-9)
        # Each connected component in its own network gives the same optimum as packing them together.
        with patch.object(allocation, "_BATCH_PAIRS", 1):
            split = allocate(remaining, available, cand, policy, tiered=tiered)
        assert split.objective == pytest.approx(result.objective, abs=1e-9)

    greedy = greedy_allocate(remaining, available, cand, policy)
    assert (np.bincount(cand.lot, weights=greedy, minlength=len(lots)) <= available).all()
    assert (np.bincount(cand.line, weights=greedy, minlength=len(lines)) <= remaining).all()
    optimal = allocate(remaining, available, cand, policy).objective
    assert objective_of(greedy, remaining, cand, policy) <= optimal + 1e-9


def shortage() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Three needs of 100, one lot of 120 that scores best for the first (critical, nearest)."""
    lines = [
        line_row(id="critical", urgency="critical", remaining=100),
        line_row(id="normal-1", urgency="normal", remaining=100, lat=30.7),
        line_row(id="normal-2", urgency="normal", remaining=100, lat=30.8),
    ]
    return lines, [lot_row(km=20, available=120)]


def test_tiers_spread_scarce_supply_across_needs() -> None:
    lines, lots = shortage()
    policy = Policy()
    cand = build(lines, lots, policy)
    assert len(cand) == 3
    best = int(np.argmax(cand.score))
    assert cand.line[best] == 0
    remaining, available = np.array([100, 100, 100]), np.array([120])

    def per_line(flow: np.ndarray) -> list[int]:
        return np.bincount(cand.line, weights=flow, minlength=3).astype(int).tolist()

    spread = per_line(allocate(remaining, available, cand, policy).flow)
    assert sum(spread) == 120
    assert min(spread) >= 25, spread  # every need gets its first, most valuable tier
    assert spread[0] == max(spread)

    single = per_line(allocate(remaining, available, cand, policy, tiered=False).flow)
    assert sum(single) == 120
    assert single[0] == 100, single  # one tier: the best-scored need is topped up first
    assert sum(q > 0 for q in single) < sum(q > 0 for q in spread) == 3

    greedy = per_line(greedy_allocate(remaining, available, cand, policy))
    assert greedy[0] == 100


def test_tiered_allocation_fills_the_top_tier_of_every_need_first() -> None:
    # Ten needs of 40, 100 units: each need's top tier holds 10 units, exactly what there is to go round.
    lines = [line_row(id=f"n{i}", remaining=40, urgency="critical" if i == 0 else "low") for i in range(10)]
    cand = build(lines, [lot_row(available=100)])
    flow = allocate(np.full(10, 40), np.array([100]), cand, Policy()).flow
    assert np.bincount(cand.line, weights=flow, minlength=10).tolist() == [10] * 10


def test_tier_capacities_sum_to_remaining_and_start_in_the_top_tier() -> None:
    policy = Policy()
    remaining = np.arange(0, 500)
    caps = tier_capacities(remaining, policy)
    assert caps.shape == (500, 3)
    assert (caps >= 0).all()
    assert (caps.sum(axis=1) == remaining).all()
    assert caps[100].tolist() == [25, 25, 50]
    assert caps[1].tolist() == [1, 0, 0]  # a need of one unit is all top tier
    assert caps[3].tolist() == [1, 1, 1]
    assert (caps[1:, 0] >= 1).all()
    assert (np.abs(caps[:, 0] - 0.25 * remaining) < 1).all()
    untiered = tier_capacities(remaining, policy, tiered=False)
    assert untiered.shape == (500, 1) and (untiered[:, 0] == remaining).all()
    assert tier_values(policy).tolist() == [40000, 15000, 4000]
    assert tier_values(policy, tiered=False).tolist() == [4000]
    noisy = Policy(tiers=((0.2, 3), (0.7, 2), (0.1, 1)))
    assert tier_capacities(np.array([10]), noisy).tolist() == [[2, 7, 1]]


def test_objective_counts_scores_and_tier_values() -> None:
    lines, lots = shortage()
    policy = Policy()
    cand = build(lines, lots, policy)
    remaining = np.array([100, 100, 100])
    flow = np.zeros(3, dtype=np.int64)
    flow[cand.line == 0] = 60  # 25 at 400, 25 at 150, 10 at 40
    expected = 60 * pair_values(cand)[cand.line == 0][0] / 100 + 25 * 400 + 25 * 150 + 10 * 40
    assert objective_of(flow, remaining, cand, policy) == pytest.approx(expected)
    assert objective_of(flow, remaining, cand, policy, tiered=False) == pytest.approx(expected - 25 * 360 - 25 * 110)


def test_no_candidates_no_flow() -> None:
    cand = build([line_row()], [lot_row(item_code="x.c")])
    result = allocate(np.array([10]), np.array([10]), cand, Policy())
    assert len(result.flow) == 0
    assert result.objective == 0
    assert greedy_allocate(np.array([10]), np.array([10]), cand, Policy()).tolist() == []


def test_a_lot_shared_by_lines_and_a_line_fed_by_lots() -> None:
    lines = [line_row(id="a", remaining=30), line_row(id="b", remaining=30, needed_by=at(100))]
    # Both lots fit either line whole; the nearer one scores higher on distance, so it is used up first.
    lots = [lot_row(id="near", available=30), lot_row(id="far", available=50, km=300)]
    cand = build(lines, lots)
    assert len(cand) == 4
    result = allocate(np.array([30, 30]), np.array([30, 50]), cand, Policy())
    assert np.bincount(cand.line, weights=result.flow, minlength=2).tolist() == [30, 30]
    assert np.bincount(cand.lot, weights=result.flow, minlength=2).tolist() == [30, 30]


def _medium() -> Instance:
    rng = np.random.default_rng(11)
    lines = [
        line_row(
            id=f"l{i}",
            item_code=str(rng.choice(["x.a", "x.b", "x.c", "x.d"])),
            remaining=int(rng.integers(1, 300)),
            urgency=str(rng.choice(["critical", "high", "normal", "low"])),
            lat=float(rng.uniform(29, 33)),
            lon=float(rng.uniform(111, 117)),
            needed_by=at(float(rng.uniform(2, 200))) if rng.random() < 0.5 else None,
            site_fill=float(rng.random()),
        )
        for i in range(150)
    ]
    lots = [
        lot_row(
            id=f"o{j}",
            item_code=str(rng.choice(["x.a", "x.b", "x.c", "x.d"])),
            available=int(rng.integers(1, 400)),
            lat=float(rng.uniform(29, 33)),
            lon=float(rng.uniform(111, 117)),
            expires_at=at(float(rng.uniform(5, 3000))) if rng.random() < 0.3 else None,
            perishable=bool(rng.random() < 0.3),
        )
        for j in range(120)
    ]
    return lines, lots, Policy(max_candidates_per_line=15)


@pytest.mark.parametrize("batch_pairs", [1, 50, 20_000])
def test_a_medium_instance_matches_the_lp(batch_pairs: int) -> None:
    line_t, lot_t, cand, policy = tables(_medium())
    assert len(cand) > 1000
    with patch.object(allocation, "_BATCH_PAIRS", batch_pairs):
        result = allocate(line_t.remaining, lot_t.available, cand, policy)
    lp = lp_objective(line_t.remaining, lot_t.available, cand, policy, tiered=True)
    assert result.objective == pytest.approx(lp, rel=1e-9)
    assert objective_of(result.flow, line_t.remaining, cand, policy) == pytest.approx(result.objective, abs=1e-6)
    greedy = objective_of(
        greedy_allocate(line_t.remaining, lot_t.available, cand, policy), line_t.remaining, cand, policy
    )
    assert greedy < result.objective


def test_soft_lines_late_pairs_at_their_penalised_scores_match_the_lp() -> None:
    lines, lots, policy = _medium()
    # Half the lines are needed within the hour: soft, most of their lots arrive late.
    soft = [{**line, "deadline": "soft", "needed_by": at(1)} if line["needed_by"] else line for line in lines]
    line_t, lot_t, cand, policy = tables((soft, lots, policy.model_copy(update={"lateness_penalty_per_hour": 2.0})))
    arrival_late = [
        check(soft[int(i)], lots[int(j)], policy).arrival > soft[int(i)]["needed_by"].timestamp()
        for i, j in zip(cand.line, cand.lot, strict=True)
        if soft[int(i)]["needed_by"]
    ]
    assert sum(arrival_late) > 300, "late pairs of soft lines take part"
    assert len(cand) > len(build_candidates(*tables(_medium())[:2], policy, now=NOW, catalog=CATALOG))
    result = allocate(line_t.remaining, lot_t.available, cand, policy)
    lp = lp_objective(line_t.remaining, lot_t.available, cand, policy, tiered=True)
    assert result.objective == pytest.approx(lp, rel=1e-9)


def test_large_networks_are_solved_in_a_solver_process_alike() -> None:
    line_t, lot_t, cand, policy = tables(_medium())
    in_process = allocate(line_t.remaining, lot_t.available, cand, policy)
    with patch.object(allocation, "_PROCESS_PAIRS", 1):
        solved_apart = allocate(line_t.remaining, lot_t.available, cand, policy)
    assert solved_apart.objective == pytest.approx(in_process.objective, abs=1e-9)
    assert objective_of(solved_apart.flow, line_t.remaining, cand, policy) == pytest.approx(in_process.objective)
    assert (np.bincount(cand.lot, weights=solved_apart.flow, minlength=len(lot_t)) <= lot_t.available).all()


def test_cancelling_kills_the_solver_process_at_once() -> None:
    """One connected network of 2M pairs (seconds to solve): cancelled while it is being solved."""
    rng = np.random.default_rng(5)
    n_lines, n_lots, per_line = 50_000, 2_000, 40
    line = np.repeat(np.arange(n_lines, dtype=np.int64), per_line)
    cand = Candidates(
        line=line,
        lot=rng.integers(0, n_lots, len(line)),
        score=rng.uniform(0, 100, len(line)),
        contributions={},
        distance_km=np.zeros(len(line)),
        substitute=np.zeros(len(line), dtype=np.bool_),
    )
    remaining, available = rng.integers(1, 60, n_lines), rng.integers(100, 1000, n_lots)
    cancelled = threading.Event()
    outcome: list[BaseException] = []

    def solve() -> None:
        try:
            allocate(remaining, available, cand, Policy(), cancelled=cancelled)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=solve)
    worker.start()
    deadline = time.monotonic() + 60
    while not multiprocessing.active_children() and worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    (solver,) = multiprocessing.active_children()
    pid = solver.pid
    assert pid is not None
    time.sleep(0.5)  # its network received, solving
    allocation.cancel_solving(cancelled)
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], allocation.SolveCancelled)
    assert multiprocessing.active_children() == []
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(pid, 0)


def _two_networks(seed: int) -> tuple[Candidates, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Two disconnected networks of 1M pairs each (lines and lots of the second offset past the first's)."""
    rng = np.random.default_rng(seed)
    n_lines, n_lots, per_line = 25_000, 1_000, 40
    line = np.repeat(np.arange(2 * n_lines, dtype=np.int64), per_line)
    lot = rng.integers(0, n_lots, len(line)) + np.where(line >= n_lines, n_lots, 0)
    cand = Candidates(
        line=line,
        lot=lot,
        score=rng.uniform(0, 100, len(line)),
        contributions={},
        distance_km=np.zeros(len(line)),
        substitute=np.zeros(len(line), dtype=np.bool_),
    )
    return cand, rng.integers(1, 60, 2 * n_lines), rng.integers(100, 1000, 2 * n_lots)


def test_networks_solved_side_by_side_give_the_one_by_one_optimum() -> None:
    cand, remaining, available = _two_networks(6)
    with patch.object(allocation, "_PROCESS_PAIRS", 1_000_000):
        one_by_one = allocate(remaining, available, cand, Policy(), processes=1)
        side_by_side = allocate(remaining, available, cand, Policy(), processes=2)
    assert side_by_side.objective == pytest.approx(one_by_one.objective, abs=1e-9)
    assert objective_of(side_by_side.flow, remaining, cand, Policy()) == pytest.approx(one_by_one.objective)
    assert (np.bincount(cand.lot, weights=side_by_side.flow, minlength=len(available)) <= available).all()


def test_cancelling_kills_every_solver_process_of_the_run() -> None:
    cand, remaining, available = _two_networks(7)
    cancelled = threading.Event()
    outcome: list[BaseException] = []

    def solve() -> None:
        try:
            allocate(remaining, available, cand, Policy(), cancelled=cancelled, processes=2)
        except BaseException as exc:
            outcome.append(exc)

    with patch.object(allocation, "_PROCESS_PAIRS", 1_000_000):
        worker = threading.Thread(target=solve)
        worker.start()
        deadline = time.monotonic() + 60
        while len(multiprocessing.active_children()) < 2 and worker.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        solvers = [p.pid for p in multiprocessing.active_children()]
        assert len(solvers) == 2
        time.sleep(0.3)
        allocation.cancel_solving(cancelled)
        worker.join(timeout=5)
    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], allocation.SolveCancelled)
    assert multiprocessing.active_children() == []
    for pid in solvers:
        assert pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
