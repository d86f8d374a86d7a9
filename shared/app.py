"""Building a service's FastAPI app: one transaction per request, idempotent POSTs, problem+json, health."""

from __future__ import annotations

import asyncio
import gc
import inspect
import random
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any, ClassVar, get_type_hints

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from shared.auth import BEARER_SCHEME, Principal, principal_subject
from shared.catalog.follow import refresh as refresh_catalog
from shared.docs import docs_router
from shared.errors import (
    DomainError,
    PayloadTooLarge,
    install_error_handlers,
    problem_response,
    retryable,
    unexpected_error,
)
from shared.etag import not_modified
from shared.idempotency import IdempotentRequest
from shared.logging import configure_logging
from shared.metrics import REQUEST_LATENCY
from shared.openapi import operation_id, refine
from shared.orgs import WRITE_METHODS, require_approved_org
from shared.runtime import Runtime
from shared.service import ServiceSpec
from shared.settings import Settings, get_settings
from shared.tracing import continue_trace

API_VERSION = "1.0.0"
TRANSACTION_ATTEMPTS = 3
NOSNIFF = (b"x-content-type-options", b"nosniff")  # on every answer: a body is only ever what it says it is
GC_THRESHOLDS = (20_000, 50, 100)


def runtime_of(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


AuthorizationCheck = Callable[[Request], Any]


def authorization_checks(dependant: Dependant) -> list[AuthorizationCheck]:
    """The route's authorization: every dependency answering a Principal (current_principal, require_roles,
    a service's own role checks). Each must take the request alone, so it can run before anything else."""
    found: list[AuthorizationCheck] = []
    for dep in dependant.dependencies:
        if dep.call is None or not _answers_principal(dep.call):
            found += [c for c in authorization_checks(dep) if c not in found]
            continue
        takes_more = (
            dep.path_params or dep.query_params or dep.header_params or dep.cookie_params or dep.body_params
        ) or dep.dependencies
        if takes_more or dep.request_param_name is None:
            raise TypeError(f"{dep.call!r} answers a Principal, so it must take the request alone")
        if dep.call not in found:
            found.append(dep.call)
    return found


def _answers_principal(call: Callable[..., Any]) -> bool:
    try:
        return get_type_hints(call).get("return") is Principal
    except (NameError, TypeError):  # a callable without resolvable annotations is no authorization check
        return False


class TransactionalRoute(APIRoute):
    """Runs each request in one transaction, committed before the response is sent; honours Idempotency-Key.

    A stored response is replayed only to a caller the route admits now: its authorization dependencies run
    first (a key is scoped to org + sub, and the same org + sub may come back with fewer roles).

    With the organisations registry on, a write by an organisation the registry has not approved is refused
    before anything else (shared.orgs); the registry's own routes, where organisations register, opt out."""

    approved_orgs_only: ClassVar[bool] = True

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()
        checks = authorization_checks(self.dependant)
        vetted = self.approved_orgs_only

        async def handler(request: Request) -> Response:
            rt = runtime_of(request)
            if rt.spec.catalog is not None:
                await refresh_catalog(rt.sessionmaker, rt.spec.catalog)
            if vetted and rt.settings.org_registry_enforced and request.method in WRITE_METHODS:
                await require_approved_org(request, rt)
            idem: IdempotentRequest | None = None
            if request.method == "POST" and "idempotency-key" in request.headers:
                subject = await principal_subject(request, rt.settings)
                if subject is not None:  # without a valid token the route answers 401 anyway
                    for check in checks:  # 401 / 403 before a replay, or a word about the key
                        outcome = check(request)
                        if inspect.isawaitable(outcome):
                            await outcome
                    idem = await IdempotentRequest.from_request(request, rt.spec.kit, subject)
                    replay = await idem.claim(rt.sessionmaker, rt.settings)
                    if replay is not None:
                        return replay
            try:
                for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
                    try:
                        response = await self._in_transaction(request, inner, rt, idem)
                        break
                    except DBAPIError as exc:
                        # A deadlock or serialization failure rolled everything back: run it again (what
                        # the request does elsewhere — reserving in supply — is idempotent by reference).
                        if attempt == TRANSACTION_ATTEMPTS or not retryable(exc):
                            raise
                        await asyncio.sleep(random.uniform(0.005, 0.05) * attempt)
            except BaseException:
                if idem is not None:
                    await asyncio.shield(idem.release(rt.sessionmaker))
                raise
            if request.method == "GET":
                return not_modified(request, response) or response
            return response

        return handler

    @staticmethod
    async def _in_transaction(
        request: Request,
        inner: Callable[[Request], Coroutine[Any, Any, Response]],
        rt: Runtime,
        idem: IdempotentRequest | None,
    ) -> Response:
        async with rt.sessionmaker() as session:
            request.state.session = session
            kept: DomainError | None = None
            async with session.begin():
                try:
                    response = await inner(request)
                except DomainError as exc:
                    if not exc.keeps_changes:
                        raise
                    kept = exc  # an answer that reports what the request did: commit, then raise
                if idem is not None and kept is None:
                    if response.status_code < 400:
                        await idem.complete(session, response)
                    else:
                        await asyncio.shield(idem.release(rt.sessionmaker))
            if kept is not None:
                raise kept
        return response


class RegistryRoute(TransactionalRoute):
    """A transactional route open to organisations the registry has not approved (yet): the registry's own."""

    approved_orgs_only = False


def service_router(*, approved_orgs_only: bool = True, **kwargs: Any) -> APIRouter:
    return APIRouter(route_class=TransactionalRoute if approved_orgs_only else RegistryRoute, **kwargs)


async def get_session(request: Request) -> AsyncSession:
    session: AsyncSession = request.state.session
    return session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


class ServiceMiddleware:
    """One ASGI layer for what every request needs: trace context, latency metrics, the body limit (413
    before an oversized body is read whole), and the 500 for an unhandled error.

    Starlette's ServerErrorMiddleware answers an unhandled error with the app's handler and then re-raises it
    to the server, and uvicorn then closes the connection: a keep-alive client's next request would fail too.
    Answered here, the error ends with its request."""

    def __init__(self, app: ASGIApp, service: str, max_bytes: Callable[[Scope], int]) -> None:
        self.app = app
        self.service = service
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes(scope)
        incoming = None
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _too_large(scope, receive, send, limit)
                return
            if name == b"traceparent":
                incoming = value.decode("latin-1")
        tp = continue_trace(incoming).encode()
        start = time.perf_counter()
        status = 500
        seen = 0
        exceeded = replaced = started = finished = False

        async def limited_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    exceeded = True
                    raise PayloadTooLarge(f"The body is larger than {limit} bytes.")
            return message

        async def wrapped_send(message: Message) -> None:
            nonlocal status, replaced, started, finished
            if message["type"] == "http.response.start":
                started = True
                if exceeded:
                    # FastAPI answers any error while reading a body with 400; a body cut off at the limit is 413.
                    replaced = finished = True
                    await _too_large(scope, receive, send, limit)
                    return
                status = message["status"]
                headers = [*message.get("headers", []), (b"traceparent", tp)]
                if not any(name.lower() == b"x-content-type-options" for name, _ in headers):
                    headers.append(NOSNIFF)
                message["headers"] = headers
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            if not replaced:
                await send(message)

        try:
            await self.app(scope, limited_receive, wrapped_send)
        except Exception as exc:
            if started and not finished:
                raise  # a response cut off midway: only closing the connection tells the client
            response = await unexpected_error(Request(scope), exc)
            if not started:
                await response(scope, receive, wrapped_send)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            REQUEST_LATENCY.labels(self.service, scope.get("method", ""), path, str(status)).observe(
                time.perf_counter() - start
            )


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    resp = problem_response(
        413,
        PayloadTooLarge.title,
        slug=PayloadTooLarge.slug,
        detail=f"The body is larger than {limit} bytes.",
        instance=scope.get("path"),
    )
    await resp(scope, receive, send)


def health_router(service: str, *, metrics: bool = True) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @router.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        rt = runtime_of(request)
        checks: dict[str, str] = {}
        try:
            async with rt.engine.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), timeout=2)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unavailable: {exc.__class__.__name__}"
        try:
            await asyncio.wait_for(rt.redis.ping(), timeout=2)
            checks["redis"] = "ok"
        except Exception as exc:
            checks["redis"] = f"unavailable: {exc.__class__.__name__}"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "service": service, "checks": checks},
            status_code=200 if ok else 503,
        )

    if metrics:

        @router.get("/metrics", include_in_schema=False)
        async def metrics_text() -> Response:
            return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def create_service_app(spec: ServiceSpec, settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = Runtime.start(spec, settings)
        # Everything loaded at startup lives as long as the process: keep it out of the collector's scans,
        # and collect the young generation less often (requests allocate many short-lived objects).
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        try:
            yield
        finally:
            await app.state.runtime.close()

    docs = settings.docs_exposed
    app = FastAPI(
        title=f"ReliefHub {spec.name}",
        description=spec.description,
        version=API_VERSION,
        lifespan=lifespan,
        openapi_url="/openapi.json" if docs else None,
        docs_url=None,  # shared.docs serves them, from installed files
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    app.state.spec = spec
    _declare_bearer_auth(app)
    install_error_handlers(app)
    _install_redis_unavailable(app)
    for router in spec.routers:
        app.include_router(router)
    app.include_router(health_router(spec.name, metrics=settings.metrics_on_api_port))
    if docs:
        app.include_router(docs_router("/openapi.json", app.title))

    def limit(scope: Scope) -> int:
        return settings.max_import_bytes if scope.get("path", "").endswith("/imports") else settings.max_body_bytes

    app.add_middleware(ServiceMiddleware, service=spec.name, max_bytes=limit)
    if settings.trusted_proxies:
        # Outermost, so that everything inside (the tracking rate limit, logs) sees the forwarded client address.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    return app


def _declare_bearer_auth(app: FastAPI) -> None:
    """Every /v1 operation needs a bearer token unless its route says `openapi_extra={"security": []}`; then the
    document is completed into the contract (shared.openapi)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = build()
            doc.setdefault("components", {}).setdefault("securitySchemes", {})["bearerAuth"] = BEARER_SCHEME
            for path, item in doc.get("paths", {}).items():
                if path.startswith("/v1/"):
                    for operation in item.values():
                        operation.setdefault("security", [{"bearerAuth": []}])
            app.openapi_schema = refine(doc, app.routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _install_redis_unavailable(app: FastAPI) -> None:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return problem_response(
            503,
            "A backing service is unavailable; retry shortly",
            slug="service-unavailable",
            instance=request.url.path,
            headers={"Retry-After": "2"},
        )

    app.add_exception_handler(RedisConnectionError, handler)
    app.add_exception_handler(RedisTimeoutError, handler)
