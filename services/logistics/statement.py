"""A donor's statement (捐赠人服务): every gift of the donor, the money received against its pledges, and where
each yuan and unit went — the purchases a pledge paid (its share of the fen and of the goods), the shipments that
carried the gift's goods or the goods it bought, the sites' receipts and their feedback. For the donor's own
organisation and coordinators."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from services.logistics import account_schemas as out
from services.logistics.accounts_repository import RECEIVED, DonorRepository
from services.logistics.errors import DonorNotFound
from services.logistics.funds_repository import FundRepository
from services.logistics.models import Feedback, OfferView, Procurement, Shipment, SiteView
from services.logistics.public_accounts import fund_accounts
from services.logistics.repository import ProjectionRepository, ShipmentRepository
from services.logistics.schemas import GiftKind, GiftStatus, TrackSite
from services.logistics.shares import attribution
from services.logistics.tracking import RECEIPTS, _item, _offer_items, _site
from shared.auth import Principal
from shared.db import utcnow
from shared.errors import Forbidden


@dataclass
class _Books:
    """Everything read for one donor's gifts."""

    received: dict[uuid.UUID, int]
    purchases: dict[uuid.UUID, list[Procurement]]  # by paying pledge
    goods: dict[uuid.UUID, list[uuid.UUID]]  # purchase → the offers its goods became
    shipments: list[Shipment]
    feedback: dict[uuid.UUID, Feedback]
    sites: dict[uuid.UUID, SiteView]
    funds: dict[uuid.UUID, out.FundAccount]


async def _read(session: AsyncSession, gifts: list[OfferView]) -> _Books:
    repo, projection = DonorRepository(session), ProjectionRepository(session)
    ids = [g.offer_id for g in gifts]
    purchases: dict[uuid.UUID, list[Procurement]] = defaultdict(list)
    for offer_id, p in await repo.purchases(ids):
        purchases[offer_id].append(p)
    bought = sorted({p.id for ps in purchases.values() for p in ps})
    goods: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for offer in await projection.offers_of_procurements(bought):
        if offer.procurement_id is not None:
            goods[offer.procurement_id].append(offer.offer_id)
    carried = [*ids, *(o for offers in goods.values() for o in offers)]
    shipments = await ShipmentRepository(session).carrying(carried) if carried else []
    feedback = await ShipmentRepository(session).feedback_for([s.id for s in shipments])
    sites = await projection.sites(sorted({s.destination_site_id for s in shipments}))
    funds = await FundRepository(session).many([g.fund_id for g in gifts if g.fund_id is not None])
    accounts = {f.id: f for f in await fund_accounts(session, list(funds.values()))}
    return _Books(await repo.received(ids), purchases, goods, shipments, feedback, sites, accounts)


def _purchase(gift: OfferView, p: Procurement) -> out.StatementPurchase:
    share = next(a for a in attribution(p.lines, p.funding) if a["offer_id"] == gift.offer_id)
    return out.StatementPurchase(
        procurement_id=p.id,
        status=p.status,
        supplier=p.supplier.get("name"),
        currency=p.currency,
        order_total=p.total,
        amount=int(share["amount"]),
        items=[_item(i["item_code"], int(i["quantity"])) for i in share["items"]],
        ordered_at=p.ordered_at,
        received_at=p.received_at,
        cancelled_at=p.cancelled_at,
    )


def _shipment_parts(
    s: Shipment, ours: set[uuid.UUID], site: TrackSite | None, fb: Feedback | None
) -> tuple[out.StatementShipment, out.StatementReceipt | None, out.StatementFeedback | None]:
    lines = [line for line in s.lines if line.offer_id in ours]
    shipment = out.StatementShipment(
        shipment_id=s.id,
        status=s.status,
        site=site,
        lines=[
            out.StatementLine(item=_item(x.item_code, x.quantity), quantity_received=x.quantity_received) for x in lines
        ],
        picked_up_at=s.picked_up_at,
        delivered_at=s.delivered_at,
        received_at=s.received_at,
    )
    receipt = None
    if s.status in RECEIPTS:
        at = s.received_at or next((u.at for u in reversed(s.history) if u.status == s.status), s.updated_at)
        receipt = out.StatementReceipt(
            shipment_id=s.id,
            at=at,
            status=s.status,
            site=site,
            quantity_received=sum(x.quantity_received or 0 for x in lines),
            quantity_short=sum(x.quantity_returned or 0 for x in lines),
        )
    feedback = None
    if fb is not None:
        feedback = out.StatementFeedback(
            shipment_id=s.id,
            at=fb.created_at,
            site=site,
            rating=fb.rating,
            comment=fb.comment,
            beneficiaries_served=fb.beneficiaries_served,
            served_by_group=fb.served_by_group or {},
        )
    return shipment, receipt, feedback


def _gift(gift: OfferView, books: _Books) -> out.StatementGift:
    purchases = [_purchase(gift, p) for p in books.purchases.get(gift.offer_id, [])]
    ours = {gift.offer_id, *(o for p in purchases for o in books.goods.get(p.procurement_id, []))}
    shipments, receipts, feedback = [], [], []
    reached: set[uuid.UUID] = set()
    for s in books.shipments:
        if not any(line.offer_id in ours for line in s.lines):
            continue
        if s.status in RECEIVED:
            reached.add(s.destination_site_id)
        shipment, receipt, fb = _shipment_parts(
            s, ours, _site(books.sites.get(s.destination_site_id)), books.feedback.get(s.id)
        )
        shipments.append(shipment)
        receipts += [receipt] if receipt else []
        feedback += [fb] if fb else []
    cash = gift.kind == GiftKind.cash
    return out.StatementGift(
        offer_id=gift.offer_id,
        kind=GiftKind(gift.kind),
        status=GiftStatus(gift.status),
        created_at=gift.offer_created_at,
        fund_id=gift.fund_id,
        fund=books.funds.get(gift.fund_id) if gift.fund_id else None,
        currency=gift.currency,
        amount_pledged=gift.amount,
        amount_received=books.received.get(gift.offer_id, 0) if cash else None,
        amount_spent=sum(p.amount for p in purchases if p.status != "cancelled") if cash else None,
        items=_offer_items(gift),
        purchases=purchases,
        shipments=shipments,
        receipts=receipts,
        feedback=feedback,
        quantity_shipped=sum(x.item.quantity for s in shipments if s.picked_up_at for x in s.lines),
        quantity_received=sum(r.quantity_received for r in receipts),
        sites=len(reached),
    )


def _money(gifts: list[out.StatementGift]) -> list[out.MoneyTotal]:
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for g in gifts:
        if g.kind == GiftKind.cash and g.currency and g.status != GiftStatus.withdrawn:
            t = totals[g.currency]
            t[0] += g.amount_pledged or 0
            t[1] += g.amount_received or 0
            t[2] += g.amount_spent or 0
    return [out.MoneyTotal(currency=c, pledged=p, received=r, spent=s) for c, (p, r, s) in sorted(totals.items())]


async def statement(session: AsyncSession, principal: Principal, donor_id: uuid.UUID) -> out.DonorStatement:
    """The donor's statement; 404 for a donor logistics has not heard of, 403 for another organisation."""
    repo = DonorRepository(session)
    donor = await repo.donor(donor_id)
    gifts = await repo.gifts(donor_id)
    org = donor.org if donor else (gifts[0].org if gifts else None)
    if org is None:
        raise DonorNotFound(f"No donor {donor_id}.")
    if not (principal.is_staff or principal.org == org):
        raise Forbidden("A donor's statement is for its own organisation and coordinators.")
    books = await _read(session, gifts)
    lines = [_gift(g, books) for g in gifts]
    return out.DonorStatement(
        donor_id=donor_id,
        org=org,
        public_name=donor.public_name if donor else None,
        generated_at=utcnow(),
        money=_money(lines),
        gifts=lines,
    )
