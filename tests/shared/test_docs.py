"""/docs (Swagger UI) and /redoc work on a cut-off network: every script, style sheet and icon they reference is
served by the same server, from the installed package's files, never from a CDN — on the development gateway, on
the `api-docs` deployment and on a service's own port."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from reliefhub.gateway import Gateway, docs_app
from services.needs.main import create_app
from shared.docs import swagger_page
from shared.settings import Settings

SETTINGS = Settings(environment="test", jwt_secret="t" * 40)
EXTERNAL = re.compile(r"""(?:https?:)?//[^\s"'<>]+""")


class References(HTMLParser):
    """Every URL an HTML page makes the browser fetch: script src, link href, img src."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and (name == "src" or (tag == "link" and name == "href")):
                self.urls.append(value)


@pytest.fixture(scope="module", params=["gateway", "api-docs", "service"])
def app(request: pytest.FixtureRequest) -> Any:
    if request.param == "gateway":
        return Gateway(SETTINGS)
    if request.param == "api-docs":
        return docs_app(Gateway(SETTINGS).apps)
    return create_app(SETTINGS)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_docs_reference_only_their_own_server(app: Any, page: str) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://docs.test") as client:
        html = await client.get(page)
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assert EXTERNAL.findall(html.text) == [], html.text
        parser = References()
        parser.feed(html.text)
        assert len(parser.urls) >= 2, html.text  # the script and the icon at least
        for url in parser.urls:
            assert url.startswith("/"), url
            asset = await client.get(url)
            assert asset.status_code == 200 and len(asset.content) > 1000, url
            expected = "image/" if url.endswith(".png") else "text/css" if url.endswith(".css") else "text/javascript"
            assert asset.headers["content-type"].startswith(expected), (url, asset.headers["content-type"])
        document = await client.get("/openapi.json")
        assert document.status_code == 200 and document.json()["paths"]
        assert "/openapi.json" in html.text
        missing = await client.get("/docs/assets/no-such-file.js")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


def test_swagger_ui_asks_no_validator_service() -> None:
    """Swagger UI's default sends the document to validator.swagger.io for a badge: turned off."""
    page = bytes(swagger_page("/openapi.json", "ReliefHub API").body).decode()
    assert '"validatorUrl": null' in page and "validator.swagger.io" not in page
