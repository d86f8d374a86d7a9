"""Tables of the matching service (schema `matching`)."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from shared.db import make_kit_tables, service_metadata

SCHEMA = "matching"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


kit = make_kit_tables(Base.metadata)
