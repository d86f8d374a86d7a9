"""HTTP endpoints of relief operations, special funds and a fund's ledger."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Request, Response, status

from services.logistics import fund_schemas as schemas
from services.logistics import funds, ledger
from services.logistics.dependencies import Staff
from services.logistics.errors import FundNotFound, OperationNotFound
from services.logistics.models import LedgerEntry
from shared.app import SessionDep, service_router
from shared.auth import require_national
from shared.errors import Forbidden, PreconditionFailed, PreconditionRequired, problem_responses
from shared.etag import if_match_version, set_etag
from shared.operations import UnknownOperation
from shared.pagination import Page, PageQuery
from shared.vocabulary import OperationStatus, RegionPrefix

router = service_router(prefix="/v1", tags=["logistics"])


async def transactions_out(session: SessionDep, entries: list[LedgerEntry]) -> list[schemas.LedgerTransaction]:
    """Ledger entries as transactions with their balanced postings."""
    postings = await ledger.postings_of(session, entries)
    return [
        schemas.LedgerTransaction.model_validate(
            {
                **{k: getattr(e, k) for k in schemas.LedgerTransaction.model_fields if hasattr(e, k)},
                "at": e.created_at,
                "entries": [schemas.Posting.model_validate(p) for p in postings[e.id]],
            }
        )
        for e in entries
    ]


# --- operations -------------------------------------------------------------------------------------------------


@router.post("/operations", status_code=status.HTTP_201_CREATED, responses=problem_responses(Forbidden))
async def create_operation(
    data: schemas.OperationCreate, principal: Staff, session: SessionDep, response: Response
) -> schemas.Operation:
    """Set up a relief operation (专项行动): a name, a region scope and dates; it starts active."""
    o = await funds.create_operation(session, principal, data)
    set_etag(response, o.version)
    response.headers["Location"] = f"/v1/operations/{o.id}"
    return schemas.Operation.model_validate(o)


@router.get("/operations", responses=problem_responses(Forbidden))
async def list_operations(
    principal: Staff,
    session: SessionDep,
    page: PageQuery,
    status: OperationStatus | None = None,
    region_code: Annotated[RegionPrefix | None, Query(description="Region code prefix.")] = None,
) -> Page[schemas.Operation]:
    """Relief operations, newest first."""
    items, cursor = await funds.list_operations(session, page, status=status, region_code=region_code)
    return Page(items=[schemas.Operation.model_validate(o) for o in items], next_cursor=cursor)


@router.get("/operations/{operation_id}", responses=problem_responses(OperationNotFound, Forbidden))
async def get_operation(
    operation_id: uuid.UUID, principal: Staff, session: SessionDep, response: Response
) -> schemas.Operation:
    """One relief operation."""
    o = await funds.get_operation(session, operation_id)
    set_etag(response, o.version)
    return schemas.Operation.model_validate(o)


@router.patch(
    "/operations/{operation_id}",
    responses=problem_responses(OperationNotFound, Forbidden, PreconditionFailed, PreconditionRequired),
)
async def update_operation(
    operation_id: uuid.UUID,
    data: schemas.OperationUpdate,
    request: Request,
    principal: Staff,
    session: SessionDep,
    response: Response,
) -> schemas.Operation:
    """Change an operation's name, scope or dates, or close it (If-Match)."""
    expected = if_match_version(request)
    o = await funds.update_operation(session, principal, operation_id, data, expected)
    set_etag(response, o.version)
    return schemas.Operation.model_validate(o)


# --- funds ------------------------------------------------------------------------------------------------------


@router.post("/funds", status_code=status.HTTP_201_CREATED, responses=problem_responses(Forbidden, UnknownOperation))
async def create_fund(
    data: schemas.FundCreate, principal: Staff, session: SessionDep, response: Response
) -> schemas.Fund:
    """Set up a special fund (专项基金): pledges go into it, its restrictions add to theirs, and it books its
    overhead share of every purchase it pays."""
    f = await funds.create_fund(session, principal, data)
    set_etag(response, f.version)
    response.headers["Location"] = f"/v1/funds/{f.id}"
    return (await funds.fund_out(session, [f]))[0]


@router.get("/funds", responses=problem_responses(Forbidden))
async def list_funds(
    principal: Staff,
    session: SessionDep,
    page: PageQuery,
    operation_id: uuid.UUID | None = None,
    public: bool | None = None,
) -> Page[schemas.Fund]:
    """Special funds with their figures, newest first."""
    items, cursor = await funds.list_funds(session, page, operation_id=operation_id, public=public)
    return Page(items=await funds.fund_out(session, items), next_cursor=cursor)


@router.get("/funds/{fund_id}", responses=problem_responses(FundNotFound, Forbidden))
async def get_fund(fund_id: uuid.UUID, principal: Staff, session: SessionDep, response: Response) -> schemas.Fund:
    """One fund with its figures: pledged, received, committed, spent, overhead, refunded and available, each a
    sum of its ledger postings."""
    f = await funds.get_fund(session, fund_id)
    set_etag(response, f.version)
    return (await funds.fund_out(session, [f]))[0]


@router.patch(
    "/funds/{fund_id}",
    responses=problem_responses(FundNotFound, Forbidden, UnknownOperation, PreconditionFailed, PreconditionRequired),
)
async def update_fund(
    fund_id: uuid.UUID,
    data: schemas.FundUpdate,
    request: Request,
    principal: Staff,
    session: SessionDep,
    response: Response,
) -> schemas.Fund:
    """Change a fund's name, operation, restrictions, overhead share or flags (If-Match)."""
    expected = if_match_version(request)
    f = await funds.update_fund(session, principal, fund_id, data, expected)
    set_etag(response, f.version)
    return (await funds.fund_out(session, [f]))[0]


@router.get("/funds/{fund_id}/ledger", responses=problem_responses(FundNotFound, Forbidden))
async def fund_ledger(
    fund_id: uuid.UUID, principal: Staff, session: SessionDep, page: PageQuery
) -> Page[schemas.LedgerTransaction]:
    """The fund's transactions, newest first, each with its balanced postings (national coordinators: a fund's
    money is the whole fund's, whatever region it was spent in)."""
    require_national(principal, what="A fund's ledger")
    await funds.get_fund(session, fund_id)
    items, cursor = await ledger.list_ledger(session, page, fund_id=fund_id)
    return Page(items=await transactions_out(session, items), next_cursor=cursor)
