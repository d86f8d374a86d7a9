"""Relief operations (专项行动) and special funds (专项基金): set up and changed by coordinators, published to the
other services; a fund's figures are read off the ledger (services.logistics.accounts)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.logistics import accounts, events
from services.logistics import fund_schemas as schemas
from services.logistics.errors import FundNotFound, FundUnavailable, OperationNotFound
from services.logistics.funds_repository import AccountRepository, FundRepository, OperationRepository
from services.logistics.models import Fund, Operation
from shared.auth import Principal, require_national
from shared.db import utcnow
from shared.errors import InvalidRequest
from shared.etag import IfMatch, check_version
from shared.events import EventType, publish
from shared.operations import UnknownOperation
from shared.pagination import PageParams
from shared.restrictions import Restrictions
from shared.vocabulary import OperationStatus

# --- operations -------------------------------------------------------------------------------------------------


def _operation_event(o: Operation) -> events.OperationData:
    return events.OperationData.model_validate(o, from_attributes=True)


async def _emit_operation(session: AsyncSession, type_: EventType, o: Operation) -> None:
    await session.flush()
    await publish(session, type_, _operation_event(o), subject=str(o.id))


async def get_operation(session: AsyncSession, operation_id: uuid.UUID, *, for_update: bool = False) -> Operation:
    found = await OperationRepository(session).get(operation_id, for_update=for_update)
    if found is None:
        raise OperationNotFound(f"No relief operation {operation_id}.")
    return found


async def list_operations(
    session: AsyncSession, params: PageParams, *, status: OperationStatus | None, region_code: str | None
) -> tuple[list[Operation], str | None]:
    return await OperationRepository(session).search(params, status=status, region_code=region_code)


async def create_operation(session: AsyncSession, principal: Principal, data: schemas.OperationCreate) -> Operation:
    require_national(principal, what="Relief operations")
    now = utcnow()
    o = Operation(
        id=uuid.uuid4(),
        name=data.name,
        region_code=data.region_code,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        status=OperationStatus.active,
        created_by=principal.sub,
        version=1,
        created_at=now,
        updated_at=now,
    )
    OperationRepository(session).add(o)
    await _emit_operation(session, events.OPERATION_CREATED, o)
    return o


async def update_operation(
    session: AsyncSession,
    principal: Principal,
    operation_id: uuid.UUID,
    data: schemas.OperationUpdate,
    expected: IfMatch,
) -> Operation:
    require_national(principal, what="Relief operations")
    o = await get_operation(session, operation_id, for_update=True)
    check_version(expected, o.version)
    changes = data.model_dump(exclude_unset=True)
    for field in ("name", "region_code", "starts_at", "status"):
        if changes.get(field) is None:
            changes.pop(field, None)
    starts, ends = changes.get("starts_at", o.starts_at), changes.get("ends_at", o.ends_at)
    if ends is not None and ends < starts:
        raise InvalidRequest(
            "ends_at comes before starts_at.", errors=[{"loc": ["body", "ends_at"], "msg": "before starts_at"}]
        )
    if changes:
        for field, value in changes.items():
            setattr(o, field, value)
        o.version += 1
        o.updated_at = utcnow()
        await _emit_operation(session, events.OPERATION_UPDATED, o)
    return o


# --- funds ------------------------------------------------------------------------------------------------------


def _fund_event(f: Fund) -> events.FundData:
    return events.FundData(
        id=f.id,
        name=f.name,
        operation_id=f.operation_id,
        managed_by=f.managed_by,
        currency=f.currency,
        restrictions=f.restrictions,
        overhead_share=float(f.overhead_share),
        spend_pledged=f.spend_pledged,
        public=f.public,
        version=f.version,
        created_at=f.created_at,
    )


async def _emit_fund(session: AsyncSession, type_: EventType, f: Fund) -> None:
    await session.flush()
    await publish(session, type_, _fund_event(f), subject=str(f.id))


async def find_fund(session: AsyncSession, fund_id: uuid.UUID) -> Fund | None:
    return await FundRepository(session).get(fund_id)


async def get_fund(session: AsyncSession, fund_id: uuid.UUID, *, for_update: bool = False) -> Fund:
    found = await FundRepository(session).get(fund_id, for_update=for_update)
    if found is None:
        raise FundNotFound(f"No special fund {fund_id}.")
    return found


async def list_funds(
    session: AsyncSession, params: PageParams, *, operation_id: uuid.UUID | None, public: bool | None
) -> tuple[list[Fund], str | None]:
    return await FundRepository(session).search(params, operation_id=operation_id, public=public)


async def _require_operation(session: AsyncSession, operation_id: uuid.UUID | None) -> None:
    if operation_id is not None and await OperationRepository(session).get(operation_id) is None:
        raise UnknownOperation(
            f"No relief operation {operation_id}.",
            errors=[{"loc": ["body", "operation_id"], "msg": "unknown relief operation"}],
        )


async def create_fund(session: AsyncSession, principal: Principal, data: schemas.FundCreate) -> Fund:
    require_national(principal, what="Special funds")
    await _require_operation(session, data.operation_id)
    now = utcnow()
    f = Fund(
        id=uuid.uuid4(),
        name=data.name,
        operation_id=data.operation_id,
        managed_by=data.managed_by,
        currency=data.currency,
        restrictions=data.restrictions.stored(),
        overhead_share=data.overhead_share,
        spend_pledged=data.spend_pledged,
        public=data.public,
        created_by=principal.sub,
        version=1,
        created_at=now,
        updated_at=now,
    )
    FundRepository(session).add(f)
    await _emit_fund(session, events.FUND_CREATED, f)
    return f


async def update_fund(
    session: AsyncSession, principal: Principal, fund_id: uuid.UUID, data: schemas.FundUpdate, expected: IfMatch
) -> Fund:
    require_national(principal, what="Special funds")
    f = await get_fund(session, fund_id, for_update=True)
    check_version(expected, f.version)
    changes: dict[str, Any] = {k: v for k, v in data.model_dump(exclude_unset=True).items() if v is not None}
    if "operation_id" in changes:
        await _require_operation(session, data.operation_id)
    if data.restrictions is not None:
        changes["restrictions"] = data.restrictions.stored()
    if changes:
        for field, value in changes.items():
            setattr(f, field, value)
        f.version += 1
        f.updated_at = utcnow()
        await _emit_fund(session, events.FUND_UPDATED, f)
    return f


async def fund_out(session: AsyncSession, funds: list[Fund]) -> list[schemas.Fund]:
    """The funds with their figures, each a sum of postings."""
    figures = await accounts.fund_figures(session, [f.id for f in funds])
    out = []
    for f in funds:
        fig = figures[f.id]
        out.append(
            schemas.Fund(
                id=f.id,
                name=f.name,
                operation_id=f.operation_id,
                managed_by=f.managed_by,
                currency=f.currency,
                restrictions=Restrictions.model_validate(f.restrictions),
                overhead_share=float(f.overhead_share),
                spend_pledged=f.spend_pledged,
                public=f.public,
                pledged=fig.pledged,
                received=fig.received,
                committed=fig.committed,
                spent=fig.spent,
                overhead=fig.overhead,
                refunded=fig.refunded,
                available=fig.available,
                version=f.version,
                created_at=f.created_at,
                updated_at=f.updated_at,
            )
        )
    return out


async def fund_for_spending(session: AsyncSession, fund_id: uuid.UUID, currency: str, loc: list[str | int]) -> Fund:
    """A fund that may pay an order in `currency`; 409 otherwise."""
    fund = await FundRepository(session).get(fund_id)
    if fund is None:
        raise FundUnavailable(
            f"Fund {fund_id} is not known.", errors=[{"loc": [*loc, "fund_id"], "msg": "unknown fund"}]
        )
    if fund.currency != currency:
        raise FundUnavailable(
            f"Fund {fund.name} keeps {fund.currency}, the order is in {currency}.",
            errors=[{"loc": [*loc, "fund_id"], "msg": "currency differs"}],
        )
    return fund


async def lock_for_spending(session: AsyncSession, fund_id: uuid.UUID) -> None:
    await AccountRepository(session).lock_fund(fund_id)
