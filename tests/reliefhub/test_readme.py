"""The README as a newcomer follows it: `make dev PORT=…` starts the stack on that port, the README's shell
examples (its blocks fenced as `sh live`) run as written with bash and succeed against it, a URL with raw
Chinese in it gets a problem+json 400 saying what to do, and `reliefhub demo` finds the running stack by itself.

The stack is the real `make dev`, in its own process group, on the test session's PostgreSQL and Redis (as
`DATABASE_URL` / `REDIS_URL`, which `make dev` honours) and its own state directory."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from redis import Redis

from reliefhub import cli
from shared.settings import Settings
from tests.helpers.db import truncate_services
from tests.helpers.settings import ROOT

START_SECONDS = 240
STOP_SECONDS = 60
SCRIPT_SECONDS = 120
# Every curl of a README block fails the block on an HTTP error (the README's own curls print the body only).
STRICT_CURL = 'set -euo pipefail\ncurl() { command curl --fail-with-body --max-time 30 "$@"; }\n'


@dataclass
class Stack:
    url: str
    env: dict[str, str]
    state_dir: Path


def live_blocks(readme: str) -> list[str]:
    return re.findall(r"^```sh live\n(.*?)^```$", readme, re.S | re.M)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_group(proc: subprocess.Popen[bytes], seconds: float) -> None:
    """Ctrl-C to the process group, as in a terminal; killed if it does not stop in `seconds`."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        pytest.fail(f"the process group of {proc.args!r} did not stop within {seconds} s of Ctrl-C")


def newcomer_env(migrated: Settings, state_dir: Path) -> dict[str, str]:
    """A shell's environment: no setting of the tests' own, the test servers as a developer's own servers."""
    drop = ("PORT", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELIEFHUB_") and k not in drop}
    env.update(DATABASE_URL=migrated.database_url, REDIS_URL=migrated.redis_url, RELIEFHUB_STATE_DIR=str(state_dir))
    return env


@pytest.fixture(scope="module")
def stack(migrated: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One `make dev PORT=…` for this module's tests, on emptied test servers."""
    if shutil.which("make") is None or shutil.which("curl") is None:
        pytest.skip("make and curl are needed (.ci/run installs curl with apt-get)")
    asyncio.run(truncate_services(migrated.database_url))
    with Redis.from_url(migrated.redis_url) as r:
        r.flushdb()
    port = free_port()
    tmp_path = tmp_path_factory.mktemp("make-dev")
    state_dir = tmp_path / "state"
    env = newcomer_env(migrated, state_dir)
    log = tmp_path / "make-dev.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["make", "dev", f"PORT={port}"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = wait_until_ready(proc, state_dir / "dev.json", log)
        yield Stack(url=url, env=env, state_dir=state_dir)
    finally:
        stop_group(proc, STOP_SECONDS)
    assert not (state_dir / "dev.json").exists(), "reliefhub dev left its state file behind"
    assert f"ReliefHub on http://127.0.0.1:{port}" in log.read_text()


def wait_until_ready(proc: subprocess.Popen[bytes], state: Path, log: Path) -> str:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"make dev exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        if state.exists():  # reliefhub dev writes it whole (by renaming)
            url = str(json.loads(state.read_text())["url"])
            try:
                if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                    return url
            except httpx.TransportError:
                pass
        time.sleep(0.5)
    pytest.fail(f"make dev was not ready within {START_SECONDS} s:\n{log.read_text()[-3000:]}")


def bash(script: str, stack: Stack, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script],
        cwd=ROOT,
        env={**stack.env, **env},
        capture_output=True,
        text=True,
        timeout=SCRIPT_SECONDS,
    )


def test_the_readmes_examples_run_as_written_against_make_dev(stack: Stack) -> None:
    blocks = live_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert blocks, "the README has no `sh live` block"
    assert stack.url.startswith("http://127.0.0.1:") and not stack.url.endswith(":8000")  # make dev took PORT=…
    script = "\n".join(blocks)
    assert "uuidgen" not in script and not re.search(r"\$BASE/\S*[^\x00-\x7f]", script)  # URLs in ASCII
    done = bash(STRICT_CURL + script, stack, RELIEFHUB_URL=stack.url)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    out = done.stdout
    # Both searches found the masks, the site was created once and the retry replayed its answer.
    assert out.count('"code":"ppe.mask.n95","name"') == 2, out[:2000]  # as an item, not as a substitute rule
    assert '"name":"瑞金医院"' in out and re.search(r"(?i)idempotent-replayed: true", out), out[-2000:]


def test_raw_chinese_in_a_url_is_a_problem_that_says_what_to_do(stack: Stack) -> None:
    token = "$(.venv/bin/reliefhub token create --role coordinator --org hub --sub alice)"
    raw = bash(f'curl -s -i -H "Authorization: Bearer {token}" "{stack.url}/v1/items?q=口罩"', stack)
    assert raw.returncode == 0, raw.stderr
    head, _, body = raw.stdout.partition("\n\n")  # text mode: CRLF read as LF
    assert head.startswith("HTTP/1.1 400"), head
    assert re.search(r"(?im)^content-type: application/problem\+json", head), head
    problem = json.loads(body)
    assert problem["type"] == "urn:reliefhub:problem:malformed-request" and problem["status"] == 400
    assert "percent-encode" in problem["detail"] and "--data-urlencode" in problem["detail"]
    # The server is none the worse for it.
    assert httpx.get(f"{stack.url}/readyz", timeout=5).status_code == 200


def test_demo_finds_the_running_stack_by_itself(stack: Stack, tmp_path: Path) -> None:
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [".venv/bin/reliefhub", "demo", "--sites", "2"],
            cwd=ROOT,
            env={**stack.env, "COLUMNS": "200"},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # Past its check of /readyz and the sites it created (with tokens the stack accepts), it is registering
        # donors: it reached the stack, on a port nobody told it.
        deadline = time.monotonic() + SCRIPT_SECONDS
        while "registering" not in log.read_text() and demo.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        text = log.read_text()
        assert f"against {stack.url}" in text and "registering" in text, text[-3000:]
        assert "the demo stopped" not in text, text[-3000:]
    finally:
        stop_group(demo, STOP_SECONDS)


def test_demo_ignores_the_state_of_a_stack_that_is_gone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    state = tmp_path / "dev.json"
    monkeypatch.setattr(cli, "DEV_STATE", state)
    assert cli._running_dev_url() is None
    state.write_text(json.dumps({"url": "http://127.0.0.1:8123", "pid": os.getpid()}))
    assert cli._running_dev_url() == "http://127.0.0.1:8123"
    finished = subprocess.Popen(["true"])
    finished.wait()
    state.write_text(json.dumps({"url": "http://127.0.0.1:8123", "pid": finished.pid}))
    assert cli._running_dev_url() is None  # killed without tidying up
    state.write_text("{not json")
    assert cli._running_dev_url() is None
    assert cli._local_url("0.0.0.0", 8080) == "http://127.0.0.1:8080" and cli._local_url("::", 1) == "http://[::1]:1"
