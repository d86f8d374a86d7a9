"""The ledger: money pledged, spent and refunded and in-kind value offered and delivered, in fen. Each entry's
`ref` names the fact it records, so booking the same fact again (a replayed event, a retried request) books
nothing."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.logistics.models import LedgerEntry, LedgerKind, Procurement, Shipment
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
    session: AsyncSession, offer_id: uuid.UUID, amount: int, currency: str, at: datetime | None
) -> None:
    """A cash pledge, when it is made."""
    await LedgerRepository(session).book(
        ref=f"pledged:{offer_id}",
        kind=LedgerKind.pledged,
        amount=amount,
        currency=currency,
        offer_id=offer_id,
        created_at=at,
    )


async def book_in_kind_offered(
    session: AsyncSession, offer_id: uuid.UUID, lots: list[dict[str, Any]], at: datetime | None
) -> None:
    """The catalog value of donated goods, when they are offered."""
    await LedgerRepository(session).book(
        ref=f"in_kind_offered:{offer_id}",
        kind=LedgerKind.in_kind_offered,
        amount=goods_value(lots),
        currency="CNY",
        offer_id=offer_id,
        created_at=at,
    )


async def book_pledge_withdrawn(session: AsyncSession, offer_id: uuid.UUID, unspent: int, currency: str) -> None:
    """What a withdrawn pledge still held unspent, taken out again."""
    await LedgerRepository(session).book(
        ref=f"pledge_withdrawn:{offer_id}",
        kind=LedgerKind.pledge_withdrawn,
        amount=-unspent,
        currency=currency,
        offer_id=offer_id,
    )


async def book_delivered(session: AsyncSession, shipment: Shipment) -> None:
    """The catalog value of what arrived, per line of a received shipment."""
    catalog = get_catalog()
    ledger = LedgerRepository(session)
    for line in shipment.lines:
        item = catalog.get(line.item_code)
        if not line.quantity_received or item is None:
            continue
        await ledger.book(
            ref=f"in_kind_delivered:{line.id}",
            kind=LedgerKind.in_kind_delivered,
            amount=line.quantity_received * item.unit_value_fen,
            currency="CNY",
            offer_id=line.offer_id,
            shipment_id=shipment.id,
            region_code=shipment.region_code,
            item_code=line.item_code,
            quantity=line.quantity_received,
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
        await ledger.book(
            ref=f"written_off:{line.id}",
            kind=LedgerKind.written_off,
            amount=line.quantity_written_off * item.unit_value_fen,
            currency="CNY",
            offer_id=line.offer_id,
            shipment_id=shipment.id,
            region_code=shipment.region_code,
            item_code=line.item_code,
            quantity=line.quantity_written_off,
            memo=str(line.discrepancy_code),
        )


async def book_spent(session: AsyncSession, p: Procurement, offer_id: uuid.UUID, amount: int) -> None:
    """One pledge's share of a placed order."""
    await LedgerRepository(session).book(
        ref=f"spent:{p.id}:{offer_id}",
        kind=LedgerKind.spent,
        amount=amount,
        currency=p.currency,
        offer_id=offer_id,
        procurement_id=p.id,
        region_code=p.region_code,
        memo=str(p.supplier.get("name", ""))[:200],
    )


async def book_refunded(
    session: AsyncSession, p: Procurement, offer_id: uuid.UUID, amount: int, reason: str | None
) -> None:
    """One pledge's share of a cancelled order, given back."""
    await LedgerRepository(session).book(
        ref=f"refunded:{p.id}:{offer_id}",
        kind=LedgerKind.refunded,
        amount=amount,
        currency=p.currency,
        offer_id=offer_id,
        procurement_id=p.id,
        region_code=p.region_code,
        memo=reason,
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
) -> tuple[list[LedgerEntry], str | None]:
    return await LedgerRepository(session).search(
        params,
        kind=kind,
        offer_id=offer_id,
        procurement_id=procurement_id,
        shipment_id=shipment_id,
        region_code=region_code,
    )
