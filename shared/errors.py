"""Domain errors and the one handler that renders every error as RFC 9457 problem+json."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, ClassVar

from asyncpg import exceptions as pg_errors  # type: ignore[import-untyped]
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "urn:reliefhub:problem:"
PROBLEM_REF = "#/components/schemas/Problem"
# character_not_in_repertoire (a NUL byte in text), untranslatable_character (\u0000 in jsonb)
NUL_SQLSTATES = frozenset({"22021", "22P05"})

log = logging.getLogger("reliefhub.errors")


class ProblemError(BaseModel):
    """Where a request went wrong (`loc`: `body`, `query`, `header`, `file` and the path below it) and why."""

    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """An RFC 9457 problem document: every error of this API, with `Content-Type: application/problem+json`.

    Extension members appear where an error carries them; others may follow."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(description="A URN naming the kind of problem: `urn:reliefhub:problem:<slug>`.")
    title: str = Field(description="A short summary of the kind of problem.")
    status: int = Field(description="The HTTP status code.")
    detail: str | None = Field(None, description="What went wrong with this request.")
    instance: str | None = Field(None, description="The path of the request.")
    errors: list[ProblemError] | None = Field(
        None, description="Validation problems and other per-field reasons, one entry each."
    )
    attempts_left: int | None = Field(None, description="A wrong handover PIN: tries left before receipt locks.")
    allowed: list[str] | None = Field(None, description="A refused status change: the statuses allowed from here.")
    retry_after: int | None = Field(
        None, description="Seconds to wait before retrying (as the `Retry-After` header says)."
    )
    available: int | None = Field(None, description="A funding source short of money: fen it still has.")
    offer_id: str | None = Field(None, description="The funding source (cash pledge) a problem is about.")


class DomainError(Exception):
    """Base of every error a service raises on purpose; carries its HTTP status."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"
    # Most errors undo the request's transaction; one that reports a change the request made on purpose
    # (a proposal cancelled because its lot was taken) keeps it.
    keeps_changes: ClassVar[bool] = False

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Sequence[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = list(errors) if errors is not None else None
        self.headers = headers
        self.extra = extra


class NotFound(DomainError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(DomainError):
    status, slug, title = 409, "conflict", "Conflict"


class Forbidden(DomainError):
    status, slug, title = 403, "forbidden", "Forbidden"


class OutOfRegion(Forbidden):
    """A coordinator whose token names regions acted on something outside them."""

    slug, title = "out-of-region", "Outside the regions of the token"


class Unauthorized(DomainError):
    status, slug, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="reliefhub"'})


class InvalidRequest(DomainError):
    status, slug, title = 422, "invalid-request", "Invalid request"


class PreconditionFailed(DomainError):
    status, slug, title = 412, "precondition-failed", "The resource has changed (stale If-Match)"


class PreconditionRequired(DomainError):
    status, slug, title = 428, "precondition-required", "If-Match is required to change this resource"


class PayloadTooLarge(DomainError):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class ServiceUnavailable(DomainError):
    status, slug, title = 503, "service-unavailable", "A backing service is unavailable; retry shortly"


class IdentityProviderUnavailable(ServiceUnavailable):
    slug, title = "identity-provider-unavailable", "The identity provider's keys cannot be fetched; retry shortly"


def problem_response(
    status: int,
    title: str,
    *,
    slug: str | None = None,
    detail: str | None = None,
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        **(extra or {}),
        "type": PROBLEM_BASE + (slug or _slug_for(status)),
        "title": title,
        "status": status,
        "detail": detail or title,
        "instance": instance,
    }
    if errors is not None:
        body["errors"] = errors
    retry = (headers or {}).get("Retry-After")
    if retry is not None and retry.isdigit():
        body["retry_after"] = int(retry)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _slug_for(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "-")
    except ValueError:
        return "error"


def problem_responses(*errors: type[DomainError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for a route: the problem+json errors it can return (shared.openapi completes them)."""
    out: dict[int | str, dict[str, Any]] = {}
    every: tuple[type[DomainError], ...] = (*errors, InvalidRequest, Unauthorized)
    for err in every:
        out[err.status] = {
            "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}},
            "description": out.get(err.status, {}).get("description", err.title),
        }
    return out


def _instance(request: Request) -> str:
    return request.url.path


def _loc(loc: Sequence[Any]) -> list[Any]:
    return list(loc)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return problem_response(
        exc.status,
        exc.title,
        slug=exc.slug,
        detail=exc.detail,
        instance=_instance(request),
        errors=exc.errors,
        headers=exc.headers,
        extra=exc.extra,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errs = [{"loc": _loc(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()]
    if any(e.get("type") == "json_invalid" for e in exc.errors()):
        return problem_response(
            400,
            "Malformed JSON body",
            slug="malformed-json",
            detail="The request body is not valid JSON.",
            instance=_instance(request),
            errors=errs,
        )
    return problem_response(
        422,
        "Invalid request",
        slug="invalid-request",
        detail="The request failed validation; see errors.",
        instance=_instance(request),
        errors=errs,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    title = HTTPStatus(exc.status_code).phrase if exc.status_code in HTTPStatus._value2member_map_ else "Error"
    detail = exc.detail if isinstance(exc.detail, str) else title
    return problem_response(
        exc.status_code,
        title,
        detail=detail,
        instance=_instance(request),
        headers=dict(exc.headers) if exc.headers else None,
    )


# SQLSTATEs of a server that is away for now: class 08 (connection exception), 57P01 admin_shutdown, 57P02
# crash_shutdown, 57P03 cannot_connect_now ("the database system is starting up / shutting down"); 53300
# too_many_connections (every connection slot taken: busy, not broken).
UNAVAILABLE_SQLSTATES = ("08", "53300", "57P01", "57P02", "57P03")


# deadlock_detected, serialization_failure: two transactions collided; running one again usually succeeds.
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})


def retryable(exc: BaseException) -> bool:
    """A transaction that lost a collision with another (deadlock, serialization failure): run it again."""
    orig = getattr(exc, "orig", exc)
    return getattr(orig, "sqlstate", None) in RETRYABLE_SQLSTATES or (
        getattr(getattr(orig, "__cause__", None), "sqlstate", None) in RETRYABLE_SQLSTATES
    )


def invalid_value(exc: BaseException) -> bool:
    """A request's value the database cannot take: a data exception (SQLSTATE class 22) from the server (out of
    range, invalid text representation, …) or from asyncpg itself, for a value it cannot encode for its
    parameter (a datetime that overflows in UTC, an int past its column's range: DataError, 22000)."""
    sqlstate = getattr(getattr(exc, "orig", exc), "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith("22")


def database_unavailable(exc: BaseException) -> bool:
    """The database cannot be reached now (down, restarting, a dropped connection, every pooled connection busy
    past the pool's timeout): retry later; not a bug."""
    if isinstance(exc, (OperationalError, InterfaceError, OSError, ConnectionError, PoolTimeout)):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    # Through SQLAlchemy the SQLSTATE is on .orig; raw asyncpg (shared.db.driver_connection) carries it itself.
    sqlstate = getattr(getattr(exc, "orig", exc), "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(UNAVAILABLE_SQLSTATES):
        return True
    return isinstance(exc, pg_errors.InterfaceError) and "connection is closed" in str(exc)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    # A connection that dropped or a server that is restarting: the client may retry.
    if retryable(exc):  # still colliding after the route's own retries
        return problem_response(
            503,
            "Concurrent changes collided; retry",
            slug="concurrent-update",
            detail="Another request changed the same records at the same moment; send the request again.",
            instance=_instance(request),
            headers={"Retry-After": "1"},
        )
    # PostgreSQL refuses NUL (U+0000) in text and jsonb (SQLSTATE 22021 / 22P05), wherever a request's string
    # reaches a query, through SQLAlchemy or raw asyncpg: that is the client's text, not the server's fault.
    if getattr(getattr(exc, "orig", exc), "sqlstate", None) in NUL_SQLSTATES:
        return problem_response(
            422,
            InvalidRequest.title,
            slug=InvalidRequest.slug,
            detail="Text may not contain NUL (U+0000) characters.",
            instance=_instance(request),
        )
    if invalid_value(exc):
        orig = getattr(exc, "orig", exc)
        log.warning("a value refused by the database: %s %s", orig.__class__.__name__, getattr(orig, "sqlstate", ""))
        return problem_response(
            422,
            "A value in the request cannot be stored",
            slug="invalid-value",
            detail="A value in the request is out of range or malformed for what it is stored as.",
            instance=_instance(request),
        )
    if database_unavailable(exc):
        log.warning("database unavailable: %s", exc.__class__.__name__)
        return problem_response(
            503,
            ServiceUnavailable.title,
            slug=ServiceUnavailable.slug,
            instance=_instance(request),
            headers={"Retry-After": "2"},
        )
    return await unexpected_error(request, exc)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        500, "Internal server error", detail="An unexpected error occurred.", instance=_instance(request)
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(OSError, _database_error)
    # every pooled connection busy for the pool's whole timeout: busy, not broken
    app.add_exception_handler(PoolTimeout, _database_error)
    # raw asyncpg (shared.db.driver_connection) raises its own errors, not DBAPIError: data exceptions (NUL in
    # text among them) from the server or from the driver's encoding of a parameter
    app.add_exception_handler(pg_errors.DataError, _database_error)
    # raw asyncpg on a dropped connection or a server going away: 503 as well
    app.add_exception_handler(pg_errors.InterfaceError, _database_error)
    app.add_exception_handler(pg_errors.PostgresConnectionError, _database_error)
    app.add_exception_handler(pg_errors.OperatorInterventionError, _database_error)
    app.add_exception_handler(Exception, unexpected_error)
