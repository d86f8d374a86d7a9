"""Each service's tables as its models describe them are the tables its migrations made (Alembic's autogenerate
finds nothing to do): typing a status column with its enum, for one, changed nothing in the database."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from reliefhub.registry import services


def differences(connection: Connection, metadata: MetaData) -> list[Any]:
    schema = metadata.schema
    context = MigrationContext.configure(
        connection,
        opts={
            "include_schemas": True,
            "include_name": lambda name, type_, _: name == schema if type_ == "schema" else True,
            "compare_type": True,
            "version_table_schema": schema,
        },
    )
    return list(compare_metadata(context, metadata))


@pytest.mark.parametrize("name", sorted(services()))
async def test_the_models_need_no_migration(engine: AsyncEngine, name: str) -> None:
    async with engine.connect() as connection:
        assert await connection.run_sync(differences, services()[name].metadata) == []
