"""Optimal allocation of lots to need lines as min-cost flow (OR-Tools), with tiers of decreasing value per
line so that scarce supply is spread across needs before any one is topped up; plus a greedy baseline.

Quantities are base units. A pair whose lot is a substitute with a conversion factor other than 1 gives the
line lot units worth `factor` line units each: such components of the candidate graph are not plain flows
(the units change on the way) and are solved as an integer programme (HiGHS through SciPy) instead, giving
each line at least what it is credited (`credited <= factor × given`)."""

from __future__ import annotations

import contextlib
import ctypes
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import numpy.typing as npt
from ortools.graph.python.min_cost_flow import SimpleMinCostFlow

from services.matching.policy import Policy
from services.matching.scoring import Candidates

I64 = npt.NDArray[np.int64]

# Scores and tier values become integer arc costs in hundredths of a score point.
SCALE = 100


@dataclass
class Allocation:
    """`flow`: base units of each pair's lot given; `credited`: base units of the line's item that counts for
    (equal to `flow` unless the lot is a substitute with another factor than 1)."""

    flow: I64
    objective: float
    solve_seconds: float
    status: str
    credited: I64 | None = None

    def __post_init__(self) -> None:
        if self.credited is None:
            self.credited = self.flow.copy()


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
    """Lot units each pair may carry: what the lot has, at most what fills the line."""
    need = np.asarray(remaining, dtype=np.int64)[cand.line]
    converted = cand.factor != 1.0
    if converted.any():
        need = need.copy()
        need[converted] = np.ceil(need[converted] / cand.factor[converted] - 1e-9).astype(np.int64)
    cap = np.minimum(np.asarray(available, dtype=np.int64)[cand.lot], need)
    return np.maximum(cap, 0)


def lot_units_of(credited: npt.NDArray[np.integer], cand: Candidates) -> I64:
    """Lot base units each pair gives for what it credits its line: exactly what `allocate` gives (the fewest
    whose worth covers the credit)."""
    c = np.asarray(credited, dtype=np.int64)
    out = c.copy()
    converted = cand.factor != 1.0
    out[converted] = np.ceil(c[converted] / cand.factor[converted] - 1e-9).astype(np.int64)
    return out


def credit_of(given: npt.NDArray[np.integer], cand: Candidates) -> I64:
    """Line base units that `given` lot base units of each pair are worth (rounded down)."""
    g = np.asarray(given, dtype=np.int64)
    return np.floor(g * cand.factor + 1e-9).astype(np.int64)


class SolveCancelled(Exception):
    """The caller gave up on the allocation (its `cancelled` event was set)."""


def allocate(
    remaining: npt.NDArray[np.integer],
    available: npt.NDArray[np.integer],
    cand: Candidates,
    policy: Policy,
    *,
    tiered: bool = True,
    cancelled: threading.Event | None = None,
    processes: int = 1,
) -> Allocation:
    """Maximise Σ score·flow + Σ tier value·tier units over source → lots → lines → tiers → sink.

    Connected components of the candidate graph are independent problems; the large ones are solved one by
    one and the small ones packed together, because cost scaling slows down faster than the graph grows
    (10k × 10k with 1M pairs over 50 items: 3.6 s as one network, 0.9 s by components).

    Networks of `_PROCESS_PAIRS` pairs or more are solved in solver processes, `processes` of them at once.
    Setting `cancelled` (from another thread) stops the work between networks, and the networks being solved
    in solver processes at once: SolveCancelled."""
    started = time.perf_counter()
    cost = 0
    m = len(cand)
    rem = np.maximum(np.asarray(remaining, dtype=np.int64), 0)
    avail = np.maximum(np.asarray(available, dtype=np.int64), 0)
    flow = np.zeros(m, dtype=np.int64)
    if m == 0:
        return Allocation(flow, 0.0, time.perf_counter() - started, "optimal")
    caps = tier_capacities(rem, policy, tiered=tiered)
    values = tier_values(policy, tiered=tiered)
    pair_cost = -pair_values(cand)
    pair_cap = pair_capacities(rem, avail, cand)
    credited = flow.copy()
    batches, converted = _split_converted(cand, _batches(cand, len(avail)))
    for batch in converted:
        flow[batch], credited[batch], batch_cost = _solve_converted(
            cand.line[batch],
            cand.lot[batch],
            cand.factor[batch],
            pair_cap[batch],
            pair_cost[batch],
            rem,
            avail,
            caps,
            values,
        )
        cost += batch_cost

    def args(batch: I64) -> tuple[I64, ...]:
        return (cand.line[batch], cand.lot[batch], pair_cap[batch], pair_cost[batch], rem, avail, caps, values)

    def check() -> None:
        if cancelled is not None and cancelled.is_set():
            raise SolveCancelled()

    large = [b for b in batches if len(b) >= _PROCESS_PAIRS]
    # Large networks go to solver processes, up to `processes` at once, largest first; the small ones are
    # solved here meanwhile (the threads only wait on their processes' pipes).
    with ThreadPoolExecutor(max_workers=max(1, min(processes, len(large) or 1))) as pool:
        running = {pool.submit(_solve_in_process, args(b), cancelled): b for b in large}
        try:
            for batch in batches:
                if len(batch) < _PROCESS_PAIRS:
                    check()
                    flow[batch], batch_cost = _solve(*args(batch))
                    cost += batch_cost
            for done in as_completed(running):
                flow[running[done]], batch_cost = done.result()
                cost += batch_cost
        except BaseException:
            for future in running:
                future.cancel()
            if cancelled is not None:
                cancel_solving(cancelled)
            raise
    check()
    plain = cand.factor == 1.0
    credited[plain] = flow[plain]
    return Allocation(flow, -cost / SCALE, time.perf_counter() - started, "optimal", credited)


# Components with fewer pairs than this share one network with other small ones.
_BATCH_PAIRS = 20_000
# Networks with at least this many pairs are solved in a solver process. OR-Tools holds the GIL while it solves
# (3.2 s for 3.5M pairs here), which would stall the event loop of the process meanwhile: its requests, its
# consumers and the signal that asks it to stop. 200k pairs take about 0.25 s.
_PROCESS_PAIRS = 200_000


def _batches(cand: Candidates, n_lots: int) -> list[I64]:
    """Candidate indices grouped by connected component of the lot–line graph, small components packed."""
    label = _components(cand.lot, n_lots + cand.line, n_lots + int(cand.line.max()) + 1)[cand.lot]
    order = np.argsort(label, kind="stable")
    starts = np.flatnonzero(np.diff(label[order], prepend=-1))
    bounds = [*starts.tolist(), len(order)]
    sizes = np.diff(bounds)
    batches: list[I64] = []
    pending: list[I64] = []
    pending_size = 0
    for c in np.argsort(-sizes, kind="stable").tolist():
        members = order[bounds[c] : bounds[c + 1]]
        if sizes[c] >= _BATCH_PAIRS:
            batches.append(members)
            continue
        pending.append(members)
        pending_size += int(sizes[c])
        if pending_size >= _BATCH_PAIRS:
            batches.append(np.concatenate(pending))
            pending, pending_size = [], 0
    if pending:
        batches.append(np.concatenate(pending))
    return batches


def _split_converted(cand: Candidates, batches: list[I64]) -> tuple[list[I64], list[I64]]:
    """The batches as plain flows, and the components (one each) with a pair of another factor than 1."""
    converted_pairs = cand.factor != 1.0
    if not converted_pairs.any():
        return batches, []
    n_lots = int(cand.lot.max()) + 1
    label = _components(cand.lot, n_lots + cand.line, n_lots + int(cand.line.max()) + 1)[cand.lot]
    bad = np.isin(label, np.unique(label[converted_pairs]))
    plain = [b[~bad[b]] for b in batches]
    order = np.flatnonzero(bad)
    groups = _groups_of(label[order])
    return [b for b in plain if len(b)], [order[g] for g in groups]


def _groups_of(labels: I64) -> list[I64]:
    order = np.argsort(labels, kind="stable")
    starts = np.flatnonzero(np.diff(labels[order], prepend=-1))
    bounds = [*starts.tolist(), len(order)]
    return [order[bounds[i] : bounds[i + 1]] for i in range(len(starts))]


def _solve_converted(
    line: I64,
    lot: I64,
    factor: npt.NDArray[np.float64],
    pair_cap: I64,
    pair_cost: I64,
    rem: I64,
    avail: I64,
    caps: I64,
    values: I64,
) -> tuple[I64, I64, int]:
    """One component with converted pairs as an integer programme: the lot units given (x), the line units
    credited (c <= factor·x), the tier units (t); maximise Σ value·c + Σ tier value·t, a hair less per lot unit
    given so that no unit is given beyond what the credit needs. Returns (given, credited, cost in hundredths)."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_array, vstack

    lots, lot_local = np.unique(lot, return_inverse=True)
    lines, line_local = np.unique(line, return_inverse=True)
    m, n_lots, n_lines, k = len(line), len(lots), len(lines), caps.shape[1]
    # Variables: x (m), c (m), t (n_lines × k).
    n = 2 * m + n_lines * k
    pairs = np.arange(m)
    tier_cols = 2 * m + np.arange(n_lines * k)
    lot_rows = coo_array((np.ones(m), (lot_local, pairs)), shape=(n_lots, n))
    credit_rows = coo_array(
        (np.concatenate([-factor, np.ones(m)]), (np.concatenate([pairs, pairs]), np.concatenate([pairs, m + pairs]))),
        shape=(m, n),
    )
    balance = coo_array(
        (
            np.concatenate([np.ones(m), -np.ones(n_lines * k)]),
            (np.concatenate([line_local, np.repeat(np.arange(n_lines), k)]), np.concatenate([m + pairs, tier_cols])),
        ),
        shape=(n_lines, n),
    )
    a = vstack([lot_rows, credit_rows, balance]).tocsr()
    lower = np.concatenate([np.full(n_lots, -np.inf), np.full(m, -np.inf), np.zeros(n_lines)])
    upper = np.concatenate([avail[lots].astype(np.float64), np.full(m, 1e-9), np.zeros(n_lines)])
    credit_cap = np.minimum(rem[line], np.floor(pair_cap * factor + 1e-9))
    ub = np.concatenate([pair_cap, credit_cap, caps[lines].ravel()]).astype(np.float64)
    gain = np.concatenate(
        [np.full(m, -1e-6), -pair_cost.astype(np.float64), np.tile(values, n_lines).astype(np.float64)]
    )
    res = milp(
        -gain,
        constraints=LinearConstraint(a, lower, upper),
        integrality=np.ones(n),
        bounds=Bounds(np.zeros(n), ub),
        options={"mip_rel_gap": 0.0},
    )
    if res.x is None:
        raise RuntimeError(f"the allocation programme did not solve: {res.message}")
    x = np.rint(res.x).astype(np.int64)
    given = np.minimum(x[:m], pair_cap)
    credited = np.minimum(np.minimum(x[m : 2 * m], np.floor(given * factor + 1e-9).astype(np.int64)), rem[line])
    # No lot unit beyond what the credit needs (the solver's tolerances may leave one).
    given = np.minimum(given, np.ceil(credited / factor - 1e-9).astype(np.int64))
    return given, credited, -_value_of(credited, line, pair_cost, rem, caps, values)


def _value_of(credited: I64, line: I64, pair_cost: I64, rem: I64, caps: I64, values: I64) -> int:
    """Σ pair value·credited + each line's credited units filling its tiers from the most valuable down."""
    total = int(np.dot(credited, -pair_cost))
    lines, local = np.unique(line, return_inverse=True)
    left = np.bincount(local, weights=credited, minlength=len(lines)).astype(np.int64)
    for t, value in enumerate(values.tolist()):
        take = np.minimum(left, caps[lines, t])
        total += int(take.sum()) * value
        left -= take
    return total


def _components(u: I64, v: I64, n: int) -> I64:
    """Connected-component label (its smallest node) of every node, by hooking and pointer jumping."""
    label = np.arange(n, dtype=np.int64)
    while True:
        lu, lv = label[u], label[v]
        differ = lu != lv
        if not differ.any():
            return label
        np.minimum.at(label, np.maximum(lu, lv)[differ], np.minimum(lu, lv)[differ])
        while True:
            jumped = label[label]
            if np.array_equal(jumped, label):
                break
            label = jumped


def _solve(
    line: I64, lot: I64, pair_cap: I64, pair_cost: I64, rem: I64, avail: I64, caps: I64, values: I64
) -> tuple[I64, int]:
    """One min-cost flow over the given pairs; returns their flows and the optimal cost in hundredths."""
    lots, lot_local = np.unique(lot, return_inverse=True)
    lines, line_local = np.unique(line, return_inverse=True)
    n_lots, n_lines, k = len(lots), len(lines), caps.shape[1]
    supply = avail[lots]
    total = int(supply.sum())
    source, sink = 0, n_lots + n_lines + 1
    lot_node = np.arange(1, n_lots + 1, dtype=np.int32)
    line_node = np.arange(n_lots + 1, n_lots + n_lines + 1, dtype=np.int32)
    one = np.ones(1, dtype=np.int32)
    tails = np.concatenate(
        [np.full(n_lots, source, np.int32), lot_node[lot_local], np.repeat(line_node, k), one * source]
    )
    heads = np.concatenate([lot_node, line_node[line_local], np.full(n_lines * k, sink, np.int32), one * sink])
    capacities = np.concatenate([supply, pair_cap, caps[lines].ravel(), np.array([total], np.int64)])
    costs = np.concatenate([np.zeros(n_lots, np.int64), pair_cost, np.tile(-values, n_lines), np.zeros(1, np.int64)])

    smcf = SimpleMinCostFlow()
    arcs = np.asarray(smcf.add_arcs_with_capacity_and_unit_cost(tails, heads, capacities, costs), dtype=np.int32)
    smcf.set_nodes_supplies(np.array([source, sink], dtype=np.int32), np.array([total, -total], dtype=np.int64))
    status = smcf.solve()
    if status != SimpleMinCostFlow.OPTIMAL:
        raise RuntimeError(f"min-cost flow did not solve to optimality: {status.name}")
    flows = np.asarray(smcf.flows(arcs[n_lots : n_lots + len(line)]), dtype=np.int64)
    return flows, int(smcf.optimal_cost())


def _solver_context() -> Any:
    """Solver processes fork from a server process that has imported this module once, so they start in
    milliseconds and inherit no threads of the caller (fork from a multithreaded process may deadlock)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__])
    return ctx


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Linux: killed when the fork server exits, which it does when the process that asked for the solve
    exits. While OR-Tools holds the GIL no Python code of the solver process runs to notice."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it exited before the request took effect
        os._exit(1)


def _solve_child(conn: Connection) -> None:
    _die_with_parent()
    try:
        line, lot, cost, rem, avail, caps, values = conn.recv()
        line64, lot64 = line.astype(np.int64), lot.astype(np.int64)
        pair_cap = np.maximum(np.minimum(avail[lot64], rem[line64]), 0)
        flows, total = _solve(line64, lot64, pair_cap, cost.astype(np.int64), rem, avail, caps, values)
        used = np.flatnonzero(flows)
        conn.send(("ok", (len(flows), used, flows[used], total)))
    except Exception as exc:
        conn.send(("error", exc))
    finally:
        conn.close()


# Solver processes at work, by the event that cancels them (see cancel_solving).
_solvers: dict[threading.Event, set[Any]] = {}
_solvers_lock = threading.Lock()


def cancel_solving(cancelled: threading.Event) -> None:
    """Set `cancelled`, and kill the solver process working for it at once (callable from any thread)."""
    cancelled.set()
    with _solvers_lock:
        for process in _solvers.get(cancelled, ()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)


def _solve_in_process(args: tuple[I64, ...], cancelled: threading.Event | None) -> tuple[I64, int]:
    """`_solve(*args)` in a solver process; killed as soon as `cancelled` is set.

    The pairs go as int32 (indices and costs in hundredths fit) and their capacities are derived again over
    there, the flows come back as the pairs that carry any: a third of the bytes to copy. They are sent once
    the process runs, so that it can be killed meanwhile."""
    line, lot, _, pair_cost, rem, avail, caps, values = args
    ctx = _solver_context()
    conn, child_conn = ctx.Pipe()
    process = ctx.Process(target=_solve_child, args=(child_conn,), name="matching-solver", daemon=True)
    try:
        process.start()
        child_conn.close()
        if cancelled is not None:
            with _solvers_lock:
                _solvers.setdefault(cancelled, set()).add(process)
            if cancelled.is_set():
                raise SolveCancelled()
        try:
            conn.send(
                (line.astype(np.int32), lot.astype(np.int32), pair_cost.astype(np.int32), rem, avail, caps, values)
            )
            while not conn.poll(0.05):
                if cancelled is not None and cancelled.is_set():
                    raise SolveCancelled()
                if not process.is_alive() and not conn.poll():
                    raise RuntimeError(f"the solver process ended without an answer (exit code {process.exitcode})")
            outcome, value = conn.recv()
        except (OSError, EOFError):
            if cancelled is not None and cancelled.is_set():
                raise SolveCancelled() from None
            raise
    finally:
        if cancelled is not None:
            with _solvers_lock:
                running = _solvers.get(cancelled, set())
                running.discard(process)
                if not running:
                    _solvers.pop(cancelled, None)
        child_conn.close()
        conn.close()
        if process.pid is not None:
            if process.is_alive():
                process.kill()
            process.join(5)
            process.close()
    if outcome == "error":
        raise value
    n, used, carried, total = value
    flows = np.zeros(n, dtype=np.int64)
    flows[used] = carried
    return flows, int(total)


def objective_of(
    flow: npt.NDArray[np.integer],
    remaining: npt.NDArray[np.integer],
    cand: Candidates,
    policy: Policy,
    *,
    tiered: bool = True,
) -> float:
    """The objective of any flow, each line's units filling its tiers from the most valuable down. `flow` is
    what the lines are credited (`Allocation.credited`; the same as what is given but for converted pairs)."""
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
    """Baseline: pairs by descending score, each taking all it can of what is left on both ends; returns what
    each pair credits its line."""
    spare_line = np.maximum(np.asarray(remaining, dtype=np.int64), 0).tolist()
    spare_lot = np.maximum(np.asarray(available, dtype=np.int64), 0).tolist()
    order = np.argsort(-cand.score, kind="stable")
    lines, lots = cand.line[order].tolist(), cand.lot[order].tolist()
    taken = [0] * len(order)
    factors = cand.factor[order].tolist()
    for pos, (i, j, f) in enumerate(zip(lines, lots, factors, strict=True)):
        if f == 1.0:
            q = given = min(spare_line[i], spare_lot[j])
        else:
            q = min(spare_line[i], int(spare_lot[j] * f + 1e-9))
            given = min(spare_lot[j], math.ceil(q / f - 1e-9))
        if q > 0:
            taken[pos] = q
            spare_line[i] -= q
            spare_lot[j] -= given
    flow = np.zeros(len(order), dtype=np.int64)
    flow[order] = taken
    return flow
