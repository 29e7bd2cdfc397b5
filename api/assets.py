"""Static assets served by Closer itself, under `/static`: no page loads anything from a CDN,
so `/docs`, `/redoc` (and the dashboard) work on a machine without internet.

The third-party libraries are vendored byte for byte from their npm packages under
`api/static/vendor/<package>-<version>/`, each with its licence; `api/static/vendor/README.md`
records what each is, where it came from and what it is for.  To upgrade one, replace its
folder and the constant below (tests/test_static_assets.py checks they agree).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
STATIC_URL = "/static"
VENDOR_URL = f"{STATIC_URL}/vendor"

SWAGGER_UI = f"{VENDOR_URL}/swagger-ui-dist-5.35.0"
REDOC = f"{VENDOR_URL}/redoc-2.5.4"
HTMX = f"{VENDOR_URL}/htmx.org-2.0.11/htmx.min.js"
HTMX_SSE = f"{VENDOR_URL}/htmx-ext-sse-2.2.4/sse.min.js"
CHART_JS = f"{VENDOR_URL}/chart.js-4.6.1/chart.umd.min.js"
FAVICON = f"{SWAGGER_UI}/favicon-32x32.png"

# The docs pages may load from Closer only: the browser itself refuses anything else (ReDoc
# 2.5.4 always asks cdn.redoc.ly for its logo; it hides the image when refused).  Inline
# script and style: FastAPI's pages start Swagger UI inline and ReDoc injects its styles;
# blob: is ReDoc's search worker.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; "
            "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
            "worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'")


def install(app: FastAPI) -> None:
    """Mount `/static` and serve `/docs` (Swagger UI) and `/redoc` from it: FastAPI's own
    page builders, pointed at the vendored files (the app is built with ``docs_url=None``
    and ``redoc_url=None`` so FastAPI's CDN-backed pages are not registered)."""
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="static")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css", swagger_favicon_url=FAVICON,
            # Off: Swagger UI would send the schema's URL to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None})
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        # ReDoc's page would otherwise fetch its fonts from fonts.googleapis.com.
        page = get_redoc_html(
            openapi_url=openapi_url, title=f"{app.title} - ReDoc",
            redoc_js_url=f"{REDOC}/redoc.standalone.js", redoc_favicon_url=FAVICON,
            with_google_fonts=False)
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page
