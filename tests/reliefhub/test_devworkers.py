"""`reliefhub dev`'s worker processes: what each is told (the dev server's URL, the settings dev chose) and how
they stop (SIGINT, then SIGKILL past the grace period)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from subprocess import PIPE

from reliefhub.devworkers import stop_workers, worker_env
from shared.settings import Settings


def test_a_worker_is_told_the_dev_server_s_url_and_dev_s_settings_unless_the_environment_says_otherwise() -> None:
    settings = Settings(db_pool_size=10, webhook_allowed_networks=["127.0.0.0/8"])
    env = worker_env(settings, "http://127.0.0.1:8123", {"PATH": "/bin", "RELIEFHUB_GATEWAY_URL": "http://old"})
    assert env["RELIEFHUB_GATEWAY_URL"] == "http://127.0.0.1:8123" and env["PATH"] == "/bin"
    assert env["RELIEFHUB_DB_POOL_SIZE"] == "10"
    assert json.loads(env["RELIEFHUB_WEBHOOK_ALLOWED_NETWORKS"]) == ["127.0.0.0/8"]
    kept = worker_env(settings, "http://x", {"RELIEFHUB_DB_POOL_SIZE": "4"})
    assert kept["RELIEFHUB_DB_POOL_SIZE"] == "4"


def _python(code: str) -> subprocess.Popen[bytes]:
    """A Python process running `code`, once it says it is ready (its signal handling set up)."""
    proc = subprocess.Popen([sys.executable, "-c", code + "\nprint('ready', flush=True)\ntime.sleep(60)"], stdout=PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    return proc


def test_workers_stop_on_sigint_and_one_that_ignores_it_is_killed_after_the_grace_period() -> None:
    polite = _python("import signal, sys, time\nsignal.signal(signal.SIGINT, lambda *_: sys.exit(0))")
    stubborn = _python("import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)")
    started = time.monotonic()
    stop_workers([polite, stubborn], seconds=1.0)
    for proc in (polite, stubborn):
        assert proc.stdout is not None
        proc.stdout.close()
    assert polite.returncode == 0
    assert stubborn.returncode == -9 and time.monotonic() - started < 10
