"""Alembic, one history per service in its own schema; `run_env` is each service's env.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.service import ServiceSpec
from shared.settings import Settings


def alembic_config(spec: ServiceSpec, settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(spec.migrations))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(spec.migrations / "versions"))
    cfg.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    cfg.attributes["schema"] = spec.metadata.schema
    return cfg


def upgrade(spec: ServiceSpec, settings: Settings, revision: str = "head") -> None:
    command.upgrade(alembic_config(spec, settings), revision)


def make_revision(spec: ServiceSpec, settings: Settings, message: str) -> None:
    command.revision(alembic_config(spec, settings), message=message, autogenerate=True)


def _compare_options(schema: str) -> dict[str, Any]:
    """How autogenerate compares a service's metadata with the database: its own schema only, column types too."""

    def include_name(name: str | None, type_: str, parent_names: object) -> bool:
        return name == schema if type_ == "schema" else True

    return {"include_schemas": True, "include_name": include_name, "compare_type": True}


def pending_changes(connection: Connection, metadata: MetaData) -> list[Any]:
    """What autogenerate would put into a new migration of this service's schema: empty when the models and the
    migrated database agree."""
    assert metadata.schema, "service metadata must name its schema"
    options = {**_compare_options(metadata.schema), "version_table_schema": metadata.schema}
    migration = MigrationContext.configure(connection, opts=options)
    return list(compare_metadata(migration, metadata))


def run_env(metadata: MetaData) -> None:
    """The body of a service's migrations/env.py."""
    schema = metadata.schema
    assert schema, "service metadata must name its schema"

    def configure(connection: Connection | None = None, url: str | None = None) -> None:
        context.configure(
            connection=connection,
            url=url,
            target_metadata=metadata,
            version_table_schema=schema,
            literal_binds=connection is None,
            **_compare_options(schema),
        )

    if context.is_offline_mode():
        configure(url=context.config.get_main_option("sqlalchemy.url"))
        with context.begin_transaction():
            context.run_migrations()
        return

    def do_run(connection: Connection) -> None:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        configure(connection)
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = create_async_engine(str(context.config.get_main_option("sqlalchemy.url")), poolclass=pool.NullPool)
        async with engine.begin() as conn:
            # Serialise concurrent migrators of the same schema (several replicas starting at once).
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": f"migrate:{schema}"})
            await conn.run_sync(do_run)
        await engine.dispose()

    asyncio.run(run_async())


def migrations_dir(module_file: str) -> Path:
    return Path(module_file).resolve().parent / "migrations"
