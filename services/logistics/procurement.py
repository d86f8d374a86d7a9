"""Procurement: purchases from suppliers paid from cash pledges — drafted, ordered (the pledges' shares spent),
received (the goods registered in supply as an in-kind offer) or cancelled (an ordered one refunded)."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.logistics import events, ledger, schemas
from services.logistics.errors import (
    PledgeInsufficient,
    PledgeUnavailable,
    ProcurementNotFound,
    ProcurementNotInState,
    SupplyUnavailable,
)
from services.logistics.models import Procurement, ProcurementFunding, ProcurementStatus
from services.logistics.repository import ProcurementRepository, ProjectionRepository
from shared.auth import Principal, require_in_region
from shared.catalog import require_known
from shared.db import utcnow
from shared.events import EventType, publish
from shared.pagination import PageParams
from shared.runtime import runtime_of_session
from shared.vocabulary import OfferStatus


def procurement_event(p: Procurement) -> events.ProcurementData:
    return events.ProcurementData(
        id=p.id,
        org=p.org,
        status=p.status,
        supplier=p.supplier,
        region_code=p.region_code,
        currency=p.currency,
        total=p.total,
        lines=p.lines,
        funding=[{"offer_id": str(f.offer_id), "amount": f.amount} for f in p.funding],
        goods_offer_id=p.goods_offer_id,
        version=p.version,
    )


async def _emit_procurement(session: AsyncSession, type_: EventType, p: Procurement) -> None:
    p.updated_at = utcnow()
    await session.flush()
    await publish(session, type_, procurement_event(p), subject=str(p.id))


async def get_procurement(session: AsyncSession, procurement_id: uuid.UUID, *, for_update: bool = False) -> Procurement:
    found = await ProcurementRepository(session).get_full(procurement_id, for_update=for_update)
    if found is None:
        raise ProcurementNotFound(f"No procurement order {procurement_id}.")
    return found


async def list_procurements(
    session: AsyncSession,
    params: PageParams,
    *,
    status: ProcurementStatus | None = None,
    offer_id: uuid.UUID | None = None,
) -> tuple[list[Procurement], str | None]:
    return await ProcurementRepository(session).search(params, status=status, offer_id=offer_id)


async def _check_pledges(session: AsyncSession, currency: str, funding: list[schemas.FundingCreate]) -> None:
    projection = ProjectionRepository(session)
    for i, f in enumerate(funding):
        loc = ["body", "funding", i, "offer_id"]
        pledge = await projection.offer(f.offer_id)
        if pledge is None:
            raise PledgeUnavailable(
                f"Pledge {f.offer_id} is not known to logistics (yet); a new pledge arrives within moments.",
                errors=[{"loc": loc, "msg": "unknown pledge"}],
                headers={"Retry-After": "1"},
            )
        if pledge.kind != "cash" or pledge.status != OfferStatus.open:
            raise PledgeUnavailable(
                f"Offer {f.offer_id} is {'not a cash pledge' if pledge.kind != 'cash' else pledge.status}.",
                errors=[{"loc": loc, "msg": "not an open cash pledge"}],
            )
        if pledge.currency != currency:
            raise PledgeUnavailable(
                f"Pledge {f.offer_id} is in {pledge.currency}, the order in {currency}.",
                errors=[{"loc": loc, "msg": "currency differs"}],
            )
        left = (pledge.amount or 0) - pledge.amount_spent
        if f.amount > left:
            raise PledgeInsufficient(
                f"Pledge {f.offer_id} holds {left} {currency} unspent; {f.amount} were asked for.",
                errors=[{"loc": ["body", "funding", i, "amount"], "msg": f"at most {left}"}],
                extra={"offer_id": str(f.offer_id), "available": left},
            )


async def create_procurement(
    session: AsyncSession, principal: Principal, data: schemas.ProcurementCreate
) -> Procurement:
    """Draft a purchase paid from cash pledges; the pledges must hold the amounts now (they are spent when
    the order is placed)."""
    require_known((["body", "lines", i, "item_code"], line.item_code) for i, line in enumerate(data.lines))
    require_in_region(principal, data.region_code, what="The procurement's destination")
    await _check_pledges(session, data.currency, data.funding)
    now = utcnow()
    p = Procurement(
        id=uuid.uuid4(),
        org=principal.org,
        supplier=data.supplier.model_dump(exclude_none=True),
        region_code=data.region_code,
        need_id=data.need_id,
        currency=data.currency,
        total=sum(line.quantity * line.unit_price for line in data.lines),
        lines=[
            {
                "item_code": line.item_code,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "amount": line.quantity * line.unit_price,
            }
            for line in data.lines
        ],
        status=ProcurementStatus.draft,
        note=data.note,
        created_by=principal.sub,
        version=1,
        created_at=now,
        updated_at=now,
        funding=[
            ProcurementFunding(offer_id=f.offer_id, position=i, amount=f.amount) for i, f in enumerate(data.funding)
        ],
    )
    ProcurementRepository(session).add(p)
    await _emit_procurement(session, events.PROCUREMENT_CREATED, p)
    return p


def _require_state(p: Procurement, *allowed: ProcurementStatus) -> None:
    if p.status not in allowed:
        raise ProcurementNotInState(f"The order is {p.status}; this needs it {' or '.join(allowed)}.")


async def order_procurement(session: AsyncSession, principal: Principal, procurement_id: uuid.UUID) -> Procurement:
    """Place the order: spend each pledge's share, all or nothing — never beyond what a pledge holds."""
    p = await get_procurement(session, procurement_id, for_update=True)
    require_in_region(principal, p.region_code, what="The procurement's destination")
    _require_state(p, ProcurementStatus.draft)
    projection = ProjectionRepository(session)
    for f in sorted(p.funding, key=lambda f: f.offer_id):  # one lock order across concurrent orders
        if not await projection.spend(f.offer_id, f.amount):
            pledge = await projection.offer(f.offer_id)
            left = (pledge.amount or 0) - pledge.amount_spent if pledge else 0
            raise PledgeInsufficient(
                f"Pledge {f.offer_id} holds {left} {p.currency} unspent"
                + (f" and is {pledge.status}" if pledge and pledge.status != OfferStatus.open else "")
                + f"; the order needs {f.amount}.",
                extra={"offer_id": str(f.offer_id), "available": left},
            )
        await ledger.book_spent(session, p, f.offer_id, f.amount)
    p.status, p.ordered_at = ProcurementStatus.ordered, utcnow()
    p.version += 1
    await _emit_procurement(session, events.PROCUREMENT_ORDERED, p)
    return p


async def receive_procurement(session: AsyncSession, principal: Principal, procurement_id: uuid.UUID) -> Procurement:
    """The supplier delivered: register the goods in supply as an in-kind offer of the (largest) paying
    pledge's donor, so they are matched and shipped like any lot."""
    p = await get_procurement(session, procurement_id, for_update=True)
    require_in_region(principal, p.region_code, what="The procurement's destination")
    _require_state(p, ProcurementStatus.ordered)
    main = max(p.funding, key=lambda f: (f.amount, -f.position))
    pledge = await ProjectionRepository(session).offer(main.offer_id)
    if pledge is None:
        raise PledgeUnavailable(f"Pledge {main.offer_id} is no longer known.")
    supplier = p.supplier
    body = {
        "donor_id": str(pledge.donor_id),
        "kind": "in_kind",
        "procurement_id": str(p.id),
        "note": f"采购 / purchased from {supplier.get('name', '')} (procurement {p.id})"[:2000],
        "lots": [
            {
                "item_code": line["item_code"],
                "quantity": line["quantity"],
                **{k: supplier[k] for k in ("lat", "lon", "region_code") if supplier.get(k) is not None},
            }
            for line in p.lines
        ],
        "restrictions": {"region_codes": [p.region_code]} if p.region_code else {},
    }
    client = runtime_of_session(session).client("supply")
    try:
        response = await client.request("POST", "/v1/offers", json=body, idempotency_key=f"procurement-goods-{p.id}")
    except Exception as exc:  # timeouts and connection errors after the client's retries
        raise SupplyUnavailable(f"Registering the goods failed: {exc.__class__.__name__}.") from exc
    if response.status_code != 201:
        raise SupplyUnavailable(f"Supply answered {response.status_code} when registering the goods.")
    p.goods_offer_id = uuid.UUID(response.json()["id"])
    p.status, p.received_at = ProcurementStatus.received, utcnow()
    p.version += 1
    await _emit_procurement(session, events.PROCUREMENT_RECEIVED, p)
    return p


async def cancel_procurement(
    session: AsyncSession, principal: Principal, procurement_id: uuid.UUID, reason: str | None
) -> Procurement:
    """Cancel a draft, or an order not yet received (its amounts go back to the pledges)."""
    p = await get_procurement(session, procurement_id, for_update=True)
    require_in_region(principal, p.region_code, what="The procurement's destination")
    _require_state(p, ProcurementStatus.draft, ProcurementStatus.ordered)
    if p.status == ProcurementStatus.ordered:
        projection = ProjectionRepository(session)
        for f in sorted(p.funding, key=lambda f: f.offer_id):
            await projection.refund(f.offer_id, f.amount)
            await ledger.book_refunded(session, p, f.offer_id, f.amount, reason)
    p.status, p.cancelled_at = ProcurementStatus.cancelled, utcnow()
    if reason:
        p.note = f"{p.note}\n{reason}" if p.note else reason
    p.version += 1
    await _emit_procurement(session, events.PROCUREMENT_CANCELLED, p)
    return p
