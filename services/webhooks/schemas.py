"""Schemas of the webhooks service."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class EventTypeInfo(BaseModel):
    type: str
    service: str
    description: str
    schema_: dict[str, Any]

    model_config = {"populate_by_name": True, "serialize_by_alias": True}


class EventTypeList(BaseModel):
    items: list[dict[str, Any]]
