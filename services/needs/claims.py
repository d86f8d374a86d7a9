"""Claims (Crisis Cleanup's model): an approved partner organisation covers need lines itself ("we'll bring 200
meals"); a coordinator of the need's region confirms, and the claimed quantity stops being open — to the need
and to matching, which reads a line's claimed quantity from need events. A claim nobody confirms within
`claim_confirm_within_hours` expires (the worker's sweep)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.needs import events, schemas
from services.needs.models import Claim, Need, NeedLine
from services.needs.repository import ClaimRepository
from services.needs.service import get_need
from shared.auth import Principal, require_in_region
from shared.db import utcnow
from shared.errors import Conflict, Forbidden, NotFound
from shared.events import CloudEvent, EventType, publish
from shared.pagination import PageParams
from shared.settings import Settings
from shared.vocabulary import ACTIVE_NEED_STATUSES, ClaimStatus, NeedStatus


class ClaimNotFound(NotFound):
    slug, title = "claim-not-found", "Claim not found"


class ClaimNotPending(Conflict):
    slug, title = "claim-not-pending", "The claim is no longer in a state that allows this"


class ClaimExceedsOpen(Conflict):
    slug, title = "claim-exceeds-open", "The claim asks to cover more than the line still needs"


class NotYourClaim(Forbidden):
    slug, title = "not-your-claim", "This claim belongs to another organisation"


async def _locked_need(session: AsyncSession, need_id: uuid.UUID) -> Need:
    """The need locked, with its lines as committed now: the lock on the need may have waited for another
    transaction, and the lines the locking join read are then as of before it (PostgreSQL re-reads only the
    locked row), so they are read again in a statement of their own."""
    need = await get_need(session, need_id, for_update=True)
    await ClaimRepository(session).lock_lines(need_id)
    return need


def open_quantity(line: NeedLine) -> int:
    """What of the line nobody covers yet: not matched (nor delivered) and not claimed by a partner."""
    return max(line.quantity - max(line.quantity_matched, line.quantity_delivered) - line.quantity_claimed, 0)


def _checked_lines(need: Need, data: schemas.ClaimCreate) -> list[dict[str, object]]:
    by_id = {line.id: line for line in need.lines}
    seen: set[uuid.UUID] = set()
    rows: list[dict[str, object]] = []
    for i, wanted in enumerate(data.lines):
        line = by_id.get(wanted.line_id)
        where = ["body", "lines", i, "line_id"]
        if line is None or wanted.line_id in seen or line.item_code is None:
            why = (
                "is not a line of this need"
                if line is None
                else f"has no item yet ({line.status}: its item request is pending or was refused)"
                if line.item_code is None
                else "is named twice"
            )
            raise ClaimExceedsOpen(f"Line {wanted.line_id} {why}.", extra={"errors": [{"loc": where}]})
        seen.add(wanted.line_id)
        if wanted.quantity > open_quantity(line):
            raise ClaimExceedsOpen(
                f"Line {line.id} ({line.item_code}) has {open_quantity(line)} {line.unit} open; "
                f"{wanted.quantity} asked.",
                extra={"line_id": str(line.id), "open": open_quantity(line)},
            )
        rows.append(
            {"line_id": str(line.id), "item_code": line.item_code, "unit": line.unit, "quantity": wanted.quantity}
        )
    return rows


async def _publish(session: AsyncSession, type_: EventType, claim: Claim, need: Need) -> None:
    data = events.ClaimData(
        id=claim.id,
        need_id=claim.need_id,
        site_id=need.site_id,
        site_org=need.org,
        org=claim.org,
        region_code=claim.region_code,
        status=claim.status,
        lines=[events.ClaimLineData.model_validate(line) for line in claim.lines],
        eta=claim.eta,
        version=claim.version,
        reason=claim.reason,
    )
    await publish(session, type_, data, subject=str(claim.id))


async def create_claim(
    session: AsyncSession, principal: Principal, need_id: uuid.UUID, data: schemas.ClaimCreate, settings: Settings
) -> Claim:
    need = await _locked_need(session, need_id)
    if need.status not in ACTIVE_NEED_STATUSES:
        raise ClaimNotPending(f"The need is {need.status}; it cannot be claimed.")
    now = utcnow()
    claim = Claim(
        id=uuid.uuid4(),
        need_id=need.id,
        org=principal.org,
        region_code=need.region_code,
        status=ClaimStatus.pending,
        lines=_checked_lines(need, data),
        eta=data.eta,
        note=data.note,
        created_by=principal.sub,
        expires_at=now + timedelta(hours=settings.claim_confirm_within_hours),
        version=1,
    )
    session.add(claim)
    await session.flush()
    await session.refresh(claim)
    await _publish(session, events.CLAIM_CREATED, claim, need)
    return claim


async def get_claim(session: AsyncSession, claim_id: uuid.UUID, *, for_update: bool = False) -> Claim:
    claim = await ClaimRepository(session).get(claim_id, for_update=for_update)
    if claim is None:
        raise ClaimNotFound(f"No claim {claim_id}.")
    return claim


async def list_claims(
    session: AsyncSession,
    params: PageParams,
    *,
    need_id: uuid.UUID | None,
    org: str | None,
    status: ClaimStatus | None,
) -> tuple[list[Claim], str | None]:
    return await ClaimRepository(session).page(params, need_id=need_id, org=org, status=status)


def _apply(need: Need, claim: Claim, sign: int) -> None:
    """Add (sign 1) or release (sign -1) the claim's quantities on the need's lines; refuses to over-cover."""
    by_id = {str(line.id): line for line in need.lines}
    for row in claim.lines:
        line = by_id[str(row["line_id"])]
        quantity = int(str(row["quantity"]))
        if sign > 0 and quantity > open_quantity(line):
            raise ClaimExceedsOpen(
                f"Line {line.id} ({line.item_code}) has only {open_quantity(line)} {line.unit} open now; the claim "
                f"covers {quantity}. Withdraw it and claim what is still open.",
                extra={"line_id": str(line.id), "open": open_quantity(line)},
            )
        line.quantity_claimed = max(line.quantity_claimed + sign * quantity, 0)
    if need.status == NeedStatus.open and sign > 0:
        need.status = NeedStatus.matched
    elif need.status == NeedStatus.matched and sign < 0 and events.rolled_up_status(need) == NeedStatus.open:
        need.status = NeedStatus.open
    need.version += 1
    need.updated_at = utcnow()


def _close(claim: Claim, principal: Principal | None, status: ClaimStatus, reason: str | None) -> None:
    claim.status = status
    claim.decided_by = principal.sub if principal else claim.decided_by
    claim.reason = reason
    claim.closed_at = utcnow()
    claim.version += 1
    claim.updated_at = utcnow()


async def confirm_claim(session: AsyncSession, principal: Principal, claim_id: uuid.UUID) -> Claim:
    """A coordinator of the need's region confirms: the lines' claimed quantity grows, in one transaction with
    the need locked, so two confirms of one line take turns and the second finds what the first left open."""
    claim = await get_claim(session, claim_id, for_update=True)
    require_in_region(principal, claim.region_code, what="The claim's need")
    if claim.status != ClaimStatus.pending:
        raise ClaimNotPending(f"The claim is {claim.status}; only a pending claim can be confirmed.")
    need = await _locked_need(session, claim.need_id)
    if need.status not in ACTIVE_NEED_STATUSES:
        raise ClaimNotPending(f"The need is {need.status}; the claim cannot be confirmed.")
    _apply(need, claim, 1)
    claim.status = ClaimStatus.confirmed
    claim.decided_by = principal.sub
    claim.confirmed_at = utcnow()
    claim.version += 1
    claim.updated_at = utcnow()
    await session.flush()
    await events.publish_need(session, events.NEED_PROGRESSED, need)
    await _publish(session, events.CLAIM_CONFIRMED, claim, need)
    return claim


async def withdraw_claim(
    session: AsyncSession, principal: Principal, claim_id: uuid.UUID, data: schemas.ClaimWithdraw
) -> Claim:
    """The claimant, or a coordinator of the need's region, withdraws; a confirmed claim's quantity is open
    again."""
    claim = await get_claim(session, claim_id, for_update=True)
    if not principal.owns(claim.org):
        if not principal.is_staff:
            raise NotYourClaim()
        require_in_region(principal, claim.region_code, what="The claim's need")
    if claim.status not in (ClaimStatus.pending, ClaimStatus.confirmed):
        raise ClaimNotPending(f"The claim is already {claim.status}.")
    need = await _locked_need(session, claim.need_id)
    was_confirmed = claim.status == ClaimStatus.confirmed
    if was_confirmed:
        _apply(need, claim, -1)
    _close(claim, principal, ClaimStatus.withdrawn, data.reason)
    await session.flush()
    if was_confirmed:
        await events.publish_need(session, events.NEED_PROGRESSED, need)
    await _publish(session, events.CLAIM_WITHDRAWN, claim, need)
    return claim


async def expire_claims(session: AsyncSession, settings: Settings) -> int:
    """Expire pending claims past their `expires_at` (a batch per sweep; locked rows are left to the next)."""
    now = utcnow()
    claims = await ClaimRepository(session).expiring(now, limit=500)
    for claim in claims:
        _close(claim, None, ClaimStatus.expired, "not confirmed in time")
        need = await get_need(session, claim.need_id)
        await session.flush()
        await _publish(session, events.CLAIM_EXPIRED, claim, need)
    return len(claims)


# --- the partner's shipment (logistics.events) ------------------------------------------------------------

# The shipment's end: received (perhaps short) fulfils the claim; not received or cancelled releases it.
_SETTLED = {"received": ClaimStatus.fulfilled, "received_with_problem": ClaimStatus.fulfilled}
_RELEASED = {
    "not_received": "the partner's shipment was not received",
    "cancelled": "the partner's shipment was cancelled",
}


async def _settle(session: AsyncSession, claim_id: uuid.UUID, shipment_status: str) -> uuid.UUID | None:
    """Once the claim's shipment ends, what it delivered counts as delivered and the claim no longer covers it
    (never both); a shortfall or a shipment that never arrived leaves the line open again. Returns the need
    whose state the caller publishes once the shipment's deliveries are rolled up: published here, the need
    would be seen for a moment with the claim gone and nothing delivered, the whole line open again."""
    claim = await ClaimRepository(session).get(claim_id, for_update=True)
    if claim is None or claim.status != ClaimStatus.confirmed:
        return None  # settled already: a redelivered event changes nothing
    need = await _locked_need(session, claim.need_id)
    _apply(need, claim, -1)
    if shipment_status in _SETTLED:
        _close(claim, None, _SETTLED[shipment_status], None)
        type_ = events.CLAIM_FULFILLED
    else:
        _close(claim, None, ClaimStatus.withdrawn, _RELEASED[shipment_status])
        type_ = events.CLAIM_WITHDRAWN
    await session.flush()
    await _publish(session, type_, claim, need)
    return need.id


async def on_logistics_event(session: AsyncSession, event: CloudEvent) -> None:
    """logistics.events → the roll-up, and in the same transaction the claim a partner's shipment carries out."""
    await on_logistics_events(session, [event])


async def on_logistics_events(session: AsyncSession, batch: list[CloudEvent]) -> None:
    """The batch form of `on_logistics_event`: the claims settled in claim order, then the roll-up, which
    publishes each settled claim's need once, with what its shipment delivered."""
    settled: dict[uuid.UUID, str] = {}
    for event in batch:
        d = event.data
        if event.type.startswith("reliefhub.logistics.shipment."):
            claim_id = d.get("claim_id")
            if claim_id and d.get("status") in {*_SETTLED, *_RELEASED}:
                settled[uuid.UUID(str(claim_id))] = str(d["status"])
    needs = {
        need_id for claim_id in sorted(settled) if (need_id := await _settle(session, claim_id, settled[claim_id]))
    }
    await events.on_logistics_events(session, batch, publish=needs)
