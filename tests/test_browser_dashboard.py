"""The dashboard in a real browser (Playwright on Debian's chromium, against a real uvicorn
server and a real SMTP server on 127.0.0.1): a recruiter signs in, sees a thank-you due
today, opens the candidacy, previews the message, approves it and sees it delivered; a
viewer cannot act; a stale form is refused; names that are markup stay text on every page
(no dialog ever opens); a form without its CSRF token or from another origin is refused.
Screenshots of every page land in test-artifacts/screenshots/."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from adapters_fixtures import SmtpServer, smtp_server
from api_support import LiveServer
from browser_support import PageWatch, screenshot
from builders import interview

from api.app import create_app
from api.auth import create_token
from api.outbox_cli import build_dispatcher
from api.read_models import follower
from api.settings import Settings
from api.wiring import build_candidacies
from engine.application import Candidacies
from engine.clock import SystemClock
from engine.values import Actor

pytest_plugins = ["browser_fixtures"]  # browser, browser_page, page_watch

WORKSPACE = "agency"
COACH = Actor(user="coach@agency", workspace=WORKSPACE)
WAIT_MS = 15_000
XSS_NAMES = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>']
LONDON = ZoneInfo("Europe/London")

__all__ = ["smtp_server"]  # the fixture, imported for pytest


@dataclass
class Site:
    server: LiveServer
    app: Candidacies
    settings: Settings

    @property
    def url(self) -> str:
        return self.server.url

    def token(self, role: str) -> str:
        return create_token(self.app, workspace=WORKSPACE, role=role)


@pytest.fixture
def site(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Site]:
    """Closer on a SQLite file with email through the SMTP server, a person approving each
    message of the workspace, and the outbox and the read models running beside it as in
    `closer serve`."""
    settings = Settings(database_url=f"sqlite:///{tmp_path}/closer.db", host="127.0.0.1",
                        tasks_dir=str(tmp_path / "tasks"), smtp_host=smtp_server.host,
                        smtp_port=smtp_server.port, smtp_starttls=False,
                        approval_workspaces=WORKSPACE, session_secret="t" * 40,
                        sse_poll_seconds=0.2)
    app = build_candidacies(settings, clock=SystemClock())
    outbox_app = build_candidacies(settings, clock=SystemClock())
    dispatcher = build_dispatcher(outbox_app, settings)
    projections_app = build_candidacies(settings, clock=SystemClock())
    stop = threading.Event()
    workers = [threading.Thread(target=dispatcher.run_forever, args=(0.2, stop), daemon=True),
               threading.Thread(target=follower(projections_app).run_forever, args=(0.2, stop),
                                daemon=True)]
    try:
        with LiveServer(create_app(settings, candidacies=app)) as server:
            for worker in workers:
                worker.start()
            yield Site(server, app, settings)
    finally:
        stop.set()
        for worker in workers:
            worker.join(timeout=10)
        projections_app.close()
        dispatcher.release()
        outbox_app.close()
        app.close()


def _interviewed_today(app: Candidacies, **overrides: Any) -> str:
    """A candidacy interviewed earlier today in London, next step closed: its thank-you
    is due today."""
    now = datetime.now(UTC)
    midnight = datetime.combine(now.astimezone(LONDON).date(), time(0, 1), LONDON)
    at = max(now - timedelta(hours=1), midnight.astimezone(UTC))
    cid = app.record_interview(COACH, interview(interviewed_at=at.isoformat(),
                                                **overrides)).candidacy_id
    app.record_no_hesitations(COACH, cid)
    return cid


def _sign_in(page: Any, site: Site, role: str) -> None:
    page.goto(f"{site.url}/")
    page.get_by_label("API token").fill(site.token(role))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard/today")


def _form(page: Any, command: str) -> Any:
    """The form of ``command`` on a candidacy's page, unfolded."""
    details = page.locator(f"details[data-command={command}]")
    if details.get_attribute("open") is None:
        details.locator("summary").click()
    return details.locator("form").first


def _dialogs(page: Any) -> list[str]:
    opened: list[str] = []

    def seen(dialog: Any) -> None:
        opened.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", seen)
    return opened


def test_a_recruiter_approves_a_thank_you_due_today_and_it_reaches_the_smtp_server(
        site: Site, smtp_server: SmtpServer, browser_page: Any, page_watch: PageWatch) -> None:
    page = browser_page
    dialogs = _dialogs(page)
    cid = _interviewed_today(site.app)
    site.app.close_next_step(COACH, cid, "Onsite with the CTO")
    page.goto(f"{site.url}/dashboard/sign-in")
    screenshot(page, "dashboard-sign-in")
    _sign_in(page, site, "recruiter")

    today = page.locator("li[data-kind=thank_you]", has_text="Maya Okafor")
    today.wait_for()
    assert "(Europe/London)" in today.inner_text()
    assert page.get_by_role("heading", name="Thank-yous due today (1)").is_visible()
    screenshot(page, "dashboard-today")

    today.get_by_role("link", name="Maya Okafor").click()
    page.wait_for_url(f"**/dashboard/candidacies/{cid}")
    thanks = _form(page, "send_thank_you")
    thanks.get_by_label("Medium").select_option("email")
    thanks.get_by_label("Who sends it").select_option("send_for_me")
    thanks.get_by_role("button", name="Thank-you").click()
    page.get_by_role("status").filter(has_text="Recorded: thank-you").wait_for()

    page.get_by_role("link", name="Messages").first.click()
    card = page.locator("article.message[data-status=approval_needed]")
    for _ in range(50):  # the outbox proofs it and asks for approval within a pass or two
        if card.count():
            break
        page.wait_for_timeout(200)
        page.reload()
    card.wait_for()
    body = card.locator("[data-role=body]")
    assert body.is_visible()  # the preview is open: what will go, word for word
    assert "Dear Daniel Whitfield" in body.inner_text()
    screenshot(page, "dashboard-messages")
    card.get_by_role("button", name="Approve and send").click()
    page.get_by_role("status").filter(has_text="Message approved").wait_for()

    for _ in range(75):
        if smtp_server.sink.received:
            break
        page.wait_for_timeout(200)
    [mail] = smtp_server.sink.received
    assert mail.rcpt_tos == ["daniel@northwind.example"]
    assert "Dear Daniel Whitfield" in mail.message.get_body(("plain",)).get_content()

    page.goto(f"{site.url}/dashboard/candidacies/{cid}")
    delivered = page.locator("li[data-type=MessageDelivered]")
    for _ in range(50):
        if delivered.count():
            break
        page.wait_for_timeout(200)
        page.reload()
    assert "thank_you on email" in delivered.inner_text()
    assert page.locator("[data-role=stage]").inner_text() == "awaiting"
    assert page.locator("article.message[data-status=sent]").count() == 1
    screenshot(page, "dashboard-candidacy")
    page.get_by_role("link", name="Candidacy search").click()
    screenshot(page, "dashboard-candidacy-search")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{site.url}/dashboard/today")
    screenshot(page, "dashboard-today-phone")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert dialogs == []
    assert page_watch.errors == [] and page_watch.refused == []


def test_a_viewer_sees_and_cannot_act(site: Site, browser_page: Any) -> None:
    page = browser_page
    cid = _interviewed_today(site.app)
    _sign_in(page, site, "viewer")
    page.keyboard.press("Tab")  # by keyboard: the first stop skips to the content
    assert page.evaluate("document.activeElement.textContent") == "Skip to the content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # Today refreshes itself over the event stream: a new interview shows up unreloaded.
    page.locator("li[data-kind=thank_you]", has_text="Maya Okafor").wait_for()
    page.wait_for_timeout(500)  # the stream is connected
    _interviewed_today(site.app, candidate={"name": "Lena Park", "email": "l@example.com"})
    page.locator("li[data-kind=thank_you]", has_text="Lena Park").wait_for(timeout=WAIT_MS)
    page.goto(f"{site.url}/dashboard/candidacies/{cid}")
    assert page.get_by_text("Your role only reads").is_visible()
    assert page.locator(f"form[action^='/dashboard/candidacies/{cid}/']").count() == 0
    # A viewer's hand-made form is refused at the server, and records nothing.
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    with page.expect_navigation():
        page.evaluate("""([action, csrf]) => {
        const form = document.createElement('form');
        form.method = 'post'; form.action = action;
        form.innerHTML = `<input name="csrf" value="${csrf}"><input name="description" value="x">`;
        document.body.append(form); form.submit(); }""",
                      [f"/dashboard/candidacies/{cid}/close_next_step", csrf])
    assert "only reads" in page.locator("h1").inner_text()
    assert site.app.get(cid, WORKSPACE).stage == "hesitations_addressed"


def test_a_stale_form_is_refused_not_applied(site: Site, browser_page: Any) -> None:
    page = browser_page
    cid = _interviewed_today(site.app)
    _sign_in(page, site, "recruiter")
    page.goto(f"{site.url}/dashboard/candidacies/{cid}")
    form = _form(page, "close_next_step")
    form.get_by_label("Next step").fill("Onsite with the CTO")
    # Meanwhile someone else closes the next step for the very candidacy.
    site.app.close_next_step(COACH, cid, "A call with the hiring manager")
    form.get_by_role("button", name="Close the next step").click()
    refusal = page.locator("[data-role=refusal]")
    refusal.wait_for()
    assert "changed since the form was opened" in refusal.inner_text()
    assert site.app.get(cid, WORKSPACE).next_step["description"] == \
        "A call with the hiring manager"
    screenshot(page, "dashboard-stale-form")


@pytest.mark.parametrize("name", XSS_NAMES, ids=["script", "img-onerror"])
def test_markup_in_names_stays_inert_on_every_page(site: Site, browser_page: Any,
                                                    page_watch: PageWatch, name: str) -> None:
    page = browser_page
    dialogs = _dialogs(page)
    cid = _interviewed_today(site.app, candidate={"name": name, "email": "c@example.com"},
                             company=name,
                             interviewers=[{"name": name, "title": name,
                                            "email": "i@example.com"}])
    site.app.close_next_step(COACH, cid, "Onsite")
    site.app.send_thank_you(COACH, cid, "email", mode="send_for_me")  # a message to show
    _sign_in(page, site, "recruiter")
    for path in ("/dashboard/today", f"/dashboard/candidacies/{cid}", "/dashboard/candidacies",
                 "/dashboard/messages"):
        page.goto(f"{site.url}{path}")
        shown = page.get_by_text(name, exact=False).first
        for _ in range(50):  # the messages page lists it once the outbox has proofed it
            if shown.count():
                break
            page.wait_for_timeout(200)
            page.reload()
        assert shown.is_visible(), path
        assert page.locator("img[src=x]").count() == 0, path
    assert dialogs == []
    assert page_watch.errors == []


def test_a_form_without_its_csrf_token_or_from_another_origin_is_refused(
        site: Site, browser_page: Any) -> None:
    page = browser_page
    cid = _interviewed_today(site.app)
    _sign_in(page, site, "recruiter")
    page.goto(f"{site.url}/dashboard/candidacies/{cid}")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    form = _form(page, "close_next_step")
    form.locator("input[name=csrf]").evaluate("input => input.remove()")
    form.get_by_label("Next step").fill("Onsite with the CTO")
    with page.expect_navigation():
        form.get_by_role("button", name="Close the next step").click()
    assert "security token" in page.locator("h1").inner_text()
    # Another site (another port of the same host: same-site, so the cookie goes along)
    # posting a form with even the right token is refused by its Origin.
    evil = "http://127.0.0.1:9/evil"
    page.route(evil, lambda route: route.fulfill(content_type="text/html", body=f"""
        <form method="post" action="{site.url}/dashboard/candidacies/{cid}/close_next_step">
        <input name="csrf" value="{csrf}"><input name="description" value="evil"></form>
        <script>document.forms[0].submit()</script>"""))
    page.goto(evil)
    page.wait_for_url(f"{site.url}/**")
    assert "not sent from Closer" in page.locator("h1").inner_text()
    assert site.app.get(cid, WORKSPACE).stage == "hesitations_addressed"


def test_a_recruiter_edits_a_message_previews_it_approves_it_and_the_edit_is_delivered(
        site: Site, smtp_server: SmtpServer, browser_page: Any, page_watch: PageWatch) -> None:
    page = browser_page
    cid = _interviewed_today(site.app)
    site.app.close_next_step(COACH, cid, "Onsite with the CTO")
    site.app.send_thank_you(COACH, cid, "email", mode="send_for_me")
    _sign_in(page, site, "recruiter")
    page.get_by_role("link", name="Messages").first.click()
    card = page.locator("article.message[data-status=approval_needed]")
    for _ in range(50):
        if card.count():
            break
        page.wait_for_timeout(200)
        page.reload()
    card.get_by_role("link", name="Edit the text").click()
    page.wait_for_url(re.compile(r"/messages/[0-9a-f-]+/edit\?back="))
    box = page.get_by_label("Text of the message")
    original = box.input_value()
    added = "I enjoyed hearing about the team's plans for next year."
    mine = original.replace("Dear Daniel Whitfield,", f"Dear Daniel Whitfield,\n\n{added}")
    # A slip in the name: the preview shows proofing's finding, nothing is recorded.
    box.fill(mine.replace("Dear Daniel Whitfield", "Dear Daniel Whitfeld"))
    page.get_by_role("button", name="Preview").click()
    findings = page.get_by_label("Proofing findings")
    findings.wait_for()
    assert "Whitfeld" in findings.inner_text()
    box = page.get_by_label("Text of the message")
    box.fill(mine)
    page.get_by_role("button", name="Preview").click()
    page.locator("[data-role=proofing]").wait_for()
    assert added in page.locator("[data-role=preview]").inner_text()
    screenshot(page, "dashboard-message-edit")
    page.get_by_role("button", name="Save the edit").click()
    page.get_by_role("status").filter(has_text="Message edited").wait_for()
    card = page.locator("article.message[data-status=approval_needed]")
    assert added in card.locator("[data-role=body]").inner_text()
    assert card.locator("[data-role=edited]").is_visible()
    card.get_by_role("button", name="Approve and send").click()
    page.get_by_role("status").filter(has_text="Message approved").wait_for()
    for _ in range(75):
        if smtp_server.sink.received:
            break
        page.wait_for_timeout(200)
    [mail] = smtp_server.sink.received
    assert added in mail.message.get_body(("plain",)).get_content()
    assert page_watch.errors == [] and page_watch.refused == []
