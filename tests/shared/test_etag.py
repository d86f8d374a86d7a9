"""ETags from row versions and If-Match on updates: 428 when missing, 412 when stale, `*` and weak tags taken."""

from __future__ import annotations

import httpx
import pytest
from starlette.requests import Request

from shared.errors import PreconditionFailed, PreconditionRequired
from shared.etag import check_version, etag, if_match_version
from tests.helpers.auth import TokenFactory
from tests.helpers.problems import assert_problem


def _request(if_match: str | None) -> Request:
    headers = [(b"if-match", if_match.encode())] if if_match is not None else []
    return Request({"type": "http", "method": "PATCH", "path": "/", "headers": headers, "query_string": b""})


@pytest.mark.parametrize(
    ("header", "version"),
    [('"3"', 3), (' "3" ', 3), ('W/"3"', 3), ("*", None), (" * ", None), ("3", 3), ('"0"', 0)],
)
def test_if_match_names_the_version_the_client_saw(header: str, version: int | None) -> None:
    assert if_match_version(_request(header)) == (None if version is None else {version})


@pytest.mark.parametrize("header", [None, "", "   "])
def test_a_missing_if_match_is_428(header: str | None) -> None:
    with pytest.raises(PreconditionRequired) as info:
        if_match_version(_request(header))
    assert info.value.status == 428


@pytest.mark.parametrize("header", ['"abc"', '"-1"', '"1.0"', 'W/""'])
def test_an_if_match_that_names_no_version_is_412(header: str) -> None:
    with pytest.raises(PreconditionFailed) as info:
        if_match_version(_request(header))
    assert info.value.status == 412


def test_if_match_with_several_tags_accepts_any_of_them() -> None:
    assert if_match_version(_request('"1", W/"2"')) == frozenset({1, 2})
    check_version(frozenset({1, 2}), 2)
    with pytest.raises(PreconditionFailed):
        check_version(frozenset({1, 2}), 3)


def test_check_version() -> None:
    check_version(None, 7)
    check_version(frozenset({7}), 7)
    with pytest.raises(PreconditionFailed, match="version 7"):
        check_version(frozenset({6}), 7)
    assert etag(7) == '"7"'


@pytest.mark.usefixtures("redis")
async def test_patch_site_honours_if_match(client: httpx.AsyncClient, auth: TokenFactory) -> None:
    frontline = auth("frontline", org="org-a")
    created = await client.post(
        "/v1/sites", headers=frontline, json={"name": "方舱医院", "kind": "hospital", "region_code": "310115"}
    )
    assert created.status_code == 201, created.text
    url = f"/v1/sites/{created.json()['id']}"
    assert created.headers["etag"] == '"1"'
    assert (await client.get(url, headers=frontline)).headers["etag"] == '"1"'

    missing = await client.patch(url, headers=frontline, json={"name": "a"})
    assert_problem(missing, 428)

    star = await client.patch(url, headers={**frontline, "If-Match": "*"}, json={"name": "b"})
    assert star.status_code == 200, star.text
    assert star.headers["etag"] == '"2"' and star.json()["version"] == 2

    weak = await client.patch(url, headers={**frontline, "If-Match": 'W/"2"'}, json={"name": "c"})
    assert weak.status_code == 200, weak.text
    assert weak.headers["etag"] == '"3"'

    stale = await client.patch(url, headers={**frontline, "If-Match": '"2"'}, json={"name": "d"})
    body = assert_problem(stale, 412)
    assert "version 3" in body["detail"]
    assert_problem(await client.patch(url, headers={**frontline, "If-Match": "garbage"}, json={"name": "e"}), 412)

    strong = await client.patch(url, headers={**frontline, "If-Match": weak.headers["etag"]}, json={"name": "f"})
    assert strong.status_code == 200 and strong.json()["name"] == "f"
    latest = await client.get(url, headers=frontline)
    assert latest.json()["name"] == "f" and latest.headers["etag"] == '"4"'
