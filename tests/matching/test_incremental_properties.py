"""Component-bounded incremental runs as arithmetic: after some lines were allocated (their proposals open, held),
new lines and changed lots are matched by a run that reads only their component (services.matching.component,
over in-memory rows with the repository's semantics). That run alone is feasible and maximal on what it touched;
followed by a global run it reaches the LP optimum."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.matching.allocation import allocate
from services.matching.component import Bounds, Component, Expansion
from services.matching.policy import Policy
from services.matching.scoring import Candidates, LineTable, LotTable, build_candidates
from services.matching.stable import Held, allocate_around, residual, worth_replacing
from shared.db import utcnow
from tests.helpers.component import MemorySource, line_uuid, lot_uuid
from tests.helpers.lp import lp_objective
from tests.helpers.scoring import CATALOG, NOW, PROPERTY, check, instances

Instance = tuple[list[dict[str, Any]], list[dict[str, Any]], Policy]
ROOMY = Bounds(max_size=1000, max_hops=100)


def _lot_items(item: str) -> set[str]:
    found = CATALOG.get(item)
    return {item} | (set(found.substitutes) if found is not None else set())


def _component(
    lines: list[dict[str, Any]],
    lots: list[dict[str, Any]],
    policy: Policy,
    changed_lines: list[int],
    changed_lots: list[int],
    bounds: Bounds = ROOMY,
) -> Component | None:
    # Every item of the instance at once: items of different groups never meet, so this is a union of groups.
    items = tuple(sorted({ln["item_code"] for ln in lines} | {lot["item_code"] for lot in lots}))
    expansion = Expansion(MemorySource(lines, lots), items, policy, utcnow(), bounds, lot_items=_lot_items)
    return asyncio.run(expansion.run({line_uuid(i) for i in changed_lines}, {lot_uuid(j) for j in changed_lots}))


def _cands(lines: list[dict[str, Any]], lots: list[dict[str, Any]], policy: Policy) -> Candidates:
    return build_candidates(LineTable.from_rows(lines), LotTable.from_rows(lots), policy, now=NOW, catalog=CATALOG)


@PROPERTY
@given(instances(), st.data())
def test_an_incremental_run_of_a_component_then_a_global_run(instance: Instance, data: st.DataObject) -> None:
    lines, lots, policy = instance
    remaining, available = LineTable.from_rows(lines).remaining, LotTable.from_rows(lots).available
    cand = _cands(lines, lots, policy)
    # Some lines were there before: their allocation is open (held). The others arrived since, and some lots
    # changed: the marks of the continuous run.
    before = np.array(data.draw(st.lists(st.booleans(), min_size=len(lines), max_size=len(lines))))
    earlier = allocate(np.where(before, remaining, 0), available, cand, policy)
    at = np.flatnonzero(earlier.flow)
    held = Held.of(cand.line[at].tolist(), cand.lot[at].tolist(), earlier.flow[at].tolist(), cand.score[at].tolist())
    rem, avail = residual(remaining, available, held)
    res_lines = [{**ln, "remaining": int(r)} for ln, r in zip(lines, rem, strict=True)]
    res_lots = [{**lot, "available": int(a)} for lot, a in zip(lots, avail, strict=True)]
    changed_lots = data.draw(st.lists(st.sampled_from(range(len(lots))), unique=True))
    component = _component(res_lines, res_lots, policy, np.flatnonzero(~before).tolist(), changed_lots)
    assert component is not None
    in_lines = [i for i in range(len(lines)) if line_uuid(i) in set(component.lines)]
    in_lots = [j for j in range(len(lots)) if lot_uuid(j) in set(component.lots)]
    assert all(rem[i] > 0 for i in in_lines) and all(avail[j] > 0 for j in in_lots)

    # The incremental run: only the component's rows, with what the open proposals leave of them.
    sub = _cands([res_lines[i] for i in in_lines], [res_lots[j] for j in in_lots], policy)
    result = allocate(rem[in_lines], avail[in_lots], sub, policy)
    flow = result.flow if result.credited is None else result.credited
    new_line = np.asarray(in_lines, dtype=np.int64)[sub.line]
    new_lot = np.asarray(in_lots, dtype=np.int64)[sub.lot]
    per_line = np.bincount(held.line, weights=held.quantity, minlength=len(lines)) + np.bincount(
        new_line, weights=flow, minlength=len(lines)
    )
    per_lot = np.bincount(held.lot, weights=held.quantity, minlength=len(lots)) + np.bincount(
        new_lot, weights=flow, minlength=len(lots)
    )
    # Feasible: within every line's demand and lot's supply, the held proposals as they were, each new pair allowed.
    assert (per_line <= remaining).all() and (per_lot <= available).all()
    for p in np.flatnonzero(flow):
        c = check(lines[int(new_line[p])], lots[int(new_lot[p])], policy)
        assert c.feasible or c.margin <= 1e-6
    # Maximal on what it touched: no pair of the group's residual candidates within the component has spare demand
    # and spare supply left.
    res = _cands(res_lines, res_lots, policy)
    inside = np.isin(res.line, in_lines) & np.isin(res.lot, in_lots)
    spare = (available[res.lot] > per_lot[res.lot]) & (remaining[res.line] > per_line[res.line])
    assert not (inside & spare).any()
    # Closed: no line outside the component could take what is left of a lot in it.
    assert not (np.isin(res.lot, in_lots) & ~np.isin(res.line, in_lines) & spare).any()

    # A global run after it: the open proposals (held and new) weighed against a from-scratch optimum.
    picked = np.flatnonzero(flow)
    open_now = Held.of(
        held.line.tolist() + new_line[picked].tolist(),
        held.lot.tolist() + new_lot[picked].tolist(),
        held.quantity.tolist() + flow[picked].tolist(),
        held.score.tolist() + sub.score[picked].tolist(),
    )
    around = allocate_around(remaining, available, cand, policy, open_now)
    fresh = allocate(remaining, available, cand, policy)
    optimum = lp_objective(remaining, available, cand, policy, True)
    exact = policy.model_copy(update={"replace_gain_threshold": 0.0})
    after = fresh.objective if worth_replacing(around.objective, fresh.objective, exact) else around.objective
    assert after >= optimum - 1e-6 * max(1.0, abs(optimum))
    if len(around.cand) == len(cand):  # every open pair is a candidate of the global run
        assert after == pytest.approx(optimum, rel=1e-6, abs=1e-6)


@PROPERTY
@given(instances())
def test_a_component_past_its_bound_runs_the_whole_group(instance: Instance) -> None:
    lines, lots, policy = instance
    roomy = _component(lines, lots, policy, list(range(len(lines))), [])
    assert roomy is not None
    size = len(roomy.lines) + len(roomy.lots)
    if size:
        assert _component(lines, lots, policy, list(range(len(lines))), [], Bounds(size - 1, 100)) is None
        assert _component(lines, lots, policy, list(range(len(lines))), [], Bounds(size, 100)) is not None
    assert _component(lines, lots, policy, [], []) == Component([], [], 0, 0)
