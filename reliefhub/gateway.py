"""One port for every service: routes `/v1/<collection>` to its service from the route table, serves the
merged OpenAPI document and /docs, and (in development) runs every service's workers in the same process."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import Receive, Scope, Send

from reliefhub.registry import route_table, service_of, services, sub_resource_table
from shared.app import API_VERSION
from shared.docs import docs_response, docs_router
from shared.errors import problem_response
from shared.settings import Settings, get_settings
from shared.worker import run_worker

# How the project runs uvicorn (`reliefhub dev`, `reliefhub serve`): no `server` header naming the software (the
# Date header stays); no logging set-up of uvicorn's own, so its logs go through shared.logging's redacting
# handler; forwarded headers believed only from RELIEFHUB_TRUSTED_PROXIES (shared.app), never from uvicorn's
# FORWARDED_ALLOW_IPS (loopback by default).
UVICORN_OPTIONS: dict[str, Any] = {"server_header": False, "log_config": None, "proxy_headers": False}
DOCS_SERVICE = "api-docs"  # the merged document's own deployment (reliefhub/deploy)


LICENSE = {"name": "Apache-2.0", "identifier": "Apache-2.0"}
COMPONENT_KINDS = ("schemas", "parameters", "headers", "securitySchemes")


def merge_openapi(apps: dict[str, FastAPI], *, server_url: str | None = None) -> dict[str, Any]:
    """The whole /v1 surface in one document. Two services may not define one component differently.
    `server_url`: the deployment's public base URL (default: the first app's `public_base_url` setting)."""
    if server_url is None:
        settings = [app.state.settings for app in apps.values() if hasattr(app.state, "settings")]
        server_url = settings[0].public_base_url if settings else "/"
    merged: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "ReliefHub API",
            "version": API_VERSION,
            "description": "Matching donated resources to frontline needs in a disaster. "
            "Errors are RFC 9457 problem+json; lists use cursor pagination; "
            "creating POSTs honour Idempotency-Key; updates need If-Match.",
            "license": LICENSE,
            "contact": {"name": "ReliefHub operators", "url": server_url.rstrip("/") + "/docs"},
        },
        "servers": [{"url": server_url.rstrip("/") or "/", "description": "This deployment"}],
        "paths": {},
        "components": {kind: {} for kind in COMPONENT_KINDS},
        "tags": [],
        "x-tagGroups": [],
    }
    for name, app in apps.items():
        doc = copy.deepcopy(app.openapi())
        for path, item in doc.get("paths", {}).items():
            if not path.startswith("/v1/"):
                continue
            if path in merged["paths"]:
                raise ValueError(f"{path} is defined by two services")
            merged["paths"][path] = item
        for kind in COMPONENT_KINDS:
            for key, schema in doc.get("components", {}).get(kind, {}).items():
                seen = merged["components"][kind].get(key)
                if seen is not None and seen != schema:
                    raise ValueError(f"components.{kind}.{key} differs between services ({name})")
                merged["components"][kind][key] = schema
        _merge_tags(merged, name, app, doc)
    return merged


def _merge_tags(merged: dict[str, Any], name: str, app: FastAPI, doc: dict[str, Any]) -> None:
    """Operations are tagged with their collection; Redoc groups the collections by service. A sub-resource
    another service serves (`/v1/donors/{id}/statement`) keeps its collection's tag, listed once."""
    known = {t["name"] for t in merged["tags"]}
    tags = [
        {**t, "description": f"{t['description']}, {name}: {app.description}"}
        for t in doc.get("tags", [])
        if t["name"] not in known
    ]
    merged["tags"] += tags
    merged["x-tagGroups"].append({"name": name, "tags": [t["name"] for t in tags]})


def service_apps(settings: Settings) -> dict[str, FastAPI]:
    """Every service's app, built (not started)."""
    apps: dict[str, FastAPI] = {}
    for name, spec in services().items():
        module = __import__(f"services.{name}.main", fromlist=["create_app"])
        apps[name] = module.create_app(settings)
        assert apps[name].state.spec is spec
    return apps


def docs_app(apps: dict[str, FastAPI] | None = None) -> FastAPI:
    """`/openapi.json` (every service's, merged) and `/docs`, with no database or Redis: the `api-docs`
    deployment, `uvicorn --factory reliefhub.gateway:docs_app`. `apps`: the service apps (default: built here)."""
    document = merge_openapi(apps if apps is not None else service_apps(get_settings()))
    app = FastAPI(title="ReliefHub API docs", openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/openapi.json")
    async def openapi() -> JSONResponse:
        return JSONResponse(document)

    app.include_router(docs_router("/openapi.json", "ReliefHub API"))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": DOCS_SERVICE}

    return app


class Gateway:
    """An ASGI app dispatching by collection to in-process service apps."""

    def __init__(self, settings: Settings | None = None, *, run_workers: bool = False) -> None:
        self.settings = settings or get_settings()
        self.run_workers = run_workers
        self.apps = service_apps(self.settings)
        self.routes = route_table()
        self.sub_resources = sub_resource_table()
        self._openapi: dict[str, Any] | None = None
        self.stop = asyncio.Event()

    def openapi(self) -> dict[str, Any]:
        if self._openapi is None:
            self._openapi = merge_openapi(self.apps)
        return self._openapi

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            transport = httpx.ASGITransport(app=self)  # services call each other in-process
            for app in self.apps.values():
                await stack.enter_async_context(app.router.lifespan_context(app))
                app.state.runtime.transport = transport
            workers: list[asyncio.Task[None]] = []
            if self.run_workers:
                self.stop.clear()
                workers = [
                    asyncio.create_task(run_worker(app.state.runtime, self.stop), name=f"worker-{n}")
                    for n, app in self.apps.items()
                ]
            try:
                yield
            finally:
                self.stop.set()
                await asyncio.gather(*workers, return_exceptions=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        service = service_of(path)
        if service is not None:
            await self.apps[service](scope, receive, send)
            return
        response = await self._own(scope, path)
        await response(scope, receive, send)

    async def _own(self, scope: Scope, path: str) -> Response:
        if path == "/openapi.json" and self.settings.docs_exposed:
            return JSONResponse(self.openapi())
        docs = docs_response(path, "/openapi.json", "ReliefHub API") if self.settings.docs_exposed else None
        if docs is not None:
            return docs
        if path == "/healthz":
            return JSONResponse({"status": "ok", "services": sorted(self.apps)})
        if path == "/readyz":
            return await self._readyz()
        if path == "/metrics" and self.settings.metrics_on_api_port:
            return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)
        if path == "/":
            return HTMLResponse(
                '<p>ReliefHub API. See <a href="/docs">/docs</a>, <a href="/redoc">/redoc</a> and '
                '<a href="/openapi.json">/openapi.json</a>.</p>'
            )
        return problem_response(404, "Not Found", detail=f"No resource at {path}.", instance=path)

    async def _readyz(self) -> Response:
        from httpx import ASGITransport, AsyncClient

        results: dict[str, Any] = {}
        for name, app in self.apps.items():
            async with AsyncClient(transport=ASGITransport(app=app), base_url="http://gateway") as client:
                r = await client.get("/readyz")
                results[name] = r.json().get("checks", {})
        ok = all(v == "ok" for checks in results.values() for v in checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "services": results}, status_code=200 if ok else 503
        )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        try:
            async with self.lifespan():
                await send({"type": "lifespan.startup.complete"})
                message = await receive()
        except Exception as exc:
            await send({"type": "lifespan.startup.failed", "message": repr(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})


def dev_app() -> Gateway:
    """Every service and its workers in one ASGI app (`uvicorn --factory reliefhub.gateway:dev_app`)."""
    return Gateway(get_settings(), run_workers=True)
