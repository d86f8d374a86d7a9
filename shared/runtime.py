"""The live resources of one service in one process: engine, sessions, Redis."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.db import create_engine, make_sessionmaker
from shared.service import ServiceSpec
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.http import ServiceClient


@dataclass
class Runtime:
    spec: ServiceSpec
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: Redis
    # How this process reaches the other services: their URLs, or (one-process development and tests)
    # an in-process transport to the gateway.
    transport: httpx.AsyncBaseTransport | None = None
    clients: dict[str, ServiceClient] = field(default_factory=dict)

    def client(self, service: str) -> ServiceClient:
        from shared.http import ServiceClient

        if service not in calls_of(self.spec, self.settings):  # the start-up check of its URL relies on it
            raise LookupError(f"{self.spec.name} calls {service} but does not declare it in ServiceSpec.calls")
        if service not in self.clients:
            base = self.settings.service_urls.get(service, self.settings.gateway_url)
            self.clients[service] = ServiceClient(self.spec.name, base, self.settings, transport=self.transport)
        return self.clients[service]

    @classmethod
    def start(cls, spec: ServiceSpec, settings: Settings) -> Runtime:
        engine = create_engine(settings)
        redis = Redis.from_url(
            settings.redis_url,
            decode_responses=True,
            socket_timeout=10,
            socket_connect_timeout=5,
            health_check_interval=30,
        )
        rt = cls(spec, settings, engine, make_sessionmaker(engine, spec.kit, spec.name), redis)
        rt.sessionmaker.kw["info"]["runtime"] = rt  # every session can reach its runtime (jobs, handlers)
        return rt

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        await self.redis.aclose()
        await self.engine.dispose()


def unreachable_services(spec: ServiceSpec, settings: Settings) -> list[str]:
    """The services `spec` calls that a process running it alone could not reach: no URL of their own in
    RELIEFHUB_SERVICE_URLS and no gateway named (RELIEFHUB_GATEWAY_URL; its default is only `reliefhub dev`'s)."""
    if "gateway_url" in settings.model_fields_set:
        return []
    return [name for name in calls_of(spec, settings) if name not in settings.service_urls]


def calls_of(spec: ServiceSpec, settings: Settings) -> tuple[str, ...]:
    """The services `spec` calls: those it declares, and the organisations registry when it is on (every
    write asks it whether the caller's organisation is approved; shared.orgs)."""
    from shared.orgs import REGISTRY_SERVICE

    if settings.org_registry_enforced and spec.name != REGISTRY_SERVICE and REGISTRY_SERVICE not in spec.calls:
        return (*spec.calls, REGISTRY_SERVICE)
    return spec.calls


def runtime_of_session(session: AsyncSession) -> Runtime:
    rt: Runtime = session.info["runtime"]
    return rt
