"""What a service is to the kit: its name, tables, routers, event handlers and periodic jobs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter
from sqlalchemy import MetaData, Table
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import KitTables
from shared.events.consumer import BatchHandler, EventTypes, Handler
from shared.settings import Settings

if TYPE_CHECKING:
    from shared.runtime import Runtime

Job = Callable[[AsyncSession, Settings], Awaitable[int]]
# A long-running background task of a service's worker (it returns once `stop` is set).
Loop = Callable[["Runtime", asyncio.Event], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class Subscription:
    """Events of another service's `stream` handled by this service as consumer group `group`."""

    stream: str
    group: str
    handler: Handler
    # Optional: the same work for a batch of events in one transaction (see shared.events.consumer).
    batch_handler: BatchHandler | None = None
    # The event types the handler acts on (names, and prefixes ending in "."); the others are acked unhandled,
    # without a transaction. None: every event reaches the handler.
    types: EventTypes | None = None


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
    # `<collection>/<name>` of another service's collection that this one serves: `/v1/<collection>/{id}/<name>`
    # (and `<name>.html`, and below it), e.g. logistics' `donors/statement`, a donor's statement from its books.
    sub_resources: tuple[str, ...] = ()
    # The services it calls over HTTP (its API or its worker): each needs a URL when it runs alone.
    calls: tuple[str, ...] = ()
    subscriptions: list[Subscription] = field(default_factory=list)
    jobs: list[PeriodicJob] = field(default_factory=list)
    loops: list[Loop] = field(default_factory=list)
    # Its copy of the living catalog's changes (shared.catalog.follow), folded into get_catalog() by each of
    # its processes before a request and, in the worker, every few seconds.
    catalog: Table | None = None
