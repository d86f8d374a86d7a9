"""Services and workers run as their own processes (`reliefhub serve`, `reliefhub worker`), as in production:
real uvicorn on loopback, real PostgreSQL and Redis, each process its own event loop."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from shared.settings import Settings
from tests.helpers.receiver import free_port

ROOT = Path(__file__).resolve().parents[2]
# What the test process may have in its environment that would change what these processes do.
INHERITED = ("RELIEFHUB_", "DATABASE_URL", "REDIS_URL", "FORWARDED_ALLOW_IPS")


def process_env(settings: Settings, tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(INHERITED)}
    return {
        **env,
        "RELIEFHUB_STATE_DIR": str(tmp),  # no `reliefhub dev` of this machine is picked up
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "RELIEFHUB_JWT_SECRET": settings.jwt_secret,
        "RELIEFHUB_ENVIRONMENT": "test",
        **extra,
    }


def reliefhub(*args: str) -> list[str]:
    return [sys.executable, "-m", "reliefhub.cli", *args]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@contextlib.contextmanager
def serve(service: str, env: dict[str, str], log: Path) -> Iterator[str]:
    """`reliefhub serve <service>` on a free loopback port, until the block ends; its base URL."""
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            reliefhub("serve", service, "--host", "127.0.0.1", "--port", str(port)),
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"serve {service} exited: {log.read_text()}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"serve {service} did not answer: {log.read_text()}"
            time.sleep(0.1)
        yield base
    finally:
        _stop(proc)


@contextlib.contextmanager
def workers(service: str, count: int, env: dict[str, str], logs: Path) -> Iterator[list[str]]:
    """`count` processes of `reliefhub worker <service>` (replicas), until the block ends; the base URL of each
    one's metrics server (RELIEFHUB_WORKER_METRICS_PORT, a port of its own)."""
    procs: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    try:
        for i in range(count):
            port = free_port()
            with (logs / f"worker-{service}-{i}.log").open("wb") as out:
                procs.append(
                    subprocess.Popen(
                        reliefhub("worker", service),
                        env={**env, "RELIEFHUB_WORKER_METRICS_PORT": str(port)},
                        cwd=ROOT,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
            urls.append(f"http://127.0.0.1:{port}")
        yield urls
    finally:
        for proc in procs:
            _stop(proc)
