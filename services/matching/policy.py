"""The scoring policy's stored versions: the current one, a new one written under If-Match, its API form."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.matching import events, schemas
from services.matching.errors import InvalidPolicy
from services.matching.models import PolicyVersion
from services.matching.repository import PolicyRepository
from services.matching.scoring import Policy
from shared.auth import Principal, require_national
from shared.errors import PreconditionFailed
from shared.etag import IfMatch, check_version
from shared.events import publish


async def current_policy(session: AsyncSession) -> tuple[Policy, PolicyVersion | None]:
    row = await PolicyRepository(session).latest()
    if row is None:
        return Policy(), None
    return Policy.from_json(row.body, row.version), row


def policy_out(policy: Policy, row: PolicyVersion | None) -> schemas.Policy:
    body = policy.to_json()
    return schemas.Policy.model_validate(
        {
            **body,
            "tiers": [{"share": s, "value": v} for s, v in body["tiers"]],
            "version": policy.version,
            "created_at": row.created_at if row else None,
            "created_by": row.created_by if row else None,
        }
    )


async def put_policy(
    session: AsyncSession, principal: Principal, body: schemas.PolicyBody, expected: IfMatch
) -> tuple[Policy, PolicyVersion]:
    require_national(principal, what="The scoring policy")
    current, _ = await current_policy(session)
    check_version(expected, current.version)
    raw = body.model_dump()
    raw["tiers"] = [[t["share"], t["value"]] for t in raw["tiers"]]
    try:
        policy = Policy.from_json(raw, current.version + 1)
    except ValueError as exc:
        raise InvalidPolicy(str(exc)) from exc
    row = await PolicyRepository(session).insert_version(policy.version, policy.to_json(), principal.sub)
    if row is None:
        raise PreconditionFailed("Another policy version was written meanwhile; GET it and retry.")
    await publish(
        session, events.POLICY_UPDATED, events.PolicyData(version=row.version, body=row.body), subject=str(row.version)
    )
    return policy, row
