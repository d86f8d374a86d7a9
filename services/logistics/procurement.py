"""Procurement: purchases from suppliers paid from cash pledges — drafted, ordered (the pledges' shares spent),
received (the goods registered in supply as an in-kind offer) or cancelled (an ordered one refunded)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.logistics import accounts, events, funds, ledger, schemas
from services.logistics.errors import (
    DestinationUnavailable,
    PledgeInsufficient,
    PledgeUnavailable,
    ProcurementNotFound,
    ProcurementNotInState,
    RestrictionViolated,
    SupplyUnavailable,
)
from services.logistics.funds_repository import AccountRepository
from services.logistics.models import Fund, OfferView, Procurement, ProcurementFunding, ProcurementStatus
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


@dataclass(frozen=True)
class Source:
    """One funding source of an order: a pledge (with its fund, when it is in one) or a fund alone."""

    position: int
    amount: int
    pledge: OfferView | None
    fund: Fund | None

    @property
    def key(self) -> uuid.UUID:
        return self.pledge.offer_id if self.pledge else self.fund.id  # type: ignore[union-attr]

    @property
    def overhead(self) -> int:
        """The fund's overhead share of the amount, to the fen (half up); none outside a fund."""
        if self.fund is None or not self.fund.overhead_share:
            return 0
        return int((Decimal(self.amount) * self.fund.overhead_share).quantize(Decimal(1), rounding=ROUND_HALF_UP))


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
        funding=[
            {"offer_id": str(f.offer_id) if f.offer_id else None, "fund_id": str(f.fund_id) if f.fund_id else None}
            | {"amount": f.amount, "overhead": f.overhead}
            for f in p.funding
        ],
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


async def _pledge_source(session: AsyncSession, currency: str, offer_id: uuid.UUID, loc: list[str | int]) -> OfferView:
    pledge = await ProjectionRepository(session).offer(offer_id)
    if pledge is None:
        raise PledgeUnavailable(
            f"Pledge {offer_id} is not known to logistics (yet); a new pledge arrives within moments.",
            errors=[{"loc": loc, "msg": "unknown pledge"}],
            headers={"Retry-After": "1"},
        )
    if pledge.kind != "cash" or pledge.status != OfferStatus.open:
        raise PledgeUnavailable(
            f"Offer {offer_id} is {'not a cash pledge' if pledge.kind != 'cash' else pledge.status}.",
            errors=[{"loc": loc, "msg": "not an open cash pledge"}],
        )
    if pledge.currency != currency:
        raise PledgeUnavailable(
            f"Pledge {offer_id} is in {pledge.currency}, the order in {currency}.",
            errors=[{"loc": loc, "msg": "currency differs"}],
        )
    return pledge


async def _sources(session: AsyncSession, currency: str, funding: list[schemas.FundingCreate]) -> list[Source]:
    """Each funding source as it pays: the pledge (with its fund, if any) or the fund; 409 for an unknown,
    closed or foreign-currency source."""
    out: list[Source] = []
    for i, f in enumerate(funding):
        pledge = None
        if f.offer_id is not None:
            pledge = await _pledge_source(session, currency, f.offer_id, ["body", "funding", i, "offer_id"])
        fund_id = f.fund_id or (pledge.fund_id if pledge else None)
        fund = await funds.fund_for_spending(session, fund_id, currency, ["body", "funding", i]) if fund_id else None
        out.append(Source(position=i, amount=f.amount, pledge=pledge, fund=fund))
    return out


async def _check_available(session: AsyncSession, currency: str, sources: list[Source]) -> None:
    """Every source holds what it pays and its fund's overhead on it: money received and not yet committed,
    spent or taken as overhead. Only a fund with `spend_pledged` (and a pledge into it) may also spend what its
    pledges still owe; a pledge outside any fund spends only what it received (its `pledge cash`). A pledge never
    pays more than it promised, overhead included, however much it was paid. 409 naming the source otherwise."""
    pledged = await accounts.pledge_figures(session, [s.pledge.offer_id for s in sources if s.pledge])
    in_funds = await accounts.fund_figures(session, [s.fund.id for s in sources if s.fund])
    for s in sources:
        need = s.amount + s.overhead
        received_only = s.fund is None or not s.fund.spend_pledged
        checks: list[tuple[str, str, int]] = []
        if s.pledge is not None:
            books = pledged[s.pledge.offer_id]
            left = (s.pledge.amount or 0) - s.pledge.amount_spent
            if received_only:
                left = min(left, books.available)
            else:  # spent as pledged: what it promised less what it paid for and the overhead taken on that
                left = min(left, books.pledged - books.committed - books.spent - books.overhead)
            checks.append(("offer_id", f"Pledge {s.pledge.offer_id}", left))
        if s.fund is not None:
            checks.append(("fund_id", f"Fund {s.fund.name}", in_funds[s.fund.id].available))
        for field, who, left in checks:
            if need > left:
                what = "received and unspent" if received_only else "unspent"
                raise PledgeInsufficient(
                    f"{who} holds {left} {currency} {what}; {need} were asked for"
                    + (f" ({s.amount} and {s.overhead} overhead)." if s.overhead else "."),
                    errors=[{"loc": ["body", "funding", s.position, "amount"], "msg": f"at most {left}"}],
                    extra={field: str(s.key), "available": left},
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
    sources: list[Source], destinations: list[Destination], item_codes: list[str], region_code: str | None
) -> None:
    """Every funding pledge's restrictions, and its fund's (both apply), against every destination site and item:
    409 naming each broken rule of each source. A purchase with no destination is checked as going anywhere in
    its region."""
    errors: list[dict[str, Any]] = []
    for s in sources:
        rules: list[tuple[str, str, dict[str, Any]]] = []
        if s.pledge is not None:
            rules.append(("offer_id", f"pledge {s.pledge.offer_id}", s.pledge.restrictions))
        if s.fund is not None:
            rules.append(("fund_id" if s.pledge is None else "offer_id", f"fund {s.fund.id}", s.fund.restrictions))
        for field, who, restrictions in rules:
            broken: list[str] = []
            for where in destinations or [Destination(region_code=region_code)]:
                broken += [v for v in violations(restrictions, where, item_codes) if v not in broken]
            loc = ["body", "funding", s.position, field]
            errors += [{"loc": loc, "msg": f"{who}: {rule}"} for rule in broken]
    if errors:
        raise RestrictionViolated(
            f"{len(errors)} restriction(s) of the funding sources exclude this purchase; see errors.", errors=errors
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
    sources = await _sources(session, data.currency, data.funding)
    items = [line.item_code for line in data.lines]
    await _check_restrictions(sources, destinations, items, region_code)
    await _check_available(session, data.currency, sources)
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
            ProcurementFunding(
                offer_id=s.pledge.offer_id if s.pledge else None,
                fund_id=s.fund.id if s.fund else None,
                position=s.position,
                amount=s.amount,
                overhead=s.overhead,
            )
            for s in sources
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
    sources = await _sources(session, p.currency, funding_of(p))
    await _check_restrictions(sources, await _destinations(session, p.destination), items, p.region_code)
    for fund_id in sorted({s.fund.id for s in sources if s.fund}):  # one lock order across concurrent orders
        await funds.lock_for_spending(session, fund_id)
    for offer_id in sorted({s.pledge.offer_id for s in sources if s.pledge and s.fund is None}):  # its own cash
        await AccountRepository(session).lock_pledge(offer_id)
    for s, f in zip(sources, p.funding, strict=True):  # the overhead as the fund's share stands now
        f.overhead = s.overhead
    await _check_available(session, p.currency, sources)
    projection = ProjectionRepository(session)
    for f in sorted(p.funding, key=lambda f: f.source):  # one lock order across concurrent orders
        if f.offer_id is not None and not await projection.spend(f.offer_id, f.amount):
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
    sources: list[dict[str, Any]] = []
    for s in await _sources_of(session, p):
        sources += [s.pledge.restrictions] if s.pledge else []
        sources += [s.fund.restrictions] if s.fund else []
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
        f"{a['offer_id'] or 'fund ' + str(a['fund_id'])}: {a['amount']} fen, "
        + ", ".join(f"{i['item_code']} x{i['quantity']}" for i in a["items"])
        for a in attribution(p.lines, p.funding)
    )
    return f"采购 / purchased from {p.supplier.get('name', '')} (procurement {p.id}); paid by {shares}"[:2000]


async def _sources_of(session: AsyncSession, p: Procurement) -> list[Source]:
    """The order's funding sources as they stand (an unknown pledge or fund leaves its part out)."""
    projection, out = ProjectionRepository(session), []
    for f in p.funding:
        pledge = await projection.offer(f.offer_id) if f.offer_id else None
        fund = await funds.find_fund(session, f.fund_id) if f.fund_id else None
        out.append(Source(position=f.position, amount=f.amount, pledge=pledge, fund=fund))
    return out


async def _main_pledge(session: AsyncSession, p: Procurement) -> OfferView:
    """Whose gift the bought goods are: the largest paying pledge, or, paid by funds alone, the largest pledge
    into the largest paying fund."""
    main = max(p.funding, key=lambda f: (f.offer_id is not None, f.amount, -f.position))
    projection = ProjectionRepository(session)
    pledge = await projection.offer(main.offer_id) if main.offer_id else None
    if pledge is None and main.offer_id is None and main.fund_id is not None:
        pledge = await projection.largest_pledge_of_fund(main.fund_id)
    if pledge is None:
        raise PledgeUnavailable(f"No pledge known to logistics paid for procurement {p.id}.")
    return pledge


def funding_of(p: Procurement) -> list[schemas.FundingCreate]:
    """The order's funding as drafted: a pledge (its fund follows from it) or a fund alone."""
    return [
        schemas.FundingCreate(offer_id=f.offer_id, fund_id=None if f.offer_id else f.fund_id, amount=f.amount)
        for f in p.funding
    ]


async def receive_procurement(session: AsyncSession, principal: Principal, procurement_id: uuid.UUID) -> Procurement:
    """The supplier delivered: register the goods in supply as an in-kind offer (its donor is the largest
    paying pledge's; every pledge's share is the order's `attribution`, shown on its tracking page), so they
    are matched and shipped like any lot."""
    p = await get_procurement(session, procurement_id, for_update=True)
    require_in_region(principal, p.region_code, what="The procurement's destination")
    _require_state(p, ProcurementStatus.ordered)
    pledge = await _main_pledge(session, p)
    for f in p.funding:
        await ledger.book_purchase_received(session, p, f)
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
        for f in sorted(p.funding, key=lambda f: f.source):
            if f.offer_id is not None:
                await projection.refund(f.offer_id, f.amount)
            await ledger.book_refunded(session, p, f, reason)
    p.status, p.cancelled_at = ProcurementStatus.cancelled, utcnow()
    if reason:
        p.note = f"{p.note}\n{reason}" if p.note else reason
    p.version += 1
    await _emit_procurement(session, events.PROCUREMENT_CANCELLED, p)
    return p
