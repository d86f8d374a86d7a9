"""Queries of the webhooks service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, select, text, update
from sqlalchemy.dialects.postgresql import insert

from services.webhooks.models import Attempt, Delivery, Endpoint
from services.webhooks.schemas import DeliveryStatus
from shared import wakeup
from shared.db import RepositoryBase
from shared.pagination import PageParams, paginate

DELIVERY_CHANNEL = "webhooks.delivery"  # shared.wakeup: deliveries owed or due again, for the dispatchers


class EndpointRepository(RepositoryBase[Endpoint]):
    model = Endpoint

    async def search(
        self, params: PageParams, *, org: str | None, enabled: bool | None
    ) -> tuple[list[Endpoint], str | None]:
        stmt = select(Endpoint)
        if org is not None:
            stmt = stmt.where(Endpoint.org == org)
        if enabled is not None:
            stmt = stmt.where(Endpoint.enabled.is_(enabled))
        return await paginate(self.session, stmt, Endpoint.created_at, Endpoint.id, params)

    async def remove(self, endpoint: Endpoint) -> None:
        """The endpoint goes, and its deliveries and their attempts with it (ON DELETE CASCADE)."""
        await self.session.delete(endpoint)
        await self.session.flush()

    async def enabled(self) -> list[Endpoint]:
        return list((await self.session.execute(select(Endpoint).where(Endpoint.enabled.is_(True)))).scalars())

    async def clear_failing(self, ids: list[uuid.UUID]) -> None:
        if ids:
            await self.session.execute(
                update(Endpoint)
                .where(Endpoint.id.in_(ids), Endpoint.failing_since.is_not(None))
                .values(failing_since=None)
            )

    async def mark_failing(self, ids: list[uuid.UUID]) -> None:
        """Failing since now, unless already failing."""
        if ids:
            await self.session.execute(
                update(Endpoint)
                .where(Endpoint.id.in_(ids), Endpoint.failing_since.is_(None))
                .values(failing_since=func.now())
            )

    async def lock_enabled(self, ids: list[uuid.UUID]) -> list[Endpoint]:
        """The enabled endpoints among `ids`, locked until the transaction ends."""
        stmt = select(Endpoint).where(Endpoint.id.in_(ids), Endpoint.enabled.is_(True)).with_for_update()
        return list((await self.session.execute(stmt)).scalars())


class DeliveryRepository(RepositoryBase[Delivery]):
    model = Delivery

    async def add_many(self, rows: list[dict[str, Any]]) -> None:
        """Owe these deliveries; an event already owed to an endpoint (a redelivered event) is owed once."""
        if rows:
            table = Delivery.__table__
            assert isinstance(table, Table)
            stmt = insert(table).on_conflict_do_nothing(index_elements=["endpoint_id", "event_id"])
            await self.session.execute(stmt, rows)
            await self.wake_dispatchers()

    async def wake_dispatchers(self) -> None:
        """Deliveries are due now (owed, requeued, their endpoint enabled): the dispatchers try at commit."""
        await wakeup.notify_at_commit(self.session, DELIVERY_CHANNEL)

    async def next_due(self, busy: list[uuid.UUID]) -> float | None:
        """Seconds until the next delivery of an enabled endpoint (none of the `busy` ones) is due, a lease
        running out included (≤ 0: one is due now); None when no delivery is pending."""
        sql = text(
            """
            SELECT EXTRACT(EPOCH FROM min(d.next_attempt_at) - now())
              FROM webhooks.delivery d JOIN webhooks.endpoint e ON e.id = d.endpoint_id
             WHERE d.status = 'pending' AND e.enabled AND NOT (d.endpoint_id = ANY(CAST(:busy AS uuid[])))
            """
        )
        seconds = (await self.session.execute(sql, {"busy": busy})).scalar()
        return None if seconds is None else float(seconds)

    async def search(
        self,
        endpoint_id: uuid.UUID,
        params: PageParams,
        *,
        status: DeliveryStatus | None,
        event_type: str | None,
        event_id: str | None,
        since: datetime | None,
    ) -> tuple[list[Delivery], str | None]:
        stmt = select(Delivery).where(Delivery.endpoint_id == endpoint_id)
        if status:
            stmt = stmt.where(Delivery.status == status)
        if event_type:
            stmt = stmt.where(Delivery.event_type == event_type)
        if event_id:
            stmt = stmt.where(Delivery.event_id == event_id)
        if since:
            stmt = stmt.where(Delivery.created_at >= since)
        return await paginate(self.session, stmt, Delivery.created_at, Delivery.id, params)

    async def attempts(self, delivery_id: uuid.UUID) -> list[Attempt]:
        # In time order: after a retry or replay the numbers start over at 1.
        stmt = select(Attempt).where(Attempt.delivery_id == delivery_id).order_by(Attempt.started_at, Attempt.number)
        return list((await self.session.execute(stmt)).scalars())

    async def requeue(
        self,
        *,
        delivery_id: uuid.UUID | None = None,
        endpoint_id: uuid.UUID | None = None,
        since: datetime | None = None,
    ) -> int:
        """Send again now: one delivery, or every delivery of an endpoint made since a time. The attempt
        count starts over; the log keeps the earlier attempts. An attempt in flight meanwhile loses its lease:
        its outcome is not recorded, the requeued delivery's own attempts are."""
        stmt = update(Delivery).values(
            status=DeliveryStatus.pending, attempts=0, next_attempt_at=func.now(), lease_id=None, updated_at=func.now()
        )
        if delivery_id is not None:
            stmt = stmt.where(Delivery.id == delivery_id)
        if endpoint_id is not None:
            stmt = stmt.where(Delivery.endpoint_id == endpoint_id)
        if since is not None:
            stmt = stmt.where(Delivery.created_at >= since)
        result = await self.session.execute(stmt.returning(Delivery.id))
        count = len(result.all())
        if count:
            await self.wake_dispatchers()
        return count

    async def claim(
        self,
        limit: int,
        per_endpoint: int,
        busy: list[uuid.UUID],
        lease_seconds: float,
        in_flight: dict[uuid.UUID, int] | None = None,
    ) -> list[Any]:
        """Take due deliveries of enabled endpoints (at most `per_endpoint` each, counting the attempts already
        `in_flight`, none of the `busy` ones) and lease them: another dispatcher sees them again only if this
        one dies before recording the attempt.

        The locking step repeats the due condition: a row another dispatcher leased and committed after this
        statement's snapshot was taken is locked in its new version, and PostgreSQL re-checks the conditions of
        the FOR UPDATE level (not those of an earlier CTE) on that version, so it is dropped, not claimed twice.
        The candidates are an array computed once: a join would let the planner loop over `due` per row."""
        sql = text(
            """
            WITH flying AS (
                SELECT * FROM unnest(CAST(:flying_ids AS uuid[]), CAST(:flying_counts AS int[])) AS f(endpoint_id, n)
            ), due AS (
                SELECT d.id, row_number() OVER (PARTITION BY d.endpoint_id ORDER BY d.next_attempt_at)
                             + coalesce((SELECT f.n FROM flying f WHERE f.endpoint_id = d.endpoint_id), 0) AS n
                  FROM webhooks.delivery d JOIN webhooks.endpoint e ON e.id = d.endpoint_id
                 WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND e.enabled
                   AND NOT (d.endpoint_id = ANY(CAST(:busy AS uuid[])))
                 ORDER BY d.next_attempt_at
                 LIMIT :scan
            ), picked AS (
                SELECT d.id FROM webhooks.delivery d
                 WHERE d.id = ANY(ARRAY(SELECT due.id FROM due WHERE due.n <= :per_endpoint))
                   AND d.status = 'pending' AND d.next_attempt_at <= now()
                 ORDER BY d.next_attempt_at
                 LIMIT :limit
                   FOR UPDATE OF d SKIP LOCKED
            )
            UPDATE webhooks.delivery d
               SET next_attempt_at = now() + make_interval(secs => :lease), lease_id = gen_random_uuid(),
                   updated_at = now()
              FROM picked, webhooks.endpoint e
             WHERE d.id = picked.id AND e.id = d.endpoint_id
            RETURNING d.id, d.endpoint_id, d.event_id, d.event_type, d.event_time, d.payload, d.attempts, d.lease_id,
                      e.url, e.secret, e.previous_secret, e.previous_secret_expires_at
            """
        )
        flying = in_flight or {}
        params = {
            "busy": busy,
            "flying_ids": list(flying),
            "flying_counts": list(flying.values()),
            "scan": limit * 4,
            "per_endpoint": per_endpoint,
            "limit": limit,
            "lease": lease_seconds,
        }
        return list((await self.session.execute(sql, params)).all())

    async def settle(self, outcomes: list[dict[str, Any]]) -> set[tuple[uuid.UUID, uuid.UUID]]:
        """Record attempt outcomes on their deliveries, each only while the lease it was attempted under is
        still the delivery's (compare-and-set): an outcome whose lease ran out and was claimed again, or was
        requeued meanwhile, changes nothing. Returns the (delivery, lease) pairs settled."""
        if not outcomes:
            return set()
        sql = text(
            """
            UPDATE webhooks.delivery d
               SET attempts = o.attempts, status = o.status, next_attempt_at = o.next_attempt_at,
                   last_status_code = o.last_status_code, last_error = o.last_error,
                   succeeded_at = coalesce(o.succeeded_at, d.succeeded_at), lease_id = NULL, updated_at = now()
              FROM unnest(CAST(:ids AS uuid[]), CAST(:leases AS uuid[]), CAST(:attempts AS int[]),
                          CAST(:statuses AS text[]), CAST(:next_attempts AS timestamptz[]),
                          CAST(:status_codes AS int[]), CAST(:errors AS text[]), CAST(:succeeded AS timestamptz[]))
                   AS o(id, lease_id, attempts, status, next_attempt_at, last_status_code, last_error, succeeded_at)
             WHERE d.id = o.id AND d.lease_id = o.lease_id
            RETURNING d.id, o.lease_id
            """
        )
        columns = {
            "ids": "id",
            "leases": "lease_id",
            "attempts": "attempts",
            "statuses": "status",
            "next_attempts": "next_attempt_at",
            "status_codes": "last_status_code",
            "errors": "last_error",
            "succeeded": "succeeded_at",
        }
        params = {param: [o[key] for o in outcomes] for param, key in columns.items()}
        return {(row.id, row.lease_id) for row in await self.session.execute(sql, params)}

    async def add_attempts(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(insert(Attempt), rows)
