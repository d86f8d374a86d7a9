"""ETags from row versions, and the If-Match check for updates (412 when stale, 428 when missing)."""

from __future__ import annotations

from fastapi import Request, Response

from shared.errors import PreconditionFailed, PreconditionRequired


def etag(version: int) -> str:
    return f'"{version}"'


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)


def if_match_version(request: Request) -> int | None:
    """The version the client last saw, from If-Match; None for `If-Match: *`. Missing → 428."""
    header = request.headers.get("if-match")
    if header is None or not header.strip():
        raise PreconditionRequired("Send If-Match with the ETag from your last GET of this resource.")
    header = header.strip()
    if header == "*":
        return None
    versions: list[int] = []
    for tag in header.split(","):
        tag = tag.strip().removeprefix("W/").strip('"')
        if tag.isdigit():
            versions.append(int(tag))
    if len(versions) != 1:
        raise PreconditionFailed("If-Match must carry exactly one ETag of this resource.")
    return versions[0]


def check_version(expected: int | None, actual: int) -> None:
    if expected is not None and expected != actual:
        raise PreconditionFailed(f"The resource is at version {actual}; you sent If-Match for {expected}.")
