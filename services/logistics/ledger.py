"""The ledger: money pledged, spent and refunded and in-kind value offered and delivered, in fen. Each entry's
`ref` names the fact it records, so booking the same fact again (a replayed event, a retried request) books
nothing."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.logistics.models import LedgerEntry, Procurement, Shipment
from services.logistics.repository import LedgerRepository
from shared.catalog import get_catalog
from shared.pagination import PageParams


async def book_delivered(session: AsyncSession, shipment: Shipment) -> None:
    """The catalog value of what arrived, per line of a received shipment."""
    catalog = get_catalog()
    ledger = LedgerRepository(session)
    for line in shipment.lines:
        item = catalog.get(line.item_code)
        if not line.quantity_received or item is None:
            continue
        await ledger.book(
            {
                "ref": f"in_kind_delivered:{line.id}",
                "kind": "in_kind_delivered",
                "amount": line.quantity_received * item.unit_value_fen,
                "currency": "CNY",
                "offer_id": line.offer_id,
                "shipment_id": shipment.id,
                "region_code": shipment.region_code,
                "item_code": line.item_code,
                "quantity": line.quantity_received,
            }
        )


async def book_spent(session: AsyncSession, p: Procurement, offer_id: uuid.UUID, amount: int) -> None:
    """One pledge's share of a placed order."""
    await LedgerRepository(session).book(
        {
            "ref": f"spent:{p.id}:{offer_id}",
            "kind": "spent",
            "amount": amount,
            "currency": p.currency,
            "offer_id": offer_id,
            "procurement_id": p.id,
            "region_code": p.region_code,
            "memo": str(p.supplier.get("name", ""))[:200],
        }
    )


async def book_refunded(
    session: AsyncSession, p: Procurement, offer_id: uuid.UUID, amount: int, reason: str | None
) -> None:
    """One pledge's share of a cancelled order, given back."""
    await LedgerRepository(session).book(
        {
            "ref": f"refunded:{p.id}:{offer_id}",
            "kind": "refunded",
            "amount": amount,
            "currency": p.currency,
            "offer_id": offer_id,
            "procurement_id": p.id,
            "region_code": p.region_code,
            "memo": reason,
        }
    )


async def list_ledger(
    session: AsyncSession, params: PageParams, **filters: Any
) -> tuple[list[LedgerEntry], str | None]:
    return await LedgerRepository(session).search(params, **filters)
