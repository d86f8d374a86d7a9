"""Tables of the logistics service (schema `logistics`)."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from shared.db import make_kit_tables, service_metadata

SCHEMA = "logistics"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


kit = make_kit_tables(Base.metadata)
