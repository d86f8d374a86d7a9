"""The matching service: projection of open needs and available lots, scoring, optimal allocation and proposals."""

from __future__ import annotations

from fastapi import FastAPI

from services.matching.continuous import continuous_matching
from services.matching.decisions import expire_proposals
from services.matching.events import SUBSCRIPTIONS
from services.matching.models import Base, catalog, kit
from services.matching.router import router
from shared.app import create_service_app
from shared.migrations import migrations_dir
from shared.service import PeriodicJob, ServiceSpec
from shared.settings import Settings

SERVICE = ServiceSpec(
    name="matching",
    description="Projection of open needs and available lots, scoring, optimal allocation and proposals.",
    metadata=Base.metadata,
    kit=kit,
    catalog=catalog,
    routers=[router],
    migrations=migrations_dir(__file__),
    collections=("candidates", "allocation-runs", "proposals", "policy", "matching-kpis"),
    calls=("supply", "logistics"),
    subscriptions=SUBSCRIPTIONS,
    jobs=[PeriodicJob("expire-proposals", expire_proposals, lambda s: s.matching_expire_seconds)],
    loops=[continuous_matching],
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SERVICE, settings)
