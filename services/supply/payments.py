"""Money received against cash pledges (钱到账): coordinators and the fundraising working group record each
payment as the bank or the receipt shows it, and the pledge shows what has arrived.

A payment's reference is unique per pledge: recording it again (a retry, the same bank statement imported
twice) returns the payment already recorded and changes nothing; the same reference with another amount or
date is a conflict. More money than the pledge promised is recorded all the same — what arrived is what the
books must show — and the pledge is flagged `overpaid` so the fundraising group can follow up (a refund, or a
larger pledge). Payments may arrive for a withdrawn pledge too, for the same reason."""

from __future__ import annotations

import uuid
from datetime import UTC, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.supply import events, schemas
from services.supply.errors import NotAPledge, NotFundraiser, PaymentReferenceReused
from services.supply.models import Offer, Payment
from services.supply.repository import PaymentRepository
from services.supply.schemas import OfferKind
from services.supply.service import get_offer
from shared.auth import Principal, Role
from shared.db import utcnow
from shared.errors import InvalidRequest
from shared.events import publish
from shared.pagination import PageParams

# How far ahead of this server's clock a payment's received_at may be (the bank's clock, time zones typed).
CLOCK_SKEW = timedelta(minutes=5)


def require_fundraiser(principal: Principal, fundraising_group: str) -> None:
    """Coordinators (and admins), and the members of the fundraising working group, whatever their org."""
    if principal.is_staff or (principal.has(Role.working_group) and principal.group == fundraising_group):
        return
    raise NotFundraiser(f"Payments are recorded by coordinators and the {fundraising_group} group.")


async def received(session: AsyncSession, offers: list[Offer]) -> dict[uuid.UUID, int]:
    """What each cash pledge among `offers` has received (0 when nothing yet); in-kind offers are left out."""
    cash = [o.id for o in offers if o.kind == OfferKind.cash]
    sums = await PaymentRepository(session).received(cash)
    return {offer_id: sums.get(offer_id, 0) for offer_id in cash}


async def record_payment(
    session: AsyncSession, principal: Principal, offer_id: uuid.UUID, data: schemas.PaymentCreate
) -> tuple[Payment, Offer, bool]:
    """Record money received against a cash pledge; returns (payment, offer, recorded now). The pledge's row
    is locked first, so payments of one pledge are recorded one at a time."""
    offer = await get_offer(session, offer_id, for_update=True)
    if offer.kind != OfferKind.cash:
        raise NotAPledge(f"Offer {offer_id} is an in-kind offer; money is received against cash pledges only.")
    assert offer.currency is not None and offer.amount is not None  # a cash offer's shape
    if data.currency is not None and data.currency != offer.currency:
        raise InvalidRequest(
            f"The pledge is in {offer.currency}.", errors=[{"loc": ["body", "currency"], "msg": "not the pledge's"}]
        )
    now = utcnow()
    if data.received_at > now + CLOCK_SKEW:
        raise InvalidRequest(
            "received_at is in the future.", errors=[{"loc": ["body", "received_at"], "msg": "in the future"}]
        )
    payments = PaymentRepository(session)
    existing = await payments.by_reference(offer.id, data.reference)
    if existing is not None:
        if (existing.amount, existing.received_at) != (data.amount, data.received_at):
            raise PaymentReferenceReused(
                f"Reference {data.reference!r} already records {existing.amount} received at "
                f"{existing.received_at.isoformat()}."
            )
        return existing, offer, False
    payment = payments.add(
        Payment(
            id=uuid.uuid4(),
            offer_id=offer.id,
            amount=data.amount,
            received_at=data.received_at.astimezone(UTC),
            reference=data.reference,
            recorded_by=principal.sub,
            created_at=now,
        )
    )
    # The offer's representation (amount_received) changed: a new version, so its ETag does too.
    offer.version += 1
    offer.updated_at = now
    await session.flush()
    total = (await payments.received([offer.id])).get(offer.id, 0)
    await publish(
        session,
        events.PAYMENT_RECORDED,
        events.PaymentData(
            id=payment.id,
            offer_id=offer.id,
            amount=payment.amount,
            currency=offer.currency,
            received_at=payment.received_at,
            reference=payment.reference,
            fund_id=offer.fund_id,
            operation_id=offer.operation_id,
            donor_id=offer.donor_id,
            pledged=offer.amount,
            amount_received=total,
        ),
        orgs=[offer.org],
        subject=str(payment.id),
    )
    return payment, offer, True


async def list_payments(
    session: AsyncSession, principal: Principal, offer_id: uuid.UUID, params: PageParams, fundraising_group: str
) -> tuple[Offer, list[Payment], str | None]:
    """The payments of an offer, newest first: for the donor's organisation, coordinators and fundraisers."""
    offer = await get_offer(session, offer_id)
    if not principal.owns(offer.org):
        require_fundraiser(principal, fundraising_group)
    items, cursor = await PaymentRepository(session).of_offer(offer.id, params)
    return offer, items, cursor


def payment_out(payment: Payment, offer: Offer) -> schemas.Payment:
    return schemas.Payment(
        id=payment.id,
        offer_id=payment.offer_id,
        amount=payment.amount,
        currency=offer.currency or "",
        received_at=payment.received_at,
        reference=payment.reference,
        recorded_by=payment.recorded_by,
        created_at=payment.created_at,
    )
