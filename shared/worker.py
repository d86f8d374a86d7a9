"""A service's background work: its outbox relay, its consumers, its periodic jobs and stream trimming."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.events.consumer import Consumer, in_sequence
from shared.events.envelope import stream_for
from shared.events.lag import export_stream_metrics
from shared.events.relay import OutboxRelay
from shared.events.trim import trim_stream
from shared.idempotency import purge_expired
from shared.runtime import Runtime
from shared.service import PeriodicJob, ServiceSpec
from shared.settings import Settings

log = logging.getLogger("reliefhub.worker")


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def run_job_once(rt: Runtime, job: PeriodicJob) -> int | None:
    """Run one job in one transaction, on one replica at a time (None when another replica holds it)."""
    async with rt.sessionmaker() as session, session.begin():
        key = zlib.crc32(f"job:{rt.spec.name}:{job.name}".encode())
        if not (await session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key})).scalar():
            return None
        return await job.run(session, rt.settings)


async def _job_loop(rt: Runtime, job: PeriodicJob, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            done = await run_job_once(rt, job)
            if done:
                log.info("job %s.%s handled %s", rt.spec.name, job.name, done)
        except Exception as exc:
            log.warning("job %s.%s failed: %r", rt.spec.name, job.name, exc)
        await _wait(stop, job.interval(rt.settings))


async def _trim_loop(rt: Runtime, stop: asyncio.Event) -> None:
    stream = stream_for(rt.spec.name)
    while not stop.is_set():
        await _wait(stop, rt.settings.stream_trim_seconds)
        try:
            await trim_stream(rt.redis, stream)
        except Exception as exc:
            log.warning("trimming %s failed: %r", stream, exc)


async def _bus_metrics_loop(rt: Runtime, relay: OutboxRelay, stop: asyncio.Event) -> None:
    """The outbox backlog and the consumer groups of this service's stream, each refreshed on its own: one
    server being away does not hide what the other says."""
    stream = stream_for(rt.spec.name)
    while not stop.is_set():
        try:
            await relay.export_backlog()
        except Exception as exc:
            log.debug("outbox backlog of %s unavailable: %r", rt.spec.name, exc)
        try:
            await export_stream_metrics(rt.redis, stream)
        except Exception as exc:
            log.debug("consumer metrics of %s unavailable: %r", stream, exc)
        await _wait(stop, rt.settings.bus_metrics_seconds)


def consumers_for(rt: Runtime, name: str | None = None) -> list[Consumer]:
    return [
        Consumer(
            group=sub.group,
            stream=sub.stream,
            handler=sub.handler,
            batch_handler=sub.batch_handler or in_sequence(sub.handler),
            sessionmaker=rt.sessionmaker,
            redis=rt.redis,
            settings=rt.settings,
            name=name,
            types=sub.types,
        )
        for sub in rt.spec.subscriptions
    ]


def builtin_jobs(spec: ServiceSpec) -> list[PeriodicJob]:
    async def purge(session: AsyncSession, settings: Settings) -> int:
        return await purge_expired(session, spec.kit)

    return [PeriodicJob("purge-idempotency-keys", purge, lambda s: 3600.0)]


async def _catalog_loop(rt: Runtime, stop: asyncio.Event) -> None:
    """This process's catalog follows the service's copy of the catalog's changes."""
    from shared.catalog.follow import REFRESH_SECONDS, refresh

    assert rt.spec.catalog is not None
    while not stop.is_set():
        try:
            await refresh(rt.sessionmaker, rt.spec.catalog, force=True)
        except Exception:
            log.exception("catalog refresh failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), REFRESH_SECONDS)


async def run_worker(rt: Runtime, stop: asyncio.Event) -> None:
    """Everything in the background for one service, until `stop` is set."""
    relay = OutboxRelay(engine=rt.engine, kit=rt.spec.kit, redis=rt.redis, settings=rt.settings)
    tasks = [
        asyncio.create_task(relay.run(stop), name=f"{rt.spec.name}-relay"),
        asyncio.create_task(_trim_loop(rt, stop), name=f"{rt.spec.name}-trim"),
        asyncio.create_task(_bus_metrics_loop(rt, relay, stop), name=f"{rt.spec.name}-bus-metrics"),
    ]
    tasks += [asyncio.create_task(c.run(stop), name=f"{rt.spec.name}-{c.group}") for c in consumers_for(rt)]
    tasks += [
        asyncio.create_task(_job_loop(rt, job, stop), name=f"{rt.spec.name}-{job.name}")
        for job in [*rt.spec.jobs, *builtin_jobs(rt.spec)]
    ]
    tasks += [asyncio.create_task(loop(rt, stop), name=f"{rt.spec.name}-{loop.__name__}") for loop in rt.spec.loops]
    if rt.spec.catalog is not None:
        tasks.append(asyncio.create_task(_catalog_loop(rt, stop), name=f"{rt.spec.name}-catalog"))
    try:
        await stop.wait()
    finally:
        await asyncio.gather(*tasks, return_exceptions=True)


async def serve_worker(spec: ServiceSpec, settings: Settings, stop: asyncio.Event) -> None:
    if settings.worker_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.worker_metrics_port)
    rt = Runtime.start(spec, settings)
    try:
        await run_worker(rt, stop)
    finally:
        await rt.close()
