"""The partners service: the organisations registry (hubs, NGOs, community groups, volunteer teams, companies,
foundations, government liaisons, carriers, working groups) and the working groups' task queues."""

from __future__ import annotations

from fastapi import FastAPI

from services.partners.assignments import on_matching_event
from services.partners.events import LOGISTICS_TYPES, SUPPLY_TYPES, on_logistics_event, on_supply_event
from services.partners.models import Base, kit
from services.partners.router import router
from services.partners.tasks import flag_overdue
from shared.app import create_service_app
from shared.migrations import migrations_dir
from shared.service import PeriodicJob, ServiceSpec, Subscription
from shared.settings import Settings

SERVICE = ServiceSpec(
    name="partners",
    description="The organisations registry (registration, approval by the hub covering an organisation, "
    "suspension), the capacities organisations declare, and working groups' task queues: device checks, "
    "translation, customs clearance, quotes.",
    metadata=Base.metadata,
    kit=kit,
    routers=[router],
    migrations=migrations_dir(__file__),
    collections=("organizations", "capacities", "assignments", "tasks"),
    calls=("supply",),
    subscriptions=[
        Subscription(stream="supply.events", group="partners-tasks", handler=on_supply_event, types=SUPPLY_TYPES),
        Subscription(
            stream="logistics.events", group="partners-tasks", handler=on_logistics_event, types=LOGISTICS_TYPES
        ),
        Subscription(
            stream="matching.events",
            group="partners-assignments",
            handler=on_matching_event,
            types=("reliefhub.matching.proposal.accepted",),
        ),
    ],
    jobs=[PeriodicJob("flag-overdue-tasks", flag_overdue, lambda s: s.task_sweep_seconds)],
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings)
