"""HTTP endpoints of claims: a partner covers need lines itself; a coordinator of the need's region confirms."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query, Response, status

from services.needs import claims, schemas
from services.needs.dependencies import Coordinator
from services.needs.errors import NeedNotFound
from services.needs.models import Claim
from shared.app import SessionDep, service_router
from shared.auth import CurrentPrincipal, settings_of
from shared.errors import Forbidden, problem_responses
from shared.etag import set_etag
from shared.pagination import Page, PageQuery
from shared.settings import Settings
from shared.vocabulary import ClaimStatus

router = service_router(prefix="/v1", tags=["needs"])

SettingsDep = Annotated[Settings, Depends(settings_of)]


def claim_out(claim: Claim, response: Response | None = None) -> schemas.Claim:
    if response is not None:
        set_etag(response, claim.version)
    return schemas.Claim.model_validate(claim)


@router.post(
    "/needs/{need_id}/claims",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(NeedNotFound, Forbidden, claims.ClaimExceedsOpen, claims.ClaimNotPending),
)
async def create_claim(
    need_id: uuid.UUID,
    data: schemas.ClaimCreate,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
) -> schemas.Claim:
    """Claim need lines your organisation covers itself (it must be approved once the registry is on); pending
    until a coordinator of the need's region confirms it, and expires if nobody does in time."""
    claim = await claims.create_claim(session, principal, need_id, data, settings)
    response.headers["Location"] = f"/v1/claims/{claim.id}"
    return claim_out(claim, response)


@router.get("/claims", responses=problem_responses())
async def list_claims(
    principal: CurrentPrincipal,
    session: SessionDep,
    page: PageQuery,
    need_id: uuid.UUID | None = None,
    org: Annotated[str | None, Query(max_length=100)] = None,
    status: ClaimStatus | None = None,
) -> Page[schemas.Claim]:
    """Claims, newest first; filter by need, claiming organisation or status."""
    items, cursor = await claims.list_claims(session, page, need_id=need_id, org=org, status=status)
    return Page(items=[claim_out(c) for c in items], next_cursor=cursor)


@router.get("/claims/{claim_id}", responses=problem_responses(claims.ClaimNotFound))
async def get_claim(
    claim_id: uuid.UUID, principal: CurrentPrincipal, session: SessionDep, response: Response
) -> schemas.Claim:
    """One claim: its lines, the partner, its status and when a pending claim expires."""
    return claim_out(await claims.get_claim(session, claim_id), response)


@router.post(
    "/claims/{claim_id}/confirm",
    responses=problem_responses(claims.ClaimNotFound, Forbidden, claims.ClaimNotPending, claims.ClaimExceedsOpen),
)
async def confirm_claim(
    claim_id: uuid.UUID, principal: Coordinator, session: SessionDep, response: Response
) -> schemas.Claim:
    """Confirm a pending claim (a coordinator whose regions cover the need): the lines' open quantity drops by it;
    refused (409) when the lines no longer have that much open."""
    return claim_out(await claims.confirm_claim(session, principal, claim_id), response)


@router.post(
    "/claims/{claim_id}/withdraw",
    responses=problem_responses(claims.ClaimNotFound, Forbidden, claims.ClaimNotPending),
)
async def withdraw_claim(
    claim_id: uuid.UUID,
    principal: CurrentPrincipal,
    session: SessionDep,
    response: Response,
    data: schemas.ClaimWithdraw | None = None,
) -> schemas.Claim:
    """Withdraw a pending or confirmed claim (the claimant or a coordinator of the need's region); what a
    confirmed claim covered is open again."""
    body = data or schemas.ClaimWithdraw()
    return claim_out(await claims.withdraw_claim(session, principal, claim_id, body), response)
