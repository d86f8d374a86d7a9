"""Database kit: declarative base per service schema, engine and sessions, the kit's own tables.

One function touches SQLAlchemy internals, for speed: `begin_in_adapter` (see its docstring); a test
(tests/shared/test_db.py) fails when the installed SQLAlchemy no longer has what it uses."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    func,
    select,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, SessionTransaction, mapped_column
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.dml import Insert

from shared.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def service_metadata(schema: str) -> MetaData:
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


class TimestampedMixin:
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class VersionedMixin:
    """A row version, exposed as the resource's ETag and checked against If-Match."""

    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1, server_default="1")


def enum_type(enum: type[StrEnum], *, length: int) -> SAEnum:
    """A column type for a StrEnum stored as its value in a VARCHAR(length): no database enum and no CHECK
    constraint, so typing an existing string column with it changes nothing in the database. Rows read back as
    members; writing a string that is no member's value fails."""
    return SAEnum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=length,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )


@dataclass(frozen=True)
class KitTables:
    """The kit's tables inside one service's schema: outbox, inbox and idempotency records."""

    schema: str
    outbox: Table
    inbox: Table
    idempotency: Table

    @property
    def outbox_insert(self) -> Insert:
        """One statement object for every outbox write, so SQLAlchemy compiles it once."""
        return _OUTBOX_INSERTS.setdefault(self.schema, self.outbox.insert())


_OUTBOX_INSERTS: dict[str, Insert] = {}


def make_kit_tables(metadata: MetaData) -> KitTables:
    outbox = Table(
        "outbox_event",
        metadata,
        Column("seq", BigInteger, Identity(always=True), primary_key=True),
        Column("id", UUID(as_uuid=True), nullable=False, unique=True),
        Column("stream", String(100), nullable=False),
        Column("type", String(200), nullable=False),
        Column("subject", String(200), nullable=True),
        Column("envelope", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True), nullable=True),
        Index(None, "seq", postgresql_where="published_at IS NULL"),
    )
    inbox = Table(
        "inbox_event",
        metadata,
        Column("consumer", String(100), primary_key=True),
        Column("event_id", String(100), primary_key=True),
        Column("event_type", String(200), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    idempotency = Table(
        "idempotency_key",
        metadata,
        Column("principal", String(300), primary_key=True),
        Column("key", String(255), primary_key=True),
        Column("method", String(10), nullable=False),
        Column("path", String(2000), nullable=False),
        Column("request_hash", String(64), nullable=False),
        Column("state", String(20), nullable=False),  # in_flight | done
        Column("response_status", Integer, nullable=True),
        Column("response_headers", JSONB, nullable=True),
        Column("response_body", LargeBinary, nullable=True),
        Column("locked_until", DateTime(timezone=True), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("expires_at", DateTime(timezone=True), nullable=False),
        Index(None, "expires_at"),
    )
    return KitTables(schema=metadata.schema or "public", outbox=outbox, inbox=inbox, idempotency=idempotency)


def create_engine(settings: Settings, *, pool_size: int | None = None) -> AsyncEngine:
    return create_async_engine(
        settings.database_url,
        pool_size=pool_size or settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=False,  # a dropped connection invalidates the pool on first use instead (no extra round trip)
        pool_timeout=settings.db_pool_timeout_seconds,
        connect_args={"server_settings": {"application_name": "reliefhub"}, "timeout": 5, "command_timeout": 30},
    )


def make_sessionmaker(engine: AsyncEngine, kit: KitTables, service: str) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False, info={"kit": kit, "service": service})


async def begin_in_adapter(raw: PoolProxiedConnection) -> bool:
    """Begin the transaction of SQLAlchemy's asyncpg adapter now, without a statement; False when it cannot.

    The project's one use of SQLAlchemy internals. The adapter begins lazily, on its first statement, through
    its private `_start_transaction`; a hot statement sent to asyncpg directly must find the transaction begun.
    Beginning it through SQLAlchemy's public API costs a statement through SQLAlchemy (some 40-60 µs of CPU, 4-6%
    of an intake request); this saves it. Whatever fails here (a pooled connection that died with a restarted
    server, an adapter without these attributes) answers False, and the caller sends its statement through
    SQLAlchemy instead, which begins as usual and handles the failure (invalidating the pool: a 503)."""
    adapter = raw.dbapi_connection
    start = getattr(adapter, "_start_transaction", None)
    if start is None or getattr(adapter, "_transaction", False) is not None:
        return False
    try:
        await start()
    except Exception:
        return False
    return True


class DriverConnection:
    """The session's connection for a few hot statements (intake, the outbox), in asyncpg's own SQL ($1, $2, …):
    for them SQLAlchemy's per-statement work costs more than the statement itself.

    Statements go to asyncpg directly, inside the session's transaction; they raise asyncpg's own errors
    (shared.errors maps those too). When the transaction has not begun yet, `begin_in_adapter` begins it; when it
    cannot, the statement goes through SQLAlchemy (`exec_driver_sql`), which begins the transaction as it always
    does — and, on a dead pooled connection, invalidates the pool and raises its own error, a 503."""

    __slots__ = ("_conn", "_driver", "_raw")

    def __init__(self, conn: AsyncConnection, raw: PoolProxiedConnection) -> None:
        self._conn = conn
        self._raw = raw
        self._driver: Any = raw.driver_connection

    async def _direct(self) -> bool:
        return bool(self._driver.is_in_transaction()) or await begin_in_adapter(self._raw)

    async def execute(self, sql: str, *args: Any) -> None:
        if await self._direct():
            await self._driver.execute(sql, *args)
        else:
            await self._conn.exec_driver_sql(sql, args)

    async def fetchrow(self, sql: str, *args: Any) -> tuple[Any, ...] | None:
        if await self._direct():
            row = await self._driver.fetchrow(sql, *args)
        else:
            row = (await self._conn.exec_driver_sql(sql, args)).first()
        return None if row is None else tuple(row)


async def driver_connection(session: AsyncSession) -> DriverConnection:
    """The asyncpg connection under the session, for statements inside the session's transaction (the same
    object for every call in one transaction: the hot paths ask more than once a request)."""
    cached: tuple[SessionTransaction, DriverConnection] | None = session.info.get(_DRIVER)
    transaction = session.sync_session.get_transaction()
    if cached is not None and cached[0] is transaction:
        return cached[1]
    conn = await session.connection()
    raw = await conn.get_raw_connection()
    driver = DriverConnection(conn, raw)
    transaction = session.sync_session.get_transaction()
    if transaction is not None:
        session.info[_DRIVER] = (transaction, driver)
    return driver


_DRIVER = "shared.db.driver_connection"


def kit_of(session: AsyncSession) -> KitTables:
    kit: KitTables = session.info["kit"]
    return kit


ModelT = TypeVar("ModelT", bound=DeclarativeBase)


class RepositoryBase(Generic[ModelT]):
    """Queries of one aggregate; subclasses add their own. Never commits."""

    model: type[ModelT]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, id_: Any, *, for_update: bool = False) -> ModelT | None:
        if for_update:
            stmt = select(self.model).where(self.model.id == id_).with_for_update()  # type: ignore[attr-defined]
            return (await self.session.execute(stmt)).scalar_one_or_none()
        return await self.session.get(self.model, id_)

    def add(self, obj: ModelT) -> ModelT:
        self.session.add(obj)
        return obj

    async def flush(self) -> None:
        await self.session.flush()

    async def keep_newest(self, row: dict[str, Any]) -> None:
        """A projection's upsert: insert the row, or overwrite the stored one by its `id` unless the stored one
        has a newer `version` (an equal one is overwritten: a redelivered event writes what it wrote)."""
        table: Any = self.model
        stmt = pg_insert(table).values(row)
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[table.id],
                set_={c: stmt.excluded[c] for c in row if c != "id"},
                where=table.version <= stmt.excluded.version,
            )
        )
