"""Procurement: purchases from suppliers paid from cash pledges — drafted, ordered (the pledges' shares spent),
received (the goods registered in supply as an in-kind offer) or cancelled (an ordered one refunded)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.logistics import events, ledger, schemas
from services.logistics.errors import (
    DestinationUnavailable,
    PledgeInsufficient,
    PledgeUnavailable,
    ProcurementNotFound,
    ProcurementNotInState,
    RestrictionViolated,
    SupplyUnavailable,
)
from services.logistics.models import Procurement, ProcurementFunding, ProcurementStatus
from services.logistics.repository import ProcurementRepository, ProjectionRepository
from services.logistics.shares import attribution
from shared.auth import Principal, require_in_region
from shared.catalog import require_known
from shared.db import utcnow
from shared.events import EventType, publish
from shared.pagination import PageParams
from shared.restrictions import Destination, union, violations
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


def destination_of(data: schemas.ProcurementCreate) -> dict[str, Any] | None:
    """The destination as stored: the body's, or (older clients) {need_ids: [need_id]}."""
    if data.destination is not None:
        return data.destination.model_dump(mode="json", exclude_none=True)
    return {"need_ids": [str(data.need_id)]} if data.need_id is not None else None


async def _destinations(session: AsyncSession, destination: dict[str, Any] | None) -> list[Destination]:
    """The sites the goods go to, as logistics' projections know them (one per site when needs span sites)."""
    if destination is None:
        return []
    projection = ProjectionRepository(session)
    by_site: dict[uuid.UUID, set[uuid.UUID]] = {}
    groups: dict[uuid.UUID, set[str]] = {}
    if destination.get("site_id"):
        by_site[uuid.UUID(destination["site_id"])] = set()
    for i, raw in enumerate(destination.get("need_ids") or []):
        need = await projection.need(uuid.UUID(raw))
        if need is None:
            raise DestinationUnavailable(
                f"Need {raw} is not known to logistics (yet); a new need arrives within moments.",
                errors=[{"loc": ["body", "destination", "need_ids", i], "msg": "unknown need"}],
                headers={"Retry-After": "1"},
            )
        by_site.setdefault(need.site_id, set()).add(need.need_id)
        served = {g for g, count in (need.beneficiary_groups or {}).items() if count}
        groups.setdefault(need.site_id, set()).update(served)
    sites = await projection.sites(list(by_site))
    missing = [s for s in by_site if s not in sites]
    if missing:
        raise DestinationUnavailable(
            f"Site {missing[0]} is not known to logistics (yet).",
            errors=[{"loc": ["body", "destination", "site_id"], "msg": "unknown site"}],
            headers={"Retry-After": "1"},
        )
    return [
        Destination(
            site_id=s,
            site_kind=sites[s].kind,
            region_code=sites[s].region_code,
            need_ids=frozenset(n),
            groups=frozenset(groups.get(s, ())),
        )
        for s, n in by_site.items()
    ]


async def _check_restrictions(
    session: AsyncSession,
    funding: list[tuple[uuid.UUID, int]],
    destinations: list[Destination],
    item_codes: list[str],
    region_code: str | None,
) -> None:
    """Every funding pledge's restrictions against every destination site and item: 409 naming each broken
    rule of each pledge. A purchase with no destination is checked as going anywhere in its region."""
    projection = ProjectionRepository(session)
    errors: list[dict[str, Any]] = []
    for offer_id, position in funding:
        pledge = await projection.offer(offer_id)
        if pledge is None:
            continue
        broken: list[str] = []
        for where in destinations or [Destination(region_code=region_code)]:
            broken += [v for v in violations(pledge.restrictions, where, item_codes) if v not in broken]
        loc = ["body", "funding", position, "offer_id"]
        errors += [{"loc": loc, "msg": f"pledge {offer_id}: {rule}"} for rule in broken]
    if errors:
        raise RestrictionViolated(
            f"{len(errors)} restriction(s) of the funding pledges exclude this purchase; see errors.", errors=errors
        )


def _common_region(destinations: list[Destination]) -> str | None:
    """The narrowest region (2, 4 or 6 digits) holding every destination site."""
    codes = [d.region_code for d in destinations if d.region_code]
    if not codes:
        return None
    for digits in (6, 4, 2):
        if len({c[:digits] for c in codes}) == 1:
            return codes[0][:digits]
    return None


async def create_procurement(
    session: AsyncSession, principal: Principal, data: schemas.ProcurementCreate
) -> Procurement:
    """Draft a purchase paid from cash pledges; the pledges must hold the amounts now (they are spent when
    the order is placed)."""
    require_known((["body", "lines", i, "item_code"], line.item_code) for i, line in enumerate(data.lines))
    destination = destination_of(data)
    destinations = await _destinations(session, destination)
    region_code = data.region_code or _common_region(destinations)
    require_in_region(principal, region_code, what="The procurement's destination")
    for where in destinations:
        require_in_region(principal, where.region_code, what="The procurement's destination")
    await _check_pledges(session, data.currency, data.funding)
    items = [line.item_code for line in data.lines]
    funding = [(f.offer_id, i) for i, f in enumerate(data.funding)]
    await _check_restrictions(session, funding, destinations, items, region_code)
    now = utcnow()
    need_ids = (destination or {}).get("need_ids") or []
    p = Procurement(
        id=uuid.uuid4(),
        org=principal.org,
        supplier=data.supplier.model_dump(exclude_none=True),
        region_code=region_code,
        need_id=data.need_id or (uuid.UUID(need_ids[0]) if len(need_ids) == 1 else None),
        destination=destination,
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
    items = [line["item_code"] for line in p.lines]
    funding = [(f.offer_id, i) for i, f in enumerate(p.funding)]
    await _check_restrictions(session, funding, await _destinations(session, p.destination), items, p.region_code)
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
        await ledger.book_spent(session, p, f)
    p.status, p.ordered_at = ProcurementStatus.ordered, utcnow()
    p.version += 1
    await _emit_procurement(session, events.PROCUREMENT_ORDERED, p)
    return p


async def _goods_restrictions(session: AsyncSession, p: Procurement) -> dict[str, Any]:
    """What the bought goods carry: every paying pledge's restrictions at once, the purchase's region and its
    destination (the site or needs they were bought for)."""
    projection = ProjectionRepository(session)
    sources: list[dict[str, Any]] = []
    for f in p.funding:
        pledge = await projection.offer(f.offer_id)
        sources.append(pledge.restrictions if pledge else {})
    own: dict[str, Any] = {"region_codes": [p.region_code]} if p.region_code else {}
    if p.destination and p.destination.get("site_id"):
        own["site_ids"] = [p.destination["site_id"]]
    elif p.destination:
        own["need_ids"] = list(p.destination.get("need_ids") or [])
    try:
        return union(*sources, own)
    except ValueError as exc:
        raise RestrictionViolated(f"The paying pledges' restrictions leave the goods nowhere to go ({exc}).") from exc


def _goods_note(p: Procurement) -> str:
    shares = "; ".join(
        f"{a['offer_id']}: {a['amount']} fen, " + ", ".join(f"{i['item_code']} x{i['quantity']}" for i in a["items"])
        for a in attribution(p.lines, p.funding)
    )
    return f"采购 / purchased from {p.supplier.get('name', '')} (procurement {p.id}); paid by {shares}"[:2000]


async def receive_procurement(session: AsyncSession, principal: Principal, procurement_id: uuid.UUID) -> Procurement:
    """The supplier delivered: register the goods in supply as an in-kind offer (its donor is the largest
    paying pledge's; every pledge's share is the order's `attribution`, shown on its tracking page), so they
    are matched and shipped like any lot."""
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
        "note": _goods_note(p),
        "lots": [
            {
                "item_code": line["item_code"],
                "quantity": line["quantity"],
                **{k: supplier[k] for k in ("lat", "lon", "region_code") if supplier.get(k) is not None},
            }
            for line in p.lines
        ],
        "restrictions": await _goods_restrictions(session, p),
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
            await ledger.book_refunded(session, p, f, reason)
    p.status, p.cancelled_at = ProcurementStatus.cancelled, utcnow()
    if reason:
        p.note = f"{p.note}\n{reason}" if p.note else reason
    p.version += 1
    await _emit_procurement(session, events.PROCUREMENT_CANCELLED, p)
    return p
