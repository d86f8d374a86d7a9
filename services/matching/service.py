"""Business rules of the matching service: policy, candidates, allocation runs, decisions, continuous runs."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from services.matching import events, schemas
from services.matching.allocation import Allocation, allocate, cancel_solving
from services.matching.errors import (
    InvalidPolicy,
    LotTaken,
    NeedLineNotFound,
    ProposalNotFound,
    ProposalNotOpen,
    RunNotFound,
    SupplyUnavailable,
)
from services.matching.models import AllocationRun, Decision, LotView, NeedLineView, PolicyVersion, Proposal
from services.matching.repository import (
    DirtyMark,
    PolicyRepository,
    ProjectionRepository,
    ProposalRepository,
    RunRepository,
)
from services.matching.scoring import Candidates, LineTable, LotTable, Policy, build_candidates
from shared.auth import Principal, require_in_region, require_national
from shared.catalog import get_catalog
from shared.db import utcnow
from shared.errors import InvalidRequest, PreconditionFailed
from shared.etag import IfMatch, check_version
from shared.events import publish
from shared.http import service_identity
from shared.metrics import ALLOCATION_SECONDS, MATCHING_BACKING_OFF, MATCHING_RUN_FAILURES
from shared.pagination import PageParams
from shared.runtime import Runtime, runtime_of_session
from shared.settings import Settings

SYSTEM = "matching"

log = logging.getLogger("reliefhub.matching")
T = TypeVar("T")


# --- policy ------------------------------------------------------------------------------------------------


async def current_policy(session: AsyncSession) -> tuple[Policy, PolicyVersion | None]:
    row = await PolicyRepository(session).latest()
    if row is None:
        return Policy(), None
    return Policy.from_json(row.body, row.version), row


def policy_out(policy: Policy, row: PolicyVersion | None) -> schemas.Policy:
    body = policy.to_json()
    return schemas.Policy.model_validate(
        {
            **body,
            "tiers": [{"share": s, "value": v} for s, v in body["tiers"]],
            "version": policy.version,
            "created_at": row.created_at if row else None,
            "created_by": row.created_by if row else None,
        }
    )


async def put_policy(
    session: AsyncSession, principal: Principal, body: schemas.PolicyBody, expected: IfMatch
) -> tuple[Policy, PolicyVersion]:
    require_national(principal, what="The scoring policy")
    current, _ = await current_policy(session)
    check_version(expected, current.version)
    raw = body.model_dump()
    raw["tiers"] = [[t["share"], t["value"]] for t in raw["tiers"]]
    try:
        policy = Policy.from_json(raw, current.version + 1)
    except ValueError as exc:
        raise InvalidPolicy(str(exc)) from exc
    row = await PolicyRepository(session).insert_version(policy.version, policy.to_json(), principal.sub)
    if row is None:
        raise PreconditionFailed("Another policy version was written meanwhile; GET it and retry.")
    await publish(
        session, events.POLICY_UPDATED, events.PolicyData(version=row.version, body=row.body), subject=str(row.version)
    )
    return policy, row


# --- candidates and runs -----------------------------------------------------------------------------------


def _lot_items_for(line_items: set[str]) -> set[str]:
    """Lot item codes that can serve these line items: the items and their allowed substitutes."""
    catalog = get_catalog()
    out = set(line_items)
    for code in line_items:
        item = catalog.get(code)
        if item is not None:
            out.update(item.substitutes)
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


def _check(stop: asyncio.Event | None) -> None:
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


async def run_allocation(
    session: AsyncSession,
    *,
    scope: schemas.RunScope,
    trigger: str,
    actor: str,
    line_ids: list[uuid.UUID] | None = None,
    auto_accept: bool = True,
    stop: asyncio.Event | None = None,
) -> tuple[AllocationRun, list[Proposal]]:
    """Score every feasible pair in scope, allocate optimally, store the proposals (superseding open ones
    for the same lines), and auto-accept above the policy's threshold.

    Once `stop` is set the run raises RunAbandoned at its next step (without waiting for scoring and solving
    to end), so that the caller's transaction rolls back."""
    started = time.perf_counter()
    repo = ProjectionRepository(session)
    policy, _ = await current_policy(session)
    lines = await repo.open_lines(
        region_code=scope.region_code, item_codes=scope.item_codes, line_ids=line_ids, on_batch=lambda: _check(stop)
    )
    lots = await repo.available_lots(_lot_items_for({ln["item_code"] for ln in lines})) if lines else []
    _perishable(lots)
    loaded = time.perf_counter()
    _check(stop)
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
        status="completed",
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
    for i in [int(i) for i in result.flow.nonzero()[0]]:
        line, lot = lines[int(cand.line[i])], lots[int(cand.lot[i])]
        same = still_open.pop((uuid.UUID(line["id"]), uuid.UUID(lot["id"]), int(result.flow[i])), None)
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
                quantity=int(result.flow[i]),
                score=round(float(cand.score[i]), 3),
                factors=cand.breakdown(i),
                distance_km=round(float(cand.distance_km[i]), 1),
                policy_version=policy.version,
                status="proposed",
                auto=False,
                expires_at=expires,
                created_at=now,
                version=1,
                reservation_projected=False,
            )
        )
    _check(stop)
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
        _check(stop)
        await _publish_decision(session, events.PROPOSAL_CANCELLED, old, old.quantity)
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
    if auto_accept and policy.auto_accept_score is not None:
        for proposal_id in await proposals_repo.auto_acceptable(run.id, policy.auto_accept_score):
            _check(stop)
            try:
                await accept(session, None, proposal_id, None)
            except (LotTaken, ProposalNotOpen, SupplyUnavailable):
                continue  # left for a coordinator, or re-matched
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


# --- decisions ---------------------------------------------------------------------------------------------


async def get_proposal(session: AsyncSession, proposal_id: uuid.UUID, *, for_update: bool = False) -> Proposal:
    proposal = await ProposalRepository(session).get(proposal_id, for_update=for_update)
    if proposal is None:
        raise ProposalNotFound(f"No proposal {proposal_id}.")
    return proposal


async def proposal_detail(session: AsyncSession, proposal: Proposal) -> schemas.ProposalDetail:
    out = schemas.ProposalDetail.model_validate(proposal)
    out.decisions = [
        schemas.DecisionRecord.model_validate(d) for d in await ProposalRepository(session).decisions(proposal.id)
    ]
    return out


async def list_proposals(
    session: AsyncSession, params: PageParams, **filters: Any
) -> tuple[list[Proposal], str | None]:
    return await ProposalRepository(session).search(params, **filters)


async def _publish_decision(session: AsyncSession, type_: Any, p: Proposal, quantity: int) -> None:
    # Where the goods go and come from, so logistics can plan a shipment without asking anyone.
    line = await session.get(NeedLineView, p.need_line_id)
    lot = await session.get(LotView, p.lot_id)
    await publish(
        session,
        type_,
        events.ProposalData(
            id=p.id,
            run_id=p.run_id,
            need_id=p.need_id,
            need_line_id=p.need_line_id,
            lot_id=p.lot_id,
            offer_id=p.offer_id,
            item_code=p.item_code,
            lot_item_code=p.lot_item_code,
            region_code=p.region_code,
            quantity=quantity,
            score=p.score,
            status=p.status,
            reservation_id=p.reservation_id,
            reason=p.reason,
            decided_by=p.decided_by,
            auto=p.auto,
            site_id=line.site_id if line else None,
            need_org=line.org if line else None,
            offer_org=lot.org if lot else None,
            origin=(
                {"region_code": lot.region_code, "lat": lot.lat, "lon": lot.lon}
                if lot and (lot.region_code or lot.lat is not None)
                else None
            ),
            decided_at=p.decided_at,
            version=p.version,
        ),
        subject=str(p.id),
    )


def _check_open(proposal: Proposal, now: datetime) -> None:
    if proposal.status != "proposed":
        raise ProposalNotOpen(f"The proposal is {proposal.status}.")
    if proposal.expires_at <= now:
        raise ProposalNotOpen("The proposal has expired.")


async def accept(
    session: AsyncSession, principal: Principal | None, proposal_id: uuid.UUID, quantity: int | None
) -> Proposal:
    """Reserve the proposal's quantity (or less) in supply, idempotently by proposal id, then record it.
    When supply answers 409 the lot was taken: the proposal is cancelled and its line re-matched."""
    proposal = await get_proposal(session, proposal_id, for_update=True)
    if principal is not None:
        require_in_region(principal, proposal.region_code, what="The proposal's need")
    if proposal.status == "accepted" and principal is not None:
        return proposal  # a retried accept
    now = utcnow()
    _check_open(proposal, now)
    amount = proposal.quantity if quantity is None else quantity
    if amount > proposal.quantity:
        raise InvalidRequest(
            f"At most the proposed {proposal.quantity} can be accepted.",
            errors=[{"loc": ["body", "quantity"], "msg": f"at most {proposal.quantity}"}],
        )
    actor = principal.sub if principal is not None else SYSTEM
    client = runtime_of_session(session).client("supply")
    try:
        response = await client.request(
            "POST",
            f"/v1/lots/{proposal.lot_id}/reservations",
            json={"quantity": amount, "reference": str(proposal.id)},
            idempotency_key=f"accept-{proposal.id}-{amount}",
        )
    except Exception as exc:  # timeouts or connection errors after retries
        raise SupplyUnavailable(f"Reserving in supply failed: {exc.__class__.__name__}.") from exc
    repo = ProposalRepository(session)
    taken: str | None = None
    if response.status_code == 409:
        problem = response.json()
        if str(problem.get("type", "")).endswith("reference-reused"):
            # An earlier accept of this proposal reserved another quantity; the proposal stays as it is.
            raise ProposalNotOpen(f"A reservation for this proposal already exists: {problem.get('detail', '')}")
        taken = f"lot taken: {problem.get('detail', '')}"
    elif response.status_code in (200, 201) and not _holds(response.json(), proposal, amount):
        # Supply answered with a reservation under this proposal's id that is not (or no longer) our hold of
        # these goods: adopting it would ship goods nobody holds.
        taken = "lot taken: the reservation under this proposal's id is not matching's active hold"
    if taken is not None:
        proposal.status, proposal.reason = "cancelled", taken[:500]
        proposal.decided_at, proposal.decided_by = now, actor
        proposal.version += 1
        repo.record(
            Decision(proposal_id=proposal.id, action="cancel", quantity=amount, reason=proposal.reason, actor=actor)
        )
        await session.flush()
        await _publish_decision(session, events.PROPOSAL_CANCELLED, proposal, proposal.quantity)
        # Our projection of the lot is behind (that is why we proposed it): ask supply, then re-match the line.
        await _refresh_lot(session, proposal.lot_id)
        await run_allocation(
            session,
            scope=schemas.RunScope(),
            trigger="retry",
            actor=actor,
            line_ids=[proposal.need_line_id],
            auto_accept=False,
        )
        raise LotTaken(
            "Someone else reserved that lot first; the proposal is cancelled and the line was re-matched.",
            extra={"proposal_status": "cancelled"},
        )
    if response.status_code not in (200, 201):
        raise SupplyUnavailable(f"Supply answered {response.status_code} to the reservation.")
    proposal.status = "accepted"
    proposal.accepted_quantity = amount
    proposal.reservation_id = uuid.UUID(response.json()["id"])
    proposal.auto = principal is None
    proposal.decided_at, proposal.decided_by = now, actor
    proposal.version += 1
    repo.record(
        Decision(
            proposal_id=proposal.id,
            action="accept",
            quantity=amount,
            override=amount < proposal.quantity,
            reason=None if amount == proposal.quantity else f"accepted {amount} of {proposal.quantity}",
            actor=actor,
        )
    )
    await ProjectionRepository(session).mark_first_matched(proposal.need_line_id, now)
    await session.flush()
    await _publish_decision(session, events.PROPOSAL_ACCEPTED, proposal, amount)
    return proposal


def _holds(reservation: dict[str, Any], proposal: Proposal, amount: int) -> bool:
    """Whether supply's answer is matching's own active hold of `amount` of the proposal's lot."""
    return (
        reservation.get("lot_id") == str(proposal.lot_id)
        and reservation.get("quantity") == amount
        and reservation.get("status") == "active"
        and (reservation.get("created_by_org"), reservation.get("created_by")) == service_identity(SYSTEM)
    )


async def _refresh_lot(session: AsyncSession, lot_id: uuid.UUID) -> None:
    """Bring lot_view up to what supply says now (only ever forward: guarded by the lot's version)."""
    try:
        response = await runtime_of_session(session).client("supply").request("GET", f"/v1/lots/{lot_id}")
    except Exception:
        return  # the reservation events will bring it up to date
    if response.status_code != 200:
        return
    lot = response.json()
    await ProjectionRepository(session).refresh_lot(
        lot_id, int(lot["version"]), quantity_reserved=int(lot["quantity_reserved"]), verification=lot["verification"]
    )


async def reject(session: AsyncSession, principal: Principal, proposal_id: uuid.UUID, reason: str) -> Proposal:
    proposal = await get_proposal(session, proposal_id, for_update=True)
    require_in_region(principal, proposal.region_code, what="The proposal's need")
    now = utcnow()
    _check_open(proposal, now)
    proposal.status, proposal.reason = "rejected", reason
    proposal.decided_at, proposal.decided_by = now, principal.sub
    proposal.version += 1
    ProposalRepository(session).record(
        Decision(
            proposal_id=proposal.id,
            action="reject",
            quantity=proposal.quantity,
            override=True,
            reason=reason,
            actor=principal.sub,
        )
    )
    await session.flush()
    await _publish_decision(session, events.PROPOSAL_REJECTED, proposal, proposal.quantity)
    return proposal


# --- periodic work -----------------------------------------------------------------------------------------


async def expire_proposals(session: AsyncSession, settings: Settings) -> int:
    repo = ProposalRepository(session)
    due = await repo.due_to_expire(utcnow(), 1000)
    for proposal in due:
        proposal.status, proposal.reason = "expired", "not decided in time"
        proposal.decided_at, proposal.decided_by = utcnow(), SYSTEM
        proposal.version += 1
        repo.record(Decision(proposal_id=proposal.id, action="expire", quantity=proposal.quantity, actor=SYSTEM))
    await session.flush()
    for proposal in due:
        await _publish_decision(session, events.PROPOSAL_EXPIRED, proposal, proposal.quantity)
    return len(due)


# --- continuous matching ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemGroup:
    """Items whose lines compete for the same lots: a connected component of the catalog's substitutes (an
    item the catalog does not know is a group of its own). Groups are independent allocation problems, so each
    is run, fails and backs off on its own."""

    key: str
    items: tuple[str, ...]


@lru_cache(maxsize=1)
def _catalog_groups() -> dict[str, ItemGroup]:
    parent: dict[str, str] = {}

    def root(code: str) -> str:
        parent.setdefault(code, code)
        while parent[code] != code:
            parent[code] = parent[parent[code]]
            code = parent[code]
        return code

    for item in get_catalog().items:
        for sub in item.substitutes:
            a, b = root(item.code), root(sub)
            parent[max(a, b)] = min(a, b)
        root(item.code)
    members: dict[str, list[str]] = {}
    for code in parent:
        members.setdefault(root(code), []).append(code)
    return {code: ItemGroup(r, tuple(sorted(members[r]))) for code in parent for r in (root(code),)}


def item_group(code: str) -> ItemGroup:
    return _catalog_groups().get(code) or ItemGroup(code, (code,))


def _groups_of(codes: Iterable[str]) -> dict[str, ItemGroup]:
    return {g.key: g for g in map(item_group, codes)}


def _failure_reason(exc: BaseException) -> str:
    """The driver's error class under SQLAlchemy's wrappers (LockNotAvailableError, QueryCanceledError, …)."""
    cause: BaseException = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    while cause.__cause__ is not None and type(cause).__module__.startswith("sqlalchemy"):
        cause = cause.__cause__
    return type(cause).__name__


class _GroupBusy(Exception):
    """Another worker is running this group."""


# How long runs in progress get to notice the stop and roll back before they are cancelled outright.
_ABANDON_SECONDS = 1.5


class ContinuousMatching:
    """A worker's continuous matching: each item group whose lines or lots changed (dirty_scope) is re-allocated
    once quiet for the debounce interval, and every group with active lines every `matching_global_seconds`.

    Each group runs in its own transaction, several at once, so a slow group delays no other. A failing group
    is retried after a backoff kept in dirty_scope (doubling per failure), while groups that never failed go
    first. On stop no new run starts, runs in progress are abandoned (rolled back) and their marks queued
    again for whichever worker runs next."""

    def __init__(self, rt: Runtime, stop: asyncio.Event) -> None:
        self.rt, self.stop, self.settings = rt, stop, rt.settings
        self.running: dict[str, asyncio.Task[None]] = {}
        self.periodic: dict[str, ItemGroup] = {}  # groups of the global pass not run yet, in order

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_pass = loop.time()
        try:
            while not self.stop.is_set():
                try:
                    if loop.time() >= next_pass:
                        await self._queue_global_pass()
                        next_pass = loop.time() + self.settings.matching_global_seconds
                    await self._dispatch()
                except Exception as exc:
                    log.warning("continuous matching could not dispatch: %r", exc)
                try:
                    await asyncio.wait_for(self.stop.wait(), timeout=self.settings.matching_debounce_seconds)
                except TimeoutError:
                    pass
        finally:
            await self._abandon()

    async def _queue_global_pass(self) -> None:
        async with self.rt.sessionmaker() as session:
            codes = await ProjectionRepository(session).active_item_codes()
        for key, group in sorted(_groups_of(codes).items()):
            self.periodic.setdefault(key, group)

    async def _dispatch(self) -> None:
        free = self.settings.matching_concurrency - len(self.running)
        if free <= 0:
            return
        now = utcnow()
        cutoff = now - timedelta(seconds=self.settings.matching_debounce_seconds)
        async with self.rt.sessionmaker() as session, session.begin():
            repo = ProjectionRepository(session)
            queued: dict[str, list[DirtyMark]] = {}
            for mark in await repo.dirty():
                queued.setdefault(item_group(mark.item_code).key, []).append(mark)
            backing_off = {
                key for key, marks in queued.items() if any(m.not_before and m.not_before > now for m in marks)
            }
            MATCHING_BACKING_OFF.set(len(backing_off))
            due = [
                key
                for key, marks in queued.items()
                if key not in self.running and key not in backing_off and any(m.since <= cutoff for m in marks)
            ]
            # Groups that never failed first, then the longest waiting: new work never queues behind retries.
            due.sort(key=lambda k: (max(m.attempts for m in queued[k]), min(m.since for m in queued[k])))
            chosen = due[:free]
            taken = await repo.take_dirty([m.item_code for key in chosen for m in queued[key]]) if chosen else []
        by_group: dict[str, list[DirtyMark]] = {}
        for mark in taken:
            by_group.setdefault(item_group(mark.item_code).key, []).append(mark)
        for key, marks in by_group.items():
            self.periodic.pop(key, None)
            self._start(item_group(marks[0].item_code), "continuous", marks)
        for key in list(self.periodic):
            if len(self.running) >= self.settings.matching_concurrency:
                break
            group = self.periodic.pop(key)
            if key not in self.running and key not in queued:  # a queued group runs (or retries) from the queue
                self._start(group, "periodic", [])

    def _start(self, group: ItemGroup, trigger: str, marks: list[DirtyMark]) -> None:
        task = asyncio.create_task(self._run_group(group, trigger, marks), name=f"matching-run-{group.key}")
        self.running[group.key] = task
        task.add_done_callback(lambda _: self.running.pop(group.key, None))

    async def _run_group(self, group: ItemGroup, trigger: str, marks: list[DirtyMark]) -> None:
        attempts = max((m.attempts for m in marks), default=0)
        try:
            async with self.rt.sessionmaker() as session, session.begin():
                repo = ProjectionRepository(session)
                if not await repo.try_lock(f"matching:group:{group.key}"):
                    raise _GroupBusy()
                await repo.set_lock_timeout(self.settings.matching_lock_timeout_seconds)
                await run_allocation(
                    session,
                    scope=schemas.RunScope(item_codes=list(group.items)),
                    trigger=trigger,
                    actor=SYSTEM,
                    stop=self.stop,
                )
        except _GroupBusy:
            if marks:  # changes the other worker's run may have missed
                await self._queue_again(group, marks, attempts=attempts, not_before=None, error=None)
        except RunAbandoned:
            await self._queue_again(group, marks, attempts=attempts, not_before=None, error=None)
        except asyncio.CancelledError:  # not abandoned in time
            await self._queue_again(group, marks, attempts=attempts, not_before=None, error=None)
            raise
        except Exception as exc:
            attempts += 1
            delay = min(
                self.settings.matching_backoff_max_seconds, self.settings.matching_backoff_seconds * 2 ** (attempts - 1)
            )
            reason = _failure_reason(exc)
            MATCHING_RUN_FAILURES.labels(trigger, reason).inc()
            log.warning(
                "%s run of item group %s failed (attempt %d, retried in %.1f s): %s: %s",
                trigger,
                group.key,
                attempts,
                delay,
                reason,
                exc,
            )
            await self._queue_again(
                group,
                marks,
                attempts=attempts,
                not_before=utcnow() + timedelta(seconds=delay),
                error=f"{reason}: {exc}"[:1000],
            )

    async def _queue_again(
        self,
        group: ItemGroup,
        marks: list[DirtyMark],
        *,
        attempts: int,
        not_before: datetime | None,
        error: str | None,
    ) -> None:
        marks = marks or [DirtyMark(group.key, utcnow(), 0)]  # a periodic run: its group is left dirty
        try:
            async with self.rt.sessionmaker() as session, session.begin():
                await ProjectionRepository(session).put_back_dirty(
                    marks, attempts=attempts, not_before=not_before, error=error
                )
        except Exception as exc:  # the next global pass covers the group
            log.warning("item group %s could not be queued again: %r", group.key, exc)

    async def _abandon(self) -> None:
        tasks = list(self.running.values())
        if not tasks:
            return
        log.info("continuous matching stopped, abandoning %d run(s) in progress", len(tasks))
        _, pending = await asyncio.wait(tasks, timeout=_ABANDON_SECONDS)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=_ABANDON_SECONDS)


async def continuous_matching(rt: Runtime, stop: asyncio.Event) -> None:
    await ContinuousMatching(rt, stop).run()


async def kpis(session: AsyncSession, level: int, region_code: str | None) -> schemas.KpiReport:
    rows = await ProjectionRepository(session).kpis(level, region_code)
    items = [
        schemas.RegionKpi(
            region_code=region,
            lines=int(n),
            quantity=int(qty or 0),
            matched=int(matched or 0),
            fill_rate=round(float(matched or 0) / float(qty), 4) if qty else 0.0,
            matched_lines=int(matched_lines),
            median_time_to_match_seconds=None if p50 is None else round(float(p50), 3),
            p90_time_to_match_seconds=None if p90 is None else round(float(p90), 3),
        )
        for region, n, qty, matched, matched_lines, p50, p90 in rows
    ]
    return schemas.KpiReport(level=level, items=items)
