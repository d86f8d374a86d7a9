"""The OpenAPI document as the contract clients are generated from: `<collection>_<verb>` operationIds tagged
with their collection, every error an RFC 9457 `Problem` under application/problem+json, and the headers the kit
reads and writes (Idempotency-Key, If-Match, If-None-Match; ETag, Location, Idempotent-Replayed, Retry-After,
WWW-Authenticate) declared where a route uses them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_typed_return_annotation
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel
from starlette.routing import BaseRoute

from shared.errors import PROBLEM_JSON, PROBLEM_REF, Problem
from shared.etag import if_match_version, set_etag
from shared.idempotency import REPLAYED_HEADER

V1 = "v1"
METHODS = ("get", "put", "post", "delete", "patch")
# The verb of a method on a collection (`/v1/sites`) or on one of its members (`/v1/sites/{site_id}`).
COLLECTION_VERBS = {"POST": "create", "PUT": "replace", "PATCH": "update", "DELETE": "delete"}
MEMBER_VERBS = {"GET": "get", "POST": "create", "PUT": "replace", "PATCH": "update", "DELETE": "delete"}

PARAMETERS: dict[str, dict[str, Any]] = {
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "Any unique string (a UUID): a retry with the same key and body gets the first response "
        "again (marked `Idempotent-Replayed: true`) instead of doing the work twice. Kept 24 hours, per caller.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    },
    "IfMatch": {
        "name": "If-Match",
        "in": "header",
        "required": True,
        "description": "The `ETag` of your last read of the resource: the change applies only if nobody changed "
        "it since (412 otherwise; 428 without the header). `*` matches any version.",
        "schema": {"type": "string", "minLength": 1},
    },
    "IfNoneMatch": {
        "name": "If-None-Match",
        "in": "header",
        "required": False,
        "description": "The `ETag` of the copy you hold: 304 Not Modified, with no body, while it is current.",
        "schema": {"type": "string", "minLength": 1},
    },
}
HEADERS: dict[str, dict[str, Any]] = {
    "ETag": {
        "description": "The version of the resource, for `If-Match` on a change and `If-None-Match` on a read.",
        "schema": {"type": "string"},
    },
    "Location": {"description": "The path of the resource this request created.", "schema": {"type": "string"}},
    "IdempotentReplayed": {
        "description": "`true` when this is the stored answer to an earlier request with the same Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "RetryAfter": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}},
    "WWWAuthenticate": {
        "description": "The authentication scheme to use: `Bearer`.",
        "schema": {"type": "string"},
    },
}
IN_FLIGHT = "A request with this Idempotency-Key is still being processed"


def segments(path: str) -> list[str]:
    """The path's segments below `/v1`: `/v1/sites/{site_id}` → `["sites", "{site_id}"]`."""
    parts = [p for p in path.split("/") if p]
    return parts[1:] if parts and parts[0] == V1 else parts


def collection_of(path: str) -> str | None:
    """`/v1/sites/{site_id}` → `sites`; None outside /v1."""
    parts = [p for p in path.split("/") if p]
    return parts[1] if len(parts) > 1 and parts[0] == V1 else None


def _is_parameter(segment: str) -> bool:
    return segment.startswith("{")


def _lists(route: APIRoute) -> bool:
    """A GET that answers a list (`{items: [...]}`), not one document."""
    # Called while FastAPI builds the route, before it sets `response_model` from the return annotation.
    model = getattr(route, "response_model", None)
    if model is None or isinstance(model, DefaultPlaceholder):
        model = get_typed_return_annotation(route.endpoint)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return "items" in model.model_fields
    return True


def operation_id(route: APIRoute) -> str:
    """`<collection>_<verb>`: `sites_list`, `sites_create`, `sites_get`, `sites_update`, `policy_replace`; an action
    is its own verb (`needs_verify`, `shipments_receipt`); a representation's suffix follows (`track_get_html`,
    `public_accounts_get_html`)."""
    method = sorted(route.methods or {"GET"})[0]
    parts = segments(route.path_format)
    if collection_of(route.path_format) is None:
        return route.name
    collection, rest = parts[0], parts[1:]
    words = [collection, *(s.partition(".")[0] for s in rest if not _is_parameter(s))]
    last = rest[-1] if rest else None
    suffix = last.partition("}")[2].lstrip(".") if last and _is_parameter(last) else ""
    if last is not None and _is_parameter(last):
        words.append(MEMBER_VERBS.get(method, method.lower()))
    elif last is not None and "." in last and method == "GET":  # a representation: `statement.html`
        suffix = last.partition(".")[2]
        words.append("get")
    elif method == "GET":
        words.append("list" if _lists(route) else "get")
    elif last is None or method != "POST":  # POST to a static segment is an action, named by it
        words.append(COLLECTION_VERBS.get(method, method.lower()))
    if suffix:
        words.append(suffix)
    return "_".join(words).replace("-", "_")


# --- what a route does with the kit's headers ----------------------------------------------------------------


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for dep in dependant.dependencies:
        yield dep
        yield from _dependencies(dep)


def uses(route: APIRoute, helper: Callable[..., Any]) -> bool:
    """The route calls one of the kit's header helpers (`if_match_version`, `set_etag`), in its body or as a
    dependency."""
    code = getattr(route.endpoint, "__code__", None)
    if code is not None and helper.__name__ in code.co_names:
        return True
    return any(dep.call is helper for dep in _dependencies(route.dependant))


def sets_header(route: APIRoute, name: str) -> bool:
    """The route's body sets `response.headers[name]` itself."""
    code = getattr(route.endpoint, "__code__", None)
    return code is not None and name in code.co_consts


def _honours_idempotency(route: APIRoute) -> bool:
    from shared.app import TransactionalRoute  # shared.app builds every document with this module

    return isinstance(route, TransactionalRoute)


# --- the document ---------------------------------------------------------------------------------------------


def refine(doc: dict[str, Any], routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """Complete a service's generated document (in place) into the contract; returns it."""
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError", "ProblemDetail"):
        schemas.pop(name, None)
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    components.setdefault("parameters", {}).update(PARAMETERS)
    components.setdefault("headers", {}).update(HEADERS)
    tags: dict[str, None] = {}
    for context in iter_route_contexts(list(routes)):  # FastAPI's view of included routers' routes
        route = context.original_route
        if not isinstance(route, APIRoute) or not context.include_in_schema or context.path_format is None:
            continue
        path: str = context.path_format
        item = doc.get("paths", {}).get(path, {})
        for method in context.methods or ():
            op = item.get(method.lower())
            if op is None:
                continue
            collection = collection_of(path)
            if collection is not None:
                op["tags"] = [collection]
                tags[collection] = None
            _refine_operation(op, route, path, method)
    if tags:
        doc["tags"] = [{"name": t, "description": f"`/v1/{t}`"} for t in tags]
    return doc


def _refine_operation(op: dict[str, Any], route: APIRoute, path: str, method: str) -> None:
    _optional_body(op.get("requestBody"))
    responses: dict[str, Any] = op.setdefault("responses", {})
    if op.get("security") == []:
        responses.pop("401", None)  # public: no token is asked for, none refused
    parameters: list[dict[str, Any]] = op.setdefault("parameters", [])
    idempotent = method == "POST" and _honours_idempotency(route)
    if idempotent:
        parameters.append(_ref("parameters", "IdempotencyKey"))
        responses.setdefault("409", {"description": IN_FLIGHT})
        responses.setdefault("422", {"description": "Invalid request"})
    if uses(route, if_match_version):
        parameters.append(_ref("parameters", "IfMatch"))
        responses.setdefault("412", {"description": "The resource has changed (stale If-Match)"})
        responses.setdefault("428", {"description": "If-Match is required to change this resource"})
    etag = uses(route, set_etag)
    single = bool(segments(path)) and _is_parameter(segments(path)[-1])
    if method == "GET" and single and etag:
        parameters.append(_ref("parameters", "IfNoneMatch"))
        responses.setdefault("304", {"description": "Not modified: the copy named by If-None-Match is current."})
        responses["304"]["headers"] = {"ETag": _ref("headers", "ETag")}
    if not parameters:
        op.pop("parameters")
    for code, response in sorted(responses.items()):
        _refine_response(code, response, route, etag=etag, idempotent=idempotent)
    op["responses"] = dict(sorted(responses.items()))


def _refine_response(code: str, response: dict[str, Any], route: APIRoute, *, etag: bool, idempotent: bool) -> None:
    status = int(code) if code.isdigit() else 0
    headers: dict[str, Any] = response.get("headers", {})
    if status >= 400:
        response["content"] = {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}
        if status == 401:
            headers["WWW-Authenticate"] = _ref("headers", "WWWAuthenticate")
        if status in (429, 503) or (status == 409 and idempotent):
            headers["Retry-After"] = _ref("headers", "RetryAfter")
    elif 200 <= status < 300 and status != 204:
        if etag:
            headers["ETag"] = _ref("headers", "ETag")
        if sets_header(route, "Location"):
            headers["Location"] = _ref("headers", "Location")
        if idempotent:
            headers[REPLAYED_HEADER] = _ref("headers", "IdempotentReplayed")
    if headers:
        response["headers"] = headers


def _optional_body(body: dict[str, Any] | None) -> None:
    """An optional body (`data: X | None = None`) is `X`, not required, rather than `X or null`: generators
    send nothing for an absent optional body, where some would send `null` for a nullable one."""
    if body is None or body.get("required"):
        return
    for media in body.get("content", {}).values():
        choices = media.get("schema", {}).get("anyOf", [])
        kept = [c for c in choices if c != {"type": "null"}]
        if len(choices) == 2 and len(kept) == 1:
            media["schema"] = kept[0]


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}
