"""The dispatcher: sends due deliveries, signed per the Standard Webhooks spec, and records their attempts.

Due deliveries are claimed from PostgreSQL with a lease, so a worker that dies mid-attempt loses nothing (the
lease runs out and any dispatcher takes them again), and several worker replicas share the work, each delivery
claimed by one of them at a time. An outcome is recorded only while its lease is still the delivery's: an
attempt that outlived its lease is neither counted nor logged beside the one made under the new lease. A slow
or dead endpoint holds at most `webhook_concurrency_per_endpoint` attempts; others are not kept waiting.

The dispatcher sleeps until the next delivery is due, or until woken: deliveries written (shared.wakeup, NOTIFY
from other processes), an attempt ended while it was at its limits, outcomes recorded; at most
`webhook_poll_seconds` (a safety net)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks import Webhook

from services.webhooks import service
from services.webhooks.repository import DELIVERY_CHANNEL, DeliveryRepository, EndpointRepository
from services.webhooks.safety import AddressPolicy, RefusedAddress, guarded_session
from services.webhooks.schemas import DeliveryStatus
from shared import wakeup
from shared.metrics import WEBHOOK_ATTEMPTS
from shared.runtime import Runtime

log = logging.getLogger("reliefhub.webhooks")

MAX_RETRY_AFTER = 24 * 3600.0
RESPONSE_LOG_BYTES = 1024
# The least time between claims that found nothing (a due delivery another dispatcher is leasing is skipped,
# not waited for), and between batches of recorded outcomes (those finished meanwhile go as one batch).
PACE_SECONDS = 0.05


@dataclass
class Outcome:
    delivery_id: uuid.UUID
    endpoint_id: uuid.UUID
    lease_id: uuid.UUID  # the claim it was made under
    number: int  # 1-based attempt number
    started_at: datetime
    duration_ms: int
    status_code: int | None
    response_body: str | None
    error: str | None
    retry_after: float | None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def signature_header(claimed: Any, msg_id: str, at: datetime, body: str) -> str:
    """`v1,<sig>` with the current secret, and during a rotation's grace period also with the old one."""
    signatures = [Webhook(claimed.secret).sign(msg_id, at, body)]
    if claimed.previous_secret and claimed.previous_secret_expires_at and claimed.previous_secret_expires_at > at:
        signatures.append(Webhook(claimed.previous_secret).sign(msg_id, at, body))
    return " ".join(signatures)


def _loggable(value: str) -> str:
    """PostgreSQL text holds no NUL: one in a receiver's answer would fail the whole batch being recorded."""
    return value.replace("\x00", "\ufffd")


def _retry_after(status: int, value: str | None) -> float | None:
    if value is None or status not in (429, 503):
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class Dispatcher:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.settings = rt.settings
        self.policy = AddressPolicy(self.settings.webhook_allowed_networks)
        self.http: aiohttp.ClientSession | None = None
        self.in_flight: dict[uuid.UUID, int] = {}
        self.outcomes: list[Outcome] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self.wake = asyncio.Event()  # deliveries may be due: claim again
        self.limited = False  # the last claim left deliveries for lack of room: an attempt's end wakes it
        self.finished = asyncio.Event()  # outcomes to record
        self.listener: wakeup.PgListener | None = None

    @property
    def lease_seconds(self) -> float:
        return self.settings.webhook_timeout_seconds * 2 + 10

    async def run(self, stop: asyncio.Event) -> None:
        self.http = guarded_session(
            self.policy,
            limit=self.settings.webhook_concurrency,
            # No per-host cap: endpoints of different groups may share a host, and a slow one must not hold
            # up the others; the per-endpoint bound is the claim's (`webhook_concurrency_per_endpoint`).
            limit_per_host=0,
            timeout=self.settings.webhook_timeout_seconds,
            ca_bundle=self.settings.webhook_ca_bundle,
        )
        writer = asyncio.create_task(self._write_loop(stop))
        try:
            async with wakeup.listening(self.rt.engine, DELIVERY_CHANNEL, self.wake, stop) as listener:
                self.listener = listener
                await self._claim_loop(stop)
        finally:
            if self.tasks:
                await asyncio.wait(self.tasks, timeout=self.settings.webhook_timeout_seconds + 1)
                for task in list(self.tasks):  # unrecorded: their leases run out and they are tried again
                    task.cancel()
                await asyncio.gather(*self.tasks, return_exceptions=True)
            await writer
            await self.http.close()

    async def _claim_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.wake.clear()  # what is written from here on wakes the next sleep
            due_in: float | None = None
            try:
                claimed = await self._claim()
                if not claimed and not self.limited:
                    due_in = await self._next_due()
            except Exception as exc:  # the database is away: try again shortly
                log.warning("claiming webhook deliveries failed: %r", exc)
                claimed, due_in = [], PACE_SECONDS * 10
            for row in claimed:
                self.in_flight[row.endpoint_id] = self.in_flight.get(row.endpoint_id, 0) + 1
                task = asyncio.create_task(self._attempt(row))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            if not claimed:
                await self._sleep(stop, due_in)

    async def _sleep(self, stop: asyncio.Event, due_in: float | None) -> None:
        """Until the next delivery is due (`due_in` seconds, at least the pace), woken, or the poll is due."""
        timeout = self.settings.webhook_poll_seconds
        if self.listener is None or not self.listener.listening:
            timeout = min(timeout, 1.0)
        if due_in is not None:
            timeout = min(timeout, max(due_in, PACE_SECONDS))
        await wakeup.wait_any(stop, self.wake, seconds=timeout)

    async def _next_due(self) -> float | None:
        busy = [e for e, n in self.in_flight.items() if n >= self.settings.webhook_concurrency_per_endpoint]
        async with self.rt.sessionmaker() as session:
            return await DeliveryRepository(session).next_due(busy)

    async def _claim(self) -> list[Any]:
        free = self.settings.webhook_concurrency - sum(self.in_flight.values())
        self.limited = free <= 0
        if self.limited:
            return []
        per_endpoint = self.settings.webhook_concurrency_per_endpoint
        busy = [e for e, n in self.in_flight.items() if n >= per_endpoint]
        self.limited = bool(busy)
        async with self.rt.sessionmaker() as session, session.begin():
            return await DeliveryRepository(session).claim(
                free, per_endpoint, busy, self.lease_seconds, in_flight=dict(self.in_flight)
            )

    async def _attempt(self, claimed: Any) -> None:
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        status_code: int | None = None
        response_body: str | None = None
        error: str | None = None
        retry_after: float | None = None
        try:
            # Literal addresses never reach the resolver: check the URL itself too.
            await self.policy.check_url(claimed.url)
            body = service.body_of(claimed.payload, claimed.id, self.settings)
            headers = {
                "content-type": "application/json",
                "webhook-id": claimed.event_id,
                "webhook-timestamp": str(int(started.timestamp())),
                "webhook-signature": signature_header(claimed, claimed.event_id, started, body),
            }
            assert self.http is not None
            async with self.http.post(
                claimed.url, data=body.encode(), headers=headers, allow_redirects=False
            ) as response:
                status_code = response.status
                retry_after = _retry_after(response.status, response.headers.get("retry-after"))
                head = await response.content.read(RESPONSE_LOG_BYTES)
                response_body = _loggable(head.decode("utf-8", "replace")) or None
        except RefusedAddress as exc:
            error = _loggable(f"refused: {exc}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = _loggable(f"{exc.__class__.__name__}: {exc}"[:1000])
        except Exception as exc:  # never lose the outcome of an attempt
            error = _loggable(f"{exc.__class__.__name__}: {exc}"[:1000])
            log.exception("webhook attempt %s failed unexpectedly", claimed.id)
        finally:
            self.in_flight[claimed.endpoint_id] -= 1
            if not self.in_flight[claimed.endpoint_id]:
                del self.in_flight[claimed.endpoint_id]
            if self.limited:
                self.wake.set()
        outcome = Outcome(
            delivery_id=claimed.id,
            endpoint_id=claimed.endpoint_id,
            lease_id=claimed.lease_id,
            number=claimed.attempts + 1,
            started_at=started,
            duration_ms=int((time.perf_counter() - t0) * 1000),
            status_code=status_code,
            response_body=response_body,
            error=error,
            retry_after=retry_after,
        )
        WEBHOOK_ATTEMPTS.labels(result="success" if outcome.succeeded else "failure").inc()
        self.outcomes.append(outcome)
        self.finished.set()

    async def _write_loop(self, stop: asyncio.Event) -> None:
        while not (stop.is_set() and not self.tasks and not self.outcomes):
            self.finished.clear()
            if self.outcomes:
                batch, self.outcomes = self.outcomes, []
                try:
                    await self._record(batch)
                    self.wake.set()  # their next attempts may be due before the claim loop's sleep ends
                except Exception as exc:
                    # Not recorded: the leases run out and the deliveries are attempted again (receivers
                    # deduplicate by webhook-id), which is better than losing them.
                    log.warning("recording %d webhook attempts failed: %r", len(batch), exc)
                await asyncio.sleep(PACE_SECONDS)
            elif stop.is_set():  # attempts in flight finish or are cancelled
                await wakeup.wait_any(self.finished, seconds=PACE_SECONDS)
            else:
                await wakeup.wait_any(self.finished, stop, seconds=self.settings.webhook_poll_seconds)

    def _next_delay(self, outcome: Outcome) -> float | None:
        """Seconds until the next attempt, or None when the schedule is spent."""
        schedule = self.settings.webhook_retry_schedule
        if outcome.number >= len(schedule):
            return None
        if outcome.retry_after is not None:
            return outcome.retry_after
        return schedule[outcome.number] * random.uniform(0.8, 1.2)

    def _settlement(self, o: Outcome, now: datetime) -> dict[str, Any]:
        """The delivery after this attempt: succeeded, failed for good (410 Gone, or the schedule spent), or due
        again after the next delay."""
        status, next_attempt_at, succeeded_at = DeliveryStatus.pending, None, None
        if o.succeeded:
            status, succeeded_at = DeliveryStatus.succeeded, now
        else:
            delay = None if o.status_code == 410 else self._next_delay(o)
            if delay is None:
                status = DeliveryStatus.failed
            else:
                next_attempt_at = now + timedelta(seconds=delay)
        return {
            "id": o.delivery_id,
            "lease_id": o.lease_id,
            "attempts": o.number,
            "status": status,
            "next_attempt_at": next_attempt_at,
            "last_status_code": o.status_code,
            "last_error": o.error,
            "succeeded_at": succeeded_at,
        }

    async def _record(self, batch: list[Outcome]) -> None:
        now = datetime.now(UTC)
        async with self.rt.sessionmaker() as session, session.begin():
            repo = DeliveryRepository(session)
            settled = await repo.settle([self._settlement(o, now) for o in batch])
            recorded = [o for o in batch if (o.delivery_id, o.lease_id) in settled]
            if len(recorded) < len(batch):
                # Its lease ran out (and the delivery was claimed again) or it was requeued: the attempt made
                # under the current lease is the one the delivery and its log count.
                log.warning(
                    "%d webhook attempts finished after losing their lease; not recorded", len(batch) - len(recorded)
                )
            await repo.add_attempts([_attempt_row(o) for o in recorded])
            await self._judge_endpoints(session, recorded, now)

    async def _judge_endpoints(self, session: AsyncSession, recorded: list[Outcome], now: datetime) -> None:
        """Endpoints that answered are failing no more; the others are failing since now (unless already), and
        are disabled when they answered 410 Gone or have failed every delivery for too long."""
        ok = sorted({o.endpoint_id for o in recorded if o.succeeded})
        failing = sorted({o.endpoint_id for o in recorded if not o.succeeded} - set(ok))
        endpoints = EndpointRepository(session)
        await endpoints.clear_failing(ok)
        if not failing:
            return
        await endpoints.mark_failing(failing)
        gone = {o.endpoint_id for o in recorded if o.status_code == 410}
        cutoff = now - timedelta(seconds=self.settings.webhook_disable_after_seconds)
        for endpoint in await endpoints.lock_enabled(failing):
            if endpoint.id in gone:
                await service.disable(session, endpoint, "the endpoint answered 410 Gone")
            elif endpoint.failing_since is not None and endpoint.failing_since <= cutoff:
                await service.disable(
                    session, endpoint, f"every delivery failed since {endpoint.failing_since.isoformat()}"
                )


def _attempt_row(o: Outcome) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "delivery_id": o.delivery_id,
        "number": o.number,
        "started_at": o.started_at,
        "duration_ms": o.duration_ms,
        "status_code": o.status_code,
        "response_body": o.response_body,
        "error": o.error,
    }


async def run_dispatcher(rt: Runtime, stop: asyncio.Event) -> None:
    await Dispatcher(rt).run(stop)
