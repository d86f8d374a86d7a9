"""Every query of the partners service."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, literal, or_, select
from sqlalchemy.dialects.postgresql import insert

from services.partners.models import Capacity, Organization, OrgKind, OrgStatus, Task, TaskKind, TaskStatus
from shared.db import RepositoryBase
from shared.errors import InvalidRequest
from shared.pagination import PageParams, paginate
from shared.vocabulary import CapacityStatus


@dataclass(frozen=True)
class OrganizationFilters:
    kind: OrgKind | None = None
    status: OrgStatus | None = None
    region_code: str | None = None  # organisations serving any part of this region (or all of it)
    service_code: str | None = None  # organisations with a live capacity for this service
    today: date | None = None  # the day "live" is judged on (with service_code)


@dataclass(frozen=True)
class CapacityFilters:
    org: str | None = None
    service_code: str | None = None
    status: CapacityStatus | None = None
    region_code: str | None = None  # capacities whose area covers this code (a national one covers every code)
    on: date | None = None  # offered on this day


@dataclass(frozen=True)
class TaskFilters:
    group: str | None = None  # one group's queue
    groups: tuple[str, ...] | None = None  # the queues a caller may see (None: every one)
    status: TaskStatus | None = None
    kind: TaskKind | None = None
    subject_id: str | None = None


def encode_org_cursor(org_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([org_id]).encode()).decode().rstrip("=")


def decode_org_cursor(cursor: str) -> str:
    try:
        raw = json.loads(base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True))
        if not (isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], str) and raw[0]):
            raise ValueError("a cursor names one organisation")
        return raw[0]
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest(
            "The cursor is not one this API returned.", errors=[{"loc": ["query", "cursor"], "msg": "invalid cursor"}]
        ) from exc


class OrganizationRepository(RepositoryBase[Organization]):
    model = Organization

    async def search(
        self, filters: OrganizationFilters, *, limit: int, after: str | None
    ) -> tuple[list[Organization], str | None]:
        """Organisations in slug order, a page at a time."""
        stmt = select(Organization)
        if filters.kind is not None:
            stmt = stmt.where(Organization.kind == filters.kind)
        if filters.status is not None:
            stmt = stmt.where(Organization.status == filters.status)
        if filters.region_code is not None:
            stmt = stmt.where(_serves(filters.region_code))
        if filters.service_code is not None:
            live = select(Capacity.id).where(
                Capacity.org == Organization.id,
                Capacity.service_code == filters.service_code,
                Capacity.status == CapacityStatus.active,
                Capacity.ends_on >= (filters.today or date.today()),
            )
            stmt = stmt.where(live.exists())
        if after is not None:
            stmt = stmt.where(Organization.id > after)
        rows = list((await self.session.execute(stmt.order_by(Organization.id).limit(limit + 1))).scalars())
        if len(rows) > limit:
            rows = rows[:limit]
            return rows, encode_org_cursor(rows[-1].id)
        return rows, None


def _serves(region_code: str) -> ColumnElement[bool]:
    """Serves the region, or a part of it: a national organisation, a prefix of the code, or a code under it."""
    codes = func.unnest(Organization.region_codes).table_valued("code").render_derived(name="served")
    code = codes.c.code
    within = (
        select(literal(1))
        .select_from(codes)
        .where(or_(literal(region_code).startswith(code), code.startswith(region_code, autoescape=True)))
    )
    return or_(func.cardinality(Organization.region_codes) == 0, within.exists())


def _covers_code(code: str) -> ColumnElement[bool]:
    """The capacity's area covers the code: a national area, or one of its prefixes starts the code."""
    prefixes = func.unnest(Capacity.region_codes).table_valued("prefix").render_derived(name="area")
    within = select(literal(1)).select_from(prefixes).where(literal(code).startswith(prefixes.c.prefix))
    return or_(func.cardinality(Capacity.region_codes) == 0, within.exists())


class CapacityRepository(RepositoryBase[Capacity]):
    model = Capacity

    async def search(self, filters: CapacityFilters, params: PageParams) -> tuple[list[Capacity], str | None]:
        stmt = select(Capacity)
        if filters.org is not None:
            stmt = stmt.where(Capacity.org == filters.org)
        if filters.service_code is not None:
            stmt = stmt.where(Capacity.service_code == filters.service_code)
        if filters.status is not None:
            stmt = stmt.where(Capacity.status == filters.status)
        if filters.region_code is not None:
            stmt = stmt.where(_covers_code(filters.region_code))
        if filters.on is not None:
            stmt = stmt.where(Capacity.starts_on <= filters.on, Capacity.ends_on >= filters.on)
        return await paginate(self.session, stmt, Capacity.created_at, Capacity.id, params)


class TaskRepository(RepositoryBase[Task]):
    model = Task

    async def insert_if_new(self, values: dict[str, Any]) -> Task | None:
        """Insert a task opened by an event unless its source key exists already (a redelivered event)."""
        stmt = (
            insert(Task)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[Task.source_key])
            .returning(Task)
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def by_source_key(self, source_key: str, *, for_update: bool = False) -> Task | None:
        stmt = select(Task).where(Task.source_key == source_key)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def active_for_subject(self, subject_type: str, subject_id: str) -> list[Task]:
        """The open and claimed tasks about one subject, locked."""
        stmt = (
            select(Task)
            .where(
                Task.subject_type == subject_type,
                Task.subject_id == subject_id,
                Task.status.in_((TaskStatus.open, TaskStatus.claimed)),
            )
            .order_by(Task.created_at, Task.id)
            .with_for_update()
        )
        return list((await self.session.execute(stmt)).scalars())

    async def search(self, filters: TaskFilters, params: PageParams) -> tuple[list[Task], str | None]:
        stmt = select(Task)
        if filters.group is not None:
            stmt = stmt.where(Task.group == filters.group)
        if filters.groups is not None:
            stmt = stmt.where(Task.group.in_(filters.groups))
        if filters.status is not None:
            stmt = stmt.where(Task.status == filters.status)
        if filters.kind is not None:
            stmt = stmt.where(Task.kind == filters.kind)
        if filters.subject_id is not None:
            stmt = stmt.where(Task.subject_id == filters.subject_id)
        return await paginate(self.session, stmt, Task.created_at, Task.id, params)

    async def due_unflagged(self, now: datetime, limit: int) -> list[Task]:
        """Open or claimed tasks past their due time not yet flagged overdue, locked (others' skipped)."""
        stmt = (
            select(Task)
            .where(
                Task.status.in_((TaskStatus.open, TaskStatus.claimed)),
                Task.overdue_at.is_(None),
                Task.due_at <= now,
            )
            .order_by(Task.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self.session.execute(stmt)).scalars())
