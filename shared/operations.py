"""Relief operations (专项行动) as the services that refer to them see them. Logistics owns operations and
publishes each change (`reliefhub.logistics.operation.created` / `.updated`); needs and supply keep the newest
version of each in their own `operation_view` table (the `OperationViewColumns`) and check the operation a
need or an offer names against it: an operation they have not heard of, or one that is closed, takes nothing
new (422)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import enum_type
from shared.errors import InvalidRequest
from shared.vocabulary import OperationStatus

OPERATION_CREATED = "reliefhub.logistics.operation.created"
OPERATION_UPDATED = "reliefhub.logistics.operation.updated"
OPERATION_EVENTS = frozenset({OPERATION_CREATED, OPERATION_UPDATED})


class OperationViewColumns:
    """The columns of a service's copy of logistics' operations (a mixin for its declarative `Base`)."""

    __tablename__ = "operation_view"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[OperationStatus] = mapped_column(enum_type(OperationStatus, length=20))
    region_code: Mapped[str | None] = mapped_column(String(6))
    version: Mapped[int] = mapped_column(Integer)


def operation_row(data: dict[str, Any]) -> dict[str, Any]:
    """The `operation_view` row an operation event's data describes (an event without a version counts as 0:
    the newest arrival of those wins)."""
    return {
        "id": uuid.UUID(str(data["id"])),
        "name": str(data.get("name") or "")[:200],
        "status": OperationStatus(data.get("status") or OperationStatus.active),
        "region_code": data.get("region_code"),
        "version": int(data.get("version") or 0),
    }


class UnknownOperation(InvalidRequest):
    slug, title = "unknown-operation", "No such relief operation"


class OperationClosed(InvalidRequest):
    slug, title = "operation-closed", "The relief operation is closed"


def require_open_operation(view: OperationViewColumns | None, operation_id: uuid.UUID, loc: list[str | int]) -> None:
    """Refuse (422) an operation this service has not heard of from logistics, or one that is closed."""
    if view is None:
        raise UnknownOperation(
            f"No relief operation {operation_id}.", errors=[{"loc": loc, "msg": "unknown relief operation"}]
        )
    if view.status == OperationStatus.closed:
        raise OperationClosed(
            f"The relief operation {view.name or operation_id} is closed; it takes nothing new.",
            errors=[{"loc": loc, "msg": "the relief operation is closed"}],
        )
