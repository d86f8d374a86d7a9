"""What a service is to the kit: its name, tables, routers, event handlers and periodic jobs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import APIRouter
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import KitTables
from shared.events.consumer import Handler
from shared.settings import Settings

Job = Callable[[AsyncSession, Settings], Awaitable[int]]


@dataclass(frozen=True)
class Subscription:
    """Events of another service's `stream` handled by this service as consumer group `group`."""

    stream: str
    group: str
    handler: Handler


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    run: Job
    interval: Callable[[Settings], float]


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    description: str
    metadata: MetaData
    kit: KitTables
    routers: list[APIRouter]
    migrations: Path
    collections: tuple[str, ...] = ()
    subscriptions: list[Subscription] = field(default_factory=list)
    jobs: list[PeriodicJob] = field(default_factory=list)
