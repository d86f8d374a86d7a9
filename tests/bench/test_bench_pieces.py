"""Pieces of the benchmarks that must be right for their figures to mean anything: the load driver's
organisations come on board through the registry's API (production mode refuses writes by unapproved ones), and
the lag benchmark reads quantiles from Prometheus histogram buckets as histogram_quantile does. No timing here."""

from __future__ import annotations

import math

import httpx
import pytest

from bench.common import onboard
from bench.lag import difference, quantile
from shared.settings import Settings
from tests.helpers.auth import TokenFactory
from tests.helpers.partners import problem

SITE = {"name": "街道社区", "kind": "community", "region_code": "310104", "lat": 31.2, "lon": 121.4}


@pytest.fixture
def registry_on(migrated: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(migrated, "org_registry", True)
    return migrated


async def test_onboarded_organisations_may_write_where_unapproved_ones_are_refused(
    client: httpx.AsyncClient, auth: TokenFactory, registry_on: Settings
) -> None:
    frontline = auth("frontline", org="bench-sites")
    problem(await client.post("/v1/sites", headers=frontline, json=SITE), 403, "organisation-not-approved")

    await onboard(client, registry_on, "bench-hub", ["3101"], {"bench-sites": "community_group"})

    created = await client.post("/v1/sites", headers=frontline, json=SITE)
    assert created.status_code == 201, created.text
    for org, kind, parent in (("bench-hub", "hub", None), ("bench-sites", "community_group", "bench-hub")):
        got = (await client.get(f"/v1/organizations/{org}", headers=auth("coordinator", org="bench-hub"))).json()
        assert (got["status"], got["kind"], got["parent_id"], got["region_codes"]) == (
            "approved",
            kind,
            parent,
            ["3101"],
        )
    # An organisation the hub did not bring on board is still refused.
    other = auth("frontline", org="bench-elsewhere")
    problem(await client.post("/v1/sites", headers=other, json=SITE), 403, "organisation-not-approved")


def test_quantiles_are_interpolated_within_the_buckets_of_the_difference() -> None:
    before = {"g": {0.1: 10.0, 0.5: 10.0, 1.0: 10.0, math.inf: 10.0}}
    after = {"g": {0.1: 30.0, 0.5: 70.0, 1.0: 110.0, math.inf: 110.0}, "new": {0.1: 0.0, 1.0: 4.0, math.inf: 4.0}}
    lag = difference(after, before)
    assert lag["g"] == {0.1: 20.0, 0.5: 60.0, 1.0: 100.0, math.inf: 100.0}
    assert quantile(lag["g"], 0.2) == pytest.approx(0.1)
    assert quantile(lag["g"], 0.5) == pytest.approx(0.1 + 0.4 * 30 / 40)
    assert quantile(lag["g"], 0.95) == pytest.approx(0.5 + 0.5 * 35 / 40)
    assert quantile(lag["new"], 0.5) == pytest.approx(0.1 + 0.9 * 2 / 4)
    # Beyond the largest finite bound: that bound. Nothing observed: not a number.
    assert quantile({0.5: 1.0, math.inf: 4.0}, 0.95) == 0.5
    assert math.isnan(quantile({0.5: 0.0, math.inf: 0.0}, 0.5))
