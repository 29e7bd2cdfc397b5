"""The API docs pages in a real browser, offline: Swagger UI (`/docs`) and ReDoc (`/redoc`)
render from Closer's own vendored files, and no request leaves 127.0.0.1."""

from __future__ import annotations

from typing import Any

from api_support import LiveServer
from browser_support import PageWatch, screenshot

pytest_plugins = ["browser_fixtures"]  # browser, browser_page, page_watch, live_server

RENDER_MS = 20_000
# ReDoc 2.5.4 always asks for this image; the docs pages' CSP refuses it unsent.
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def test_swagger_ui_renders_the_operations_from_local_files_only(
        live_server: LiveServer, browser_page: Any, page_watch: PageWatch) -> None:
    loaded = browser_page.goto(f"{live_server.url}/docs")
    assert loaded is not None and loaded.ok
    # Swagger UI names each operation's block `operations-<tag>-<operationId>`.
    agenda = browser_page.locator('[id$="-getAgenda"]')
    agenda.first.wait_for(state="visible", timeout=RENDER_MS)
    assert browser_page.locator(".opblock").count() > 5
    assert browser_page.title() == "Closer - Swagger UI"
    screenshot(browser_page, "docs-swagger-ui", full_page=False)  # the page is long
    assert page_watch.outside == []
    assert page_watch.refused == []
    assert page_watch.errors == []


def test_redoc_renders_the_title_and_operations_from_local_files_only(
        live_server: LiveServer, browser_page: Any, page_watch: PageWatch) -> None:
    loaded = browser_page.goto(f"{live_server.url}/redoc")
    assert loaded is not None and loaded.ok
    title = browser_page.locator("h1", has_text="Closer")
    title.first.wait_for(state="visible", timeout=RENDER_MS)
    assert browser_page.locator('[data-section-id="operation/getAgenda"]').count() == 1
    screenshot(browser_page, "docs-redoc", full_page=False)
    assert page_watch.outside == []
    assert set(page_watch.refused) <= {REDOCLY_LOGO}
    assert page_watch.errors == []
