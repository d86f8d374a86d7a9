"""Tables of the webhooks service (schema `webhooks`)."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from shared.db import make_kit_tables, service_metadata

SCHEMA = "webhooks"


class Base(DeclarativeBase):
    metadata = service_metadata(SCHEMA)


kit = make_kit_tables(Base.metadata)
