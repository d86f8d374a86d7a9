"""The webhooks service: working groups' endpoints, signed deliveries, the event catalog."""

from __future__ import annotations

from fastapi import FastAPI

from services.webhooks.delivery import run_dispatcher
from services.webhooks.events import SUBSCRIPTIONS
from services.webhooks.models import Base, kit
from services.webhooks.router import router
from shared.app import create_service_app
from shared.migrations import migrations_dir
from shared.service import ServiceSpec
from shared.settings import Settings

SERVICE = ServiceSpec(
    name="webhooks",
    description="Working groups' webhook endpoints, signed deliveries and the event catalog.",
    metadata=Base.metadata,
    kit=kit,
    routers=[router],
    migrations=migrations_dir(__file__),
    collections=("event-types", "webhook-endpoints", "webhook-deliveries"),
    subscriptions=SUBSCRIPTIONS,
    loops=[run_dispatcher],
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings)
