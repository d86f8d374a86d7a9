"""The default demo's wall time: `reliefhub dev` (embedded PostgreSQL and Redis, a state directory of its own) in
a process of its own, `reliefhub demo` driven against it, timed end to end, with its superseded/accepted figure."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from bench.common import ROOT, table, write_result
from reliefhub.demo.summary import Summary
from reliefhub.devservers import free_port

GOAL_SECONDS = 240.0


def _dev_server(state: Path, port: int) -> subprocess.Popen[bytes]:
    reliefhub = Path(sys.executable).parent / "reliefhub"
    env = {**os.environ, "RELIEFHUB_STATE_DIR": str(state)}
    log = (state / "dev.log").open("wb")
    return subprocess.Popen([str(reliefhub), "dev", "--port", str(port)], env=env, cwd=ROOT, stdout=log, stderr=log)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"reliefhub dev exited with {proc.returncode} before it was ready")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"reliefhub dev was not ready at {url} after {seconds:.0f} s")


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="bench.demo")
    parser.add_argument("--sites", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2022)
    args = parser.parse_args(argv)
    state = ROOT / ".reliefhub" / f"bench-demo-{os.getpid()}"
    state.mkdir(parents=True, exist_ok=True)
    os.environ["RELIEFHUB_STATE_DIR"] = str(state)  # before the CLI module reads it: the dev server's settings
    from reliefhub import cli
    from reliefhub.demo import run_demo

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _dev_server(state, port)
    try:
        _wait_ready(url, proc)

        async def demo() -> Summary:
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                return await run_demo(
                    client,
                    cli._settings(),
                    sites=args.sites,
                    seed=args.seed,
                    wait_seconds=max(180.0, 3.0 * args.sites),
                    progress=lambda message: print(f"{time.perf_counter() - started:6.1f}s {message}", flush=True),
                )

        started = time.perf_counter()
        summary = asyncio.run(demo())
        wall = time.perf_counter() - started
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        os.environ.pop("RELIEFHUB_STATE_DIR", None)
        shutil.rmtree(state, ignore_errors=True)
    load = os.getloadavg()[0]
    text = table(
        ["run", "sites", "seconds", "requests", "superseded / accepted", "load (1 min)", "goal"],
        [
            [
                "this run",
                str(args.sites),
                f"{wall:.0f}",
                f"{summary.requests:,}",
                f"{summary.proposals_conflicts} / {summary.proposals_accepted}",
                f"{load:.1f}",
                f"≤ {GOAL_SECONDS:.0f} s",
            ]
        ],
    )
    print(text)
    write_result("demo", text)
    return text


if __name__ == "__main__":
    main()
