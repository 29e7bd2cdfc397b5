"""The browser tier, loaded with `pytest_plugins = ["browser_fixtures"]`: Playwright's Python
package driving Debian's `chromium` (never a downloaded browser), against a real uvicorn
server on 127.0.0.1 (helpers in browser_support.py).

- `browser`: headless Chromium for the test module.  Missing (no `chromium` on the path, or no
  playwright package) it skips the test locally and FAILS it in CI (CI=true); `.ci/run`
  installs the Debian package when it is absent.
- `browser_page`: a fresh 1280x800 page whose every request is intercepted: one that would
  leave 127.0.0.1 is aborted and recorded in `page_watch.outside`, and the test fails at
  teardown if there was any; `page_watch` also records CSP refusals and script errors.
- `live_server`: the API over a fresh SQLite store in the test's tmp folder, under uvicorn
  on a loopback port (`api_support.LiveServer(app)` serves an app of the test's own).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from api_support import LiveServer
from browser_support import LOOPBACK, PageWatch

from api.app import create_app
from api.settings import Settings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")  # as tests/conftest.py


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"the browser tests must run in CI: {reason}")
    pytest.skip(reason)


# Per module, not per session: while Playwright's sync API is started its event loop counts
# as running in this thread, so any later test calling `asyncio.run()` would fail.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, driven by Playwright (one per test module)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install -e '.[test]')")
    executable = shutil.which("chromium")
    if executable is None:
        _missing("no `chromium` on the path (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page_watch() -> PageWatch:
    return PageWatch()


@pytest.fixture
def browser_page(browser: Any, page_watch: PageWatch) -> Iterator[Any]:
    """A page that can reach 127.0.0.1 only; fails the test if it tried more."""
    # Service workers could fetch past the route handler: refuse them.
    context = browser.new_context(viewport={"width": 1280, "height": 800},
                                  service_workers="block")

    def guard(route: Any) -> None:
        url = route.request.url
        if urlsplit(url).hostname == LOOPBACK:
            route.continue_()
        else:
            page_watch.outside.append(url)
            route.abort()

    def failed(request: Any) -> None:
        if request.failure == "net::ERR_BLOCKED_BY_CSP":
            page_watch.refused.append(request.url)

    context.route("**/*", guard)
    page = context.new_page()
    page.on("requestfailed", failed)
    page.on("pageerror", lambda error: page_watch.errors.append(str(error)))
    yield page
    context.close()
    if page_watch.outside:
        pytest.fail(f"the page requested beyond {LOOPBACK}: {page_watch.outside}")


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """The API over a fresh SQLite store in the test's tmp folder, on a real socket."""
    settings = Settings(database_url=f"sqlite:///{tmp_path}/closer.db", host=LOOPBACK,
                        tasks_dir=str(tmp_path / "tasks"))
    with LiveServer(create_app(settings)) as server:
        yield server
