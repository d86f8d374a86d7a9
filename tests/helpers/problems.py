"""Assertions on RFC 9457 problem+json answers (docs/api.md), one for every test."""

from __future__ import annotations

from typing import Any

import httpx

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:reliefhub:problem:"


def assert_problem(
    response: httpx.Response, status: int, slug: str | None = None, *, context: str = ""
) -> dict[str, Any]:
    """The response is a problem+json document with `status` (and, given, the type `urn:reliefhub:problem:<slug>`)
    and every member docs/api.md promises; its body."""
    where = f"{context}: " if context else ""
    assert response.status_code == status, f"{where}expected {status}, got {response.status_code}: {response.text}"
    content_type = response.headers.get("content-type", "")
    assert content_type.startswith(PROBLEM_JSON), f"{where}content-type {content_type!r}: {response.text}"
    body = response.json()
    assert isinstance(body, dict), f"{where}{body!r}"
    missing = {"type", "title", "status", "detail", "instance"} - body.keys()
    assert not missing, f"{where}problem lacks {sorted(missing)}: {body}"
    assert body["status"] == status, f"{where}{body}"
    assert isinstance(body["type"], str) and body["type"].startswith(TYPE_PREFIX), f"{where}{body}"
    assert isinstance(body["title"], str) and body["title"], f"{where}{body}"
    assert isinstance(body["detail"], str) and body["detail"], f"{where}{body}"
    assert body["instance"] == response.request.url.path, f"{where}{body}"
    assert "Traceback" not in response.text, f"{where}{response.text}"
    if slug is not None:
        assert body["type"] == TYPE_PREFIX + slug, f"{where}{body['type']}"
    return body


def error_locs(body: dict[str, Any]) -> list[list[Any]]:
    """The `loc` of every entry of a validation problem's `errors` (each entry checked to have loc and msg)."""
    assert isinstance(body.get("errors"), list) and body["errors"], body
    for e in body["errors"]:
        assert set(e) >= {"loc", "msg"} and isinstance(e["loc"], list) and e["msg"], e
    return [e["loc"] for e in body["errors"]]
