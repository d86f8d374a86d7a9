"""HTTP endpoints of the matching service: candidates, allocation runs, proposals and decisions, policy, KPIs."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Query, Request, Response, status

from services.matching import decisions, policy, runs, schemas, service
from services.matching.dependencies import Coordinator, SiteOrCoordinator, SiteOrStaff, Staff
from services.matching.errors import (
    AlreadyPickedUp,
    InvalidPolicy,
    LogisticsUnavailable,
    LotTaken,
    NeedLineNotFound,
    ProposalNotFound,
    ProposalNotOpen,
    RestrictionExcludes,
    RunNotFound,
    SupplyUnavailable,
)
from services.matching.models import AllocationRun, Proposal
from shared.app import SessionDep, service_router
from shared.auth import Role, require_in_region
from shared.errors import (
    Forbidden,
    PreconditionFailed,
    PreconditionRequired,
    problem_responses,
)
from shared.etag import if_match_version, set_etag, unchanged_since
from shared.pagination import Page, PageQuery, SyncPage, SyncPageQuery, sync_page

router = service_router(prefix="/v1", tags=["matching"])


def run_out(run: AllocationRun, proposals: list[Proposal]) -> schemas.AllocationRun:
    out = schemas.AllocationRun.model_validate(run)
    out.proposals = [schemas.Proposal.model_validate(p) for p in proposals]
    return out


@router.get("/candidates", responses=problem_responses(NeedLineNotFound, Forbidden))
async def list_candidates(need_line_id: uuid.UUID, principal: Staff, session: SessionDep) -> schemas.CandidateList:
    """Feasible lots for one need line, best first, each with its per-factor score breakdown."""
    return await runs.candidates_for_line(session, need_line_id)


@router.post("/allocation-runs", status_code=status.HTTP_201_CREATED, responses=problem_responses(Forbidden))
async def create_allocation_run(
    data: schemas.RunCreate, principal: Coordinator, session: SessionDep, response: Response
) -> schemas.AllocationRun:
    """Allocate available supply to open needs in scope (optimal min-cost flow) and propose the result. A hub's
    coordinator (a token with `regions`) sets `scope.region_code` inside its regions."""
    require_in_region(principal, data.scope.region_code, what="The run's scope")
    run, proposals = await service.run_allocation(session, scope=data.scope, trigger="manual", actor=principal.sub)
    response.headers["Location"] = f"/v1/allocation-runs/{run.id}"
    return run_out(run, proposals)


@router.get("/allocation-runs", responses=problem_responses(Forbidden))
async def list_allocation_runs(principal: Staff, session: SessionDep, page: PageQuery) -> Page[schemas.AllocationRun]:
    """Allocation runs, newest first (without their proposals)."""
    items, cursor = await runs.list_runs(session, page)
    return Page(items=[schemas.AllocationRun.model_validate(r) for r in items], next_cursor=cursor)


@router.get("/allocation-runs/{run_id}", responses=problem_responses(RunNotFound, Forbidden))
async def get_allocation_run(run_id: uuid.UUID, principal: Staff, session: SessionDep) -> schemas.AllocationRun:
    """One allocation run: its scope, objective value, counts, timings and proposals."""
    run, proposals = await runs.get_run(session, run_id)
    return run_out(run, proposals)


@router.get("/proposals", responses=problem_responses(Forbidden))
async def list_proposals(
    principal: SiteOrStaff,
    session: SessionDep,
    page: SyncPageQuery,
    status: schemas.ProposalStatus | None = None,
    need_id: uuid.UUID | None = None,
    offer_id: uuid.UUID | None = None,
    need_line_id: uuid.UUID | None = None,
    region_code: Annotated[str | None, Query(pattern=r"^\d{2,6}$")] = None,
) -> SyncPage[schemas.Proposal]:
    """Proposals, newest first, by status, need, offer, line or region prefix; with `updated_since`, only those
    changed after that point, in change order. Frontline users see the proposals for their own sites' needs."""
    staff = principal.has(Role.coordinator, Role.logistics, Role.working_group, Role.admin)
    items, cursor = await decisions.list_proposals(
        session,
        page,
        status=status,
        need_id=need_id,
        offer_id=offer_id,
        need_line_id=need_line_id,
        region_code=region_code,
        site_org=None if staff else principal.org,
    )
    return sync_page([schemas.Proposal.model_validate(p) for p in items], cursor, page)


@router.get(
    "/proposals/{proposal_id}",
    response_model=schemas.ProposalDetail,
    responses={
        **problem_responses(ProposalNotFound, Forbidden),
        **{304: {"description": "Not modified: If-None-Match names the current ETag."}},
    },
)
async def get_proposal(
    proposal_id: uuid.UUID, principal: Staff, session: SessionDep, request: Request, response: Response
) -> schemas.ProposalDetail | Response:
    """One proposal with its score breakdown and every decision taken on it (the audit of overrides)."""
    proposal = await decisions.get_proposal(session, proposal_id)
    if (unchanged := unchanged_since(request, proposal.version)) is not None:
        return unchanged
    set_etag(response, proposal.version)
    return await decisions.proposal_detail(session, proposal)


@router.post(
    "/proposals/{proposal_id}/accept",
    response_model=schemas.Proposal,
    responses=problem_responses(
        ProposalNotFound, Forbidden, ProposalNotOpen, LotTaken, RestrictionExcludes, SupplyUnavailable
    ),
)
async def accept_proposal(
    proposal_id: uuid.UUID,
    principal: Coordinator,
    session: SessionDep,
    response: Response,
    data: schemas.AcceptRequest | None = None,
) -> schemas.Proposal:
    """Accept a proposal (optionally a smaller quantity): its quantity is reserved in supply."""
    proposal = await decisions.accept(session, principal, proposal_id, (data or schemas.AcceptRequest()).quantity)
    set_etag(response, proposal.version)
    return schemas.Proposal.model_validate(proposal)


@router.post(
    "/proposals/{proposal_id}/reject", responses=problem_responses(ProposalNotFound, Forbidden, ProposalNotOpen)
)
async def reject_proposal(
    proposal_id: uuid.UUID, data: schemas.RejectRequest, principal: Coordinator, session: SessionDep, response: Response
) -> schemas.Proposal:
    """Reject a proposal with a reason (recorded as an override)."""
    proposal = await decisions.reject(session, principal, proposal_id, data.reason)
    set_etag(response, proposal.version)
    return schemas.Proposal.model_validate(proposal)


@router.post(
    "/proposals/{proposal_id}/decline",
    responses=problem_responses(
        ProposalNotFound, Forbidden, ProposalNotOpen, AlreadyPickedUp, LogisticsUnavailable, SupplyUnavailable
    ),
)
async def decline_proposal(
    proposal_id: uuid.UUID,
    data: schemas.DeclineRequest,
    principal: SiteOrCoordinator,
    session: SessionDep,
    response: Response,
) -> schemas.Proposal:
    """The need's site declines a proposal, with a reason: open, or accepted and not yet picked up (its
    reservation is released and its planned shipment lines withdrawn; 409 `already-picked-up` after pick-up).
    It is rejected and its line matched again without that lot (never proposed to it again)."""
    proposal = await decisions.decline(session, principal, proposal_id, data.reason)
    set_etag(response, proposal.version)
    return schemas.Proposal.model_validate(proposal)


@router.get("/policy", responses=problem_responses())
async def get_policy(principal: Staff, session: SessionDep, response: Response) -> schemas.PolicyRecord:
    """The current scoring policy: factor weights, tiers and thresholds, with its version."""
    current, row = await policy.current_policy(session)
    set_etag(response, current.version)
    return policy.policy_out(current, row)


@router.put("/policy", responses=problem_responses(Forbidden, InvalidPolicy, PreconditionFailed, PreconditionRequired))
async def put_policy(
    data: policy.Policy, request: Request, principal: Coordinator, session: SessionDep, response: Response
) -> schemas.PolicyRecord:
    """Write a new policy version (send If-Match with the current version's ETag)."""
    expected = if_match_version(request)
    written, row = await policy.put_policy(session, principal, data, expected)
    set_etag(response, written.version)
    return policy.policy_out(written, row)


@router.get("/matching-kpis", responses=problem_responses(Forbidden))
async def get_matching_kpis(
    principal: Staff,
    session: SessionDep,
    level: Annotated[
        int, Query(ge=2, le=6, multiple_of=2, description="Group by province (2), city (4) or county (6).")
    ] = 6,
    region_code: Annotated[str | None, Query(pattern=r"^\d{2,6}$")] = None,
) -> schemas.KpiReport:
    """Fill rate and time-to-match per region code prefix."""
    return await service.kpis(session, level, region_code)
