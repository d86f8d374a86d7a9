"""Proof of delivery — the handover PIN, what arrived per line and why anything came short — and the
receiving site's feedback on a settled shipment."""

from __future__ import annotations

import hmac
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.logistics import events, ledger, schemas
from services.logistics.errors import (
    FeedbackExists,
    IllegalTransition,
    InvalidReceipt,
    NotReceivedYet,
    NotTheRecipient,
    PinLocked,
    WrongPin,
)
from services.logistics.models import WRITTEN_OFF, DiscrepancyCode, Feedback, Shipment, ShipmentLine
from services.logistics.repository import ProjectionRepository, ShipmentRepository
from services.logistics.shipments import (
    RECEIVABLE,
    SETTLED,
    emit_shipment,
    get_shipment,
    is_recipient,
    may_record_receipt,
    record_update,
)
from shared.auth import Principal, require_in_region
from shared.db import utcnow
from shared.events import publish
from shared.settings import Settings
from shared.vocabulary import ShipmentStatus


def _lines_named(shipment: Shipment, entry: schemas.ReceiptLine) -> list[ShipmentLine]:
    """The shipment lines a receipt entry speaks of: one by its id, or every line of its item."""
    if entry.line_id is not None:
        return [line for line in shipment.lines if line.id == entry.line_id]
    return [line for line in shipment.lines if line.item_code == entry.item_code]


def _quantity_problem(entry: schemas.ReceiptLine, capacity: int, i: int) -> dict[str, Any] | None:
    if entry.quantity_received > capacity:
        return {"loc": ["body", "lines", i, "quantity_received"], "msg": f"at most {capacity} were sent"}
    if entry.quantity_received == capacity:
        return None
    if entry.discrepancy is None:
        return {"loc": ["body", "lines", i, "discrepancy"], "msg": "say why it came short (a discrepancy code)"}
    if entry.discrepancy.code == DiscrepancyCode.other and not entry.discrepancy.note:
        return {"loc": ["body", "lines", i, "discrepancy", "note"], "msg": "say what `other` was"}
    return None


Arrived = tuple[int, schemas.Discrepancy | None]


def _apportion(shipment: Shipment, receipt: schemas.ReceiptRequest) -> dict[uuid.UUID, Arrived]:
    """What arrived per shipment line. A receipt names lines by id or by item; an item's quantity fills its
    lines in order. Every line must be accounted for, and a short line needs a reason."""
    errors: list[dict[str, Any]] = []
    got: dict[uuid.UUID, Arrived] = {}
    named: set[uuid.UUID] = set()
    for i, entry in enumerate(receipt.lines):
        targets = _lines_named(shipment, entry)
        if not targets:
            errors.append({"loc": ["body", "lines", i], "msg": "no such line or item on this shipment"})
            continue
        if any(t.id in named for t in targets):
            errors.append({"loc": ["body", "lines", i], "msg": "this line is named twice"})
            continue
        named.update(t.id for t in targets)
        problem = _quantity_problem(entry, sum(t.quantity for t in targets), i)
        if problem is not None:
            errors.append(problem)
            continue
        left = entry.quantity_received
        for t in targets:
            take = min(left, t.quantity)
            left -= take
            got[t.id] = (take, entry.discrepancy if take < t.quantity else None)
    errors.extend(
        {"loc": ["body", "lines"], "msg": f"line {line.id} ({line.item_code}) is missing"}
        for line in shipment.lines
        if line.id not in named
    )
    if errors:
        raise InvalidReceipt("The receipt does not account for the shipment's lines.", errors=errors)
    return got


def _check_may_receive(principal: Principal, shipment: Shipment) -> None:
    if not may_record_receipt(principal, shipment):
        raise NotTheRecipient(
            "The receipt is recorded by the receiving site's frontline, the shipment's assigned carrier or a "
            "coordinator."
        )
    require_in_region(principal, shipment.region_code, what="The shipment's destination")
    if shipment.status not in RECEIVABLE:
        raise IllegalTransition(
            f"A {shipment.status} shipment cannot be received.", extra={"status": shipment.status, "allowed": []}
        )


async def _check_pin(session: AsyncSession, shipment: Shipment, pin: str, settings: Settings, now: datetime) -> None:
    """The handover PIN, compared in constant time; repeated wrong PINs lock the receipt for a while. A wrong PIN
    is counted (flushed) before the error, which the request's transaction still commits."""
    if shipment.pin_locked_until is not None and shipment.pin_locked_until > now:
        wait = int((shipment.pin_locked_until - now).total_seconds()) + 1
        raise PinLocked(
            f"Receipt is locked for {wait} s after repeated wrong PINs.", headers={"Retry-After": str(wait)}
        )
    if hmac.compare_digest(pin.encode(), shipment.handover_pin.encode()):
        return
    shipment.pin_failures += 1
    left = settings.pin_max_failures - shipment.pin_failures
    if left <= 0:
        shipment.pin_failures = 0
        shipment.pin_locked_until = now + timedelta(seconds=settings.pin_lock_seconds)
        await session.flush()
        raise PinLocked(
            f"Too many wrong PINs; receipt is locked for {settings.pin_lock_seconds} s.",
            headers={"Retry-After": str(settings.pin_lock_seconds)},
        )
    await session.flush()
    raise WrongPin(f"Wrong PIN; {left} attempts left before receipt is locked.", extra={"attempts_left": left})


def _write_line(line: ShipmentLine, received: int, discrepancy: schemas.Discrepancy | None) -> None:
    """What arrived on a line; what did not goes back to the need, and unless it was damaged, expired or
    lost, to the lot too (else it is written off)."""
    missing = line.quantity - received
    line.quantity_received, line.quantity_returned = received, missing
    line.discrepancy_code = discrepancy.code if discrepancy else None
    line.discrepancy_reason = discrepancy.note if discrepancy else None
    line.quantity_written_off = missing if discrepancy and discrepancy.code in WRITTEN_OFF else 0


def _settle(shipment: Shipment, got: dict[uuid.UUID, Arrived], actor: str, now: datetime) -> None:
    """Write what arrived on each line and settle the shipment as received, received_with_problem or
    not_received."""
    for line in shipment.lines:
        _write_line(line, *got[line.id])
    total = sum(line.quantity_received or 0 for line in shipment.lines)
    if total == 0:
        shipment.status = ShipmentStatus.not_received
    elif all(line.quantity_returned == 0 for line in shipment.lines):
        shipment.status = ShipmentStatus.received
    else:
        shipment.status = ShipmentStatus.received_with_problem
    shipment.pin_failures, shipment.pin_locked_until = 0, None
    shipment.received_at = now
    shipment.delivered_at = shipment.delivered_at or now
    notes = [f"{d.code}: {d.note}" if d.note else str(d.code) for _, d in got.values() if d]
    record_update(shipment, shipment.status, actor, now, note="; ".join(notes) or None)
    shipment.version += 1


async def record_receipt(
    session: AsyncSession,
    principal: Principal,
    shipment_id: uuid.UUID,
    data: schemas.ReceiptRequest,
    settings: Settings,
) -> Shipment:
    """Proof of delivery: the handover PIN, what arrived per line, and why anything came short."""
    shipment = await get_shipment(session, shipment_id, for_update=True)
    _check_may_receive(principal, shipment)
    now = utcnow()
    await _check_pin(session, shipment, data.pin, settings, now)
    _settle(shipment, _apportion(shipment, data), principal.sub, now)
    await ledger.book_delivered(session, shipment)
    await ledger.book_written_off(session, shipment)
    await ProjectionRepository(session).mark_need_times(
        sorted({line.need_id for line in shipment.lines if line.need_id and line.quantity_received}),
        "first_delivered_at",
        now,
    )
    event = events.SHIPMENT_NOT_RECEIVED if shipment.status == ShipmentStatus.not_received else events.SHIPMENT_RECEIVED
    await emit_shipment(session, event, shipment)
    return shipment


async def give_feedback(
    session: AsyncSession, principal: Principal, shipment_id: uuid.UUID, data: schemas.FeedbackCreate
) -> tuple[Shipment, Feedback]:
    shipment = await get_shipment(session, shipment_id, for_update=True)
    if not (principal.is_staff or is_recipient(principal, shipment)):
        raise NotTheRecipient("Feedback comes from the receiving site's organisation (or a coordinator).")
    require_in_region(principal, shipment.region_code, what="The shipment's destination")
    if shipment.status not in SETTLED:
        raise NotReceivedYet(f"The shipment is {shipment.status}; give feedback once it is received.")
    repo = ShipmentRepository(session)
    if await repo.feedback(shipment.id) is not None:
        raise FeedbackExists()
    feedback = Feedback(
        shipment_id=shipment.id,
        rating=data.rating,
        comment=data.comment,
        beneficiaries_served=data.beneficiaries_served,
        served_by_group={g.value: n for g, n in data.served_by_group.items()},
        photo_urls=[str(u) for u in data.photo_urls],
        created_by=principal.sub,
        created_at=utcnow(),
    )
    repo.add_feedback(feedback)
    # The shipment's representation carries its feedback: a new version, so ETags and change cursors show it.
    shipment.version += 1
    shipment.updated_at = utcnow()
    await session.flush()
    await publish(
        session,
        events.FEEDBACK_RECEIVED,
        events.FeedbackData(
            shipment_id=shipment.id,
            destination_site_id=shipment.destination_site_id,
            destination_org=shipment.destination_org,
            origin_org=shipment.origin_org,
            region_code=shipment.region_code,
            rating=feedback.rating,
            comment=feedback.comment,
            beneficiaries_served=feedback.beneficiaries_served,
            served_by_group=feedback.served_by_group,
            photo_urls=feedback.photo_urls,
        ),
        subject=str(shipment.id),
    )
    return shipment, feedback
