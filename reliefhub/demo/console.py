"""`reliefhub demo` in a terminal: check the server is there, run the demo with progress lines, print the summary."""

from __future__ import annotations

import asyncio
import time

import httpx
from rich.console import Console

from reliefhub.demo.client import DemoError
from reliefhub.demo.driver import run_demo
from reliefhub.demo.summary import Summary, fund_table, summary_table
from shared.settings import Settings


def run_cli(base_url: str, *, sites: int, seed: int, concurrency: int, settings: Settings, console: Console) -> int:
    """`reliefhub demo`: run against a server, print progress and the summary; the exit code."""
    started = time.perf_counter()

    def say(message: str) -> None:
        console.print(f"[dim]{time.perf_counter() - started:6.1f}s[/] {message}")

    async def main() -> Summary:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            try:
                ready = await client.get("/readyz")
            except httpx.TransportError as exc:
                raise DemoError(
                    f"no ReliefHub server answers at {base_url} ({exc.__class__.__name__}); "
                    "start one with `make dev` in another terminal, or pass --base-url"
                ) from exc
            if ready.status_code != 200:
                raise DemoError(f"{base_url}/readyz answered {ready.status_code}: the server is not ready")
            return await run_demo(
                client,
                settings,
                sites=sites,
                seed=seed,
                concurrency=concurrency,
                wait_seconds=max(180.0, 3.0 * sites),
                base_url=base_url.rstrip("/"),
                progress=say,
            )

    try:
        summary = asyncio.run(main())
    except DemoError as exc:
        console.print(f"[red]✗[/] the demo stopped: {exc}")
        return 1
    console.print(summary_table(summary))
    console.print(fund_table(summary))
    console.print(f"The operation's public accounts (no token): {summary.public_accounts_url}", soft_wrap=True)
    console.print(f"A donor's gift, step by step (open in a browser): {summary.tracking_url}", soft_wrap=True)
    for warning in summary.warnings:
        console.print(f"[yellow]![/] {warning}")
    return 0
