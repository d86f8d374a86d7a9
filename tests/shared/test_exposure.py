"""What a service's API port shows besides its API: its own docs and OpenAPI document outside production only
(RELIEFHUB_EXPOSE_DOCS overrides), metrics only outside production and only while no RELIEFHUB_METRICS_PORT is
set; and whose X-Forwarded-For it believes (RELIEFHUB_TRUSTED_PROXIES: addresses and networks)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from reliefhub.gateway import Gateway, docs_app
from services.needs.main import create_app
from shared.settings import Settings
from tests.helpers.settings import make_test_settings

SECRET = "s" * 40
EXTRAS = ("/docs", "/redoc", "/openapi.json", "/metrics")


async def shown(app: Any) -> dict[str, int]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as client:
        answers = {path: await client.get(path) for path in EXTRAS}
    for r in answers.values():
        if r.status_code == 404:
            assert r.headers["content-type"].startswith("application/problem+json")
    return {path: r.status_code for path, r in answers.items()}


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"environment": "development"}, [200, 200, 200, 200]),
        ({"environment": "test"}, [200, 200, 200, 200]),
        ({"environment": "production"}, [404, 404, 404, 404]),
        ({"environment": "production", "expose_docs": True}, [200, 200, 200, 404]),
        ({"environment": "production", "metrics_port": 9100}, [404, 404, 404, 404]),
        ({"environment": "development", "expose_docs": False}, [404, 404, 404, 200]),
        ({"environment": "development", "metrics_port": 9100}, [200, 200, 200, 404]),
    ],
)
async def test_the_api_port_shows_docs_and_metrics_as_the_settings_say(
    settings: dict[str, Any], expected: list[int]
) -> None:
    config = Settings(jwt_secret=SECRET, **settings)
    assert await shown(create_app(config)) == dict(zip(EXTRAS, expected, strict=True))
    # The development gateway follows the same settings (it has no /redoc).
    gateway = await shown(Gateway(config))
    assert {p: s for p, s in gateway.items() if p != "/redoc"} == {
        p: s for p, s in zip(EXTRAS, expected, strict=True) if p != "/redoc"
    }


async def test_the_public_merged_document_is_served_whatever_the_services_show() -> None:
    production = Settings(environment="production", jwt_secret=SECRET)
    apps = Gateway(production).apps
    docs = docs_app(apps)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=docs), base_url="http://docs") as client:
        document = (await client.get("/openapi.json")).json()
        assert (await client.get("/docs")).status_code == 200
    development = Gateway(Settings(environment="development", jwt_secret=SECRET)).openapi()
    assert document["paths"] == development["paths"] and len(document["paths"]) > 40


def test_trusted_proxies_are_addresses_or_networks_and_none_by_default() -> None:
    assert Settings().trusted_proxies == []
    settings = Settings(trusted_proxies=["172.28.0.10", " 10.244.0.0/16", "fd00::/8", "10.1.2.3/8"])
    assert settings.trusted_proxies == ["172.28.0.10/32", "10.244.0.0/16", "fd00::/8", "10.0.0.0/8"]
    for bad in ("*", "gateway", "10.0.0.0/33", ""):
        with pytest.raises(ValidationError, match="is not an IP address or network"):
            Settings(trusted_proxies=[bad])


async def test_forwarded_for_counts_from_trusted_networks_only(migrated: Settings, redis: Any) -> None:
    settings = make_test_settings(
        migrated.database_url,
        migrated.redis_url,
        track_requests_per_minute=3,
        trusted_proxies=["10.0.0.0/8", "fd00::/8"],
    )
    gateway = Gateway(settings)
    async with gateway.lifespan():

        async def track(peer: str, forwarded: str) -> int:
            transport = httpx.ASGITransport(app=gateway, client=(peer, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://reliefhub.test") as client:
                r = await client.get("/v1/track/NoSuchGiftCode123", headers={"X-Forwarded-For": forwarded})
                return r.status_code

        # Behind proxies of both networks, every client has its own count.
        for i in range(8):
            assert await track("10.9.8.7" if i % 2 else "fd00::5", f"203.0.113.{i}") == 404
        # A peer outside them is itself the client, whatever it claims.
        statuses = [await track("192.0.2.10", f"203.0.113.{i}") for i in range(7)]
        assert 429 in statuses, statuses
    keys = {key.split(":")[2] async for key in redis.scan_iter("ratelimit:track:*")}
    assert keys == {"192.0.2.10", *(f"203.0.113.{i}" for i in range(8))}
