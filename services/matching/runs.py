"""Allocation runs: the candidates of a line, and a run that scores every feasible pair in scope, allocates
optimally and stores the result as proposals (superseding open ones the new allocation would not make)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from services.matching import events, schemas
from services.matching.allocation import Allocation, allocate, cancel_solving
from services.matching.errors import NeedLineNotFound, RunNotFound
from services.matching.models import AllocationRun, Proposal
from services.matching.policy import Policy, current_policy
from services.matching.repository import ProjectionRepository, ProposalRepository, RunRepository
from services.matching.schemas import ProposalStatus, RunStatus
from services.matching.scoring import Candidates, LineTable, LotTable, build_candidates
from shared.catalog import get_catalog
from shared.db import utcnow
from shared.events import publish
from shared.metrics import ALLOCATION_SECONDS
from shared.pagination import PageParams
from shared.runtime import runtime_of_session

T = TypeVar("T")


def _lot_items_for(line_items: set[str]) -> set[str]:
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
    lots = await repo.available_lots(_lot_items_for({lines[0]["item_code"]}))
    _perishable(lots)
    cand = build_candidates(
        LineTable.from_rows(lines), LotTable.from_rows(lots), policy, now=time.time(), catalog=get_catalog()
    )
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


def _score_and_solve(
    lines: list[dict[str, Any]],
    lots: list[dict[str, Any]],
    policy: Policy,
    cancelled: threading.Event,
    processes: int,
) -> tuple[Candidates, Allocation, float]:
    line_table, lot_table = LineTable.from_rows(lines), LotTable.from_rows(lots)
    cand = build_candidates(line_table, lot_table, policy, now=time.time(), catalog=get_catalog())
    built = time.perf_counter()
    result = allocate(line_table.remaining, lot_table.available, cand, policy, cancelled=cancelled, processes=processes)
    return cand, result, built


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


async def propose(
    session: AsyncSession,
    *,
    policy: Policy,
    scope: schemas.RunScope,
    trigger: str,
    actor: str,
    line_ids: list[uuid.UUID] | None = None,
    stop: asyncio.Event | None = None,
) -> tuple[AllocationRun, list[Proposal]]:
    """Score every feasible pair in scope, allocate optimally, and store the proposals (superseding open ones
    for the same lines). The proposals an identical allocation would make again are kept.

    Once `stop` is set the run raises RunAbandoned at its next step (without waiting for scoring and solving
    to end), so that the caller's transaction rolls back."""
    started = time.perf_counter()
    repo = ProjectionRepository(session)
    lines = await repo.open_lines(
        region_code=scope.region_code, item_codes=scope.item_codes, line_ids=line_ids, on_batch=lambda: check_stop(stop)
    )
    lots = await repo.available_lots(_lot_items_for({ln["item_code"] for ln in lines})) if lines else []
    _perishable(lots)
    loaded = time.perf_counter()
    check_stop(stop)
    # Scoring and solving are CPU work: in a thread (large networks in a solver process), so that the service's
    # other requests (and, in one-process development, every service's) keep being answered meanwhile.
    cancelled = threading.Event()
    try:
        processes = runtime_of_session(session).settings.matching_solver_processes
        work = _in_thread(_score_and_solve, lines, lots, policy, cancelled, processes)
        cand, result, built = await _unless_stopped(work, stop)
    finally:
        cancel_solving(cancelled)  # an abandoned run's solver stops at once
    solved = time.perf_counter()

    now = utcnow()
    run = AllocationRun(
        id=uuid.uuid4(),
        trigger=trigger,
        scope=scope.model_dump(exclude_none=True),
        policy_version=policy.version,
        status=RunStatus.completed,
        objective=round(float(result.objective), 3),
        created_by=actor,
        counts={},
        timings={},
        created_at=now,
    )
    RunRepository(session).add(run)
    await session.flush()
    proposals_repo = ProposalRepository(session)
    # Open proposals an identical allocation would make again are kept (same ids for the coordinator who is
    # looking at them); the others are superseded.
    still_open = {
        (p.need_line_id, p.lot_id, p.quantity): p
        for p in await proposals_repo.open_for_lines([uuid.UUID(ln["id"]) for ln in lines])
    }
    expires = now + timedelta(seconds=policy.proposal_ttl_seconds)
    proposals, kept = [], []
    credited = result.flow if result.credited is None else result.credited
    for i in [int(i) for i in credited.nonzero()[0]]:
        line, lot = lines[int(cand.line[i])], lots[int(cand.lot[i])]
        same = still_open.pop((uuid.UUID(line["id"]), uuid.UUID(lot["id"]), int(credited[i])), None)
        if same is not None:
            kept.append(same)
            continue
        proposals.append(
            Proposal(
                id=uuid.uuid4(),
                run_id=run.id,
                need_line_id=uuid.UUID(line["id"]),
                need_id=line["need_id"],
                lot_id=uuid.UUID(lot["id"]),
                offer_id=lot["offer_id"],
                item_code=line["item_code"],
                lot_item_code=lot["item_code"],
                region_code=line["region_code"],
                quantity=int(credited[i]),
                lot_quantity=int(result.flow[i]),
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
    check_stop(stop)
    superseded = await proposals_repo.supersede(list(still_open.values()), run.id, now)
    session.add_all(proposals)
    run.counts = {
        "kept": len(kept),
        "lines": len(lines),
        "lots": len(lots),
        "pairs": len(cand.score),
        "proposals": len(proposals),
        "units": int(result.flow.sum()),
        "superseded": len(superseded),
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
    await ProjectionRepository(session).load_views({p.need_line_id for p in superseded}, {p.lot_id for p in superseded})
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
    return run, kept + proposals


def _ms(a: float, b: float) -> float:
    return round((b - a) * 1000, 2)


async def get_run(session: AsyncSession, run_id: uuid.UUID) -> tuple[AllocationRun, list[Proposal]]:
    run = await RunRepository(session).get(run_id)
    if run is None:
        raise RunNotFound(f"No allocation run {run_id}.")
    return run, await ProposalRepository(session).for_run(run_id)


async def list_runs(session: AsyncSession, params: PageParams) -> tuple[list[AllocationRun], str | None]:
    return await RunRepository(session).search(params)
