"""`reliefhub dev`'s workers as processes of their own: each service's relay, consumers and jobs in a `reliefhub
worker SERVICE` process (the production shape), beside the one process serving the API. The API's requests and
the workers' event handling then run on separate cores instead of taking turns in one event loop."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping

from shared.settings import Settings

STOP_SECONDS = 30.0
PR_SET_PDEATHSIG = 1  # prctl(2)


def worker_env(settings: Settings, gateway_url: str, base: Mapping[str, str]) -> dict[str, str]:
    """The environment of a worker process: `base` with the dev server's URL (the workers' calls to the other
    services go through it) and the settings `reliefhub dev` chose that the environment does not already say."""
    env = dict(base)
    env["RELIEFHUB_GATEWAY_URL"] = gateway_url
    env.setdefault("RELIEFHUB_DB_POOL_SIZE", str(settings.db_pool_size))
    env.setdefault("RELIEFHUB_WEBHOOK_ALLOWED_NETWORKS", json.dumps(settings.webhook_allowed_networks))
    return env


def _die_with_parent() -> None:
    """In the worker, before it runs: SIGTERM when `reliefhub dev` dies, even by SIGKILL (Linux), so that no
    worker outlives the dev server and its embedded database."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def start_workers(names: list[str], env: Mapping[str, str]) -> list[subprocess.Popen[bytes]]:
    """One `reliefhub worker NAME` process per service, its output on this process's."""
    procs: list[subprocess.Popen[bytes]] = []
    orphan_guard = _die_with_parent if sys.platform == "linux" else None
    try:
        for name in names:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "reliefhub.cli", "worker", name], env=dict(env), preexec_fn=orphan_guard
                )
            )
    except BaseException:
        stop_workers(procs)
        raise
    return procs


def stop_workers(procs: list[subprocess.Popen[bytes]], seconds: float = STOP_SECONDS) -> None:
    """SIGINT to each (a worker finishes the batch it holds, then stops), SIGKILL to any still running after
    `seconds`."""
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(seconds)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def worker_processes(names: list[str], settings: Settings, gateway_url: str) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs = start_workers(names, worker_env(settings, gateway_url, os.environ))
    try:
        yield procs
    finally:
        stop_workers(procs)
