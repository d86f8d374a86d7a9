"""/docs and /redoc in a real headless Chromium that can reach nothing but the stack: the gateway on a loopback
port, every other host name unresolvable. Swagger UI renders the operation list (with the operationIds) and
Redoc its navigation — so neither needs a CDN or anything else outside."""

from __future__ import annotations

from pathlib import Path

import pytest

from reliefhub.gateway import Gateway
from shared.settings import Settings
from tests.helpers.browser import chromium_path, dump_dom, serving

CHROMIUM_SECONDS = 90
# Every name but the loopback address resolves to nothing, and no proxy is asked: a page that needs another host
# cannot get it.
OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", "--no-proxy-server"]


@pytest.fixture
def chromium() -> str:
    return chromium_path()


async def rendered_dom(chromium: str, url: str, profile: Path) -> tuple[str, str]:
    """The page's DOM once its scripts have run (ten seconds of virtual time), and Chromium's log."""
    return await dump_dom(chromium, url, profile, *OFFLINE, "--virtual-time-budget=10000", seconds=CHROMIUM_SECONDS)


async def test_the_docs_render_in_chromium_with_nothing_but_the_stack(chromium: str, tmp_path: Path) -> None:
    gateway = Gateway(Settings(environment="test", jwt_secret="t" * 40))
    async with serving(gateway) as base:
        swagger, log = await rendered_dom(chromium, f"{base}/docs", tmp_path / "swagger")
        redoc, redoc_log = await rendered_dom(chromium, f"{base}/redoc", tmp_path / "redoc")

    # Swagger UI: one block per operation, grouped by collection, each showing its operationId.
    assert swagger.count('class="opblock opblock-') >= len(gateway.openapi()["paths"]), swagger[:3000] + log[-3000:]
    for shown in ("needs_create", "shipments_receipt", "track_get", "/v1/needs/{need_id}"):
        assert shown in swagger, f"{shown} not rendered: {log[-3000:]}"
    assert "Failed to load API definition" not in swagger
    # Redoc: its side menu lists the collections and their operations.
    assert 'role="menuitem"' in redoc or "menu-content" in redoc, redoc[:3000] + redoc_log[-3000:]
    assert "ReliefHub API" in redoc and "shipments" in redoc

    # The same Chromium does fail to fetch from a CDN, so the pages above really needed nothing outside.
    control = (
        "data:text/html,<p id=x>offline</p><script src='https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/"
        "swagger-ui-bundle.js' onload=\"document.getElementById('x').textContent='online'\"></script>"
    )
    dom, _ = await rendered_dom(chromium, control, tmp_path / "control")
    assert ">offline<" in dom, dom
