"""Assertions on RFC 9457 problem+json answers, shared by the kit's tests and the error matrix."""

from __future__ import annotations

from typing import Any

import httpx

PROBLEM_JSON = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, *, context: str = "") -> dict[str, Any]:
    """The response is a problem+json document with `status` and every member docs/api.md promises."""
    where = f"{context}: " if context else ""
    assert response.status_code == status, f"{where}expected {status}, got {response.status_code}: {response.text}"
    content_type = response.headers.get("content-type", "")
    assert content_type.startswith(PROBLEM_JSON), f"{where}content-type {content_type!r}: {response.text}"
    body = response.json()
    assert isinstance(body, dict), f"{where}{body!r}"
    missing = {"type", "title", "status", "detail", "instance"} - body.keys()
    assert not missing, f"{where}problem lacks {sorted(missing)}: {body}"
    assert body["status"] == status, f"{where}{body}"
    assert isinstance(body["type"], str) and body["type"], f"{where}{body}"
    assert isinstance(body["title"], str) and body["title"], f"{where}{body}"
    assert isinstance(body["detail"], str) and body["detail"], f"{where}{body}"
    assert body["instance"] == response.request.url.path, f"{where}{body}"
    assert "Traceback" not in response.text, f"{where}{response.text}"
    return body
