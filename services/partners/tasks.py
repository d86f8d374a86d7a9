"""Business rules of working groups' tasks: opened by other services' events (or by a coordinator), claimed by a
member of the group, completed with an outcome — which the service owning the subject records first — and
flagged when they pass their due time."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.partners import events, schemas
from services.partners.errors import (
    InvalidOutcome,
    NotYourGroup,
    SubjectRefused,
    TaskClosed,
    TaskNotFound,
    TaskTaken,
)
from services.partners.models import Task, TaskKind, TaskStatus
from services.partners.repository import TaskFilters, TaskRepository
from services.partners.service import require_approved
from shared.auth import Principal, Role
from shared.db import utcnow
from shared.errors import Forbidden, InvalidRequest, ServiceUnavailable
from shared.events import publish
from shared.pagination import PageParams
from shared.runtime import runtime_of_session
from shared.settings import Settings

ACTIVE = (TaskStatus.open, TaskStatus.claimed)
DOMESTIC = "CN"
SYSTEM = "reliefhub"  # who opened a task that an event opened
OVERDUE_BATCH = 500


def is_overdue(task: Task, now: datetime | None = None) -> bool:
    return task.status in ACTIVE and task.due_at <= (now or utcnow())


def task_event(task: Task) -> events.TaskData:
    return events.TaskData(
        id=task.id,
        kind=task.kind.value,
        group=task.group,
        status=task.status.value,
        title=task.title,
        subject_type=task.subject_type,
        subject_id=task.subject_id,
        region_code=task.region_code,
        lots=[events.TaskLotData.model_validate(lot) for lot in task.details.get("lots", [])],
        due_at=task.due_at,
        overdue=is_overdue(task),
        claimed_by_org=task.claimed_by_org,
        completed_by_org=task.completed_by_org,
        outcome=task.outcome,
        notes=task.notes,
        data=task.outcome_data,
        version=task.version,
        created_at=task.created_at,
    )


def task_out(task: Task) -> schemas.Task:
    return schemas.Task(
        id=task.id,
        kind=task.kind,
        group=task.group,
        status=task.status,
        title=task.title,
        subject=schemas.TaskSubject.model_validate({"type": task.subject_type, "id": task.subject_id}),
        details=task.details,
        region_code=task.region_code,
        due_at=task.due_at,
        overdue=is_overdue(task),
        claimed_by=task.claimed_by,
        claimed_by_org=task.claimed_by_org,
        claimed_at=task.claimed_at,
        completed_by=task.completed_by,
        completed_by_org=task.completed_by_org,
        completed_at=task.completed_at,
        outcome=task.outcome,
        notes=task.notes,
        data=task.outcome_data,
        version=task.version,
        created_at=task.created_at,
        updated_at=task.updated_at,
    )


def _due(settings: Settings, kind: TaskKind, now: datetime) -> datetime:
    return now + timedelta(hours=settings.task_due_hours.get(kind.value, 24.0))


def _values(
    settings: Settings, kind: TaskKind, group: str, title: str, subject: tuple[str, str], **more: Any
) -> dict[str, Any]:
    """The row of a task an event opens."""
    now = utcnow()
    return {
        "id": uuid.uuid4(),
        "kind": kind,
        "group": group,
        "status": TaskStatus.open,
        "title": title,
        "subject_type": subject[0],
        "subject_id": subject[1],
        "details": {},
        "due_at": _due(settings, kind, now),
        "created_by": SYSTEM,
        "created_by_org": SYSTEM,
        "version": 1,
        "created_at": now,
        "updated_at": now,
        **more,
    }


async def _open(session: AsyncSession, values: dict[str, Any]) -> Task | None:
    """Open a task unless its source key opened one already; announce it."""
    task = await TaskRepository(session).insert_if_new(values)
    if task is not None:
        await publish(session, events.TASK_CREATED, task_event(task), subject=str(task.id))
    return task


# --- opened and closed by events -------------------------------------------------------------------------------


def _offer_details(d: dict[str, Any]) -> dict[str, Any]:
    lots = [
        {"id": lot["id"], "item_code": lot["item_code"], "quantity": lot["quantity"], "region_code": lot["region_code"]}
        for lot in d.get("lots", [])
    ]
    return {"lots": lots, "origin_country": d.get("origin_country"), "note": d.get("note"), "donor_org": d["org"]}


def _offer_region(d: dict[str, Any]) -> str | None:
    return next((lot["region_code"] for lot in d.get("lots", []) if lot.get("region_code")), None)


def _device_check_key(offer_id: str, group: str) -> str:
    return f"device_check:offer:{offer_id}:{group}"


def _customs_key(offer_id: str) -> str:
    return f"customs_clearance:offer:{offer_id}"


def _offer_tasks(settings: Settings, d: dict[str, Any]) -> list[dict[str, Any]]:
    """The tasks an offer's state calls for: one clearance while its lots await customs, one device check per
    group whose check its lots await, a translation of the note of an offer from abroad."""
    offer_id = str(d["id"])
    lots = d.get("lots", [])
    common = {"details": _offer_details(d), "region_code": _offer_region(d)}
    subject = ("offer", offer_id)
    rows = []
    if any(lot["verification"] == "awaiting_customs" for lot in lots):
        title = f"Customs clearance of an offer from {d.get('origin_country') or 'abroad'}"
        rows.append(
            _values(settings, TaskKind.customs_clearance, settings.customs_group, title, subject, **common)
            | {"source_key": _customs_key(offer_id)}
        )
    for group in sorted({lot["check_by"] for lot in lots if lot["verification"] == "pending" and lot["check_by"]}):
        items = sorted({lot["item_code"] for lot in lots if lot["check_by"] == group})
        rows.append(
            _values(settings, TaskKind.device_check, group, f"Check {', '.join(items)}", subject, **common)
            | {"source_key": _device_check_key(offer_id, group)}
        )
    if d.get("origin_country") not in (None, DOMESTIC) and d.get("note"):
        title = "Translate the offer's note"
        rows.append(
            _values(settings, TaskKind.translation, settings.translation_group, title, subject, **common)
            | {"source_key": f"translation:offer:{offer_id}"}
        )
    return rows


async def open_offer_tasks(session: AsyncSession, d: dict[str, Any]) -> None:
    """Open the tasks an offer calls for, unless an earlier event opened (or closed) them already."""
    for row in _offer_tasks(runtime_of_session(session).settings, d):
        await _open(session, row)


async def withdraw_offer_tasks(session: AsyncSession, d: dict[str, Any]) -> None:
    """A withdrawn offer: its open and claimed tasks are cancelled, and those its state would still call for are
    recorded cancelled — so an event about it that arrives late opens none of them."""
    await cancel_subject_tasks(session, "offer", str(d["id"]))
    for row in _offer_tasks(runtime_of_session(session).settings, d):
        await _record_cancelled(session, row)


def _quote_task(settings: Settings, d: dict[str, Any]) -> dict[str, Any]:
    lines = [
        {"item_code": line["item_code"], "quantity": line.get("quantity"), "region_code": d.get("region_code")}
        for line in d.get("lines", [])
        if isinstance(line, dict) and line.get("item_code")
    ]
    details = {"lots": lines, "currency": d.get("currency"), "total": d.get("total"), "buyer_org": d.get("org")}
    return _values(
        settings,
        TaskKind.procurement_quote,
        settings.procurement_group,
        "Quotes for a procurement order",
        ("procurement", str(d["id"])),
        details=details,
        region_code=d.get("region_code"),
    ) | {"source_key": f"procurement_quote:procurement:{d['id']}"}


async def open_quote_task(session: AsyncSession, d: dict[str, Any]) -> None:
    """A drafted procurement order: the procurement group gathers suppliers' quotes for its lines."""
    await _open(session, _quote_task(runtime_of_session(session).settings, d))


async def cancel_quote_task(session: AsyncSession, d: dict[str, Any]) -> None:
    """A cancelled procurement order: its quote task is cancelled (recorded so, should its draft come late)."""
    await cancel_subject_tasks(session, "procurement", str(d["id"]))
    await _record_cancelled(session, _quote_task(runtime_of_session(session).settings, d))


async def _record_cancelled(session: AsyncSession, row: dict[str, Any]) -> None:
    task = await TaskRepository(session).insert_if_new({**row, "status": TaskStatus.cancelled})
    if task is not None:
        await publish(session, events.TASK_CANCELLED, task_event(task), subject=str(task.id))


async def close_device_check(session: AsyncSession, d: dict[str, Any]) -> None:
    """A working group gave its verdict in supply (directly, or through the task): the task is done."""
    offer_id, group = str(d["offer_id"]), str(d["group"])
    settings = runtime_of_session(session).settings
    lots = [{**lot, "region_code": lot.get("region_code")} for lot in d.get("lots", [])]
    template = _values(
        settings,
        TaskKind.device_check,
        group,
        "Check the offer's lots",
        ("offer", offer_id),
        details={"lots": [{k: lot.get(k) for k in ("id", "item_code", "quantity", "region_code")} for lot in lots]},
    )
    await _close_by_event(session, _device_check_key(offer_id, group), template, d["verdict"], d.get("notes"), None)


async def close_customs_task(session: AsyncSession, d: dict[str, Any]) -> None:
    """Customs decided on an offer in supply: its clearance task is done with that decision."""
    customs = d.get("customs") or {}
    if not customs.get("outcome"):
        return
    settings = runtime_of_session(session).settings
    offer_id = str(d["id"])
    template = _values(
        settings,
        TaskKind.customs_clearance,
        settings.customs_group,
        "Customs clearance",
        ("offer", offer_id),
        details=_offer_details(d),
        region_code=_offer_region(d),
    )
    data = {k: customs[k] for k in ("hs_codes", "consignee_foundation", "exemption_reference") if customs.get(k)}
    await _close_by_event(
        session, _customs_key(offer_id), template, str(customs["outcome"]), customs.get("notes"), data or None
    )


async def _close_by_event(
    session: AsyncSession,
    key: str,
    template: dict[str, Any],
    outcome: str,
    notes: str | None,
    data: dict[str, Any] | None,
) -> None:
    """Mark the task `key` done (even a cancelled one: the group did decide, whatever became of its subject, so
    the outcome is the same in whichever order the events come); when the event that would have opened it has
    not come yet, record it done, so that event, arriving late, opens nothing."""
    repo = TaskRepository(session)
    now = utcnow()
    closed = {"status": TaskStatus.done, "outcome": outcome, "notes": notes, "outcome_data": data, "completed_at": now}
    task = await repo.by_source_key(key, for_update=True)
    if task is None:
        task = await repo.insert_if_new({**template, **closed, "source_key": key, "completed_by": SYSTEM})
        if task is not None:
            await publish(session, events.TASK_COMPLETED, task_event(task), subject=str(task.id))
            return
        task = await repo.by_source_key(key, for_update=True)
        assert task is not None
    if task.status == TaskStatus.done:
        return
    task.status, task.outcome, task.notes, task.completed_at = TaskStatus.done, outcome, notes, now
    task.outcome_data = data
    task.completed_by = task.completed_by or SYSTEM
    task.version += 1
    task.updated_at = now
    await session.flush()
    await publish(session, events.TASK_COMPLETED, task_event(task), subject=str(task.id))


async def cancel_subject_tasks(session: AsyncSession, subject_type: str, subject_id: str) -> None:
    """The subject went away: its open and claimed tasks are cancelled."""
    now = utcnow()
    for task in await TaskRepository(session).active_for_subject(subject_type, subject_id):
        task.status, task.version, task.updated_at = TaskStatus.cancelled, task.version + 1, now
        await session.flush()
        await publish(session, events.TASK_CANCELLED, task_event(task), subject=str(task.id))


# --- the queues over the API -------------------------------------------------------------------------------------


def visible_groups(principal: Principal) -> tuple[str, ...] | None:
    """The queues a caller sees: coordinators and admins every one, a working group's member its group's."""
    if principal.is_staff:
        return None
    if principal.has(Role.working_group) and principal.group:
        return (principal.group,)
    raise Forbidden("Task queues are for working groups and coordinators.")


def _require_member(principal: Principal, task: Task) -> None:
    """Working on a task: a member of its group (or an admin)."""
    if principal.has(Role.admin):
        return
    if not (principal.has(Role.working_group) and principal.group == task.group):
        raise NotYourGroup(f"This task is for the {task.group} group.")


async def list_tasks(
    session: AsyncSession, principal: Principal, filters: TaskFilters, params: PageParams
) -> tuple[list[Task], str | None]:
    groups = visible_groups(principal)
    return await TaskRepository(session).search(
        TaskFilters(
            group=filters.group, groups=groups, status=filters.status, kind=filters.kind, subject_id=filters.subject_id
        ),
        params,
    )


async def get_task(
    session: AsyncSession, principal: Principal, task_id: uuid.UUID, *, for_update: bool = False
) -> Task:
    groups = visible_groups(principal)
    task = await TaskRepository(session).get(task_id, for_update=for_update)
    if task is None:
        raise TaskNotFound(f"No task {task_id}.")
    if groups is not None and task.group not in groups:
        raise NotYourGroup(f"This task is for the {task.group} group.")
    return task


def _default_group(settings: Settings, kind: TaskKind) -> str:
    return settings.translation_group if kind == TaskKind.translation else settings.procurement_group


async def create_task(
    session: AsyncSession, principal: Principal, data: schemas.TaskCreate, settings: Settings
) -> Task:
    """A coordinator puts a translation or a request for quotes in a group's queue."""
    await require_approved(session, principal, settings)
    now = utcnow()
    kind = TaskKind(data.kind)
    task = Task(
        id=uuid.uuid4(),
        kind=kind,
        group=data.group or _default_group(settings, kind),
        status=TaskStatus.open,
        title=data.title,
        subject_type=data.subject.type,
        subject_id=data.subject.id,
        details=data.details,
        region_code=data.region_code,
        due_at=data.due_at or _due(settings, kind, now),
        created_by=principal.sub,
        created_by_org=principal.org,
        version=1,
        created_at=now,
        updated_at=now,
    )
    TaskRepository(session).add(task)
    await session.flush()
    await publish(session, events.TASK_CREATED, task_event(task), subject=str(task.id))
    return task


def _check_open(task: Task, principal: Principal) -> None:
    if task.status not in ACTIVE:
        raise TaskClosed(f"The task is {task.status.value}.")
    mine = (task.claimed_by_org, task.claimed_by) == principal.identity
    if task.status == TaskStatus.claimed and not mine and not principal.has(Role.admin):
        raise TaskTaken(f"{task.claimed_by} of {task.claimed_by_org} claimed this task.")


async def claim_task(session: AsyncSession, principal: Principal, task_id: uuid.UUID, settings: Settings) -> Task:
    """Take a task from the group's queue; claiming it again changes nothing."""
    task = await get_task(session, principal, task_id, for_update=True)
    _require_member(principal, task)
    await require_approved(session, principal, settings)
    _check_open(task, principal)
    if task.status == TaskStatus.claimed and (task.claimed_by_org, task.claimed_by) == principal.identity:
        return task
    now = utcnow()
    task.status, task.claimed_by, task.claimed_by_org, task.claimed_at = (
        TaskStatus.claimed,
        principal.sub,
        principal.org,
        now,
    )
    task.version += 1
    task.updated_at = now
    await session.flush()
    await publish(session, events.TASK_CLAIMED, task_event(task), subject=str(task.id))
    return task


def _outcome_data(task: Task, data: schemas.TaskCompletion) -> BaseModel:
    allowed = schemas.OUTCOMES[task.kind]
    model = allowed.get(data.outcome)
    if model is None:
        raise InvalidOutcome(
            f"A {task.kind.value} task ends {' or '.join(sorted(allowed))}.",
            errors=[{"loc": ["body", "outcome"], "msg": f"one of {', '.join(sorted(allowed))}"}],
        )
    try:
        return model.model_validate(data.data)
    except ValidationError as exc:
        raise InvalidOutcome(
            f"`data` does not fit a {task.kind.value} task that ends {data.outcome}.",
            errors=[
                {"loc": ["body", "data", *e["loc"]], "msg": e["msg"]}
                for e in exc.errors(include_url=False, include_input=False)
            ],
        ) from None


async def complete_task(
    session: AsyncSession,
    principal: Principal,
    task_id: uuid.UUID,
    data: schemas.TaskCompletion,
    settings: Settings,
    credentials: str,
) -> Task:
    """Complete a task with its outcome (claiming it if nobody had). A device check's verdict and a customs
    decision are recorded by supply first, with the caller's own token: supply decides who may give them."""
    task = await get_task(session, principal, task_id, for_update=True)
    _require_member(principal, task)
    await require_approved(session, principal, settings)
    _check_open(task, principal)
    outcome = _outcome_data(task, data)
    await _record_in_subject(session, task, data, outcome, credentials)
    now = utcnow()
    if task.claimed_by is None:
        task.claimed_by, task.claimed_by_org, task.claimed_at = principal.sub, principal.org, now
    task.status, task.outcome, task.notes = TaskStatus.done, data.outcome, data.notes
    task.outcome_data = outcome.model_dump(mode="json") or None
    task.completed_by, task.completed_by_org, task.completed_at = principal.sub, principal.org, now
    task.version += 1
    task.updated_at = now
    await session.flush()
    await publish(session, events.TASK_COMPLETED, task_event(task), subject=str(task.id))
    return task


async def _record_in_subject(
    session: AsyncSession, task: Task, data: schemas.TaskCompletion, outcome: BaseModel, credentials: str
) -> None:
    if task.subject_type != "offer" or task.kind not in (TaskKind.device_check, TaskKind.customs_clearance):
        return
    if task.kind == TaskKind.device_check:
        path, body = f"/v1/offers/{task.subject_id}/verification", {"verdict": data.outcome, "notes": data.notes}
    else:
        path = f"/v1/offers/{task.subject_id}/customs-clearance"
        body = {"outcome": data.outcome, "notes": data.notes, **outcome.model_dump(mode="json")}
    client = runtime_of_session(session).client("supply")
    try:
        response = await client.request(
            "POST", path, headers={"Authorization": credentials}, json=body, idempotency_key=f"task:{task.id}"
        )
    except Exception as exc:
        raise ServiceUnavailable("The supply service cannot be reached; retry shortly.") from exc
    if response.status_code < 300:
        return
    problem = _problem(response)
    detail = f"Supply refused it: {problem.get('detail') or response.status_code}"
    if response.status_code >= 500 or response.status_code == 429:
        raise ServiceUnavailable(detail)
    if response.status_code in (401, 403):
        raise NotYourGroup(detail)
    if response.status_code == 422:
        raise InvalidRequest(detail, errors=_data_errors(problem))
    raise SubjectRefused(detail, extra={"subject_problem": problem.get("type")})


def _problem(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _data_errors(problem: dict[str, Any]) -> list[dict[str, Any]]:
    """Supply's validation errors, located in this request's `data`."""
    out = []
    for error in problem.get("errors") or []:
        loc = [p for p in error.get("loc", []) if p != "body"]
        out.append({"loc": ["body", "data", *loc], "msg": error.get("msg", "")})
    return out


async def flag_overdue(session: AsyncSession, settings: Settings) -> int:
    """Announce each task that passed its due time while open or claimed, once."""
    now = utcnow()
    tasks = await TaskRepository(session).due_unflagged(now, OVERDUE_BATCH)
    for task in tasks:
        task.overdue_at, task.version, task.updated_at = now, task.version + 1, now
        await session.flush()
        await publish(session, events.TASK_OVERDUE, task_event(task), subject=str(task.id))
    return len(tasks)
