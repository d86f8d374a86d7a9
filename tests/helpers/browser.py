"""A real headless Chromium against the app served by uvicorn on a loopback port: the DOM a page renders, and
Chromium's log (each Content-Security-Policy violation is reported on its console, which it logs to stderr)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

CHROMIUM_SECONDS = 60
CSP_VIOLATION = "Content Security Policy"


@contextlib.asynccontextmanager
async def serving(app: Any, **options: Any) -> AsyncIterator[str]:
    """The app on a free loopback port (its lifespan is already running, or not needed), with uvicorn `options`
    beside the defaults; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, **{"log_level": "warning", "lifespan": "off", "ws": "none", **options}
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(200):
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
        sock.close()


async def dump_dom(
    chromium: str, url: str, profile: Path, *flags: str, seconds: float = CHROMIUM_SECONDS
) -> tuple[str, str]:
    """The page's DOM after loading, and Chromium's log (its console included); `flags` go to Chromium too."""
    proc = await asyncio.create_subprocess_exec(
        chromium,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        *flags,
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), seconds)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"chromium did not finish within {seconds} s")
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {err.decode(errors='replace')[-2000:]}"
    return out.decode(), err.decode(errors="replace")


def chromium_path() -> str:
    """Chromium's executable, or the test is skipped."""
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("chromium not installed: CI installs it with apt-get (see .ci/run)")
    return path
