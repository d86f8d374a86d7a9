"""Dependencies of the logistics service."""

from __future__ import annotations

import logging
import time
from typing import Annotated, Any

from fastapi import Depends, Request
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.logistics.errors import TooManyRequests
from shared.auth import Principal, Role, require_roles
from shared.errors import Forbidden
from shared.runtime import Runtime

log = logging.getLogger(__name__)

# Carriers and the logistics group move shipments; the receiving site's frontline records receipt and feedback
# (the service checks it is theirs); coordinators do everything.
Shipper = Annotated[Principal, Depends(require_roles(Role.coordinator, Role.logistics))]
ShipmentActor = Annotated[Principal, Depends(require_roles(Role.coordinator, Role.logistics, Role.frontline))]
Recipient = Annotated[Principal, Depends(require_roles(Role.coordinator, Role.frontline))]
_buyer_roles = require_roles(Role.coordinator, Role.working_group)


async def _buyer(request: Request) -> Principal:
    """Coordinators, and the procurement working group (not every working group)."""
    principal = await _buyer_roles(request)
    if not (principal.is_staff or principal.group == "procurement"):
        raise Forbidden("Procurement is for coordinators and the procurement working group.")
    return principal


Buyer = Annotated[Principal, Depends(_buyer)]
Staff = Annotated[Principal, Depends(require_roles(Role.coordinator))]
# The other services' own tokens (matching withdrawing a declined proposal's goods).
ServiceCaller = Annotated[Principal, Depends(require_roles())]


def _rate_limit(bucket: str, what: str) -> Any:
    """A fixed one-minute window per client address and `bucket`, counted in Redis so every replica shares it.
    When Redis is unreachable the page stays up (it only reads PostgreSQL): the limit fails open."""

    async def check(request: Request) -> None:
        runtime: Runtime = request.app.state.runtime
        limit = runtime.settings.track_requests_per_minute
        client = request.client.host if request.client else "unknown"
        window = int(time.time() // 60)
        key = f"ratelimit:{bucket}:{client}:{window}"
        try:
            async with runtime.redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, 61)
                count, _ = await pipe.execute()
        except (RedisConnectionError, RedisTimeoutError):
            log.warning("%s rate limit skipped: Redis unreachable", bucket)
            return
        if int(count) > limit:
            wait = 60 - int(time.time()) % 60
            raise TooManyRequests(
                f"At most {limit} {what} requests a minute from one address.", headers={"Retry-After": str(wait)}
            )

    return Depends(check)


TrackRateLimit = _rate_limit("track", "tracking")
# The public accounts and the public exports: read by anyone, without a token.
PublicRateLimit = _rate_limit("public", "public")
