"""The matching service: projection of open needs and available lots, scoring, optimal allocation and proposals."""

from __future__ import annotations

from fastapi import FastAPI

from services.matching.events import SUBSCRIPTIONS
from services.matching.models import Base, kit
from services.matching.router import router
from services.matching.service import continuous_run, expire_proposals, global_run
from shared.app import create_service_app
from shared.migrations import migrations_dir
from shared.service import PeriodicJob, ServiceSpec
from shared.settings import Settings

SERVICE = ServiceSpec(
    name="matching",
    description="Projection of open needs and available lots, scoring, optimal allocation and proposals.",
    metadata=Base.metadata,
    kit=kit,
    routers=[router],
    migrations=migrations_dir(__file__),
    collections=("candidates", "allocation-runs", "proposals", "policy", "matching-kpis"),
    calls=("supply",),
    subscriptions=SUBSCRIPTIONS,
    jobs=[
        # More often than the debounce would add runs whose cost grows with the open lines of their items.
        PeriodicJob("continuous-run", continuous_run, lambda s: s.matching_debounce_seconds),
        PeriodicJob("global-run", global_run, lambda s: s.matching_global_seconds),
        PeriodicJob("expire-proposals", expire_proposals, lambda s: s.matching_expire_seconds),
    ],
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings)
