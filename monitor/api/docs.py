"""The API documentation pages, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), without internet.

FastAPI's own pages load their JavaScript and CSS from a CDN, so behind a firewall they stay
blank. The same assets come here from the ``fastapi-offline`` package (Swagger UI 5, ReDoc 2,
kept current by its maintainers) and are served by Tidewatch itself under ``/docs/assets``.
Like ``/openapi.json``, the pages need no key: they describe the API, they hold no data.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs/assets"


def _assets_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` from local assets; ``app`` is built with
    ``docs_url=None, redoc_url=None`` so that FastAPI's CDN pages are not registered."""
    app.mount(ASSETS_URL, StaticFiles(directory=_assets_dir()), name="docs-assets")

    def urls(request: Request) -> tuple[str, str]:
        root = request.scope.get("root_path", "")  # behind a proxy serving under a prefix
        return f"{root}{app.openapi_url}", f"{root}{ASSETS_URL}"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        openapi, assets = urls(request)
        return get_swagger_ui_html(
            openapi_url=openapi,
            title=f"{app.title} - API",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        openapi, assets = urls(request)
        page = get_redoc_html(
            openapi_url=openapi,
            title=f"{app.title} - API",
            redoc_js_url=f"{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/favicon.png",
            with_google_fonts=False,
        )
        # ReDoc's sidebar always fetches Redocly's logo from their CDN (hidden when it fails):
        # images from here only, so the browser does not even try
        page.headers["Content-Security-Policy"] = "img-src 'self' data:"
        return page
