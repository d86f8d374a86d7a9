"""`Idempotency-Key` on POST: the first response is stored and replayed for retries of the same request.

Records are kept for `idempotency_ttl_hours` (24 h by default, never less): within that window the same key and
body get the stored response (marked `Idempotent-Replayed: true`), the same key with another body gets 422,
and a retry while the first request is still running gets 409. Keys are scoped to the caller (org and sub);
the route's authorization runs before any of this (shared.app.TransactionalRoute).
The stored response is written in the same transaction as the state change it describes, so a crash can
never leave a change without its record or a record without its change. A request that fails (any error
response) releases its key, so the client may retry it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi import Request, Response
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.db import KitTables
from shared.errors import Conflict, InvalidRequest
from shared.settings import Settings

REPLAYED_HEADER = "Idempotent-Replayed"
_KEPT_HEADERS = ("content-type", "location", "etag")


class IdempotencyKeyInFlight(Conflict):
    slug, title = "idempotency-key-in-flight", "A request with this Idempotency-Key is still being processed"


class IdempotencyKeyReused(InvalidRequest):
    slug, title = "idempotency-key-reused", "This Idempotency-Key was used for a different request"


@dataclass
class IdempotentRequest:
    kit: KitTables
    principal: str
    key: str
    method: str
    path: str
    request_hash: str

    @classmethod
    async def from_request(cls, request: Request, kit: KitTables, principal: str) -> IdempotentRequest:
        key = request.headers["idempotency-key"].strip()
        if not key or len(key) > 255 or "\x00" in key:
            raise InvalidRequest(
                "Idempotency-Key must be 1 to 255 characters, none of them NUL.",
                errors=[{"loc": ["header", "Idempotency-Key"], "msg": "1 to 255 characters, no NUL"}],
            )
        body = await request.body()
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        digest = hashlib.sha256()
        for part in (request.method.encode(), path.encode("utf-8", "surrogatepass"), _canonical(body)):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
        # The hash covers the whole URL; the stored path only names the request in messages (its column is bounded,
        # and PostgreSQL text holds no NUL, which a percent-encoded path may carry).
        shown = path[:2000].replace("\x00", "\ufffd")
        return cls(kit, principal, key, request.method, shown, digest.hexdigest())

    async def claim(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> Response | None:
        """Claim the key for this request, or return the stored response to replay. Raises 409 / 422."""
        t = self.kit.idempotency
        ttl = timedelta(hours=max(settings.idempotency_ttl_hours, 24))
        lock = timedelta(seconds=settings.idempotency_lock_seconds)
        async with sessionmaker() as session, session.begin():
            stmt = insert(t).values(
                principal=self.principal,
                key=self.key,
                method=self.method,
                path=self.path,
                request_hash=self.request_hash,
                state="in_flight",
                locked_until=func.now() + lock,
                expires_at=func.now() + ttl,
            )
            claim = stmt.on_conflict_do_update(
                index_elements=[t.c.principal, t.c.key],
                set_={
                    "method": stmt.excluded.method,
                    "path": stmt.excluded.path,
                    "request_hash": stmt.excluded.request_hash,
                    "state": "in_flight",
                    "response_status": None,
                    "response_headers": None,
                    "response_body": None,
                    "locked_until": stmt.excluded.locked_until,
                    "created_at": func.now(),
                    "expires_at": stmt.excluded.expires_at,
                },
                # Take over an expired record, or one whose first request was abandoned mid-flight.
                where=or_(
                    t.c.expires_at < func.now(),
                    and_(
                        t.c.state == "in_flight",
                        t.c.locked_until < func.now(),
                        t.c.request_hash == stmt.excluded.request_hash,
                    ),
                ),
            ).returning(t.c.key)
            if (await session.execute(claim)).first() is not None:
                return None
            row = (
                (await session.execute(select(t).where(t.c.principal == self.principal, t.c.key == self.key)))
                .mappings()
                .one()
            )
        if row["request_hash"] != self.request_hash:
            raise IdempotencyKeyReused(
                f"Idempotency-Key {self.key!r} was first used for {row['method']} {row['path']} with another body."
            )
        if row["state"] != "done":
            raise IdempotencyKeyInFlight(headers={"Retry-After": "1"})
        headers = dict(row["response_headers"] or {})
        headers[REPLAYED_HEADER] = "true"
        return Response(content=row["response_body"], status_code=row["response_status"], headers=headers)

    async def complete(self, session: AsyncSession, response: Response) -> None:
        """Store the response, in the request's own transaction."""
        t = self.kit.idempotency
        headers = {k: v for k, v in response.headers.items() if k.lower() in _KEPT_HEADERS}
        await session.execute(
            update(t)
            .where(t.c.principal == self.principal, t.c.key == self.key)
            .values(
                state="done",
                response_status=response.status_code,
                response_headers=headers,
                response_body=bytes(response.body),
            )
        )

    async def release(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        t = self.kit.idempotency
        async with sessionmaker() as session, session.begin():
            await session.execute(
                delete(t).where(t.c.principal == self.principal, t.c.key == self.key, t.c.state == "in_flight")
            )


def _canonical(body: bytes) -> bytes:
    """JSON bodies compare by content, not by key order or white space. Never raises: a body that is not JSON,
    or that cannot be written back as UTF-8 JSON (nested too deep, a lone surrogate), compares by its bytes,
    and the route then answers it as it would without a key."""
    try:
        value: Any = json.loads(body)
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    except (ValueError, RecursionError):  # UnicodeDecodeError and UnicodeEncodeError are ValueErrors
        return body


async def purge_expired(session: AsyncSession, kit: KitTables) -> int:
    t = kit.idempotency
    result = await session.execute(delete(t).where(t.c.expires_at < func.now()))
    return int(getattr(result, "rowcount", 0) or 0)
