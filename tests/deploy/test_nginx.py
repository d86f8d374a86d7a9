"""The rendered gateway configuration run by a real nginx on loopback (skipped where nginx is not installed).

Debian's nginx (1.22) predates `server … resolve` (1.27.3, which the compose image has), so the upstreams are
rendered as for processes on known addresses (`reliefhub deploy nginx`): the same routes, headers, keep-alive
and error pages, with loopback servers instead of Docker's DNS names. Behind it: a recording app for every
upstream but supply, whose port nobody listens on."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from reliefhub import deploy
from reliefhub.registry import services
from tests.helpers.receiver import free_port

NGINX = shutil.which("nginx")
pytestmark = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")


async def recorder(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with what it was sent: path, headers and the peer (nginx's connection to it)."""
    assert scope["type"] == "http"
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    status, extra = (503, [(b"retry-after", b"17")]) if scope["path"].endswith("/busy") else (200, [])
    body = orjson.dumps({"path": scope["path"], "headers": headers, "peer": list(scope["client"])})
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"x/y"), *extra]})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def serve_recorder() -> AsyncIterator[int]:
    port = free_port()
    # No proxy headers: the peer it reports is the connection nginx opened.
    config = uvicorn.Config(recorder, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    config.proxy_headers = False
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"nginx exited: {log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise AssertionError(f"nginx does not listen: {log.read_text()}")


@contextlib.contextmanager
def run_nginx(conf: str, tmp: Path, port: int) -> Iterator[None]:
    # Temporary files under the test's directory, so that nginx needs no write access elsewhere.
    temp = "".join(
        f"    {kind}_temp_path {tmp / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    path = tmp / "nginx.conf"
    path.write_text(conf.replace("http {\n", "http {\n" + temp, 1))
    log = tmp / "nginx.log"
    base = [str(NGINX), "-e", str(log), "-p", str(tmp), "-c", str(path), "-g", f"pid {tmp / 'nginx.pid'}; daemon off;"]
    check = subprocess.run([*base, "-t"], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    with (tmp / "stdout.log").open("wb") as out:
        proc = subprocess.Popen(base, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_port(port, proc, log)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def test_the_gateway_routes_keeps_connections_and_answers_for_a_service_that_is_down(tmp_path: Path) -> None:
    async with serve_recorder() as alive:
        dead = free_port()
        servers = {name: f"127.0.0.1:{alive}" for name in [*services(), deploy.DOCS]}
        servers["supply"] = f"127.0.0.1:{dead}"
        port = free_port()
        conf = deploy.nginx_conf(servers, listen=f"127.0.0.1:{port}", resolve=False)
        with run_nginx(conf, tmp_path, port):
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                health = await client.get("/healthz")
                assert health.status_code == 200 and health.json() == {"status": "ok"}

                forged = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https", "Host": "relief.example"}
                seen = [(await client.get(f"/v1/needs/{i}?q=1", headers=forged)).json() for i in range(6)]
                assert [s["path"] for s in seen] == [f"/v1/needs/{i}" for i in range(6)]
                headers = seen[0]["headers"]
                # What the client claimed is replaced by the address that connected (what the services trust).
                assert headers["x-forwarded-for"] == "127.0.0.1" and headers["x-real-ip"] == "127.0.0.1"
                assert headers["x-forwarded-proto"] == "http" and headers["host"] == "relief.example"
                assert "connection" not in headers
                # One upstream connection, kept alive, carried all six requests (one client connection, so one
                # nginx worker and its pool).
                assert len({tuple(s["peer"]) for s in seen}) == 1, [s["peer"] for s in seen]

                for path in ("/docs", "/redoc", "/docs/assets/swagger-ui-bundle.js"):
                    docs = await client.get(path)
                    assert docs.status_code == 200 and docs.json()["path"] == path

                down = await client.get("/v1/lots")
                assert down.status_code == 503, down.text
                assert down.headers["content-type"] == "application/problem+json"
                assert down.headers["retry-after"] == str(deploy.RETRY_AFTER)
                assert down.json()["status"] == 503 and down.json()["title"] == "Service Unavailable"

                busy = await client.get("/v1/needs/busy")  # a service's own 503 passes through unchanged
                assert busy.status_code == 503 and busy.headers["retry-after"] == "17"
                assert busy.headers["content-type"] == "x/y" and busy.json()["path"] == "/v1/needs/busy"

                for inside in ("/metrics", "/readyz", "/v1/needsx", "/docs/assets/other.js"):
                    r = await client.get(inside)
                    assert r.status_code == 404, inside
                    assert r.headers["content-type"] == "application/problem+json" and r.json()["status"] == 404
