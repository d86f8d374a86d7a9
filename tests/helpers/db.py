"""The tests' own reads and writes of the services' tables (what no endpoint shows), and emptying them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from reliefhub.registry import services


async def truncate_services(database_url: str) -> None:
    """Empty every table of every service's schema (Alembic's version tables excepted)."""
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            found = (
                await conn.execute(
                    text(
                        "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = ANY(:s) "
                        "AND tablename <> 'alembic_version'"
                    ),
                    {"s": list(services())},
                )
            ).all()
            if found:
                await conn.execute(text("TRUNCATE " + ", ".join(f'"{s}"."{t}"' for s, t in found) + " CASCADE"))
    finally:
        await engine.dispose()


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[dict[str, Any]]:
    """The rows of a query, as dicts."""
    async with engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(text(sql), params)).mappings()]


async def scalar(engine: AsyncEngine, sql: str, **params: Any) -> Any:
    """The first column of the first row of a query (None when there is none)."""
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar()


async def snapshot(engine: AsyncEngine, tables: list[str]) -> dict[str, str]:
    """Each table's rows as a JSON array."""
    async with engine.connect() as conn:
        return {
            t: (await conn.execute(text(f"SELECT COALESCE(json_agg(t), '[]')::text FROM {t} t"))).scalar_one()
            for t in tables
        }


async def restore(engine: AsyncEngine, saved: dict[str, str], tables: list[str]) -> None:
    """Put saved rows back, in the order given (parents first)."""
    async with engine.begin() as conn:
        for t in tables:
            await conn.execute(
                text(f"INSERT INTO {t} OVERRIDING SYSTEM VALUE SELECT * FROM json_populate_recordset(NULL::{t}, :r)"),
                {"r": saved[t]},
            )


async def truncate(engine: AsyncEngine, tables: list[str]) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
