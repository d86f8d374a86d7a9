"""The default demo's wall time: `reliefhub dev` (embedded PostgreSQL and Redis, a state directory of its own) in
a process of its own, `reliefhub demo` driven against it, timed end to end and step by step, with its
superseded/accepted figure and the CPU time the stack used (the server's processes, PostgreSQL, Redis and the
client: on a shared machine the wall time says how busy it was, the CPU time what the demo cost).

Each run is appended to bench/results/demo.json (`runs`: sites, seconds, requests, step timings, …); demo.md
shows every run recorded, newest last, and bench/goals.py judges the newest run of the default size.

    python -m bench.demo [--sites 300] [--seed 2022] [--note TEXT]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import RESULTS, ROOT, table, tables_of
from reliefhub.demo.summary import Summary
from reliefhub.devservers import free_port

GOAL_SECONDS = 240.0
DEFAULT_SITES = 300
RESULT = "demo"
# The demo's steps as its progress lines begin (what each step is called in the results), in order.
STEPS = (
    ("creating", "sites and needs"),
    ("a relief operation", "operation and funds"),
    ("registering", "donors, offers, pledges"),
    ("recording the money", "payments"),
    ("partners:", "partners, gift from abroad"),
    ("buying", "purchases"),
    ("matching:", "matching: accept rounds"),
    ("proposals accepted", "logistics plans the shipments"),
    ("moving", "shipments moved, received, feedback"),
    ("impact report", "impact report, tracking"),
    ("a partner claims", "claim, elderly, tasks, fund accounts"),
)


def _dev_server(state: Path, port: int, worker_processes: bool) -> subprocess.Popen[bytes]:
    reliefhub = Path(sys.executable).parent / "reliefhub"
    env = {**os.environ, "RELIEFHUB_STATE_DIR": str(state)}
    log = (state / "dev.log").open("wb")
    workers = ["--worker-processes"] if worker_processes else []
    return subprocess.Popen(
        [str(reliefhub), "dev", "--port", str(port), *workers], env=env, cwd=ROOT, stdout=log, stderr=log
    )


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


def step_seconds(lines: list[tuple[float, str]], end: float) -> dict[str, float]:
    """How long each step took, from the demo's progress lines (seconds from the start, text): a step runs from
    its line to the next step's (or `end`); indented lines are notes within a step."""
    starts: list[tuple[float, str]] = []
    for at, text in lines:
        if text.startswith(" "):
            continue
        bare = text.lstrip("0123456789 ")  # "148 proposals accepted; …"
        name = next((n for prefix, n in STEPS if bare.startswith(prefix)), text)
        starts.append((at, name))
    return {
        name: round((starts[n + 1][0] if n + 1 < len(starts) else end) - at, 1) for n, (at, name) in enumerate(starts)
    }


def _ticks(pid: int) -> int:
    """A process's CPU time in clock ticks, with that of its children it has waited for."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime


def stack_cpu_seconds(root: int, marker: str) -> float:
    """CPU seconds of `root` and every process under it, and of every process whose command line names `marker`
    (the embedded servers, which detach), so far."""
    parent: dict[int, int] = {}
    named: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            parent[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                named.add(int(entry.name))
    ours = {root} | named
    grew = True
    while grew:
        below = {pid for pid, ppid in parent.items() if ppid in ours} - ours
        ours |= below
        grew = bool(below)
    return sum(_ticks(pid) for pid in ours) / os.sysconf("SC_CLK_TCK")


def _commit() -> str:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    return "?"


def recorded_runs(directory: Path = RESULTS) -> list[dict[str, Any]]:
    path = directory / f"{RESULT}.json"
    if not path.exists():
        return []
    runs = json.loads(path.read_text("utf-8")).get("runs", [])
    return list(runs) if isinstance(runs, list) else []


def render(runs: list[dict[str, Any]]) -> str:
    """demo.md: every run (newest last), then the step timings of the newest runs side by side."""
    rows = [
        [
            f"{r.get('date', '?')[:16]} {r.get('commit', '?')}" + (f" ({r['note']})" if r.get("note") else ""),
            str(r["sites"]),
            r.get("workers", "in the API's process"),
            f"{r['seconds']:.0f}",
            "—" if r.get("cpu_seconds") is None else f"{r['cpu_seconds']:.0f}",
            f"{r['requests']:,}",
            r.get("superseded_accepted", "—"),
            "—" if r.get("load") is None else f"{r['load']:.1f}",
            f"≤ {GOAL_SECONDS:.0f} s",
        ]
        for r in runs
    ]
    text = "## The default demo, end to end (`python -m bench.demo`)\n\n" + table(
        ["run", "sites", "workers", "seconds", "CPU s", "requests", "superseded / accepted", "load (1 min)", "goal"],
        rows,
    )
    shown = [r for r in runs if r.get("steps")][-4:]
    if shown:
        names = list(dict.fromkeys(name for r in shown for name in r["steps"]))
        text += "\n\nSeconds per step:\n\n" + table(
            ["step", *[f"{r.get('commit', '?')}, {r['sites']} sites" for r in shown]],
            [[n, *[f"{r['steps'][n]:.1f}" if n in r["steps"] else "—" for r in shown]] for n in names],
        )
    return (
        text + "\n\nCPU s: the CPU time of the server's processes, its PostgreSQL and Redis and the demo client"
        " during the run. The machine is shared: the wall time depends on how busy it was (load, 1-minute average at"
        " the end of the run), the CPU time far less."
    )


def record(run: dict[str, Any], directory: Path = RESULTS) -> str:
    """Append `run` to demo.json and write demo.md from every run recorded."""
    runs = [*recorded_runs(directory), run]
    text = render(runs)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{RESULT}.md").write_text(text + "\n", encoding="utf-8")
    body = {"name": RESULT, "runs": runs, "tables": tables_of(text)}
    (directory / f"{RESULT}.json").write_text(json.dumps(body, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="bench.demo")
    parser.add_argument("--sites", type=int, default=DEFAULT_SITES)
    parser.add_argument("--seed", type=int, default=2022)
    parser.add_argument("--note", default="", help="A word on this run, shown beside it in the results.")
    parser.add_argument(
        "--worker-processes", action="store_true", help="`reliefhub dev --worker-processes` (a process per service)."
    )
    args = parser.parse_args(argv)
    state = ROOT / ".reliefhub" / f"bench-demo-{os.getpid()}"
    state.mkdir(parents=True, exist_ok=True)
    os.environ["RELIEFHUB_STATE_DIR"] = str(state)  # before the CLI module reads it: the dev server's settings
    from reliefhub import cli
    from reliefhub.demo import run_demo

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _dev_server(state, port, args.worker_processes)
    lines: list[tuple[float, str]] = []

    def progress(message: str) -> None:
        at = time.perf_counter() - started
        lines.append((at, message))
        print(f"{at:6.1f}s {message}", flush=True)

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
                    progress=progress,
                )

        cpu_before = stack_cpu_seconds(proc.pid, str(state)) + time.process_time()
        started = time.perf_counter()
        summary = asyncio.run(demo())
        wall = time.perf_counter() - started
        cpu = stack_cpu_seconds(proc.pid, str(state)) + time.process_time() - cpu_before
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        os.environ.pop("RELIEFHUB_STATE_DIR", None)
        shutil.rmtree(state, ignore_errors=True)
    run = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "note": args.note,
        "workers": "a process per service" if args.worker_processes else "in the API's process",
        "sites": args.sites,
        "seed": args.seed,
        "seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "requests": summary.requests,
        "superseded_accepted": f"{summary.proposals_conflicts} / {summary.proposals_accepted}",
        "shipments": summary.shipments,
        "load": round(os.getloadavg()[0], 1),
        "steps": step_seconds(lines, wall),
        "warnings": summary.warnings,
    }
    text = record(run)
    print(text)
    return text


if __name__ == "__main__":
    main()
