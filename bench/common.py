"""Shared pieces of the benchmarks: real servers, a service process, a lean HTTP/1.1 load generator."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from reliefhub.devservers import EmbeddedPostgres, EmbeddedRedis, free_port
from shared.auth import Role, create_token
from shared.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


@contextlib.contextmanager
def servers(pg_options: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    """Embedded PostgreSQL and Redis (durable settings, as in development) unless DATABASE_URL/REDIS_URL;
    `pg_options` are more settings of the embedded PostgreSQL ("-c name=value")."""
    started: list[EmbeddedPostgres | EmbeddedRedis] = []
    db, redis = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    base = ROOT / ".reliefhub" / f"bench-{os.getpid()}"
    try:
        if not db:
            pg = EmbeddedPostgres(base / "pg", options=pg_options)
            db = pg.start()
            started.append(pg)
        if not redis:
            rd = EmbeddedRedis(base / "redis", durable=False)
            redis = rd.start()
            started.append(rd)
        yield db, redis
    finally:
        for s in reversed(started):
            s.stop()
        import shutil

        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def uvicorn_process(app: str, env: dict[str, str], *, factory: bool = True) -> Iterator[int]:
    """One uvicorn worker serving `app` on a free loopback port, with uvloop and httptools."""
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--no-server-header",
        "--log-level",
        "warning",
    ]
    if factory:
        args.append("--factory")
    proc = subprocess.Popen(args, env={**os.environ, **env}, cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                import socket

                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            time.sleep(0.1)
        else:
            raise TimeoutError(f"{app} did not start")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # a busy machine: its measurements are taken, end it
            proc.kill()
            proc.wait()


OPERATOR_ORG = "reliefhub-ops"  # the operators' organisation: admins, who approve hubs


def bearer(settings: Settings, org: str, *roles: Role) -> dict[str, str]:
    token = create_token(sub=f"bench-{org}", org=org, roles=list(roles), settings=settings)
    return {"Authorization": f"Bearer {token}"}


async def onboard(
    client: httpx.AsyncClient, settings: Settings, hub: str, regions: list[str], members: dict[str, str]
) -> None:
    """Bring organisations on board as in production, where the registry refuses writes by any organisation it
    has not approved: the hub's coordinator registers the hub and an operator approves it; the hub's coordinator
    then registers each member organisation (slug → kind) serving the hub's regions, and approves it."""
    coordinator = bearer(settings, hub, Role.coordinator)
    operator = bearer(settings, OPERATOR_ORG, Role.admin)

    async def post(path: str, headers: dict[str, str], body: object, status: int) -> None:
        r = await client.post(path, headers=headers, json=body)
        if r.status_code != status:
            raise RuntimeError(f"POST {path}: {r.status_code} {r.text[:300]}")

    await post("/v1/organizations", coordinator, {"name": f"枢纽 {hub}", "kind": "hub", "region_codes": regions}, 201)
    await post(f"/v1/organizations/{hub}/approve", operator, {"reason": "资料齐全"}, 200)
    for org, kind in members.items():
        body = {"id": org, "name": f"成员 {org}", "kind": kind, "parent_id": hub, "region_codes": regions}
        await post("/v1/organizations", coordinator, body, 201)
        await post(f"/v1/organizations/{org}/approve", coordinator, {"reason": "资料齐全"}, 200)


@contextlib.contextmanager
def worker_processes(service: str, count: int, env: dict[str, str], logs: Path | None = None) -> Iterator[list[str]]:
    """`count` processes of `reliefhub worker SERVICE` (replicas, as in production), each serving its metrics on
    a loopback port of its own; yields their metrics base URLs once every one answers. Their logs go to
    `logs/worker-SERVICE-i.log` when `logs` is given (or the BENCH_LOGS environment variable), else nowhere."""
    procs: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    logs = logs or (Path(os.environ["BENCH_LOGS"]) if os.environ.get("BENCH_LOGS") else None)
    try:
        for i in range(count):
            port = free_port()
            out = open(logs / f"worker-{service}-{i}.log", "ab") if logs else subprocess.DEVNULL  # noqa: SIM115
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "reliefhub.cli", "worker", service],
                    env={**os.environ, **env, "RELIEFHUB_WORKER_METRICS_PORT": str(port)},
                    cwd=ROOT,
                    stdout=out,
                    stderr=subprocess.STDOUT if logs else None,
                )
            )
            if logs:
                out.close()  # type: ignore[union-attr]
            urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 60
        for proc, url in zip(procs, urls, strict=True):
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"worker {service} exited with {proc.returncode}")
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/metrics", timeout=1).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"worker {service} did not start")
                time.sleep(0.1)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def scrape(urls: list[str], name: str) -> list[tuple[dict[str, str], float]]:
    """Every sample called `name` on the /metrics of each URL (worker processes), with its labels."""
    from prometheus_client.parser import text_string_to_metric_families

    found: list[tuple[dict[str, str], float]] = []
    async with httpx.AsyncClient(timeout=10) as client:
        for url in urls:
            r = await client.get(f"{url}/metrics")
            r.raise_for_status()
            for family in text_string_to_metric_families(r.text):
                found += [(dict(s.labels), s.value) for s in family.samples if s.name == name]
    return found


def api_gateway() -> Any:
    """Every service's API in one ASGI app, without their workers (`uvicorn --factory bench.common:api_gateway`):
    the API side of a production-shaped stack whose workers run as processes of their own."""
    from reliefhub.gateway import Gateway
    from shared.settings import get_settings

    return Gateway(get_settings())


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> int:
        return sum(n for s, n in self.statuses.items() if 200 <= s < 300)

    @property
    def errors(self) -> int:
        return sum(self.statuses.values()) - self.ok

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000


async def _connection(
    port: int, make_request: Callable[[int], bytes], counter: Iterator[int], result: LoadResult
) -> None:
    """One keep-alive connection sending requests back to back (HTTP/1.1, Content-Length bodies)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i in counter:
            start = time.perf_counter()
            writer.write(make_request(i))
            status_line = await reader.readline()
            status = int(status_line.split()[1])
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            result.latencies.append(time.perf_counter() - start)
            result.statuses[status] = result.statuses.get(status, 0) + 1
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


def http_post(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return (
        f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n{head}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def run_load(port: int, make_request: Callable[[int], bytes], *, total: int, concurrency: int) -> LoadResult:
    result = LoadResult()
    counter = iter(range(total))
    start = time.perf_counter()
    await asyncio.gather(*(_connection(port, make_request, counter, result) for _ in range(concurrency)))
    result.seconds = time.perf_counter() - start
    return result


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


def tables_of(text: str) -> list[list[dict[str, str]]]:
    """The Markdown tables in `text` (as `table` prints them), each a list of rows keyed by column header."""
    found: list[list[dict[str, str]]] = []
    headers: list[str] | None = None
    for raw in [*text.splitlines(), ""]:
        line = raw.strip()
        cells = [c.strip() for c in line.strip("|").split("|")] if line.startswith("|") else None
        if cells is None:
            headers = None
        elif headers is None:
            headers = cells
            found.append([])
        elif not all(set(c) <= {"-", ":"} for c in cells):
            found[-1].append(dict(zip(headers, cells, strict=False)))
    return found


def write_result(name: str, text: str) -> Path:
    """`bench/results/<name>.md`, and beside it `<name>.json`: its tables, for bench/goals.py to read."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.md"
    path.write_text(text + "\n", encoding="utf-8")
    figures = {"name": name, "tables": tables_of(text)}
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")
