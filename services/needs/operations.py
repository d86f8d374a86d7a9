"""What needs knows of logistics' relief operations (shared.operations): its copy of them, and the check a need's
`operation_id` passes — an active operation needs has heard of."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from services.needs.repository import OperationViewRepository
from shared.events import CloudEvent
from shared.operations import OPERATION_EVENTS, operation_row, require_open_operation


async def on_operation_event(session: AsyncSession, event: CloudEvent) -> None:
    """logistics.events → needs' copy of operations (newest version wins); other events are ignored."""
    if event.type in OPERATION_EVENTS:
        await OperationViewRepository(session).keep_newest(operation_row(event.data))


async def check_operation(session: AsyncSession, operation_id: uuid.UUID | None) -> None:
    """422 unless `operation_id` is None or an active operation needs knows."""
    if operation_id is not None:
        view = await OperationViewRepository(session).get(operation_id)
        require_open_operation(view, operation_id, ["body", "operation_id"])
