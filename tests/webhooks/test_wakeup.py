"""The dispatcher sleeps until a delivery is due or it is woken: deliveries written through another engine wake it
by PostgreSQL's NOTIFY. The in-process wake-up is switched off and the poll is a minute away, so a delivery owed
for a moment later is sent in time only if the notification woke the dispatcher and it then slept until the
delivery was due."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from reliefhub.gateway import Gateway
from services.webhooks.delivery import Dispatcher
from services.webhooks.repository import DeliveryRepository
from services.webhooks.schemas import DeliveryStatus
from shared import wakeup
from shared.db import create_engine, make_sessionmaker
from shared.runtime import Runtime
from tests.helpers.auth import TokenFactory
from tests.helpers.receiver import Receiver
from tests.helpers.waiting import eventually
from tests.helpers.webhooks import create_endpoint


async def test_a_delivery_owed_by_another_engine_is_sent_when_due(
    gateway: Gateway,
    client: httpx.AsyncClient,
    auth: TokenFactory,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    group = auth("working_group", org="org-wake", group="logistics")
    endpoint = await create_endpoint(client, group, receiver, "/wake", ["reliefhub.needs.*"])
    base: Runtime = gateway.apps["webhooks"].state.runtime
    rt = dataclasses.replace(base, settings=base.settings.model_copy(update={"webhook_poll_seconds": 60.0}))
    monkeypatch.setattr(wakeup, "notify", lambda channel: None)
    dispatcher = Dispatcher(rt)
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    other = create_engine(rt.settings)

    async def listening() -> bool:
        return dispatcher.listener is not None and dispatcher.listener.listening

    try:
        await eventually(listening, seconds=10)
        await asyncio.sleep(0.3)  # its first claim found nothing: it sleeps until the poll, a minute away
        event_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        event: dict[str, Any] = {
            "id": event_id,
            "source": "/reliefhub/needs",
            "type": "reliefhub.needs.site.created",
            "specversion": "1.0",
            "time": now.isoformat(),
            "data": {"org": "org-wake"},
        }
        async with make_sessionmaker(other, rt.spec.kit, rt.spec.name)() as session, session.begin():
            await DeliveryRepository(session).add_many(
                [
                    {
                        "id": uuid.uuid4(),
                        "endpoint_id": uuid.UUID(endpoint["id"]),
                        "event_id": event_id,
                        "event_type": event["type"],
                        "event_time": now,
                        "payload": event,
                        "status": DeliveryStatus.pending,
                        "attempts": 0,
                        "next_attempt_at": now + timedelta(seconds=1),
                    }
                ]
            )

        async def sent() -> list[Any]:
            return receiver.at("/wake")

        [got] = await eventually(sent, seconds=10)
        assert got.headers["webhook-id"] == event_id
    finally:
        stop.set()
        await task
        await other.dispose()
