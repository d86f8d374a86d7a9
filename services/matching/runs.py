"""Allocation runs: the candidates of a line, and a run that scores every feasible pair in scope, allocates
optimally and stores the result as proposals (superseding open ones the new allocation would not make)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy.ext.asyncio import AsyncSession

from services.matching import capacities, events, schemas
from services.matching.allocation import allocate, cancel_solving, lot_units_of
from services.matching.errors import NeedLineNotFound, RunNotFound
from services.matching.models import AllocationRun, NeedLineView, Proposal
from services.matching.policy import Policy, current_policy
from services.matching.repository import ProjectionRepository, ProposalRepository, RunRepository
from services.matching.schemas import ProposalStatus, RunStatus
from services.matching.scoring import Candidates, LineTable, LotTable, broken_rules, build_candidates
from services.matching.stable import STICKY_BONUS, Held, allocate_around, gain, sticky, subset, worth_replacing
from shared.catalog import get_catalog
from shared.db import utcnow
from shared.events import publish
from shared.metrics import ALLOCATION_SECONDS
from shared.pagination import PageParams
from shared.runtime import runtime_of_session

if TYPE_CHECKING:
    from services.matching.component import Component

T = TypeVar("T")


def lot_items_for(line_items: set[str]) -> set[str]:
    """Lot item codes that can serve these line items: the items and their allowed substitutes."""
    catalog = get_catalog()
    out = set(line_items)
    for code in line_items:
        item = catalog.get(code)
        if item is not None:
            out |= set(item.substitutes)
    return out


def _perishable(rows: list[dict[str, Any]]) -> None:
    catalog = get_catalog()
    for row in rows:
        item = catalog.get(row["item_code"])
        row["perishable"] = bool(item and item.perishable)


async def candidates_for_line(session: AsyncSession, line_id: uuid.UUID) -> schemas.CandidateList:
    repo = ProjectionRepository(session)
    policy, _ = await current_policy(session)
    if await repo.line(line_id) is None:
        raise NeedLineNotFound(f"No need line {line_id} in matching's projection.")
    lines = await repo.open_lines(line_ids=[line_id])
    if not lines:
        return schemas.CandidateList(need_line_id=line_id, policy_version=policy.version, remaining=0, items=[])
    lots = await repo.available_lots(lot_items_for({lines[0]["item_code"]}))
    _perishable(lots)
    cand = build_candidates(
        LineTable.from_rows(lines), LotTable.from_rows(lots), policy, now=time.time(), catalog=get_catalog()
    )
    cand = without_declined(cand, lines, lots, await repo.exclusions([lines[0]["id"]]))
    order = sorted(range(len(cand.score)), key=lambda i: (-float(cand.score[i]), float(cand.distance_km[i])))
    items = []
    for i in order:
        lot = lots[int(cand.lot[i])]
        items.append(
            schemas.Candidate(
                lot_id=uuid.UUID(lot["id"]),
                offer_id=lot["offer_id"],
                item_code=lot["item_code"],
                substitute=bool(cand.substitute[i]),
                available=lot["available"],
                distance_km=round(float(cand.distance_km[i]), 1),
                score=round(float(cand.score[i]), 3),
                factors=cand.breakdown(i),
            )
        )
    return schemas.CandidateList(
        need_line_id=line_id, policy_version=policy.version, remaining=lines[0]["remaining"], items=items
    )


class RunAbandoned(Exception):
    """The worker is stopping: the run in progress is dropped and its transaction rolled back."""


def _in_thread(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """`fn(*args)` in a daemon thread. Unlike asyncio.to_thread (whose pool threads the interpreter joins at
    exit), a process that stops meanwhile neither waits for it nor hangs on exit; its result is discarded."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def work() -> None:
        result, error = None, None
        try:
            result = fn(*args)
        except BaseException as exc:
            error = exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            pass  # the event loop is closed: nobody waits for this result any more

    threading.Thread(target=work, name="matching-allocation", daemon=True).start()
    return future


def check_stop(stop: asyncio.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise RunAbandoned()


async def _unless_stopped(work: asyncio.Future[T], stop: asyncio.Event | None) -> T:
    """The result of `work`, or RunAbandoned as soon as `stop` is set (`work` goes on, unheard)."""
    if stop is None:
        return await work
    stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([work, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not work.done():
            work.cancel()
    if work.cancelled():
        raise RunAbandoned()
    return work.result()


# Runs with at most this many (line, lot) combinations score and solve in the event loop itself (the same
# min-cost flow, a few milliseconds): handing them to a thread would make them wait for the interpreter lock
# behind the loop, which under load costs far more than the work.
INLINE_PAIRS = 2_000

# Runs that re-weigh the open proposals against a from-scratch optimum; the others allocate around them.
GLOBAL_TRIGGERS = frozenset({"manual", "periodic"})


@dataclass
class _Plan:
    """What a run writes: new proposals as a flow over `cand`, and the open proposals it replaces."""

    cand: Candidates
    flow: npt.NDArray[np.int64]  # base units credited to each pair's line (see lot_units_of for the lot's side)
    objective: float
    replace: list[Proposal] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)


def source_of(p: Proposal) -> uuid.UUID:
    """What the proposal gives: its lot, or its capacity (the run's supply table holds both)."""
    source = p.lot_id if p.lot_id is not None else p.capacity_id
    assert source is not None
    return source


def _fitting(
    proposals: list[Proposal], line_cap: dict[uuid.UUID, int], lot_cap: dict[uuid.UUID, int]
) -> list[Proposal]:
    """The proposals to give up so that the rest fit their lines' and lots' capacities (best scores kept; a line
    or lot not in the caps has room for all)."""
    used_line: dict[uuid.UUID, int] = {}
    used_lot: dict[uuid.UUID, int] = {}
    out = []
    for p in sorted(proposals, key=lambda p: (-p.score, p.created_at, p.id)):
        line = used_line.get(p.need_line_id, 0) + p.quantity
        source = source_of(p)
        lot = used_lot.get(source, 0) + (p.quantity if p.lot_quantity is None else p.lot_quantity)
        if line <= line_cap.get(p.need_line_id, line) and lot <= lot_cap.get(source, lot):
            used_line[p.need_line_id], used_lot[source] = line, lot
        else:
            out.append(p)
    return out


def _held(
    proposals: list[Proposal], lines: list[dict[str, Any]], lots: list[dict[str, Any]]
) -> tuple[Held, list[Proposal]]:
    """The open proposals that still fit, as indices into this run's tables, and those that do not (their line
    or lot gone, or the lot's restrictions no longer allowing the line)."""
    line_at = {uuid.UUID(ln["id"]): i for i, ln in enumerate(lines)}
    lot_at = {uuid.UUID(lot["id"]): i for i, lot in enumerate(lots)}

    def present_and_allowed(p: Proposal) -> bool:
        if p.need_line_id not in line_at or source_of(p) not in lot_at:
            return False
        rules = lots[lot_at[source_of(p)]].get("restrictions")
        return not rules or not broken_rules(rules, lines[line_at[p.need_line_id]])

    present = [p for p in proposals if present_and_allowed(p)]
    gone = [p for p in proposals if not present_and_allowed(p)]
    line_cap = {uuid.UUID(ln["id"]): int(ln["remaining"]) for ln in lines}
    lot_cap = {uuid.UUID(lot["id"]): int(lot["available"]) for lot in lots}
    dropped = _fitting(present, line_cap, lot_cap)
    dropped_ids = {p.id for p in dropped}
    kept = [p for p in present if p.id not in dropped_ids]
    held = Held.of(
        [line_at[p.need_line_id] for p in kept],
        [lot_at[source_of(p)] for p in kept],
        [p.quantity for p in kept],
        [p.score for p in kept],
        [p.quantity if p.lot_quantity is None else p.lot_quantity for p in kept],
    )
    return held, gone + dropped


def without_declined(
    cand: Candidates, lines: list[dict[str, Any]], lots: list[dict[str, Any]], declined: set[tuple[str, str]]
) -> Candidates:
    """The candidates less the (line, lot) pairs a site declined."""
    if not declined or not len(cand):
        return cand
    pairs = zip(cand.line.tolist(), cand.lot.tolist(), strict=True)
    keep = np.array([(lines[i]["id"], lots[j]["id"]) not in declined for i, j in pairs], dtype=np.bool_)
    return subset(cand, keep)


def _score_and_plan(
    lines: list[dict[str, Any]],
    lots: list[dict[str, Any]],
    open_now: list[Proposal] | None,
    declined: set[tuple[str, str]],
    policy: Policy,
    cancelled: threading.Event,
    processes: int,
) -> tuple[_Plan, float]:
    """Candidates and the allocation to write. Without `open_now` (an incremental run) the tables already hold
    only what open proposals leave: everything allocated is new. With it (a global run) the open proposals are
    weighed: kept, with an allocation around them, unless a from-scratch optimum gains more than the policy's
    threshold, in which case the open proposals it would not make again are replaced."""
    line_table, lot_table = LineTable.from_rows(lines), LotTable.from_rows(lots)
    goods = [lot for lot in lots if not lot.get("capacity")]  # the capacities follow the lots
    now = time.time()
    cand = capacities.merge(
        build_candidates(line_table, LotTable.from_rows(goods), policy, now=now, catalog=get_catalog()),
        capacities.capacity_candidates(lines, lots[len(goods) :], policy, now=now, offset=len(goods)),
    )
    cand = without_declined(cand, lines, lots, declined)
    built = time.perf_counter()
    solver: dict[str, Any] = {"cancelled": cancelled, "processes": processes}
    if open_now is None:
        result = allocate(line_table.remaining, lot_table.available, cand, policy, **solver)
        credited = result.flow if result.credited is None else result.credited
        touched = np.unique(cand.line[credited > 0])
        return _Plan(cand, credited, float(result.objective), counts={"touched_lines": len(touched)}), built
    held, _ = _held(open_now, lines, lots)
    around = allocate_around(line_table.remaining, lot_table.available, cand, policy, held, **solver)
    fresh = allocate(line_table.remaining, lot_table.available, cand, policy, **solver)
    counts = {
        "held": len(held),
        "objective_kept": round(around.objective),
        "objective_fresh": round(float(fresh.objective)),
        "touched_lines": around.touched_lines,
        "touched_lots": around.touched_lots,
    }
    if not worth_replacing(around.objective, float(fresh.objective), policy):
        return _Plan(around.cand, around.flow, around.objective, counts=counts), built
    # Replace: with an allocation as good that keeps as many open proposals as it can (a unit on a held pair is
    # worth a little more to the solver), else the optimum itself. Open proposals it makes again stay (same ids).
    new_flow, value = sticky(line_table.remaining, lot_table.available, cand, policy, held, STICKY_BONUS, **solver)
    if not worth_replacing(around.objective, value, policy):
        new_flow, value = (fresh.flow if fresh.credited is None else fresh.credited), float(fresh.objective)
    again = {(int(cand.line[i]), int(cand.lot[i]), int(new_flow[i])): int(i) for i in np.flatnonzero(new_flow)}
    flow = new_flow.copy()
    line_at = {uuid.UUID(ln["id"]): i for i, ln in enumerate(lines)}
    lot_at = {uuid.UUID(lot["id"]): i for i, lot in enumerate(lots)}
    replace = []
    for p in open_now:
        i = again.pop((line_at.get(p.need_line_id, -1), lot_at.get(source_of(p), -1), p.quantity), None)
        if i is None:
            replace.append(p)
        else:
            flow[i] = 0  # kept as it is
    counts["gain_bp"] = min(round(gain(around.objective, value) * 10_000), 10**9)
    counts["objective_new"] = round(value)
    return _Plan(cand, flow, value, replace=replace, counts=counts), built


async def _plan(
    lines: list[dict[str, Any]],
    lots: list[dict[str, Any]],
    open_now: list[Proposal] | None,
    declined: set[tuple[str, str]],
    policy: Policy,
    processes: int,
    stop: asyncio.Event | None,
) -> tuple[_Plan, float]:
    """`_score_and_plan` in a thread, or in the loop for a tiny run (INLINE_PAIRS); RunAbandoned once `stop` is
    set."""
    cancelled = threading.Event()
    if len(lines) * len(lots) <= INLINE_PAIRS:  # a few milliseconds: no thread to hand over to and wait on
        return _score_and_plan(lines, lots, open_now, declined, policy, cancelled, processes)
    try:
        work = _in_thread(_score_and_plan, lines, lots, open_now, declined, policy, cancelled, processes)
        return await _unless_stopped(work, stop)
    finally:
        cancel_solving(cancelled)  # an abandoned run's solver stops at once


async def propose(
    session: AsyncSession,
    *,
    policy: Policy,
    scope: schemas.RunScope,
    trigger: str,
    actor: str,
    line_ids: list[uuid.UUID] | None = None,
    stop: asyncio.Event | None = None,
    component: Component | None = None,
) -> tuple[AllocationRun, list[Proposal]]:
    """Allocate the lines in scope and store the result as proposals. Open proposals are stable: a continuous
    or retry run holds them fixed and allocates only the demand and supply they leave (reading only the lines
    and lots with some left); a manual or periodic run replaces them only when a from-scratch optimum gains more
    than `policy.replace_gain_threshold`, recording `replaced_by` and `replaced_reason`. Either cancels the open
    proposals that no longer fit their line or lot. Nothing is locked before the write phase.

    Once `stop` is set the run raises RunAbandoned at its next step (without waiting for scoring and solving
    to end), so that the caller's transaction rolls back.

    With `component` (a continuous run whose marks named what changed) only the component's lines and lots are
    read (services.matching.component)."""
    started = time.perf_counter()
    now = utcnow()
    is_global = trigger in GLOBAL_TRIGGERS
    around_open = None if is_global else now
    repo = ProjectionRepository(session)
    if component is not None:
        line_ids = component.lines
    lines = await repo.open_lines(
        region_code=scope.region_code,
        item_codes=scope.item_codes,
        line_ids=line_ids,
        on_batch=lambda: check_stop(stop),
        around_open=around_open,
    )
    lot_items = lot_items_for({ln["item_code"] for ln in lines} | set(scope.item_codes or ()))
    lot_ids = None if component is None else component.lots
    lots = await repo.available_lots(lot_items, around_open=around_open, lot_ids=lot_ids) if lines else []
    _perishable(lots)
    if lines and component is None:  # a component's group has no capacities (services.matching.component)
        lots += await capacities.available_capacities(session, lot_items, today=now.date(), around_open=around_open)
    proposals_repo = ProposalRepository(session)
    open_now = await proposals_repo.held([uuid.UUID(ln["id"]) for ln in lines], now) if is_global else None
    declined = await repo.exclusions([ln["id"] for ln in lines])
    loaded = time.perf_counter()
    check_stop(stop)
    # Scoring and solving are CPU work: in a thread (large networks in a solver process), so that the service's
    # other requests (and, in one-process development, every service's) keep being answered meanwhile; a tiny
    # run's in the loop (INLINE_PAIRS).
    processes = runtime_of_session(session).settings.matching_solver_processes
    plan, built = await _plan(lines, lots, open_now, declined, policy, processes, stop)
    solved = time.perf_counter()

    run = AllocationRun(
        id=uuid.uuid4(),
        trigger=trigger,
        scope=scope.model_dump(exclude_none=True),
        policy_version=policy.version,
        status=RunStatus.completed,
        objective=round(plan.objective, 3),
        created_by=actor,
        counts={},
        timings={},
        created_at=now,
    )
    RunRepository(session).add(run)
    await session.flush()
    check_stop(stop)
    replaced, infeasible, proposals = await _write(session, run, plan, lines, lots, scope, lot_items, policy, now)
    superseded = replaced + infeasible
    gone = {p.id for p in superseded}
    kept_open = [p for p in (open_now or []) if p.id not in gone]
    run.counts = {
        "global": int(is_global),
        "kept": len(kept_open),
        "lines": len(lines),
        "lots": len(lots),
        "pairs": len(plan.cand),
        "proposals": len(proposals),
        "units": int(plan.flow.sum()),
        "superseded": len(superseded),
        "replaced": len(replaced),
        "infeasible": len(infeasible),
        **plan.counts,
        **_component_counts(component),
    }
    ALLOCATION_SECONDS.labels("candidates", trigger).observe(built - loaded)
    ALLOCATION_SECONDS.labels("solve", trigger).observe(solved - built)
    run.timings = {
        "load_ms": _ms(started, loaded),
        "candidates_ms": _ms(loaded, built),
        "solve_ms": _ms(built, solved),
        "total_ms": _ms(started, time.perf_counter()),
    }
    await session.flush()
    # Their lines and lots in the session at once, rather than two lookups per event.
    await repo.load_views({p.need_line_id for p in superseded}, {p.lot_id for p in superseded if p.lot_id is not None})
    for old in superseded:
        check_stop(stop)
        await events.publish_decision(session, events.PROPOSAL_CANCELLED, old, old.quantity)
    await publish(
        session,
        events.RUN_COMPLETED,
        events.RunData(
            id=run.id,
            trigger=trigger,
            scope=run.scope,
            policy_version=run.policy_version,
            objective=run.objective,
            counts=run.counts,
        ),
        subject=str(run.id),
    )
    return run, kept_open + proposals


async def _write(
    session: AsyncSession,
    run: AllocationRun,
    plan: _Plan,
    lines: list[dict[str, Any]],
    lots: list[dict[str, Any]],
    scope: schemas.RunScope,
    lot_items: set[str],
    policy: Policy,
    now: datetime,
) -> tuple[list[Proposal], list[Proposal], list[Proposal]]:
    """The write phase, the only one that locks proposals: the replaced (if none was decided meanwhile), the
    infeasible cancelled, the new added. Returns (replaced, infeasible, new)."""
    replaced: list[Proposal] = []
    if plan.replace:
        locked = await ProposalRepository(session).lock_open([p.id for p in plan.replace], now)
        if len(locked) == len(plan.replace):
            replaced = locked
        else:  # decided meanwhile: keep everything open as it is, allocate nothing this time
            plan.flow[:] = 0
            plan.counts["replace_conflict"] = len(plan.replace) - len(locked)
    proposals = _new_proposals(run, plan, lines, lots, policy, now)
    await _record_replacements(session, run, replaced, proposals, plan, policy, now)
    line_items = {ln["item_code"] for ln in lines} | set(scope.item_codes or ())
    infeasible = await _cancel_infeasible(session, run, line_items, lot_items, now)
    if infeasible:  # what they held is free again: the next continuous run allocates it
        await ProjectionRepository(session).mark_changed(
            lines=[(p.item_code, p.need_line_id) for p in infeasible],
            lots=[(p.lot_item_code, p.lot_id) for p in infeasible if p.lot_id is not None],
        )
        capacity_items = {p.lot_item_code for p in infeasible if p.lot_id is None}
        await ProjectionRepository(session).mark_dirty(capacity_items)
    session.add_all(proposals)
    await session.flush()
    return replaced, infeasible, proposals


def _new_proposals(
    run: AllocationRun,
    plan: _Plan,
    lines: list[dict[str, Any]],
    lots: list[dict[str, Any]],
    policy: Policy,
    now: datetime,
) -> list[Proposal]:
    cand, expires = plan.cand, now + timedelta(seconds=policy.proposal_ttl_seconds)
    lot_units = lot_units_of(plan.flow, cand)
    out = []
    for i in [int(i) for i in np.flatnonzero(plan.flow)]:
        line, lot = lines[int(cand.line[i])], lots[int(cand.lot[i])]
        source = uuid.UUID(lot["id"])
        out.append(
            Proposal(
                id=uuid.uuid4(),
                run_id=run.id,
                need_line_id=uuid.UUID(line["id"]),
                need_id=line["need_id"],
                lot_id=None if lot.get("capacity") else source,
                offer_id=lot["offer_id"],
                capacity_id=source if lot.get("capacity") else None,
                item_code=line["item_code"],
                lot_item_code=lot["item_code"],
                region_code=line["region_code"],
                quantity=int(plan.flow[i]),
                lot_quantity=int(lot_units[i]),
                score=round(float(cand.score[i]), 3),
                factors=cand.breakdown(i),
                distance_km=round(float(cand.distance_km[i]), 1),
                policy_version=policy.version,
                status=ProposalStatus.proposed,
                auto=False,
                expires_at=expires,
                created_at=now,
                version=1,
                reservation_projected=False,
            )
        )
    return out


async def _cancel_infeasible(
    session: AsyncSession, run: AllocationRun, line_items: set[str], lot_items: set[str], now: datetime
) -> list[Proposal]:
    """Cancel the open proposals that no longer fit their line or lot (lowest scores first), and those whose
    lot's restrictions no longer allow their line (the offer's restrictions or the need changed since)."""
    repo = ProposalRepository(session)
    out = await _cancel_disallowed(session, run, lot_items, now)
    line_cap, lot_cap = await repo.overheld(line_items, lot_items, now)
    if not line_cap and not lot_cap:
        return out
    cancelled = {p.id for p in out}
    locked = [p for p in await repo.open_on(line_cap, lot_cap, now) if p.id not in cancelled]
    overheld = _fitting(locked, line_cap, lot_cap)
    why = {p.id: "line changed" if line_cap.get(p.need_line_id) is not None else "lot changed" for p in overheld}
    for p in overheld:
        await repo.supersede([p], run.id, now, reason=f"infeasible: {why[p.id]} (run {run.id})")
    return out + overheld


async def _cancel_disallowed(
    session: AsyncSession, run: AllocationRun, lot_items: set[str], now: datetime
) -> list[Proposal]:
    repo = ProposalRepository(session)
    out = []
    for p, line, rules in await repo.open_on_restricted_lots(lot_items, now):
        broken = broken_rules(rules, restriction_view(line))
        if broken:
            reason = f"infeasible: the donor's restrictions exclude this line ({'; '.join(broken)}) (run {run.id})"
            out.extend(await repo.supersede([p], run.id, now, reason=reason))
    return out


def restriction_view(line: NeedLineView) -> dict[str, Any]:
    """What a lot's restrictions look at of a line's view, as in the run's line rows."""
    return {
        "site_id": line.site_id,
        "need_id": line.need_id,
        "site_kind": line.site_kind,
        "region_code": line.region_code,
        "item_code": line.item_code,
        "beneficiary_groups": line.beneficiary_groups,
    }


async def _record_replacements(
    session: AsyncSession,
    run: AllocationRun,
    replaced: list[Proposal],
    proposals: list[Proposal],
    plan: _Plan,
    policy: Policy,
    now: datetime,
) -> None:
    if not replaced:
        return
    by_line: dict[uuid.UUID, Proposal] = {}
    for p in sorted(proposals, key=lambda p: -p.quantity):
        by_line.setdefault(p.need_line_id, p)
    why = (
        f"run {run.id} found an allocation worth {plan.counts['objective_new']} against "
        f"{plan.counts['objective_kept']} for keeping the open proposals (+{plan.counts['gain_bp'] / 100:.2f}%, "
        f"above the policy's threshold of {policy.replace_gain_threshold:.2%})"
    )
    for p in replaced:
        new = by_line.get(p.need_line_id)
        p.replaced_by = new.id if new is not None else None
        p.replaced_reason = why
    await ProposalRepository(session).supersede(replaced, run.id, now)


def _component_counts(component: Component | None) -> dict[str, int]:
    """What a component-bounded run found its component to be (its lines and lots, before those with nothing left
    were dropped), the expansion's hops and the rows its queries read."""
    if component is None:
        return {}
    return {
        "component_lines": len(component.lines),
        "component_lots": len(component.lots),
        "component_hops": component.hops,
        "component_rows": component.rows_read,
    }


def _ms(a: float, b: float) -> float:
    return round((b - a) * 1000, 2)


async def get_run(session: AsyncSession, run_id: uuid.UUID) -> tuple[AllocationRun, list[Proposal]]:
    run = await RunRepository(session).get(run_id)
    if run is None:
        raise RunNotFound(f"No allocation run {run_id}.")
    return run, await ProposalRepository(session).for_run(run_id)


async def list_runs(session: AsyncSession, params: PageParams) -> tuple[list[AllocationRun], str | None]:
    return await RunRepository(session).search(params)
