"""`/docs` (Swagger UI) and `/redoc` with their scripts and styles served from an installed package's files
(fastapi-offline ships them), never from a CDN: the docs work on a cut-off or restricted network."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.responses import FileResponse, HTMLResponse, Response

from shared.errors import problem_response

DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"
ASSETS_PATH = "/docs/assets"
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
# Every path the docs answer (a gateway in front routes exactly these to them, beside /openapi.json).
DOCS_PATHS = (DOCS_PATH, REDOC_PATH, *(f"{ASSETS_PATH}/{name}" for name in ASSETS))
# Swagger UI would ask validator.swagger.io to check the document and show its badge: not offline.
SWAGGER_PARAMETERS = {"validatorUrl": None, "displayOperationId": True, "docExpansion": "list"}


@cache
def _static() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def swagger_page(openapi_url: str, title: str) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=openapi_url,
        title=title,
        swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
        swagger_ui_parameters=SWAGGER_PARAMETERS,
    )


def redoc_page(openapi_url: str, title: str) -> HTMLResponse:
    return get_redoc_html(
        openapi_url=openapi_url,
        title=title,
        redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS_PATH}/favicon.png",
        with_google_fonts=False,
    )


def asset(name: str) -> Response:
    """One of the docs' files; a problem+json 404 for any other name."""
    if name not in ASSETS:
        return problem_response(404, "Not Found", detail=f"No asset {name!r}.", instance=f"{ASSETS_PATH}/{name}")
    return FileResponse(_static() / name, media_type=ASSETS[name], headers={"Cache-Control": "public, max-age=86400"})


def docs_response(path: str, openapi_url: str, title: str) -> Response | None:
    """The docs' answer to a GET of `path`, or None when the path is not theirs (for a plain ASGI dispatcher)."""
    if path == DOCS_PATH:
        return swagger_page(openapi_url, title)
    if path == REDOC_PATH:
        return redoc_page(openapi_url, title)
    if path.startswith(ASSETS_PATH + "/"):
        return asset(path.removeprefix(ASSETS_PATH + "/"))
    return None


def docs_router(openapi_url: str, title: str) -> APIRouter:
    """The docs' routes for a FastAPI app (left out of its OpenAPI document)."""
    router = APIRouter(include_in_schema=False)

    @router.get(DOCS_PATH)
    async def swagger() -> HTMLResponse:
        return swagger_page(openapi_url, title)

    @router.get(REDOC_PATH)
    async def redoc() -> HTMLResponse:
        return redoc_page(openapi_url, title)

    @router.get(ASSETS_PATH + "/{name}")
    async def docs_asset(name: str) -> Response:
        return asset(name)

    return router
