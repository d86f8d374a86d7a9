"""ETags from row versions, the If-Match check for updates (412 when stale, 428 when missing), and 304 for a
GET whose If-None-Match names the current version."""

from __future__ import annotations

from fastapi import Request, Response

from shared.errors import PreconditionFailed, PreconditionRequired


def etag(version: int) -> str:
    return f'"{version}"'


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)


IfMatch = frozenset[int] | None


def if_match_version(request: Request) -> IfMatch:
    """The versions the client will accept, from If-Match (RFC 9110 §13.1.1: any listed ETag may match);
    None for `If-Match: *`. Missing → 428; no usable ETag → 412."""
    header = request.headers.get("if-match")
    if header is None or not header.strip():
        raise PreconditionRequired("Send If-Match with the ETag from your last GET of this resource.")
    header = header.strip()
    if header == "*":
        return None
    versions = set()
    for tag in header.split(","):
        tag = tag.strip().removeprefix("W/").strip('"')
        if tag.isdigit():
            versions.add(int(tag))
    if not versions:
        raise PreconditionFailed("If-Match carries no ETag of this resource.")
    return frozenset(versions)


def check_version(expected: IfMatch, actual: int) -> None:
    if expected is not None and actual not in expected:
        sent = ", ".join(str(v) for v in sorted(expected))
        raise PreconditionFailed(f"The resource is at version {actual}; you sent If-Match for {sent}.")


def unchanged_since(request: Request, version: int) -> Response | None:
    """304 when If-None-Match names the ETag of `version` (RFC 9110 §13.1.2, weak comparison; `*` matches any):
    lets a route answer before it builds the body."""
    header = request.headers.get("if-none-match")
    if header is None:
        return None
    current = etag(version)
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    if "*" in tags or current in tags:
        return Response(status_code=304, headers={"ETag": current})
    return None


def send_body(request: Request) -> None:
    """This GET's body goes out even when If-None-Match names its ETag: the ETag does not cover all of it."""
    request.state.send_body = True


def not_modified(request: Request, response: Response) -> Response | None:
    """A 304 (no body) for a GET answered 200 with an ETag that the request's If-None-Match names (RFC 9110
    §13.1.2: weak comparison, `*` matches any); None otherwise."""
    header = request.headers.get("if-none-match")
    current = response.headers.get("etag")
    if header is None or current is None or response.status_code != 200:
        return None
    if getattr(request.state, "send_body", False):
        return None
    held = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    if "*" in held or current.removeprefix("W/") in held:
        return Response(status_code=304, headers={"ETag": current})
    return None
