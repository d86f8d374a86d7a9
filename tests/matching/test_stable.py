"""Stable proposals as arithmetic: an incremental allocation around held (open) proposals is feasible, leaves
them as they are and is maximal on what it touched; a global run after it reaches the LP optimum, and keeps the
open proposals only while they are within the policy's threshold of it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.matching.allocation import allocate, objective_of
from services.matching.policy import Policy
from services.matching.scoring import LineTable, LotTable, build_candidates
from services.matching.stable import STICKY_BONUS, Held, allocate_around, residual, sticky, worth_replacing
from tests.helpers.lp import lp_objective
from tests.helpers.scoring import CATALOG, NOW, PROPERTY, build, check, instances, line_row, lot_row

Instance = tuple[list[dict[str, Any]], list[dict[str, Any]], Policy]


@PROPERTY
@given(instances(), st.data())
def test_incremental_then_global_run(instance: Instance, data: st.DataObject) -> None:
    lines, lots, policy = instance
    line_t, lot_t = LineTable.from_rows(lines), LotTable.from_rows(lots)
    cand = build_candidates(line_t, lot_t, policy, now=NOW, catalog=CATALOG)
    remaining, available = line_t.remaining, lot_t.available
    # Some lines were there before: their allocation is open (held); the others arrived since.
    before = np.array(data.draw(st.lists(st.booleans(), min_size=len(lines), max_size=len(lines))))
    earlier = allocate(np.where(before, remaining, 0), available, cand, policy)
    at = np.flatnonzero(earlier.flow)
    held = Held.of(cand.line[at].tolist(), cand.lot[at].tolist(), earlier.flow[at].tolist(), cand.score[at].tolist())

    out = allocate_around(remaining, available, cand, policy, held)
    assert len(out.cand) == len(cand)  # every held pair is a candidate here
    assert (out.held_flow[at] == earlier.flow[at]).all() and out.held_flow.sum() == earlier.flow.sum()
    assert (out.flow >= 0).all()
    total = out.flow + out.held_flow
    per_lot = np.bincount(cand.lot, weights=total, minlength=len(lots))
    per_line = np.bincount(cand.line, weights=total, minlength=len(lines))
    assert (per_lot <= available).all(), "a lot is over-allocated"
    assert (per_line <= remaining).all(), "a need line is over-allocated"
    for p in np.flatnonzero(out.flow):
        c = check(lines[cand.line[p]], lots[cand.lot[p]], policy)
        assert c.feasible or c.margin <= 1e-6
    # Maximal on what it touched: no pair has both spare demand and spare supply left around the held ones.
    spare = (available[cand.lot] > per_lot[cand.lot]) & (remaining[cand.line] > per_line[cand.line])
    assert not spare.any()
    assert out.objective == pytest.approx(objective_of(total, remaining, cand, policy), abs=1e-9)

    # A global run: from scratch, it is the LP optimum; it replaces the open proposals only past the threshold.
    optimum = lp_objective(remaining, available, cand, policy, True)
    fresh = allocate(remaining, available, cand, policy)
    assert fresh.objective == pytest.approx(optimum, rel=1e-6, abs=1e-6)
    assert out.objective <= fresh.objective + 1e-6
    # The replacement that prefers the held pairs is feasible and worth no more than the optimum.
    stuck, value = sticky(remaining, available, cand, policy, held, STICKY_BONUS)
    assert (np.bincount(cand.lot, weights=stuck, minlength=len(lots)) <= available).all()
    assert (np.bincount(cand.line, weights=stuck, minlength=len(lines)) <= remaining).all()
    assert value <= fresh.objective + 1e-6
    for threshold in (0.0, policy.replace_gain_threshold):
        weighed = policy.model_copy(update={"replace_gain_threshold": threshold})
        after = fresh.objective if worth_replacing(out.objective, fresh.objective, weighed) else out.objective
        assert after * (1 + threshold) >= optimum - 1e-6
        if threshold == 0.0:
            assert after == pytest.approx(optimum, rel=1e-6, abs=1e-6)


def test_residual_takes_held_units_off_lines_and_lots() -> None:
    held = Held.of([0, 0, 1], [0, 1, 1], [5, 3, 10], [1.0, 1.0, 1.0])
    rem, avail = residual(np.array([10, 8]), np.array([5, 12]), held)
    assert rem.tolist() == [2, 0] and avail.tolist() == [0, 0]


def test_a_held_pair_no_longer_among_the_candidates_still_counts() -> None:
    policy = Policy(max_candidates_per_line=1)
    lines = [line_row(id="a", remaining=10)]
    lots = [lot_row(50.0, id="near", available=10), lot_row(400.0, id="far", available=10)]
    cand = build(lines, lots, policy)
    assert cand.lot.tolist() == [0]  # only the nearest lot is a candidate now
    held = Held.of([0], [1], [4], [2.5])  # proposed earlier from the far lot
    out = allocate_around(np.array([10]), np.array([10, 10]), cand, policy, held)
    assert len(out.cand) == 2 and out.held_flow.tolist() == [0, 4] and out.flow.tolist() == [6, 0]
    assert out.objective == pytest.approx(objective_of(out.flow + out.held_flow, np.array([10]), out.cand, policy))
