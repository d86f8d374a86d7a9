"""Domain errors and the one handler that renders every error as RFC 9457 problem+json."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "urn:reliefhub:problem:"

log = logging.getLogger("reliefhub.errors")


class ProblemDetail(BaseModel):
    """An RFC 9457 problem document (extension members may follow)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


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
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _slug_for(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "-")
    except ValueError:
        return "error"


def problem_responses(*errors: type[DomainError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for a route: the problem+json errors it can return."""
    out: dict[int | str, dict[str, Any]] = {}
    every: tuple[type[DomainError], ...] = (*errors, InvalidRequest, Unauthorized)
    for err in every:
        out[err.status] = {
            "model": ProblemDetail,
            "content": {PROBLEM_JSON: {}},
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


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    # A connection that dropped or a server that is restarting: the client may retry.
    if isinstance(exc, (OperationalError, InterfaceError, OSError, ConnectionError)) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        log.warning("database unavailable: %s", exc.__class__.__name__)
        return problem_response(
            503,
            ServiceUnavailable.title,
            slug=ServiceUnavailable.slug,
            instance=_instance(request),
            headers={"Retry-After": "2"},
        )
    return await _unexpected_error(request, exc)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
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
    app.add_exception_handler(Exception, _unexpected_error)
