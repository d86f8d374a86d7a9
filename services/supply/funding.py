"""What supply knows of logistics' relief operations and special funds, and the rules it checks with it: an
offer names an active operation it has heard of; a cash pledge goes into a known fund of its own currency, and
belongs to that fund's operation."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.supply import schemas
from services.supply.errors import FundCurrencyMismatch, FundOperationMismatch, UnknownFund
from services.supply.models import Offer
from services.supply.repository import FundViewRepository, OperationViewRepository
from shared.events import CloudEvent
from shared.operations import OPERATION_EVENTS, operation_row, require_open_operation

FUND_EVENTS = frozenset({"reliefhub.logistics.fund.created", "reliefhub.logistics.fund.updated"})


async def on_funding_event(session: AsyncSession, event: CloudEvent) -> None:
    """logistics.events → supply's copies of operations and funds (newest version wins); others are ignored."""
    if event.type in OPERATION_EVENTS:
        await OperationViewRepository(session).keep_newest(operation_row(event.data))
    elif event.type in FUND_EVENTS:
        await FundViewRepository(session).keep_newest(fund_row(event.data))


def fund_row(data: dict[str, Any]) -> dict[str, Any]:
    operation_id = data.get("operation_id")
    return {
        "id": uuid.UUID(str(data["id"])),
        "name": str(data.get("name") or "")[:200],
        "currency": str(data["currency"]),
        "operation_id": uuid.UUID(str(operation_id)) if operation_id else None,
        "restrictions": data.get("restrictions") or {},
        "version": int(data.get("version") or 0),
    }


async def offer_operation(session: AsyncSession, data: schemas.OfferCreate) -> uuid.UUID | None:
    """The operation a new offer belongs to: the one it names, else its fund's; 422 when the fund is unknown or
    of another currency, when the offer names another operation than its fund's, or the operation is not an
    active one supply knows."""
    operation_id = data.operation_id
    if data.fund_id is not None:
        fund = await FundViewRepository(session).get(data.fund_id)
        loc: list[str | int] = ["body", "fund_id"]
        if fund is None:
            raise UnknownFund(f"No special fund {data.fund_id}.", errors=[{"loc": loc, "msg": "unknown fund"}])
        if fund.currency != data.currency:
            raise FundCurrencyMismatch(
                f"The fund {fund.name} keeps {fund.currency}; the pledge is in {data.currency}.",
                errors=[{"loc": ["body", "currency"], "msg": f"the fund keeps {fund.currency}"}],
            )
        if fund.operation_id is not None:
            if operation_id is not None and operation_id != fund.operation_id:
                raise FundOperationMismatch(
                    f"The fund {fund.name} belongs to operation {fund.operation_id}, not {operation_id}.",
                    errors=[{"loc": ["body", "operation_id"], "msg": "not the fund's operation"}],
                )
            operation_id = fund.operation_id
    if operation_id is not None:
        field = "operation_id" if data.operation_id is not None else "fund_id"
        view = await OperationViewRepository(session).get(operation_id)
        require_open_operation(view, operation_id, ["body", field])
    return operation_id


async def moved_operation(session: AsyncSession, offer: Offer, operation_id: uuid.UUID | None) -> uuid.UUID | None:
    """The operation an offer moves to on PATCH: an active one supply knows (or none); a pledge into a fund
    stays in its fund's operation (422 otherwise)."""
    if operation_id == offer.operation_id:
        return operation_id
    if offer.fund_id is not None:
        raise FundOperationMismatch(
            "A pledge into a fund belongs to the fund's operation.",
            errors=[{"loc": ["body", "operation_id"], "msg": "the fund's operation"}],
        )
    if operation_id is not None:
        view = await OperationViewRepository(session).get(operation_id)
        require_open_operation(view, operation_id, ["body", "operation_id"])
    return operation_id
