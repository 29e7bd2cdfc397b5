"""The Pipeline, At risk, Compliance and Rules pages in a real browser (headless Chromium
on Debian's `chromium`, driven by Playwright): signed in through the form, the figures'
tables and the Chart.js charts drawn from Closer's own files, filters kept in the URL,
screenshots of each page (1280 px, and Pipeline on a phone-sized screen), and names and
reasons made of markup rendered inert: no dialog opens on any of these pages."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from api_support import LiveServer
from browser_support import LOOPBACK, PageWatch, screenshot
from builders import interview
from test_read_models import MAYA, SCHEDULER_ACTOR, at, decided

from api.app import create_app
from api.auth import create_token
from api.read_models import follower
from api.settings import Settings
from engine.application import Candidacies
from engine.clock import FixedClock
from engine.store import eventsourcing_env

pytest_plugins = ["browser_fixtures"]  # browser, browser_page, page_watch

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
PAGES = ("pipeline", "at-risk", "compliance", "rules?policy=playbook@1")


def history(app: Candidacies, clock: FixedClock) -> None:
    """A candidate and an interviewer named with markup, a company too; one candidacy
    stalled by the policy with a reason in markup, one nudged by hand past patience with
    an override whose reason is markup."""
    clock.set(at(25, 10))
    hostile = app.record_interview(MAYA, interview(
        candidate={"name": SCRIPT, "email": "x@example.com"}, company=IMG,
        interviewers=[{"name": SCRIPT, "title": IMG, "email": "i@example.com"}],
        interviewed_at=at(25, 9).isoformat())).candidacy_id
    other = app.record_interview(MAYA, interview(
        interviewed_at=at(25, 9).isoformat(), company="Contoso")).candidacy_id
    for cid in (hostile, other):
        app.record_no_hesitations(MAYA, cid)
        app.close_next_step(MAYA, cid, "a panel")
        app.send_thank_you(MAYA, cid, "email")
    clock.set(at(26, 10))
    app.send_nudge(MAYA, other, override={"reason": SCRIPT + IMG})
    clock.set(at(40, 10))
    app.stall(SCHEDULER_ACTOR, hostile, IMG + SCRIPT,
              decided_by=decided("stall.exhausted_and_patience_spent", at(40, 10), "r1:stall"))


@pytest.fixture
def signed_in_server(tmp_path: Path) -> Iterator[tuple[LiveServer, str]]:
    clock = FixedClock(datetime(2026, 12, 10, 12, tzinfo=UTC))
    app = Candidacies(eventsourcing_env(f"sqlite:///{tmp_path}/closer.db"), clock=clock)
    history(app, clock)
    follower(app).run_once()
    token = create_token(app, workspace="w", role="recruiter", user="maya@recruit.example")
    follower(app).run_once()
    settings = Settings(database_url=f"sqlite:///{tmp_path}/closer.db", host=LOOPBACK,
                        tasks_dir=str(tmp_path / "tasks"), session_secret="t" * 40)
    with LiveServer(create_app(settings, candidacies=app)) as server:
        yield server, token
    app.close()


def sign_in(page: Any, server: LiveServer, token: str) -> None:
    page.goto(f"{server.url}/dashboard/sign-in?next=/dashboard/pipeline")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard/pipeline")


def test_figure_pages_render_their_tables_and_charts_and_keep_markup_inert(
        signed_in_server: tuple[LiveServer, str], browser_page: Any,
        page_watch: PageWatch) -> None:
    server, token = signed_in_server
    dialogs: list[str] = []
    browser_page.on("dialog", lambda dialog: (dialogs.append(dialog.message),
                                              dialog.dismiss()))
    sign_in(browser_page, server, token)

    # Pipeline: the tables, and each chart drawn by the vendored Chart.js.
    assert browser_page.locator('#stages tr[data-stage="stalled"] td').nth(1).inner_text() == "1"
    assert browser_page.locator("#funnel-1 tr").count() == 6
    for chart in ("chart-stages", "chart-funnel", "chart-stays"):
        browser_page.wait_for_selector(f'#{chart}[data-drawn="1"]')
    screenshot(browser_page, "dashboard-pipeline")
    browser_page.set_viewport_size({"width": 390, "height": 844})
    screenshot(browser_page, "dashboard-pipeline-phone")
    browser_page.set_viewport_size({"width": 1280, "height": 800})

    # A filter is a URL: typed in the form, kept on reload (a bookmark).
    browser_page.get_by_label("Company").fill("Contoso")
    browser_page.get_by_role("button", name="Filter").click()
    browser_page.wait_for_url("**company=Contoso**")
    assert browser_page.locator('#stages tr[data-stage="stalled"] td').nth(1).inner_text() == "0"
    browser_page.reload()
    assert browser_page.get_by_label("Company").input_value() == "Contoso"

    # At risk: the stall, its reason shown as text, its rule a link to the Rules page.
    browser_page.goto(f"{server.url}/dashboard/at-risk")
    row = browser_page.locator("#stalled tbody tr")
    assert row.count() == 1
    assert SCRIPT in row.inner_text() and IMG in row.inner_text()
    screenshot(browser_page, "dashboard-at-risk")
    row.get_by_role("link", name="stall.exhausted_and_patience_spent").click()
    browser_page.wait_for_url("**/dashboard/rules?policy=playbook@1#rule-stall.*")
    assert browser_page.locator('[id="rule-stall.exhausted_and_patience_spent"]').is_visible()
    screenshot(browser_page, "dashboard-rules")

    # Compliance: the override's reason, as text.
    browser_page.goto(f"{server.url}/dashboard/compliance")
    assert SCRIPT + IMG in browser_page.locator("#overrides tbody tr").inner_text()
    browser_page.wait_for_selector('#chart-compliance[data-drawn="1"]')
    screenshot(browser_page, "dashboard-compliance")

    # Markup in the filters themselves (a crafted link) stays text in every page.
    for page in PAGES:
        glue = "&" if "?" in page else "?"
        browser_page.goto(f"{server.url}/dashboard/{page}{glue}company={quote(IMG)}"
                          f"&recruiter={quote(SCRIPT)}")
        assert browser_page.locator("img[src=x]").count() == 0
        assert browser_page.locator("script:not([src]):not([type='application/json'])"
                                    ).count() == 0
    assert dialogs == []
    assert page_watch.refused == [] and page_watch.errors == []
