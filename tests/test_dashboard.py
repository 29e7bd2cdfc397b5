"""The dashboard over HTTP (TestClient on the real app): signing in by API token into a
signed HttpOnly session cookie, CSRF and origin checks on every form, the viewer role,
another workspace's pages, stale forms, and commands sent through the API's own path.
The tests of a form's command path and the outbox run on both stores; the rest, which
never reach the store's specifics, on SQLite."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from adapters_fixtures import SmtpServer, smtp_server
from api_support import WORKSPACE, TestClient, sqlite_only
from builders import interview
from dashboard_support import ORIGIN, csrf_of, form_fields, sign_in

from api.app import create_app
from api.auth import create_token, revoke_token
from api.read_models import follower
from api.settings import Settings
from engine.application import Candidacies
from engine.values import Actor

XSS_NAMES = ['<script>alert(1)</script>', '"><img src=x onerror=alert(1)>']
COACH = Actor(user="coach@agency", workspace=WORKSPACE)
__all__ = ["smtp_server"]  # the fixture, imported for pytest


@pytest.fixture
def app(candidacies: Candidacies, database_url: str, tmp_path: Path) -> Any:
    settings = Settings(database_url=database_url, tasks_dir=str(tmp_path / "tasks"),
                        approval_workspaces=WORKSPACE,
                        session_secret="s" * 40)
    return create_app(settings, candidacies=candidacies)


@pytest.fixture
def browser_for(app: Any, candidacies: Candidacies) -> Iterator[Any]:
    """``browser_for(role, workspace)``: a client signed in to the dashboard."""
    clients: list[TestClient] = []

    def make(role: str = "recruiter", workspace: str = WORKSPACE) -> TestClient:
        client = TestClient(app, base_url=ORIGIN)
        client.token = create_token(candidacies, workspace=workspace, role=role)  # type: ignore[attr-defined]
        sign_in(client, client.token)  # type: ignore[attr-defined]
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def _record(candidacies: Candidacies, **overrides: Any) -> str:
    return candidacies.record_interview(COACH, interview(**overrides)).candidacy_id


def _versions(candidacies: Candidacies, cid: str) -> int:
    return candidacies.get(cid, WORKSPACE).version


def _post(client: TestClient, path: str, data: dict[str, str], **headers: str) -> Any:
    return client.post(path, data=data, headers={"Origin": ORIGIN, **headers},
                       follow_redirects=False)


# -- signing in -----------------------------------------------------------------------------


@sqlite_only
def test_the_root_leads_to_today_which_asks_to_sign_in_first(app: Any) -> None:
    with TestClient(app, base_url=ORIGIN) as client:
        root = client.get("/", follow_redirects=False)
        assert (root.status_code, root.headers["location"]) == (303, "/dashboard/today")
        today = client.get("/dashboard/today?company=Northwind", follow_redirects=False)
        assert today.status_code == 303
        assert today.headers["location"] == \
            "/dashboard/sign-in?next=/dashboard/today%3Fcompany%3DNorthwind"
        for path in ("/dashboard/stream", "/dashboard/messages", "/dashboard/candidacies"):
            assert client.get(path, follow_redirects=False).status_code == 303, path


@sqlite_only
def test_a_token_signs_in_to_a_signed_httponly_samesite_cookie_holding_no_token(
        app: Any, candidacies: Candidacies) -> None:
    token = create_token(candidacies, workspace=WORKSPACE, role="recruiter")
    with TestClient(app, base_url=ORIGIN) as client:
        response = sign_in(client, token)
        cookie = response.headers["set-cookie"]
        assert cookie.startswith("closer_session=")
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/dashboard" in cookie
        assert token not in cookie and token.removeprefix("closer_") not in cookie
        page = client.get("/dashboard/today")
        assert page.status_code == 200
        assert "recruiter@agency" in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'self'")


@sqlite_only
def test_a_wrong_token_a_forged_cookie_and_a_revoked_token_are_not_signed_in(
        app: Any, candidacies: Candidacies) -> None:
    with TestClient(app, base_url=ORIGIN) as client:
        page = client.get("/dashboard/sign-in")
        wrong = _post(client, "/dashboard/sign-in",
                      {"csrf": csrf_of(page.text), "token": "closer_not-a-token"})
        assert wrong.status_code == 401 and "not valid" in wrong.text
        assert client.get("/dashboard/today", follow_redirects=False).status_code == 303
        token = create_token(candidacies, workspace=WORKSPACE, role="admin")
        sign_in(client, token)
        assert client.get("/dashboard/today").status_code == 200
        payload, _, signature = client.cookies["closer_session"].rpartition(".")
        client.cookies.clear()
        forged = ("y" if signature[0] == "x" else "x") + signature[1:]  # never the same
        client.cookies.set("closer_session", f"{payload}.{forged}", path="/dashboard")
        assert client.get("/dashboard/today", follow_redirects=False).status_code == 303
        client.cookies.clear()
        sign_in(client, token)
        app.state.tokens.forget(token)
        revoke_token(candidacies, token)
        app.state.tokens.forget(token)
        assert client.get("/dashboard/today", follow_redirects=False).status_code == 303


@sqlite_only
def test_signing_out_ends_the_session(browser_for: Any) -> None:
    client = browser_for("recruiter")
    page = client.get("/dashboard/today")
    out = _post(client, "/dashboard/sign-out", {"csrf": csrf_of(page.text)})
    assert out.status_code == 303
    assert client.get("/dashboard/today", follow_redirects=False).status_code == 303


# -- CSRF and origin ------------------------------------------------------------------------


@sqlite_only
def test_a_form_without_its_csrf_token_or_from_another_origin_is_refused_and_applies_nothing(
        browser_for: Any, candidacies: Candidacies) -> None:
    cid = _record(candidacies)
    client = browser_for("recruiter")
    page = client.get(f"/dashboard/candidacies/{cid}")
    action = f"/dashboard/candidacies/{cid}/record_no_hesitations"
    fields = form_fields(page.text, action)
    before = _versions(candidacies, cid)
    without = {k: v for k, v in fields.items() if k != "csrf"}
    assert _post(client, action, without).status_code == 403
    assert _post(client, action, {**fields, "csrf": "x" * 43}).status_code == 403
    elsewhere = _post(client, action, fields, Origin="https://evil.example")
    assert elsewhere.status_code == 403 and "not sent from Closer" in elsewhere.text
    referer = client.post(action, data=fields, follow_redirects=False,
                          headers={"Referer": "https://evil.example/page"})
    assert referer.status_code == 403
    neither = client.post(action, data=fields, follow_redirects=False)
    assert neither.status_code == 403
    assert _versions(candidacies, cid) == before
    same_site = client.post(action, data=fields, follow_redirects=False,
                            headers={"Referer": f"{ORIGIN}/dashboard/candidacies/{cid}"})
    assert same_site.status_code == 303
    assert _versions(candidacies, cid) == before + 1


@sqlite_only
def test_the_sign_in_form_is_protected_too(app: Any, candidacies: Candidacies) -> None:
    token = create_token(candidacies, workspace=WORKSPACE, role="recruiter")
    with TestClient(app, base_url=ORIGIN) as client:
        client.get("/dashboard/sign-in")
        refused = _post(client, "/dashboard/sign-in", {"token": token})
        assert refused.status_code == 403
        assert client.get("/dashboard/today", follow_redirects=False).status_code == 303


@sqlite_only
def test_forms_are_taken_under_the_dashboard_only(browser_for: Any) -> None:
    client = browser_for("recruiter")
    api = client.post("/candidacies", data={"company": "x"},
                      headers={"Authorization": f"Bearer {client.token}"})
    assert api.status_code == 415
    assert api.headers["content-type"] == "application/problem+json"
    page = client.get("/dashboard/today")
    json_post = client.post("/dashboard/sign-out", json={"csrf": csrf_of(page.text)},
                            headers={"Origin": ORIGIN})
    assert json_post.status_code == 415


# -- roles and workspaces ------------------------------------------------------------------


@sqlite_only
def test_a_viewer_sees_the_pages_without_forms_and_cannot_act(
        browser_for: Any, candidacies: Candidacies) -> None:
    cid = _record(candidacies)
    recruiter = browser_for("recruiter")
    action = f"/dashboard/candidacies/{cid}/record_no_hesitations"
    fields = form_fields(recruiter.get(f"/dashboard/candidacies/{cid}").text, action)
    viewer = browser_for("viewer")
    page = viewer.get(f"/dashboard/candidacies/{cid}")
    assert page.status_code == 200 and "Maya Okafor" in page.text
    assert f'action="{action}"' not in page.text and "Your role only reads" in page.text
    own = form_fields(page.text, "/dashboard/sign-out")
    refused = _post(viewer, action, {**fields, "csrf": own["csrf"]})
    assert refused.status_code == 403 and "only reads" in refused.text
    assert _versions(candidacies, cid) == 1
    assert viewer.get("/dashboard/today").status_code == 200
    assert viewer.get("/dashboard/messages").status_code == 200


@sqlite_only
def test_another_workspaces_pages_are_not_found(browser_for: Any,
                                                candidacies: Candidacies) -> None:
    theirs = candidacies.record_interview(Actor(user="x", workspace="rival"),
                                          interview()).candidacy_id
    client = browser_for("admin")
    assert client.get(f"/dashboard/candidacies/{theirs}").status_code == 404
    assert client.get("/dashboard/today?workspace=rival").status_code == 404
    assert client.get(f"/dashboard/today?workspace={WORKSPACE}").status_code == 200
    assert client.get("/dashboard/candidacies/not-a-uuid").status_code == 404
    page = client.get("/dashboard/today")
    posted = _post(client, f"/dashboard/candidacies/{theirs}/record_no_hesitations",
                   {"csrf": csrf_of(page.text), "version": "1"})
    assert posted.status_code == 404
    assert candidacies.get(theirs, "rival").version == 1


# -- pages and forms ------------------------------------------------------------------------


@sqlite_only
def test_today_shows_a_thank_you_due_today_with_its_local_deadline(
        browser_for: Any, candidacies: Candidacies) -> None:
    cid = _record(candidacies)
    client = browser_for("recruiter")
    page = client.get("/dashboard/today")
    assert page.status_code == 200
    assert "Thank-yous due today (1)" in page.text
    assert "Wed 25 Nov 23:59 (Europe/London)" in page.text
    assert "waits for the next step to be closed" in page.text
    assert f"/dashboard/candidacies/{cid}" in page.text
    filtered = client.get("/dashboard/today?company=Nobody")
    assert "Thank-yous due today (0)" in filtered.text
    assert 'value="Nobody"' in filtered.text
    bad = client.get("/dashboard/today?since=yesterday")
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.text
    follower(candidacies).run_once()  # the recruiter filter reads the pipeline read model
    assert "Thank-yous due today (1)" in client.get(
        "/dashboard/today?recruiter=coach%40agency").text
    assert "Thank-yous due today (0)" in client.get("/dashboard/today?recruiter=someone").text
    page = client.get("/dashboard/today")
    assert "pipeline current" in page.text  # the lag strip


def test_a_form_runs_the_command_once_through_the_api_path(
        browser_for: Any, candidacies: Candidacies) -> None:
    cid = _record(candidacies)
    client = browser_for("recruiter")
    action = f"/dashboard/candidacies/{cid}/record_no_hesitations"
    fields = form_fields(client.get(f"/dashboard/candidacies/{cid}").text, action)
    done = _post(client, action, fields)
    assert done.status_code == 303
    page = client.get(done.headers["location"])
    assert "Recorded: record: no hesitations" in page.text
    assert "hesitations_addressed" in page.text
    again = _post(client, action, fields)  # the same form twice: its key answers again
    assert again.status_code == 303
    assert _versions(candidacies, cid) == 2
    step = f"/dashboard/candidacies/{cid}/close_next_step"
    fields = form_fields(client.get(f"/dashboard/candidacies/{cid}").text, step)
    closed = _post(client, step, {**fields, "description": "Onsite with the CTO",
                                  "scheduled_for": "2026-11-27T10:00"})
    assert closed.status_code == 303, closed.text
    candidacy = candidacies.get(cid, WORKSPACE)
    assert candidacy.next_step["scheduled_for"].isoformat() == "2026-11-27T10:00:00+00:00"
    assert "Next steps tomorrow (0)" in client.get("/dashboard/today").text


def test_a_stale_form_is_refused_with_a_clear_message_and_not_applied(
        browser_for: Any, candidacies: Candidacies) -> None:
    cid = _record(candidacies)
    client = browser_for("recruiter")
    action = f"/dashboard/candidacies/{cid}/raise_hesitation"
    fields = form_fields(client.get(f"/dashboard/candidacies/{cid}").text, action)
    candidacies.raise_hesitation(COACH, cid, "Someone else's hesitation, meanwhile")
    stale = _post(client, action, {**fields, "text": "Little on-call experience"})
    assert stale.status_code == 409
    assert "changed since the form was opened" in stale.text
    assert "version 1, it is now at version 2" in stale.text
    assert [h["text"] for h in candidacies.get(cid, WORKSPACE).hesitations] == [
        "Someone else's hesitation, meanwhile"]
    # The timeline shows the hesitation with its answer.
    [hesitation] = candidacies.get(cid, WORKSPACE).hesitations
    candidacies.address_hesitation(COACH, cid, hesitation["id"], "I ran on-call for two years")
    page = client.get(f"/dashboard/candidacies/{cid}").text
    answered = page[page.index('data-type="HesitationAddressed"'):]
    answered = answered[:answered.index("</li>")]
    assert "I ran on-call for two years" in answered
    assert "Someone else&#39;s hesitation, meanwhile" in answered


@sqlite_only
def test_a_refused_command_says_why_and_records_nothing(
        browser_for: Any, candidacies: Candidacies) -> None:
    cid = _record(candidacies)
    client = browser_for("recruiter")
    page = client.get(f"/dashboard/candidacies/{cid}")
    fields = form_fields(page.text, f"/dashboard/candidacies/{cid}/raise_hesitation")
    # Only the commands the stage allows have forms; one posted anyway is refused.
    assert f"/dashboard/candidacies/{cid}/stall" not in page.text
    refused = _post(client, f"/dashboard/candidacies/{cid}/stall",
                    {**fields, "reason": "no word"})
    assert refused.status_code == 409 and "Not applied" in refused.text
    blank = _post(client, f"/dashboard/candidacies/{cid}/raise_hesitation",
                  {**fields, "text": "   "})
    assert blank.status_code == 422 and "Not applied: text" in blank.text
    without = _post(client, f"/dashboard/candidacies/{cid}/raise_hesitation",
                    {k: v for k, v in {**fields, "text": "salary"}.items() if k != "version"})
    assert without.status_code == 400 and "carries no version" in without.text
    assert _versions(candidacies, cid) == 1


@sqlite_only
@pytest.mark.parametrize("name", XSS_NAMES)
def test_names_that_are_markup_render_as_text_on_every_page(
        browser_for: Any, candidacies: Candidacies, name: str) -> None:
    cid = _record(candidacies, candidate={"name": name, "email": "x@example.com"},
                  company=name,
                  interviewers=[{"name": name, "title": name, "email": "i@example.com"}])
    client = browser_for("recruiter")
    for path in ("/dashboard/today", f"/dashboard/candidacies/{cid}", "/dashboard/candidacies",
                 f"/dashboard/today?company={name}", "/dashboard/messages"):
        page = client.get(path)
        assert page.status_code == 200, path
        assert name not in page.text, path
        assert "<script>alert" not in page.text and "<img src=x" not in page.text, path


def test_messages_awaiting_approval_are_previewed_and_approved_through_the_outbox(
        browser_for: Any, candidacies: Candidacies, app: Any) -> None:
    from adapters.outbox_rows import message_rows
    from api.outbox_cli import build_dispatcher

    cid = _record(candidacies)
    candidacies.record_no_hesitations(COACH, cid)
    candidacies.close_next_step(COACH, cid, "Onsite with the CTO")
    candidacies.send_thank_you(COACH, cid, "email", mode="send_for_me")
    build_dispatcher(candidacies, app.state.settings).run_once()
    [row] = [m for m in message_rows(candidacies, candidacy_id=cid) if m.kind == "thank_you"]
    assert row.status == "approval_needed"
    viewer = browser_for("viewer")
    assert "Approve and send" not in viewer.get("/dashboard/messages").text
    client = browser_for("recruiter")
    page = client.get("/dashboard/messages")
    assert "Awaiting approval (1)" in page.text
    assert "Dear Daniel Whitfield" in page.text  # the body as it will go
    action = f"/dashboard/messages/{row.id}/approve"
    fields = form_fields(page.text, action)
    denied = _post(viewer, action, {**fields, "csrf": csrf_of(viewer.get(
        "/dashboard/messages").text)})
    assert denied.status_code == 403
    # The card's form carries the version it was rendered at, as the API's If-Match: once
    # the text is edited after the page was opened, that form is refused, nothing recorded.
    assert fields["version"].isdigit()
    build_dispatcher(candidacies, app.state.settings).edit(
        row.id, "Dear Daniel Whitfield,\n\nThank you for your time today and for your interest "
        "in me. I look forward to the onsite with the CTO.\n\nBest regards,\nMaya Okafor",
        by="someone@agency")
    stale = _post(client, action, fields)
    assert stale.status_code == 303
    shown = client.get(stale.headers["location"]).text
    assert "Not approved: this message changed since the page was opened" in shown
    assert "Awaiting approval (1)" in shown and "I look forward to the onsite" in shown
    without = _post(client, action, {k: v for k, v in fields.items() if k != "version"})
    assert without.status_code == 400 and "carries no version" in without.text
    [row] = [m for m in message_rows(candidacies, candidacy_id=cid) if m.kind == "thank_you"]
    assert row.status == "approval_needed"
    fields = form_fields(shown, action)  # the card as it stands now
    approved = _post(client, action, fields)
    assert approved.status_code == 303
    assert "Message approved" in client.get(approved.headers["location"]).text
    [row] = [m for m in message_rows(candidacies, candidacy_id=cid) if m.kind == "thank_you"]
    assert row.status == "queued"
    twice = _post(client, action, fields)  # the same form again: stale, refused
    assert "Not approved" in client.get(twice.headers["location"]).text
    assert re.search(r"Awaiting approval \(0\)", client.get("/dashboard/messages").text)


@sqlite_only
def test_the_dashboard_stays_out_of_the_api_contract(app: Any) -> None:
    paths = app.openapi()["paths"]
    assert not [p for p in paths if p == "/" or p.startswith("/dashboard")]
    assert "/candidacies" in paths


@sqlite_only
def test_a_blocked_message_is_edited_by_a_correction_then_retried(
        browser_for: Any, candidacies: Candidacies, app: Any) -> None:
    from adapters.outbox_rows import message_rows
    from api.outbox_cli import build_dispatcher

    cid = _record(candidacies, interviewers=[{"name": "Daniel Whitfield",
                                              "title": "VP Engineering"}])  # no email
    candidacies.record_no_hesitations(COACH, cid)
    candidacies.close_next_step(COACH, cid, "Onsite with the CTO")
    candidacies.send_thank_you(COACH, cid, "email", mode="send_for_me")
    # Real email (not the folder channel) needs an address: the message is blocked.
    smtp = app.state.settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": 9})
    build_dispatcher(candidacies, smtp).run_once()
    # (its fallback, a card, waits for approval meanwhile)
    [row] = [m for m in message_rows(candidacies, candidacy_id=cid) if m.channel == "email"]
    assert row.status == "blocked"
    client = browser_for("recruiter")
    page = client.get("/dashboard/messages")
    assert "Blocked by proofing (1)" in page.text
    assert f"/dashboard/candidacies/{cid}#correct" in page.text
    retry = f"/dashboard/messages/{row.id}/retry"
    fields = form_fields(page.text, retry)
    candidacy = client.get(f"/dashboard/candidacies/{cid}")
    correct = f"/dashboard/candidacies/{cid}/correct_details"
    fixed = _post(client, correct, {**form_fields(candidacy.text, correct),
                                    "person": "Daniel Whitfield", "field": "email",
                                    "value": "daniel@northwind.example"})
    assert fixed.status_code == 303, fixed.text
    # A form rendered at another version than the message's is refused, nothing recorded.
    stale = _post(client, retry, {**fields, "version": str(int(fields["version"]) - 1)})
    assert "Not retried: this message changed since the page was opened" in client.get(
        stale.headers["location"]).text
    assert "Blocked by proofing (1)" in client.get("/dashboard/messages").text
    retried = _post(client, retry, {**fields, "reason": "the address was missing"})
    assert retried.status_code == 303
    assert "Message retried" in client.get(retried.headers["location"]).text
    [row] = [m for m in message_rows(candidacies, candidacy_id=row.candidacy_id)
             if m.id == row.id]
    assert row.status == "queued"
    assert "Blocked by proofing (0)" in client.get("/dashboard/messages").text
    other = _post(client, f"/dashboard/messages/{'0' * 8}-0000-0000-0000-{'0' * 12}/retry",
                  fields)
    assert other.status_code == 404


def test_a_message_awaiting_approval_is_edited_previewed_and_goes_with_the_new_text(
        browser_for: Any, candidacies: Candidacies, app: Any,
        smtp_server: SmtpServer) -> None:
    from adapters.outbox_rows import message_rows
    from api.outbox_cli import build_dispatcher

    settings = app.state.settings.model_copy(update={
        "smtp_host": smtp_server.host, "smtp_port": smtp_server.port, "smtp_starttls": False})
    cid = _record(candidacies)
    candidacies.record_no_hesitations(COACH, cid)
    candidacies.close_next_step(COACH, cid, "Onsite with the CTO")
    candidacies.send_thank_you(COACH, cid, "email", mode="send_for_me")
    build_dispatcher(candidacies, settings).run_once()
    [row] = [m for m in message_rows(candidacies, candidacy_id=cid) if m.kind == "thank_you"]
    assert row.status == "approval_needed"
    client = browser_for("recruiter")
    edit = f"/dashboard/messages/{row.id}/edit"
    assert f'href="{edit}?back=' in client.get("/dashboard/messages").text
    page = client.get(f"{edit}?back=/dashboard/messages")
    assert page.status_code == 200
    fields = form_fields(page.text, edit)
    original = re.search(r'name="body"[^>]*>([^<]*)</textarea>', page.text, re.S)
    assert original and "Dear Daniel Whitfield" in original.group(1)
    mine = original.group(1).replace("&#39;", "'").replace("&amp;", "&").replace(
        "Dear Daniel Whitfield,", "Dear Daniel Whitfield,\n\nI enjoyed hearing about the "
        "team's plans for next year.")
    assert mine != original.group(1)
    sent = len(list(candidacies.events.get(UUID(row.id))))

    # A viewer sees no edit link and is refused the form and the post.
    viewer = browser_for("viewer")
    assert edit not in viewer.get("/dashboard/messages").text
    assert viewer.get(edit).status_code == 403
    viewer_csrf = csrf_of(viewer.get("/dashboard/messages").text)
    assert _post(viewer, edit, {**fields, "csrf": viewer_csrf, "body": mine,
                                "action": "save"}).status_code == 403
    # No CSRF token, or another origin: refused.
    assert _post(client, edit, {**fields, "csrf": "", "body": mine,
                                "action": "save"}).status_code == 403
    assert client.post(edit, data={**fields, "body": mine, "action": "save"},
                       headers={"Origin": "http://evil.example"},
                       follow_redirects=False).status_code == 403
    # A preview proofs the text and records nothing: a misspelt name is found.
    slip = _post(client, edit, {**fields, "body": mine.replace("Dear Daniel Whitfield",
                                                               "Dear Daniel Whitfeld"),
                                "action": "preview"})
    assert slip.status_code == 200 and 'aria-label="Proofing findings"' in slip.text
    assert "Whitfeld" in slip.text
    # ... and saving it is refused with the findings, the text kept in the box.
    blocked = _post(client, edit, {**fields, "body": mine.replace("Daniel Whitfield",
                                                                  "Daniel Whitfeld"),
                                   "action": "save"})
    assert blocked.status_code == 422 and "proofing would block it" in blocked.text
    assert "Dear Daniel Whitfeld" in blocked.text
    ok_preview = _post(client, edit, {**fields, "body": mine, "action": "preview"})
    assert ok_preview.status_code == 200 and "Proofing passed" in ok_preview.text
    # Bad input: empty, too long.
    empty = _post(client, edit, {**fields, "body": "  \n ", "action": "save"})
    assert empty.status_code == 422 and "the text is empty" in empty.text
    long = _post(client, edit, {**fields, "body": "word " * 1_200, "action": "save"})
    assert long.status_code == 422 and "at most 5,000" in long.text
    # A stale form (the version it was opened at is not the message's): 409, nothing saved.
    stale = _post(client, edit, {**fields, "version": str(int(fields["version"]) - 1),
                                 "body": mine, "action": "save"})
    assert stale.status_code == 409 and "changed since the form was opened" in stale.text
    assert len(list(candidacies.events.get(UUID(row.id)))) == sent  # nothing recorded yet

    saved = _post(client, edit, {**fields, "body": mine, "action": "save"})
    assert saved.status_code == 303, saved.text
    assert "Message edited" in client.get(saved.headers["location"]).text
    [event] = list(candidacies.events.get(UUID(row.id)))[sent:]
    assert type(event).__name__ == "Edited"
    assert event.body == mine.strip()
    again = _post(client, edit, {**fields, "body": mine + "\nThanks again.", "action": "save"})
    assert again.status_code == 409  # the form's version is now stale
    messages = client.get("/dashboard/messages").text
    assert "I enjoyed hearing about the team" in messages  # what the approver approves
    approve = f"/dashboard/messages/{row.id}/approve"
    assert _post(client, approve, form_fields(messages, approve)).status_code == 303
    build_dispatcher(candidacies, settings).run_once()
    [mail] = smtp_server.sink.received
    text = mail.message.get_body(("plain",)).get_content()
    assert "I enjoyed hearing about the team's plans for next year." in text
    assert text.strip().splitlines() == event.body.splitlines()  # word for word


PAGES = ("today", "pipeline", "at-risk", "compliance", "messages", "candidacies")


@sqlite_only
@pytest.mark.parametrize("page", PAGES)
def test_every_page_takes_the_filters_in_a_bookmarkable_url_and_names_a_bad_one(
        browser_for: Any, candidacies: Candidacies, page: str) -> None:
    _record(candidacies)
    follower(candidacies).run_once()
    client = browser_for("recruiter")
    url = f"/dashboard/{page}"
    filtered = client.get(f"{url}?recruiter=coach%40agency&company=Northwind&since=2026-11-01"
                          "&until=2026-11-30")
    assert filtered.status_code == 200, filtered.text
    for echoed in ('name="recruiter" value="coach@agency"', 'name="company" value="Northwind"',
                   'name="since" value="2026-11-01"', 'name="until" value="2026-11-30"'):
        assert echoed in filtered.text  # the form holds the filters: the URL is the bookmark
    for query, status, named in [
            ("since=yesterday", 400, "since: &#39;yesterday&#39; is not a date"),
            ("until=2026-13-01", 400, "until: &#39;2026-13-01&#39; is not a date"),
            ("since=2026-11-30&until=2026-11-01", 400, "since: the range starts after it ends"),
            ("stgae=awaiting", 422, "stgae: unknown query parameter"),
            (f"recruiter={'x' * 201}", 422, "recruiter: String should have at most 200"),
            # Given twice: refused, never narrowed by the last one silently.
            ("company=Northwind&since=2026-11-01&company=Elsewhere", 422,
             "company: query parameter &#39;company&#39; is given 2 times; it takes one value"),
    ]:
        bad = client.get(f"{url}?{query}")
        assert bad.status_code == status, (query, bad.text)
        assert bad.headers["content-type"].startswith("text/html")  # a page, not JSON
        assert named in bad.text, (query, bad.text)
    assert client.get(f"{url}?workspace=elsewhere").status_code == 404


@sqlite_only
def test_a_bad_horizon_on_at_risk_is_named_on_a_page(browser_for: Any) -> None:
    client = browser_for("recruiter")
    for query, named in [("within=abc", "within: Input should be a valid integer"),
                         ("within=99", "within: Input should be less than or equal to 60")]:
        bad = client.get(f"/dashboard/at-risk?{query}")
        assert bad.status_code == 422 and named in bad.text, bad.text
        assert 'href="/dashboard/at-risk">This page without its filters' in bad.text
    # A form posted to a path the page cannot take: a page too, saying nothing was done.
    csrf = csrf_of(client.get("/dashboard/messages").text)
    posted = _post(client, f"/dashboard/messages/{'x' * 65}/approve", {"csrf": csrf})
    assert posted.status_code == 422 and "Not done: message_id" in posted.text
    assert posted.headers["content-type"].startswith("text/html")
    # The API keeps answering problem+json.
    api = client.get("/candidacies?stgae=x")
    assert api.headers["content-type"].startswith("application/problem+json")
