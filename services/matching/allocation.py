"""Optimal allocation of lots to need lines as min-cost flow (OR-Tools), with tiers of decreasing value per
line so that scarce supply is spread across needs before any one is topped up; plus a greedy baseline."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from ortools.graph.python.min_cost_flow import SimpleMinCostFlow

from services.matching.scoring import Candidates, Policy

I64 = npt.NDArray[np.int64]

# Scores and tier values become integer arc costs in hundredths of a score point.
SCALE = 100


@dataclass
class Allocation:
    flow: I64
    objective: float
    solve_seconds: float
    status: str


def tier_values(policy: Policy, *, tiered: bool = True) -> I64:
    """Each tier's value per unit, in hundredths."""
    values = [value for _, value in policy.tiers]
    if not tiered:
        values = values[-1:]
    return np.rint(np.array(values, dtype=np.float64) * SCALE).astype(np.int64)


def tier_capacities(remaining: npt.NDArray[np.integer], policy: Policy, *, tiered: bool = True) -> I64:
    """(lines × tiers) units per tier, summing exactly to each line's remaining demand.

    Tier boundaries round the cumulative share *up*, so a line of 1 or 3 units still has its first unit in
    the top tier (rounding each share down would put every unit of a small line in the lowest tier)."""
    rem = np.maximum(np.asarray(remaining, dtype=np.int64), 0)
    if not tiered:
        return rem[:, None].copy()
    cumulative = np.cumsum([share for share, _ in policy.tiers])
    # Rounded to 6 decimals first so 0.3 × 10 = 3.0000000000000004 does not round up to 4.
    bounds = np.ceil(np.round(rem[:, None].astype(np.float64) * cumulative[None, :], 6)).astype(np.int64)
    bounds = np.minimum(bounds, rem[:, None])
    bounds[:, -1] = rem
    out: I64 = np.diff(bounds, axis=1, prepend=0)
    return out


def pair_values(cand: Candidates) -> I64:
    """Each candidate pair's score per unit, in hundredths."""
    return np.rint(cand.score * SCALE).astype(np.int64)


def pair_capacities(remaining: npt.NDArray[np.integer], available: npt.NDArray[np.integer], cand: Candidates) -> I64:
    cap = np.minimum(np.asarray(available, dtype=np.int64)[cand.lot], np.asarray(remaining, dtype=np.int64)[cand.line])
    return np.maximum(cap, 0)


def allocate(
    remaining: npt.NDArray[np.integer],
    available: npt.NDArray[np.integer],
    cand: Candidates,
    policy: Policy,
    *,
    tiered: bool = True,
) -> Allocation:
    """Maximise Σ score·flow + Σ tier value·tier units over source → lots → lines → tiers → sink."""
    started = time.perf_counter()
    n_lines, n_lots, m = len(remaining), len(available), len(cand)
    supply_of = np.maximum(np.asarray(available, dtype=np.int64), 0)
    total_supply = int(supply_of.sum())
    if m == 0 or total_supply == 0:
        return Allocation(np.zeros(m, dtype=np.int64), 0.0, time.perf_counter() - started, "optimal")

    source, sink = 0, n_lots + n_lines + 1
    lot_node = np.arange(1, n_lots + 1, dtype=np.int32)
    line_node = np.arange(n_lots + 1, n_lots + n_lines + 1, dtype=np.int32)
    caps = tier_capacities(remaining, policy, tiered=tiered)
    values = tier_values(policy, tiered=tiered)
    k = caps.shape[1]

    pair_tails = lot_node[cand.lot]
    pair_heads = line_node[cand.line]
    tails = np.concatenate(
        [np.full(n_lots, source, np.int32), pair_tails, np.repeat(line_node, k), np.array([source], np.int32)]
    )
    heads = np.concatenate([lot_node, pair_heads, np.full(n_lines * k, sink, np.int32), np.array([sink], np.int32)])
    capacities = np.concatenate(
        [supply_of, pair_capacities(remaining, available, cand), caps.ravel(), np.array([total_supply], np.int64)]
    )
    costs = np.concatenate(
        [np.zeros(n_lots, np.int64), -pair_values(cand), np.tile(-values, n_lines), np.zeros(1, np.int64)]
    )

    smcf = SimpleMinCostFlow()
    arcs = smcf.add_arcs_with_capacity_and_unit_cost(tails, heads, capacities, costs)
    smcf.set_nodes_supplies(
        np.array([source, sink], dtype=np.int32), np.array([total_supply, -total_supply], dtype=np.int64)
    )
    status = smcf.solve()
    if status != SimpleMinCostFlow.OPTIMAL:
        raise RuntimeError(f"min-cost flow did not solve to optimality: {status.name}")
    flows = np.asarray(smcf.flows(np.asarray(arcs, dtype=np.int32)[n_lots : n_lots + m]), dtype=np.int64)
    objective = -int(smcf.optimal_cost()) / SCALE
    return Allocation(flows, objective, time.perf_counter() - started, "optimal")


def objective_of(
    flow: npt.NDArray[np.integer],
    remaining: npt.NDArray[np.integer],
    cand: Candidates,
    policy: Policy,
    *,
    tiered: bool = True,
) -> float:
    """The objective of any flow, each line's units filling its tiers from the most valuable down."""
    flow = np.asarray(flow, dtype=np.int64)
    if len(flow) == 0:
        return 0.0
    total = int(np.dot(flow, pair_values(cand)))
    left = np.bincount(cand.line, weights=flow, minlength=len(remaining)).astype(np.int64)
    caps = tier_capacities(remaining, policy, tiered=tiered)
    for t, value in enumerate(tier_values(policy, tiered=tiered).tolist()):
        take = np.minimum(left, caps[:, t])
        total += int(take.sum()) * value
        left -= take
    return total / SCALE


def greedy_allocate(
    remaining: npt.NDArray[np.integer], available: npt.NDArray[np.integer], cand: Candidates, policy: Policy
) -> I64:
    """Baseline: pairs by descending score, each taking all it can of what is left on both ends."""
    spare_line = np.maximum(np.asarray(remaining, dtype=np.int64), 0).tolist()
    spare_lot = np.maximum(np.asarray(available, dtype=np.int64), 0).tolist()
    order = np.argsort(-cand.score, kind="stable")
    lines, lots = cand.line[order].tolist(), cand.lot[order].tolist()
    taken = [0] * len(order)
    for pos, (i, j) in enumerate(zip(lines, lots, strict=True)):
        q = min(spare_line[i], spare_lot[j])
        if q > 0:
            taken[pos] = q
            spare_line[i] -= q
            spare_lot[j] -= q
    flow = np.zeros(len(order), dtype=np.int64)
    flow[order] = taken
    return flow
