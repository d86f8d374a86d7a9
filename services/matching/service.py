"""Business rules of the matching service that span its parts: an allocation run followed by the auto-accept
of its best proposals, and the matching KPIs. Policy, runs, proposals and continuous matching have modules of
their own."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.matching import reports, schemas
from services.matching.component import Changed, component_of
from services.matching.decisions import accept_automatically
from services.matching.models import AllocationRun, Proposal
from services.matching.policy import current_policy
from services.matching.runs import propose
from shared.db import utcnow


async def run_allocation(
    session: AsyncSession,
    *,
    scope: schemas.RunScope,
    trigger: str,
    actor: str,
    stop: asyncio.Event | None = None,
    changed: Changed | None = None,
    auto_accept: bool = True,
) -> tuple[AllocationRun, list[Proposal]]:
    """An allocation run under the current policy (see `runs.propose`), then (unless not `auto_accept`: the
    caller does it once the run committed, `accept_committed`) the auto-accept of the proposals scoring above
    the policy's threshold. Once `stop` is set it raises RunAbandoned at its next step. With
    `changed` (a continuous run whose marks named the lines and lots that changed) it reads only their component,
    unless that is past its bounds (services.matching.component)."""
    policy, _ = await current_policy(session)
    component = None
    if changed is not None and scope.item_codes:
        component = await component_of(
            session,
            tuple(scope.item_codes),
            changed.lines,
            changed.lots,
            policy=policy,
            now=utcnow(),
            bounds=changed.bounds,
        )
    run, proposals = await propose(
        session, policy=policy, scope=scope, trigger=trigger, actor=actor, stop=stop, component=component
    )
    if auto_accept and policy.auto_accept_score is not None:
        await accept_automatically(session, run.id, policy.auto_accept_score, stop)
    return run, proposals


async def accept_committed(session: AsyncSession, run_id: uuid.UUID, stop: asyncio.Event | None = None) -> None:
    """The auto-accept of a committed run's proposals (under the current policy's threshold), each accept in
    transactions of its own: the run's locks were let go with its commit, before supply is called."""
    policy, _ = await current_policy(session)
    if policy.auto_accept_score is not None:
        await accept_automatically(session, run_id, policy.auto_accept_score, stop, in_run=False)


async def kpis(session: AsyncSession, level: int, region_code: str | None) -> schemas.KpiReport:
    rows = await reports.kpi_rows(session, level, region_code)
    items = [
        schemas.RegionKpi(
            region_code=region,
            lines=int(n),
            quantity=int(qty or 0),
            matched=int(matched or 0),
            fill_rate=round(float(matched or 0) / float(qty), 4) if qty else 0.0,
            matched_lines=int(matched_lines),
            median_time_to_match_seconds=None if p50 is None else round(float(p50), 3),
            p90_time_to_match_seconds=None if p90 is None else round(float(p90), 3),
        )
        for region, n, qty, matched, matched_lines, p50, p90 in rows
    ]
    return schemas.KpiReport(level=level, items=items)
