"""The interactive API documentation (/docs: Swagger UI, /redoc: ReDoc), served with its scripts and styles.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so a server without internet showed blank
pages. The files come from the ``fastapi-offline`` package, which bundles them (Swagger UI 5, which
reads OpenAPI 3.1, and ReDoc 2), and are served from a fixed list of paths: the login gate opens
exactly these (``backend.auth``), as it does the pages.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse

ASSETS_URL = "/docs/assets"
ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
DOCS_URL, REDOC_URL, OAUTH2_REDIRECT_URL = "/docs", "/redoc", "/docs/oauth2-redirect"
# Every path these pages are served from; nothing else of the package is reachable.
DOCS_PATHS = frozenset({DOCS_URL, REDOC_URL, OAUTH2_REDIRECT_URL, *(f"{ASSETS_URL}/{name}" for name in ASSET_TYPES)})
# The files change only with the package's version: browsers may keep them a day.
CACHE = {"Cache-Control": "public, max-age=86400"}


def assets_folder() -> Path:
    """Where the installed ``fastapi-offline`` keeps the Swagger UI and ReDoc files."""
    return Path(str(files("fastapi_offline").joinpath("static")))


def add_docs(app: FastAPI, openapi_url: str) -> None:
    """Serve /docs, /redoc and their files on ``app`` (built with ``docs_url=None, redoc_url=None``)."""
    folder = assets_folder()
    title = app.title

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{title} - API", oauth2_redirect_url=OAUTH2_REDIRECT_URL,
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        )

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url, title=f"{title} - API", redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png", with_google_fonts=False,
        )

    for name, media_type in ASSET_TYPES.items():
        app.add_api_route(
            f"{ASSETS_URL}/{name}", _asset(folder / name, media_type), methods=["GET"], include_in_schema=False
        )


def _asset(path: Path, media_type: str) -> Callable[[], FileResponse]:
    def serve() -> FileResponse:
        return FileResponse(path, media_type=media_type, headers=CACHE)

    serve.__name__ = f"docs_asset_{path.stem.replace('.', '_').replace('-', '_')}"
    return serve
