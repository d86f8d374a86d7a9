"""Proposals and the decisions taken on them: accept (a reservation in supply), reject, decline (by the site,
before pick-up), expire."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from services.matching import events, schemas
from services.matching.errors import (
    AlreadyPickedUp,
    LogisticsUnavailable,
    LotTaken,
    ProposalNotFound,
    ProposalNotOpen,
    RestrictionExcludes,
    SupplyUnavailable,
)
from services.matching.events import SYSTEM, lot_units
from services.matching.models import Decision, Proposal
from services.matching.policy import current_policy
from services.matching.repository import ProjectionRepository, ProposalRepository
from services.matching.runs import check_stop, propose, restriction_view, source_of
from services.matching.schemas import ProposalStatus
from services.matching.scoring import broken_rules
from shared.auth import Principal, Role, require_in_region
from shared.db import utcnow
from shared.errors import Forbidden, InvalidRequest
from shared.events import EventType
from shared.http import service_identity
from shared.pagination import PageParams
from shared.runtime import runtime_of_session
from shared.settings import Settings

log = logging.getLogger("reliefhub.matching")


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
    session: AsyncSession,
    params: PageParams,
    *,
    status: ProposalStatus | None,
    need_id: uuid.UUID | None,
    offer_id: uuid.UUID | None,
    need_line_id: uuid.UUID | None,
    region_code: str | None,
    site_org: str | None = None,
) -> tuple[list[Proposal], str | None]:
    return await ProposalRepository(session).search(
        params,
        status=status,
        need_id=need_id,
        offer_id=offer_id,
        need_line_id=need_line_id,
        region_code=region_code,
        site_org=site_org,
    )


def _check_open(proposal: Proposal, now: datetime) -> None:
    if proposal.status != ProposalStatus.proposed:
        raise ProposalNotOpen(f"The proposal is {proposal.status}.")
    if proposal.expires_at <= now:
        raise ProposalNotOpen("The proposal has expired.")


async def accept(
    session: AsyncSession,
    principal: Principal | None,
    proposal_id: uuid.UUID,
    quantity: int | None,
    *,
    in_run: bool | None = None,
) -> Proposal:
    """Reserve the proposal's quantity (or less) in supply, idempotently by proposal id, then record it.
    When supply answers 409 the lot was taken: the proposal is cancelled and its line re-matched (see
    `_accept`). A proposal decided while supply was asked answers 409 `proposal-not-open`, the reservation
    made for it released."""
    try:
        return await _accept(session, principal, proposal_id, quantity, principal is None if in_run is None else in_run)
    except _Changed as changed:
        if changed.reservation_id is not None:
            await _release(session, changed.reservation_id)
        raise ProposalNotOpen(f"The proposal was decided meanwhile; it is {changed.status}.") from None


async def _accept(
    session: AsyncSession, principal: Principal | None, proposal_id: uuid.UUID, quantity: int | None, in_run: bool
) -> Proposal:
    """No lock is held while supply is called: the proposal is read in a short transaction of its own, the
    reservation made, and the decision then written in a transaction that locks the proposal only if it is
    still the version that was read. A proposal decided meanwhile (superseded, cancelled, accepted by another
    request) is left as it is and the reservation made for it released, unless it is the final state's own.
    With `in_run` (an auto-accept inside the run that made the proposals, which only its transaction sees)
    everything happens in `session`."""
    seen, broken = await _read(session, in_run, proposal_id)
    if principal is not None:
        require_in_region(principal, seen.region_code, what="The proposal's need")
    if seen.status == ProposalStatus.accepted and principal is not None:
        return seen  # a retried accept
    now = utcnow()
    _check_open(seen, now)
    amount = seen.quantity if quantity is None else quantity
    if amount > seen.quantity:
        raise InvalidRequest(
            f"At most the proposed {seen.quantity} can be accepted.",
            errors=[{"loc": ["body", "quantity"], "msg": f"at most {seen.quantity}"}],
        )
    actor = principal.sub if principal is not None else SYSTEM
    if seen.capacity_id is not None:
        # A partner's capacity: nothing to reserve in supply; the partner takes the work on as an assignment.
        async with _writing(session, in_run) as tx:
            proposal = await _unchanged(tx, seen)
            return await _accepted(tx, proposal, amount, None, principal, actor, now)
    if broken:
        # The offer was designated elsewhere, or the need changed, since the proposal was made.
        async with _writing(session, in_run) as tx:
            reason = f"the donor's restrictions exclude this line ({'; '.join(broken)})"
            await _cancel(tx, await _unchanged(tx, seen), reason, amount, actor, now)
        await _rematch(session, in_run, seen, actor)
        raise RestrictionExcludes(
            "The donor's restrictions no longer allow this lot for this need line; the proposal is cancelled and "
            "the line was re-matched.",
            errors=[{"loc": ["path", "proposal_id"], "msg": rule} for rule in broken],
            extra={"proposal_status": ProposalStatus.cancelled.value},
        )
    reservation_id = await _reserve(session, in_run, seen, amount, actor, now)
    async with _writing(session, in_run) as tx:
        proposal = await _unchanged(tx, seen, reservation_id=reservation_id)
        if proposal.status == ProposalStatus.accepted:
            return proposal  # a concurrent accept of the same proposal recorded this very reservation
        return await _accepted(tx, proposal, amount, reservation_id, principal, actor, now)


async def _read(session: AsyncSession, in_run: bool, proposal_id: uuid.UUID) -> tuple[Proposal, list[str]]:
    """The proposal and the rules of its lot's restrictions its line now breaks, read (without a lock) in a
    transaction of their own that ends before anyone is called; in `session` inside the run."""
    if in_run:
        proposal = await get_proposal(session, proposal_id)
        return proposal, await _broken_restrictions(session, proposal)
    async with runtime_of_session(session).sessionmaker() as peek:
        proposal = await get_proposal(peek, proposal_id)
        return proposal, await _broken_restrictions(peek, proposal)


@contextlib.asynccontextmanager
async def _writing(session: AsyncSession, in_run: bool) -> AsyncIterator[AsyncSession]:
    """The transaction a decision is written in: one of its own, committed as the block ends (so that a
    conflict found in it is rolled back, and its lock let go, before the reservation is released); `session`
    itself inside the run."""
    if in_run:
        yield session
        return
    async with runtime_of_session(session).sessionmaker() as tx, tx.begin():
        yield tx


async def _unchanged(tx: AsyncSession, seen: Proposal, *, reservation_id: uuid.UUID | None = None) -> Proposal:
    """The proposal locked, if it is still the version `seen`; else the reservation made for it is released
    (unless the proposal is now accepted with that very reservation: that is returned, unlocked) and 409
    `proposal-not-open` raised."""
    repo = ProposalRepository(tx)
    proposal = await repo.lock_version(seen.id, seen.version)
    if proposal is not None:
        return proposal
    current = await repo.current(seen.id)
    accepted = current is not None and current.status == ProposalStatus.accepted
    if accepted and reservation_id is not None and current is not None and current.reservation_id == reservation_id:
        return current
    raise _Changed(current.status if current is not None else None, reservation_id)


class _Changed(Exception):
    """The proposal was decided meanwhile (raised inside `_writing`, so its transaction rolls back first)."""

    def __init__(self, status: ProposalStatus | None, reservation_id: uuid.UUID | None) -> None:
        super().__init__(status)
        self.status, self.reservation_id = status, reservation_id


async def _reserve(
    session: AsyncSession, in_run: bool, seen: Proposal, amount: int, actor: str, now: datetime
) -> uuid.UUID:
    """Reserve `amount` of the proposal's lot in supply under the proposal's id; the reservation's id. A lot
    taken meanwhile cancels the proposal and re-matches its line (409 `lot-taken`)."""
    response = await _post_reservation(session, seen, amount)
    taken: str | None = None
    if response.status_code == 409:
        problem = response.json()
        if str(problem.get("type", "")).endswith("reference-reused"):
            # An earlier accept of this proposal reserved another quantity; the proposal stays as it is.
            raise ProposalNotOpen(f"A reservation for this proposal already exists: {problem.get('detail', '')}")
        taken = f"lot taken: {problem.get('detail', '')}"
    elif response.status_code in (200, 201) and not _holds(response.json(), seen, lot_units(seen, amount)):
        # Supply answered with a reservation under this proposal's id that is not (or no longer) our hold of
        # these goods: adopting it would ship goods nobody holds.
        taken = "lot taken: the reservation under this proposal's id is not matching's active hold"
    if taken is not None:
        # Our projection of the lot is behind (that is why we proposed it): ask supply, then re-match the line.
        lot = await _lot_in_supply(session, seen.lot_id)
        async with _writing(session, in_run) as tx:
            await _cancel(tx, await _unchanged(tx, seen), taken, amount, actor, now, lot=lot)
        await _rematch(session, in_run, seen, actor)
        raise LotTaken(
            "Someone else reserved that lot first; the proposal is cancelled and the line was re-matched.",
            extra={"proposal_status": ProposalStatus.cancelled.value},
        )
    if response.status_code not in (200, 201):
        raise SupplyUnavailable(f"Supply answered {response.status_code} to the reservation.")
    return uuid.UUID(response.json()["id"])


async def _post_reservation(session: AsyncSession, seen: Proposal, amount: int) -> httpx.Response:
    """Supply's answer to the reservation of `amount` (line units) for the proposal. Supply is idempotent by
    the reference (the proposal's id): a concurrent accept of the same proposal waits there for the first to
    commit and is answered the same reservation. The request's Idempotency-Key is the client's own (one per
    call, kept across its retries), so twin accepts never see each other's key in flight."""
    try:
        response = (
            await runtime_of_session(session)
            .client("supply")
            .request(
                "POST",
                f"/v1/lots/{seen.lot_id}/reservations",
                json={"quantity": lot_units(seen, amount), "reference": str(seen.id)},
            )
        )
    except Exception as exc:  # timeouts or connection errors after retries
        raise SupplyUnavailable(f"Reserving in supply failed: {exc.__class__.__name__}.") from exc
    if response.status_code == 409 and str(response.json().get("type", "")).endswith("idempotency-key-in-flight"):
        # An earlier attempt of this very call is still being answered: not a lot taken.
        raise SupplyUnavailable("Supply is still answering an earlier attempt of this reservation; retry in a moment.")
    return response


async def _broken_restrictions(session: AsyncSession, proposal: Proposal) -> list[str]:
    """The rules of the proposal's lot's restrictions its line now breaks, as matching's projection knows them."""
    views = ProjectionRepository(session)
    lot = await views.lot(proposal.lot_id) if proposal.lot_id is not None else None
    line = await views.line(proposal.need_line_id)
    if lot is None or line is None or not lot.restrictions:
        return []
    return broken_rules(lot.restrictions, restriction_view(line))


async def _cancel(
    session: AsyncSession,
    proposal: Proposal,
    reason: str,
    amount: int,
    actor: str,
    now: datetime,
    *,
    lot: dict[str, Any] | None = None,
) -> None:
    """Cancel the open proposal (a decision of `actor`, published); with `lot` (what supply said of the
    proposal's lot, asked before any lock was taken), bring the lot's projection up to it."""
    proposal.status, proposal.reason = ProposalStatus.cancelled, reason[:500]
    proposal.decided_at, proposal.decided_by = now, actor
    proposal.version += 1
    ProposalRepository(session).record(
        Decision(proposal_id=proposal.id, action="cancel", quantity=amount, reason=proposal.reason, actor=actor)
    )
    await session.flush()
    await events.publish_decision(session, events.PROPOSAL_CANCELLED, proposal, proposal.quantity)
    if lot is not None and proposal.lot_id is not None:
        await ProjectionRepository(session).refresh_lot(
            proposal.lot_id,
            int(lot["version"]),
            quantity_reserved=int(lot["quantity_reserved"]),
            verification=lot["verification"],
        )


async def _rematch(session: AsyncSession, in_run: bool, cancelled: Proposal, actor: str) -> None:
    """Re-match the cancelled proposal's line at once, in a transaction after the cancellation's (which holds
    the proposal's lock only for its writes); should that fail, the line is left to continuous matching."""
    try:
        async with _writing(session, in_run) as tx:
            policy, _ = await current_policy(tx)
            await propose(
                tx,
                policy=policy,
                scope=schemas.RunScope(),
                trigger="retry",
                actor=actor,
                line_ids=[cancelled.need_line_id],
            )
    except Exception as exc:
        if in_run:
            raise  # inside the run's own transaction: its caller decides
        log.warning("re-matching line %s at once failed, left to continuous matching: %r", cancelled.need_line_id, exc)
        async with runtime_of_session(session).sessionmaker() as tx, tx.begin():
            await ProjectionRepository(tx).mark_changed(lines=[(cancelled.item_code, cancelled.need_line_id)])


async def _accepted(
    session: AsyncSession,
    proposal: Proposal,
    amount: int,
    reservation_id: uuid.UUID | None,
    principal: Principal | None,
    actor: str,
    now: datetime,
) -> Proposal:
    repo = ProposalRepository(session)
    proposal.status = ProposalStatus.accepted
    proposal.accepted_quantity = amount
    proposal.reservation_id = reservation_id
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
    await events.publish_decision(session, events.PROPOSAL_ACCEPTED, proposal, amount)
    return proposal


def _holds(reservation: dict[str, Any], proposal: Proposal, amount: int) -> bool:
    """Whether supply's answer is matching's own active hold of `amount` (lot units) of the proposal's lot."""
    return (
        reservation.get("lot_id") == str(proposal.lot_id)
        and reservation.get("quantity") == amount
        and reservation.get("status") == "active"
        and (reservation.get("created_by_org"), reservation.get("created_by")) == service_identity(SYSTEM)
    )


async def _lot_in_supply(session: AsyncSession, lot_id: uuid.UUID | None) -> dict[str, Any] | None:
    """What supply says of the lot now (None when it cannot say: the reservation events bring lot_view up to
    date then)."""
    if lot_id is None:
        return None
    try:
        response = await runtime_of_session(session).client("supply").request("GET", f"/v1/lots/{lot_id}")
    except Exception:
        return None
    if response.status_code != 200:
        return None
    lot: dict[str, Any] = response.json()
    return lot


async def _release(session: AsyncSession, reservation_id: uuid.UUID) -> None:
    """Release a reservation made for a proposal decided meanwhile (no transaction of ours holds a lock)."""
    try:
        response = (
            await runtime_of_session(session).client("supply").request("DELETE", f"/v1/reservations/{reservation_id}")
        )
    except Exception as exc:
        raise SupplyUnavailable(f"Releasing the reservation failed: {exc.__class__.__name__}.") from exc
    if response.status_code not in (204, 404):  # released now, before, or gone with its lot
        raise SupplyUnavailable(f"Supply answered {response.status_code} to the release.")


async def reject(session: AsyncSession, principal: Principal, proposal_id: uuid.UUID, reason: str) -> Proposal:
    proposal = await get_proposal(session, proposal_id, for_update=True)
    require_in_region(principal, proposal.region_code, what="The proposal's need")
    now = utcnow()
    _check_open(proposal, now)
    proposal.status, proposal.reason = ProposalStatus.rejected, reason
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
    await events.publish_decision(session, events.PROPOSAL_REJECTED, proposal, proposal.quantity)
    return proposal


async def decline(session: AsyncSession, principal: Principal, proposal_id: uuid.UUID, reason: str) -> Proposal:
    """The need's site declines a proposal: it is rejected, its lot is never proposed to that line again, and
    the line (its demand free again) is matched anew by the next continuous run. Frontline users of the site's
    organisation decline; coordinators may too, for them, within their regions. An accepted proposal may be
    declined until its goods are picked up: logistics takes its lines off their planned shipments and supply
    releases its reservation first (both idempotent), with no transaction of ours open meanwhile; the
    decision is then written only if the proposal is still the version that was read."""
    async with runtime_of_session(session).sessionmaker() as peek:  # read, and let go before calling anyone
        seen = await get_proposal(peek, proposal_id)
        line = await ProjectionRepository(peek).line(seen.need_line_id)
    if not principal.has(Role.coordinator, Role.admin) and (line is None or line.org != principal.org):
        raise Forbidden("Only the need's site organisation (or a coordinator) declines its proposals.")
    require_in_region(principal, seen.region_code, what="The proposal's need")
    if seen.status == ProposalStatus.accepted:
        await _withdraw_goods(session, seen, reason)
        proposal = await get_proposal(session, proposal_id, for_update=True)
        if proposal.version != seen.version:
            raise ProposalNotOpen(f"The proposal was decided meanwhile; it is {proposal.status}.")
        released = (proposal.accepted_quantity or 0) - proposal.quantity_returned
        return await _declined(session, principal, proposal, reason, released, events.PROPOSAL_DECLINED)
    proposal = await get_proposal(session, proposal_id, for_update=True)
    _check_open(proposal, utcnow())
    return await _declined(session, principal, proposal, reason, proposal.quantity, events.PROPOSAL_REJECTED)


async def _withdraw_goods(session: AsyncSession, proposal: Proposal, reason: str) -> None:
    """Before pick-up, take an accepted proposal's goods back: off logistics' planned shipments (409 once
    picked up; logistics then plans none of it again), then out of supply's reservation. Both calls repeat
    safely, so a retried decline finishes what a failed one began."""
    if proposal.capacity_id is not None:
        raise ProposalNotOpen("An accepted service proposal is the partner's assignment now; it is not declined.")
    rt = runtime_of_session(session)
    try:
        response = await rt.client("logistics").request(
            "POST", f"/v1/shipments/proposals/{proposal.id}/withdraw", json={"reason": reason[:2000]}
        )
    except Exception as exc:  # timeouts or connection errors after retries
        raise LogisticsUnavailable(f"Withdrawing the goods from shipments failed: {exc.__class__.__name__}.") from exc
    if response.status_code == 409 and str(response.json().get("type", "")).endswith("already-picked-up"):
        raise AlreadyPickedUp(
            f"The goods were picked up already: {response.json().get('detail', '')}",
            extra={"proposal_status": proposal.status.value},
        )
    if response.status_code == 404:
        raise LogisticsUnavailable("Logistics has not heard of the acceptance yet; retry in a moment.")
    if response.status_code != 200:
        raise LogisticsUnavailable(f"Logistics answered {response.status_code} to the withdrawal.")
    if proposal.reservation_id is None:
        return
    try:
        response = await rt.client("supply").request("DELETE", f"/v1/reservations/{proposal.reservation_id}")
    except Exception as exc:
        raise SupplyUnavailable(f"Releasing the reservation failed: {exc.__class__.__name__}.") from exc
    if response.status_code not in (204, 404):  # released now, before, or gone with its lot
        raise SupplyUnavailable(f"Supply answered {response.status_code} to the release.")


async def _declined(
    session: AsyncSession, principal: Principal, proposal: Proposal, reason: str, released: int, type_: EventType
) -> Proposal:
    proposal.status, proposal.reason = ProposalStatus.rejected, f"declined by the site: {reason}"[:2000]
    proposal.decided_at, proposal.decided_by = utcnow(), principal.sub
    proposal.version += 1
    ProposalRepository(session).record(
        Decision(
            proposal_id=proposal.id,
            action="decline",
            quantity=released,
            override=True,
            reason=reason,
            actor=principal.sub,
        )
    )
    views = ProjectionRepository(session)
    await views.exclude(proposal.need_line_id, source_of(proposal), proposal.id, reason, principal.sub)
    # The line's demand (and, when accepted, the lot's goods) are free again: only their component re-runs.
    await views.mark_changed(
        lines=[(proposal.item_code, proposal.need_line_id)],
        lots=[(proposal.lot_item_code, proposal.lot_id)] if proposal.lot_id is not None else [],
    )
    if proposal.lot_id is None:  # a capacity: its service's group re-runs (components hold goods only)
        await views.mark_dirty({proposal.lot_item_code})
    await session.flush()
    await events.publish_decision(session, type_, proposal, released)
    return proposal


async def expire_proposals(session: AsyncSession, settings: Settings) -> int:
    repo = ProposalRepository(session)
    due = await repo.due_to_expire(utcnow(), 1000)
    for proposal in due:
        proposal.status, proposal.reason = ProposalStatus.expired, "not decided in time"
        proposal.decided_at, proposal.decided_by = utcnow(), SYSTEM
        proposal.version += 1
        repo.record(Decision(proposal_id=proposal.id, action="expire", quantity=proposal.quantity, actor=SYSTEM))
    await session.flush()
    for proposal in due:
        await events.publish_decision(session, events.PROPOSAL_EXPIRED, proposal, proposal.quantity)
    return len(due)


async def accept_automatically(
    session: AsyncSession,
    run_id: uuid.UUID,
    threshold: float,
    stop: asyncio.Event | None = None,
    *,
    in_run: bool = True,
) -> None:
    """Accept, as the system, every open proposal of the run scoring at least `threshold`, best first: inside
    the run's transaction (`in_run`, the run's proposals seen by it alone), or after the run committed, each
    accept then in transactions of its own (nothing of `session`'s left open while supply is called)."""
    ids = await ProposalRepository(session).auto_acceptable(run_id, threshold)
    if not in_run:
        await session.rollback()  # the read's transaction ends before the first call to supply
    for proposal_id in ids:
        check_stop(stop)
        try:
            await accept(session, None, proposal_id, None, in_run=in_run)
        except (LotTaken, ProposalNotOpen, RestrictionExcludes, SupplyUnavailable):
            continue  # left for a coordinator, or re-matched
