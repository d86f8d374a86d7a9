"""The ledger: money pledged, received, spent and refunded and in-kind value offered and delivered, in fen, each
transaction with its balanced postings between accounts (services.logistics.accounts). Each entry's
`ref` names the fact it records, so booking the same fact again (a replayed event, a retried request) books
nothing."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.logistics import accounts
from services.logistics.models import (
    LedgerEntry,
    LedgerKind,
    LedgerPosting,
    Procurement,
    ProcurementFunding,
    Shipment,
    ShipmentLine,
)
from services.logistics.repository import LedgerRepository
from shared.catalog import get_catalog
from shared.pagination import PageParams


def goods_value(lots: list[dict[str, Any]]) -> int:
    """The catalog value of offered lots (items the catalog does not know count nothing)."""
    catalog = get_catalog()
    total = 0
    for lot in lots:
        item = catalog.get(lot["item_code"])
        total += int(lot["quantity"]) * (item.unit_value_fen if item else 0)
    return total


async def book_pledged(
    session: AsyncSession,
    offer_id: uuid.UUID,
    amount: int,
    currency: str,
    at: datetime | None,
    fund_id: uuid.UUID | None = None,
) -> None:
    """A cash pledge, when it is made: the donor owes it (receivable) against the gift."""
    await LedgerRepository(session).book(
        ref=f"pledged:{offer_id}",
        kind=LedgerKind.pledged,
        amount=amount,
        currency=currency,
        offer_id=offer_id,
        created_at=at,
        postings=accounts.transfer(
            accounts.account(accounts.RECEIVABLE, offer_id),
            accounts.account(accounts.DONATIONS, offer_id),
            amount,
            currency,
            offer_id=offer_id,
            fund_id=fund_id,
        ),
    )


def _lot_postings(
    lots: list[dict[str, Any]], credit: str, offer_id: uuid.UUID | None
) -> tuple[int, list[dict[str, Any]]]:
    """Each lot into stock at its catalog value (items the catalog does not know count nothing), against
    `credit`; the total value and the postings."""
    catalog = get_catalog()
    total, postings = 0, []
    for lot in lots:
        item = catalog.get(lot["item_code"])
        quantity = int(lot["quantity"])
        value = quantity * (item.unit_value_fen if item else 0)
        total += value
        postings += accounts.transfer(
            accounts.account(accounts.STOCK, lot.get("id") or offer_id),
            credit,
            value,
            "CNY",
            offer_id=offer_id,
            item_code=lot["item_code"],
            quantity=quantity,
        )
    return total, postings


async def book_in_kind_offered(
    session: AsyncSession, offer_id: uuid.UUID, lots: list[dict[str, Any]], at: datetime | None
) -> None:
    """The catalog value of donated goods, when they are offered: into stock against the gift."""
    value, postings = _lot_postings(lots, accounts.account(accounts.DONATIONS, offer_id), offer_id)
    await LedgerRepository(session).book(
        ref=f"in_kind_offered:{offer_id}",
        kind=LedgerKind.in_kind_offered,
        amount=value,
        currency="CNY",
        offer_id=offer_id,
        created_at=at,
        postings=postings,
    )


async def book_goods_purchased(
    session: AsyncSession, offer_id: uuid.UUID, procurement_id: uuid.UUID, lots: list[dict[str, Any]]
) -> None:
    """Bought goods registered as an in-kind offer: into stock at catalog value against the purchase (their money
    was booked when the order was placed)."""
    value, postings = _lot_postings(lots, accounts.account(accounts.PURCHASED, procurement_id), offer_id)
    await LedgerRepository(session).book(
        ref=f"goods_received:{offer_id}",
        kind=LedgerKind.goods_received,
        amount=value,
        currency="CNY",
        offer_id=offer_id,
        procurement_id=procurement_id,
        memo="in stock",
        postings=postings,
    )


async def book_payment(
    session: AsyncSession,
    payment_id: uuid.UUID,
    offer_id: uuid.UUID,
    amount: int,
    currency: str,
    *,
    fund_id: uuid.UUID | None,
    reference: str | None,
    at: datetime | None,
) -> None:
    """Money received against a cash pledge: into its fund's cash (or its own), out of what it owes."""
    await LedgerRepository(session).book(
        ref=f"payment:{payment_id}",
        kind=LedgerKind.payment_received,
        amount=amount,
        currency=currency,
        offer_id=offer_id,
        memo=reference,
        created_at=at,
        postings=accounts.transfer(
            accounts.cash_account(offer_id, fund_id),
            accounts.account(accounts.RECEIVABLE, offer_id),
            amount,
            currency,
            offer_id=offer_id,
            fund_id=fund_id,
        ),
    )


async def book_pledge_withdrawn(
    session: AsyncSession, offer_id: uuid.UUID, unspent: int, currency: str, fund_id: uuid.UUID | None = None
) -> None:
    """What a withdrawn pledge still held unspent, taken out again (the donor no longer owes it)."""
    await LedgerRepository(session).book(
        ref=f"pledge_withdrawn:{offer_id}",
        kind=LedgerKind.pledge_withdrawn,
        amount=-unspent,
        currency=currency,
        offer_id=offer_id,
        postings=accounts.transfer(
            accounts.account(accounts.DONATIONS, offer_id),
            accounts.account(accounts.RECEIVABLE, offer_id),
            unspent,
            currency,
            offer_id=offer_id,
            fund_id=fund_id,
        ),
    )


def _goods_out(shipment: Shipment, line: ShipmentLine, kind: str, quantity: int, value: int) -> list[dict[str, Any]]:
    return accounts.transfer(
        accounts.account(kind, shipment.id),
        accounts.account(accounts.STOCK, line.lot_id or line.offer_id),
        value,
        "CNY",
        offer_id=line.offer_id,
        item_code=line.item_code,
        quantity=quantity,
    )


async def book_delivered(session: AsyncSession, shipment: Shipment) -> None:
    """The catalog value of what arrived, per line of a received shipment: out of stock, delivered."""
    catalog = get_catalog()
    ledger = LedgerRepository(session)
    for line in shipment.lines:
        item = catalog.get(line.item_code)
        if not line.quantity_received or item is None:
            continue
        value = line.quantity_received * item.unit_value_fen
        await ledger.book(
            ref=f"in_kind_delivered:{line.id}",
            kind=LedgerKind.in_kind_delivered,
            amount=value,
            currency="CNY",
            offer_id=line.offer_id,
            shipment_id=shipment.id,
            region_code=shipment.region_code,
            item_code=line.item_code,
            quantity=line.quantity_received,
            postings=_goods_out(shipment, line, accounts.DELIVERED, line.quantity_received, value),
        )


async def book_written_off(session: AsyncSession, shipment: Shipment) -> None:
    """The catalog value of what a receipt wrote off (damaged, expired, lost), per line: goods offered that
    will never be delivered."""
    catalog = get_catalog()
    ledger = LedgerRepository(session)
    for line in shipment.lines:
        item = catalog.get(line.item_code)
        if not line.quantity_written_off or item is None:
            continue
        value = line.quantity_written_off * item.unit_value_fen
        await ledger.book(
            ref=f"written_off:{line.id}",
            kind=LedgerKind.written_off,
            amount=value,
            currency="CNY",
            offer_id=line.offer_id,
            shipment_id=shipment.id,
            region_code=shipment.region_code,
            item_code=line.item_code,
            quantity=line.quantity_written_off,
            memo=str(line.discrepancy_code),
            postings=_goods_out(shipment, line, accounts.WRITTEN_OFF, line.quantity_written_off, value),
        )


def _spend_postings(p: Procurement, f: ProcurementFunding, sign: int) -> list[dict[str, Any]]:
    """A source's share of an order from its cash to the committed purchase, and the fund's overhead on it;
    `sign` -1 gives both back."""
    cash = accounts.cash_account(f.offer_id, f.fund_id)
    tags: dict[str, Any] = {"offer_id": f.offer_id, "fund_id": f.fund_id}
    postings = accounts.transfer(accounts.account(accounts.COMMITTED, p.id), cash, sign * f.amount, p.currency, **tags)
    if f.overhead and f.fund_id is not None:
        over = accounts.account(accounts.OVERHEAD, f.fund_id)
        postings += accounts.transfer(over, cash, sign * f.overhead, p.currency, **tags)
    return postings


async def book_spent(session: AsyncSession, p: Procurement, f: ProcurementFunding) -> None:
    """One source's share of a placed order (and its fund's overhead on it)."""
    await LedgerRepository(session).book(
        ref=f"spent:{p.id}:{f.source}",
        kind=LedgerKind.spent,
        amount=f.amount,
        currency=p.currency,
        offer_id=f.offer_id,
        procurement_id=p.id,
        region_code=p.region_code,
        memo=str(p.supplier.get("name", ""))[:200],
        postings=_spend_postings(p, f, 1),
    )


async def book_purchase_received(session: AsyncSession, p: Procurement, f: ProcurementFunding) -> None:
    """One source's share of an order whose goods arrived: committed no longer, spent."""
    await LedgerRepository(session).book(
        ref=f"purchase_received:{p.id}:{f.source}",
        kind=LedgerKind.goods_received,
        amount=f.amount,
        currency=p.currency,
        offer_id=f.offer_id,
        procurement_id=p.id,
        region_code=p.region_code,
        memo="purchase received",
        postings=accounts.transfer(
            accounts.account(accounts.PURCHASES, p.id),
            accounts.account(accounts.COMMITTED, p.id),
            f.amount,
            p.currency,
            offer_id=f.offer_id,
            fund_id=f.fund_id,
        ),
    )


async def book_refunded(session: AsyncSession, p: Procurement, f: ProcurementFunding, reason: str | None) -> None:
    """One source's share of a cancelled order (and the overhead on it), given back."""
    await LedgerRepository(session).book(
        ref=f"refunded:{p.id}:{f.source}",
        kind=LedgerKind.refunded,
        amount=f.amount,
        currency=p.currency,
        offer_id=f.offer_id,
        procurement_id=p.id,
        region_code=p.region_code,
        memo=reason,
        postings=_spend_postings(p, f, -1),
    )


async def list_ledger(
    session: AsyncSession,
    params: PageParams,
    *,
    kind: LedgerKind | None = None,
    offer_id: uuid.UUID | None = None,
    procurement_id: uuid.UUID | None = None,
    shipment_id: uuid.UUID | None = None,
    region_code: str | None = None,
    fund_id: uuid.UUID | None = None,
) -> tuple[list[LedgerEntry], str | None]:
    return await LedgerRepository(session).search(
        params,
        fund_id=fund_id,
        kind=kind,
        offer_id=offer_id,
        procurement_id=procurement_id,
        shipment_id=shipment_id,
        region_code=region_code,
    )


async def postings_of(session: AsyncSession, entries: list[LedgerEntry]) -> dict[uuid.UUID, list[LedgerPosting]]:
    """Each entry's balanced postings."""
    return await LedgerRepository(session).postings_of([e.id for e in entries])
