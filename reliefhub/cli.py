"""The `reliefhub` command: dev, migrate, serve, worker, token, import."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.auth import Principal, Role, create_token
from shared.settings import Settings

# Tracebacks without local variables: a command's locals hold settings, tokens and secrets.
app = typer.Typer(
    help="ReliefHub: match donated resources to frontline needs.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
token_app = typer.Typer(help="Bearer tokens.", no_args_is_help=True)
import_app = typer.Typer(help="Bulk imports from CSV or XLSX, all rows or none.", no_args_is_help=True)
matching_app = typer.Typer(help="The matching service's maintenance.", no_args_is_help=True)
deploy_app = typer.Typer(help="Deployment files generated from the route table.", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(deploy_app, name="deploy")
app.add_typer(matching_app, name="matching")
app.add_typer(import_app, name="import")

console = Console()
errors = Console(stderr=True)
STATE_DIR = Path(os.environ.get("RELIEFHUB_STATE_DIR", ".reliefhub"))
DEV_ENV = STATE_DIR / "dev.env"
DEV_STATE = STATE_DIR / "dev.json"  # where the running `reliefhub dev` listens, for `reliefhub demo`
DEFAULT_URL = "http://127.0.0.1:8000"


def _settings() -> Settings:
    """Settings from the environment; while `reliefhub dev` runs, its embedded servers' URLs too."""
    if DEV_ENV.exists():
        for line in DEV_ENV.read_text().splitlines():
            key, _, value = line.partition("=")
            if key and value:
                os.environ.setdefault(key, value)
    return Settings()


def _service_names() -> list[str]:
    from reliefhub.registry import services

    return list(services())


def _migrate(settings: Settings, names: list[str] | None = None) -> None:
    from reliefhub.registry import services
    from shared.migrations import upgrade

    for name, spec in services().items():
        if names and name not in names:
            continue
        upgrade(spec, settings)
        console.print(f"[green]✓[/] migrated [bold]{name}[/] (schema {spec.metadata.schema})")


@app.command()
def migrate(services: Annotated[list[str] | None, typer.Argument(help="Services (default: all).")] = None) -> None:
    """Apply every service's Alembic migrations (each in its own schema)."""
    unknown = set(services or []) - set(_service_names())
    if unknown:
        raise typer.BadParameter(f"unknown services: {', '.join(sorted(unknown))}")
    _migrate(_settings(), services)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _local_url(host: str, port: int) -> str:
    """The URL a client on this machine reaches a server listening on `host` at."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def _running_dev_url() -> str | None:
    """The URL of the `reliefhub dev` running from this directory, as it wrote it, while its process lives."""
    try:
        state = json.loads(DEV_STATE.read_text())
    except (OSError, ValueError):
        return None
    url, pid = (state.get("url"), state.get("pid")) if isinstance(state, dict) else (None, None)
    if not isinstance(url, str) or not isinstance(pid, int):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # killed without tidying up
    except PermissionError:
        pass  # alive, another user's
    return url


def _forget_dev_state() -> None:
    """Remove the state file if it is this process's (another `reliefhub dev` may have written its own since)."""
    try:
        ours = json.loads(DEV_STATE.read_text()).get("pid") == os.getpid()
    except (OSError, ValueError, AttributeError):
        return
    if ours:
        DEV_STATE.unlink(missing_ok=True)


@app.command()
def dev(
    port: Annotated[int, typer.Option(help="Port for every service.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    worker_processes: Annotated[
        bool,
        typer.Option(
            "--worker-processes/--in-process-workers",
            help="Each service's workers in a process of its own, or (default) in the API's process.",
        ),
    ] = False,
) -> None:
    """Start embedded PostgreSQL and Redis (unless DATABASE_URL / REDIS_URL are set), migrate, and serve
    every service on one port, with their workers (in its process, or with --worker-processes each service's
    a `reliefhub worker` process of its own). Ctrl-C stops everything it started."""
    import contextlib

    import uvicorn

    from reliefhub.devservers import EmbeddedPostgres, EmbeddedRedis
    from reliefhub.devworkers import worker_processes as worker_procs
    from reliefhub.gateway import UVICORN_OPTIONS, Gateway
    from reliefhub.protocol import HTTP_PROTOCOL

    started: list[Any] = []
    env: dict[str, str] = {}
    STATE_DIR.mkdir(exist_ok=True)
    DEV_ENV.unlink(missing_ok=True)
    try:
        if not (os.environ.get("DATABASE_URL") or os.environ.get("RELIEFHUB_DATABASE_URL")):
            pg = EmbeddedPostgres(STATE_DIR / "postgres")
            with console.status("starting embedded PostgreSQL…"):
                env["DATABASE_URL"] = pg.start()
            started.append(pg)
            console.print(f"[green]✓[/] PostgreSQL  {env['DATABASE_URL']}  (data in {pg.data_dir})")
        if not (os.environ.get("REDIS_URL") or os.environ.get("RELIEFHUB_REDIS_URL")):
            rd = EmbeddedRedis(STATE_DIR / "redis")
            with console.status("starting embedded Redis…"):
                env["REDIS_URL"] = rd.start()
            started.append(rd)
            console.print(f"[green]✓[/] Redis       {env['REDIS_URL']}  (data in {rd.data_dir})")
        os.environ.update(env)
        DEV_ENV.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        settings = Settings()
        if "RELIEFHUB_DB_POOL_SIZE" not in os.environ:  # five services share one development database
            settings = settings.model_copy(update={"db_pool_size": 10})
        if "RELIEFHUB_WEBHOOK_ALLOWED_NETWORKS" not in os.environ:  # receivers on this machine, in development
            settings = settings.model_copy(update={"webhook_allowed_networks": ["127.0.0.0/8", "::1/128"]})
        _migrate(settings)
        gateway = Gateway(settings, run_workers=not worker_processes)
        token = create_token(sub="dev-coordinator", org="reliefhub-hub", roles=[Role.coordinator], settings=settings)
        base = _local_url(host, port)
        written = DEV_STATE.with_suffix(".tmp")
        written.write_text(json.dumps({"url": base, "pid": os.getpid()}))
        written.replace(DEV_STATE)  # whole or not at all, for a `reliefhub demo` reading it meanwhile
        console.print(
            f"\n[bold]ReliefHub[/] on {base}\n  API docs      {base}/docs\n  OpenAPI       {base}/openapi.json"
        )
        shown = "(+ a worker process each)" if worker_processes else "(+ their workers)"
        console.print(f"  Health        {base}/readyz\n  Services      {', '.join(gateway.apps)} {shown}")
        console.print("\nCoordinator token (12 h):")
        print(token, flush=True)  # unwrapped, to copy whole
        console.print(f'\nTry: curl -H "Authorization: Bearer $TOKEN" "{base}/v1/items?q=mask"\n', soft_wrap=True)
        # Uvicorn re-raises SIGTERM after its graceful shutdown; turn it into SystemExit so `finally` runs.
        signal.signal(signal.SIGTERM, _exit_on_signal)
        with worker_procs(list(gateway.apps), settings, base) if worker_processes else contextlib.nullcontext():
            uvicorn.run(
                gateway, host=host, port=port, log_level="warning", lifespan="on", http=HTTP_PROTOCOL, **UVICORN_OPTIONS
            )
    finally:
        DEV_ENV.unlink(missing_ok=True)
        _forget_dev_state()
        for server in reversed(started):
            server.stop()
        if started:
            console.print("[green]✓[/] stopped the embedded servers")


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help="needs, supply, matching, logistics or webhooks.")],
    port: Annotated[int, typer.Option()] = 8000,
    host: Annotated[str, typer.Option()] = "0.0.0.0",  # a container's service listens on all interfaces
    workers: Annotated[int, typer.Option(help="Uvicorn worker processes.")] = 1,
) -> None:
    """Serve one service alone (production: one deployment per service)."""
    import uvicorn

    from reliefhub.gateway import UVICORN_OPTIONS
    from reliefhub.protocol import HTTP_PROTOCOL
    from shared.logging import configure_logging

    if service not in _service_names():
        raise typer.BadParameter(f"unknown service {service!r}")
    settings = _settings()
    _require_service_urls(service, settings)
    if settings.metrics_port:
        if workers > 1:  # each uvicorn worker process has its own metrics; one port cannot serve them all
            raise typer.BadParameter("RELIEFHUB_METRICS_PORT serves one process: run one worker per process")
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, addr=host)
    configure_logging(settings)  # uvicorn logs before it builds the app (which configures it in each worker)
    uvicorn.run(
        f"services.{service}.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=False,
        http=HTTP_PROTOCOL,
        **UVICORN_OPTIONS,
    )


def _require_service_urls(service: str, settings: Settings) -> None:
    """Refuse to run a service alone when it could not reach a service it calls (the call would fail at the
    first request that needs it, long after start-up)."""
    from reliefhub.registry import services
    from shared.runtime import unreachable_services

    missing = unreachable_services(services()[service], settings)
    if missing:
        example = json.dumps({name: f"http://{name}.internal:8000" for name in missing})
        errors.print(
            f"[red]✗[/] {service} calls {', '.join(missing)}, but RELIEFHUB_SERVICE_URLS has no URL for "
            f"{'it' if len(missing) == 1 else 'them'} and RELIEFHUB_GATEWAY_URL is not set: set either "
            f"(e.g. RELIEFHUB_SERVICE_URLS='{example}')",
            soft_wrap=True,
            highlight=False,
        )
        raise typer.Exit(2)


def _run_fast(coro: Coroutine[Any, Any, None]) -> None:
    """Run a long-lived process on uvloop where it is installed (as uvicorn does for the services)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


@app.command()
def worker(service: Annotated[str, typer.Argument(help="The service whose relay, consumers and jobs to run.")]) -> None:
    """Run one service's outbox relay, event consumers and periodic jobs until SIGINT/SIGTERM."""
    from reliefhub.registry import services
    from shared.logging import configure_logging
    from shared.worker import serve_worker

    specs = services()
    if service not in specs:
        raise typer.BadParameter(f"unknown service {service!r}")
    settings = _settings()
    _require_service_urls(service, settings)
    configure_logging(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        console.print(f"worker for [bold]{service}[/] running; Ctrl-C to stop")
        await serve_worker(specs[service], settings, stop)

    _run_fast(main())


@app.command()
def demo(
    base_url: Annotated[
        str | None,
        typer.Option(help=f"The server (default: the running `reliefhub dev`'s, else {DEFAULT_URL})."),
    ] = None,
    sites: Annotated[int, typer.Option(min=1, max=5000, help="Recipient sites to create.")] = 300,
    seed: Annotated[int, typer.Option(help="Seed of the scenario (same seed, same data).")] = 2022,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="Requests in flight at once.")] = 16,
) -> None:
    """Load a relief operation modelled on the Shanghai 2022 lockdown through the HTTP API, drive it to
    receipts, feedback and the impact report, and print a summary."""
    from reliefhub.demo import run_cli

    if base_url is None:
        base_url = _running_dev_url() or DEFAULT_URL
        console.print(f"[dim]against {base_url}[/]")
    code = run_cli(base_url, sites=sites, seed=seed, concurrency=concurrency, settings=_settings(), console=console)
    raise typer.Exit(code)


@token_app.command("create")
def token_create(
    role: Annotated[list[Role], typer.Option("--role", help="Repeat for several roles.")],
    org: Annotated[str, typer.Option(help="The organisation the caller acts for.")],
    sub: Annotated[str, typer.Option(help="The caller's id.")],
    group: Annotated[str | None, typer.Option(help="Working group (e.g. medical_device).")] = None,
    region: Annotated[
        list[str] | None,
        typer.Option("--region", help="A region-code prefix a hub's coordinator acts in; repeat. None: national."),
    ] = None,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 12 * 3600,
) -> None:
    """Print a signed (HS256) bearer token."""
    for prefix in region or []:
        if not re.fullmatch(r"[0-9]{2,6}", prefix):
            raise typer.BadParameter(f"{prefix!r} is not a region-code prefix (2 to 6 digits)", param_hint="--region")
    settings = _settings()
    if not settings.hs256_accepted:
        typer.echo("This deployment refuses HS256 tokens; RELIEFHUB_ALLOW_HS256=true accepts them.", err=True)
    typer.echo(
        create_token(sub=sub, org=org, roles=role, group=group, regions=region, ttl_seconds=ttl, settings=settings)
    )


def _run_import(kind: str, file: Path, org: str, sub: str) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession

    from reliefhub.registry import services
    from shared.db import create_engine, make_sessionmaker
    from shared.errors import DomainError
    from shared.tabular import ImportReport, UnreadableFile, read_rows

    settings = _settings()
    with file.open("rb") as f:
        data = f.read(settings.max_import_bytes + 1)
    if len(data) > settings.max_import_bytes:
        console.print(f"[red]✗[/] {file.name} is larger than {settings.max_import_bytes} bytes; nothing was imported.")
        raise typer.Exit(1)
    try:
        rows = read_rows(data, file.name, max_rows=settings.max_import_rows)
    except UnreadableFile as exc:
        console.print(f"[red]✗[/] {exc.detail} Nothing was imported.")
        raise typer.Exit(1) from exc
    principal = Principal(sub=sub, org=org, roles=frozenset({Role.coordinator}))
    service_name = "needs" if kind == "needs" else "supply"
    spec = services()[service_name]

    async def run(progress: Callable[[int], None]) -> tuple[ImportReport, dict[str, str]]:
        engine = create_engine(settings, pool_size=2)
        try:
            async with make_sessionmaker(engine, spec.kit, spec.name)() as session, session.begin():
                return await _import(kind, session, principal, rows, progress)
        finally:
            await engine.dispose()

    async def _import(
        kind: str,
        session: AsyncSession,
        principal: Principal,
        rows: list[dict[str, str]],
        progress: Callable[[int], None],
    ) -> tuple[ImportReport, dict[str, str]]:
        if kind == "needs":
            from services.needs.service import import_needs

            return await import_needs(session, principal, rows, progress), {}
        from services.supply.service import import_offers

        return await import_offers(session, principal, rows, progress)

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(f"importing {kind}", total=len(rows))
        try:
            report, codes = asyncio.run(run(lambda n: bar.advance(task, n)))
        except DomainError as exc:
            bar.stop()
            _print_rejected(exc.extra or {}, exc.detail)
            raise typer.Exit(1) from exc
    console.print(
        f"[green]✓[/] imported {report.rows_accepted} of {report.rows_total} rows → "
        f"{len(report.created)} {kind} created"
    )
    table = Table("created id", *(["tracking code (shown once)"] if codes else []))
    for created in report.created:
        table.add_row(str(created), *([codes[str(created)]] if codes else []))
    console.print(table)


def _print_rejected(extra: dict[str, Any], detail: str) -> None:
    console.print(f"[red]✗[/] {detail}")
    table = Table("row", "reasons")
    for row in extra.get("report", {}).get("rows_rejected", []):
        table.add_row(str(row["row"]), "; ".join(row["errors"]))
    console.print(table)


@import_app.command("needs")
def import_needs(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV or XLSX file.")],
    org: Annotated[str, typer.Option(help="Organisation recorded as importer.")] = "reliefhub-hub",
    sub: Annotated[str, typer.Option(help="Importer id.")] = "cli",
) -> None:
    """Import needs: site_id, title, item_code, quantity [, need_ref, urgency, needed_by, beneficiaries, …]."""
    _run_import("needs", file, org, sub)


@import_app.command("offers")
def import_offers(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV or XLSX file.")],
    org: Annotated[str, typer.Option(help="Organisation recorded as importer.")] = "reliefhub-hub",
    sub: Annotated[str, typer.Option(help="Importer id.")] = "cli",
) -> None:
    """Import offers: donor_id, item_code, quantity [, offer_ref, kind, amount, currency, lat, lon, …]."""
    _run_import("offers", file, org, sub)


@matching_app.command("rebuild")
def matching_rebuild() -> None:
    """Rebuild matching's projection of open need lines and lots by replaying the needs and supply events."""
    from reliefhub.registry import services
    from reliefhub.replay import rebuild

    specs = services()
    with Progress(TextColumn("{task.description}"), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("replaying events", total=None)
        report = asyncio.run(
            rebuild(
                specs["matching"],
                specs,
                _settings(),
                tables=["need_line_view", "lot_view", "dirty_scope"],
                group="matching-projection",
                progress=lambda n: bar.advance(task, n),
            )
        )
    for stream, n in report.events.items():
        console.print(f"[green]✓[/] replayed {n} events of {stream}")


@deploy_app.command("render")
def deploy_render(
    root: Annotated[Path, typer.Option(help="The repository's root.")] = Path("."),
    check: Annotated[bool, typer.Option(help="Write nothing; exit 1 if a file is not as rendered.")] = False,
) -> None:
    """Render nginx.conf, docker-compose.yml and the Kubernetes manifests from the route table."""
    from reliefhub import deploy

    paths = deploy.check(root) if check else deploy.write(root)
    for path in paths:
        shown = path.relative_to(root)
        console.print(f"[red]✗[/] {shown} is not as rendered" if check else f"[green]✓[/] {shown}", soft_wrap=True)
    if check and paths:
        raise typer.Exit(1)


@deploy_app.command("nginx")
def deploy_nginx(
    docs: Annotated[str, typer.Option(help="host:port of api-docs (`uvicorn --factory reliefhub.gateway:docs_app`).")],
    listen: Annotated[str, typer.Option(help="nginx's `listen`: a port or address:port.")] = "8000",
) -> None:
    """Print an nginx.conf for services run as processes on known addresses (RELIEFHUB_SERVICE_URLS), the same
    routes as the compose gateway's."""
    from reliefhub import deploy

    try:
        servers = deploy.host_servers(_settings().service_urls, docs)
    except ValueError as exc:
        errors.print(f"[red]✗[/] {exc}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from exc
    head = "Generated by `reliefhub deploy nginx` from the route table and RELIEFHUB_SERVICE_URLS."
    typer.echo(deploy.nginx_conf(servers, listen=listen, resolve=False, head=head), nl=False)


@app.command("makemigration")
def makemigration(
    service: Annotated[str, typer.Argument()],
    message: Annotated[str, typer.Option("-m", help="Revision message.")],
) -> None:
    """Autogenerate an Alembic revision for one service from its models (development)."""
    from reliefhub.registry import services
    from shared.migrations import make_revision

    make_revision(services()[service], _settings(), message)


if __name__ == "__main__":
    app()
