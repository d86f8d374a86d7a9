"""A service run as its own process (`reliefhub serve`, `reliefhub worker`), as in production: real uvicorn on
loopback, real PostgreSQL and Redis. Forwarded headers count only from RELIEFHUB_TRUSTED_PROXIES (the public
tracking rate limit keys on the resolved address); production serves neither docs nor metrics on the API
port (metrics on RELIEFHUB_METRICS_PORT); a process that could not reach a service it calls refuses to start."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from typer.testing import CliRunner

from reliefhub import cli, deploy
from reliefhub.registry import services
from shared.runtime import Runtime, unreachable_services
from shared.settings import Settings
from tests.helpers.processes import ROOT, process_env, reliefhub, serve
from tests.helpers.receiver import free_port

LIMIT = 5
TRACK = "/v1/track/NoSuchGiftCode123"


async def track_until_limited(client: httpx.AsyncClient, forwarded: list[str]) -> list[int]:
    """GET the tracking page with each X-Forwarded-For in turn, until a 429; the statuses."""
    statuses = []
    for value in forwarded:
        r = await client.get(TRACK, headers={"X-Forwarded-For": value})
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert r.headers["content-type"].startswith("application/problem+json") and r.headers["retry-after"]
            break
        assert r.status_code == 404, r.text
    return statuses


async def windows(redis: Redis, address: str) -> list[str]:
    return [key async for key in redis.scan_iter(f"ratelimit:track:{address}:*")]


async def test_forwarded_for_from_an_untrusted_peer_changes_nothing_and_production_keeps_docs_and_metrics_inside(
    migrated: Settings, redis: Redis, tmp_path: Path
) -> None:
    metrics_port = free_port()
    env = process_env(
        migrated,
        tmp_path,
        RELIEFHUB_ENVIRONMENT="production",
        RELIEFHUB_TRACK_REQUESTS_PER_MINUTE=str(LIMIT),
        RELIEFHUB_SERVICE_URLS=json.dumps({"supply": "http://127.0.0.1:9", "partners": "http://127.0.0.1:9"}),
        RELIEFHUB_METRICS_PORT=str(metrics_port),
        FORWARDED_ALLOW_IPS="*",  # uvicorn's own setting: ignored, the app decides
    )
    with serve("logistics", env, tmp_path / "serve.log") as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            # Every request claims another client: all count for the peer, so the limit holds (within two
            # one-minute windows, should a window end meanwhile).
            statuses = await track_until_limited(client, [f"198.51.100.{i}" for i in range(2 * LIMIT + 1)])
            assert statuses[-1] == 429 and len(statuses) <= 2 * LIMIT + 1, statuses
            assert await windows(redis, "127.0.0.1") and not await windows(redis, "198.51.100.*")

            for inside in ("/docs", "/redoc", "/openapi.json", "/metrics"):
                r = await client.get(inside)
                assert r.status_code == 404, inside
                assert r.headers["content-type"].startswith("application/problem+json")
            assert (await client.get("/readyz")).status_code == 200
            metrics = await client.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert metrics.status_code == 200
        assert 'reliefhub_http_request_seconds_count{method="GET",route="/v1/track/{code}"' in metrics.text


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(
    migrated: Settings, redis: Redis, tmp_path: Path
) -> None:
    env = process_env(
        migrated,
        tmp_path,
        RELIEFHUB_TRACK_REQUESTS_PER_MINUTE=str(LIMIT),
        RELIEFHUB_GATEWAY_URL="http://127.0.0.1:9",
        RELIEFHUB_TRUSTED_PROXIES='["127.0.0.1"]',
    )
    with serve("logistics", env, tmp_path / "serve.log") as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            statuses = await track_until_limited(client, ["203.0.113.7"] * (2 * LIMIT + 1))
            assert statuses[-1] == 429, statuses
            # Another client behind the same proxy, and the proxy's own requests, have their own count.
            assert (await client.get(TRACK, headers={"X-Forwarded-For": "203.0.113.8"})).status_code == 404
            assert (await client.get(TRACK)).status_code == 404
            # What a client writes before the proxy's entry is its own claim: the rightmost untrusted one counts.
            await client.get(TRACK, headers={"X-Forwarded-For": "192.0.2.1, 203.0.113.9"})
            # Development and tests serve docs and metrics on the API port.
            assert (await client.get("/metrics")).status_code == 200
            assert (await client.get("/openapi.json")).status_code == 200
    for address in ("203.0.113.7", "203.0.113.8", "127.0.0.1", "203.0.113.9"):
        assert await windows(redis, address), address
    assert not await windows(redis, "192.0.2.1")


@pytest.mark.parametrize("command", [("serve", "matching"), ("worker", "logistics")])
def test_a_process_that_could_not_reach_a_service_it_calls_refuses_to_start(
    migrated: Settings, tmp_path: Path, command: tuple[str, str]
) -> None:
    # Were it to start, it would serve until the timeout: the check is before anything listens or runs.
    result = subprocess.run(
        reliefhub(*command, "--port", str(free_port())) if command[0] == "serve" else reliefhub(*command),
        env=process_env(migrated, tmp_path),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    message = " ".join(result.stderr.split())
    calls = {"matching": "supply, logistics, but RELIEFHUB_SERVICE_URLS has no URL for them"}
    assert (
        f"{command[1]} calls {calls.get(command[1], 'supply, but RELIEFHUB_SERVICE_URLS has no URL for it')}" in message
    )
    assert "RELIEFHUB_GATEWAY_URL is not set" in message and "Traceback" not in message


def test_which_services_a_process_alone_could_not_reach(migrated: Settings) -> None:
    specs = services()
    assert {name: spec.calls for name, spec in specs.items() if spec.calls} == {
        "matching": ("supply", "logistics"),
        "logistics": ("supply",),
        "partners": ("supply",),
    }
    bare = Settings(environment="test", jwt_secret=migrated.jwt_secret)
    assert unreachable_services(specs["matching"], bare) == ["supply", "logistics"]
    assert unreachable_services(specs["needs"], bare) == []
    # With the organisations registry on, every other service asks partners whether a writer is approved.
    registry = Settings(environment="test", jwt_secret=migrated.jwt_secret, org_registry=True)
    assert unreachable_services(specs["needs"], registry) == ["partners"]
    assert unreachable_services(specs["partners"], registry) == ["supply"]
    urls = Settings(environment="test", jwt_secret=migrated.jwt_secret, service_urls={"supply": "http://s:8000"})
    assert unreachable_services(specs["logistics"], urls) == []
    gateway = Settings(environment="test", jwt_secret=migrated.jwt_secret, gateway_url="http://gateway:8000")
    assert unreachable_services(specs["matching"], gateway) == []


async def test_a_runtime_calls_only_the_services_its_spec_declares(migrated: Settings) -> None:
    rt = Runtime.start(services()["needs"], migrated)
    try:
        with pytest.raises(LookupError, match="needs calls supply but does not declare it"):
            rt.client("supply")
    finally:
        await rt.close()


def test_deploy_nginx_renders_a_gateway_for_the_service_urls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(cli, "DEV_ENV", tmp_path / "dev.env")
    runner = CliRunner()
    monkeypatch.delenv("RELIEFHUB_SERVICE_URLS", raising=False)
    missing = runner.invoke(cli.app, ["deploy", "nginx", "--docs", "127.0.0.1:8010"])
    assert missing.exit_code == 2 and "RELIEFHUB_SERVICE_URLS has no URL for needs" in missing.output

    urls = {name: f"http://127.0.0.1:{8001 + i}" for i, name in enumerate(services())}
    monkeypatch.setenv("RELIEFHUB_SERVICE_URLS", json.dumps(urls))
    result = runner.invoke(cli.app, ["deploy", "nginx", "--docs", "127.0.0.1:8010", "--listen", "127.0.0.1:80"])
    assert result.exit_code == 0, result.output
    servers = deploy.host_servers(urls, "127.0.0.1:8010")
    assert result.output == deploy.nginx_conf(
        servers,
        listen="127.0.0.1:80",
        resolve=False,
        head="Generated by `reliefhub deploy nginx` from the route table and RELIEFHUB_SERVICE_URLS.",
    )
    assert "server 127.0.0.1:8004;" in result.output and "resolve;" not in result.output
