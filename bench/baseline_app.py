"""The ceiling for intake: a bare FastAPI + asyncpg endpoint doing the same insert (need, lines, outbox row)
into the same tables, with no auth, idempotency, duplicate check or ORM."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from fastapi import FastAPI
from pydantic import BaseModel


class Line(BaseModel):
    item_code: str
    quantity: int
    unit: str | None = None


class NeedIn(BaseModel):
    site_id: uuid.UUID
    title: str
    urgency: str = "normal"
    lines: list[Line]


def create_app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dsn = os.environ["DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
        app.state.pool = await asyncpg.create_pool(dsn, min_size=10, max_size=20)
        yield
        await app.state.pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/needs", status_code=201)
    async def create_need(data: NeedIn) -> dict[str, Any]:
        need_id, now = uuid.uuid4(), datetime.now(UTC)
        async with app.state.pool.acquire() as conn, conn.transaction():
            site = await conn.fetchrow("SELECT org, region_code FROM needs.site WHERE id = $1", data.site_id)
            await conn.execute(
                "INSERT INTO needs.need (id, site_id, org, region_code, title, urgency, status, verification,"
                " confirmed_at, created_by, version, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, 'open', 'unverified', $7, 'bench', 1, $7, $7)",
                need_id,
                data.site_id,
                site["org"],
                site["region_code"],
                data.title,
                data.urgency,
                now,
            )
            await conn.executemany(
                "INSERT INTO needs.need_line (id, need_id, position, item_code, quantity, unit)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                [
                    (uuid.uuid4(), need_id, i, ln.item_code, ln.quantity, ln.unit or "piece")
                    for i, ln in enumerate(data.lines)
                ],
            )
            envelope: dict[str, Any] = {
                "id": str(uuid.uuid4()),
                "type": "reliefhub.needs.need.created",
                "data": data.model_dump(mode="json"),
            }
            await conn.execute(
                "INSERT INTO needs.outbox_event (id, stream, type, subject, envelope) VALUES ($1, $2, $3, $4, $5)",
                uuid.UUID(envelope["id"]),
                "needs.events",
                envelope["type"],
                str(need_id),
                json.dumps(envelope),
            )
        return {"id": str(need_id), "status": "open"}

    return app
