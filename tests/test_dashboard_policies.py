"""The dashboard's Policies page over HTTP (issue 16): published versions side by side
with the differing rules marked, pinned counts, and forms that move candidacies and choose
the starting version through the same functions as the API, behind CSRF, origin and role
checks."""

from __future__ import annotations

import re
from typing import Any

import pytest
from api_support import WORKSPACE, TestClient, walk_to
from markupsafe import escape

from api.auth import create_token
from api.read_models import follower
from engine.application import Candidacies
from engine.policy import default_policy

pytest_plugins = ["api_fixtures"]  # api, client and client_for

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

ORIGIN = {"Origin": "http://testserver"}
QUICK = default_policy().model_copy(update={
    "version": 2, "description": "quicker nudges",
    "nudge": default_policy().nudge.model_copy(update={"spacing_business_days": 3})})


def sign_in(api: Any, candidacies: Candidacies, role: str = "recruiter",
            workspace: str = WORKSPACE) -> TestClient:
    """A browser-like client signed in to the dashboard with a fresh token."""
    token = create_token(candidacies, workspace=workspace, role=role)
    browser = TestClient(api)
    answer = browser.post("/dashboard/sign-in", headers=ORIGIN, follow_redirects=False,
                          data={"csrf": csrf_of(browser.get("/dashboard/sign-in").text),
                                "token": token, "next": "/dashboard/policies"})
    assert answer.status_code == 303, answer.text
    return browser


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, page
    return match[1]


def page(browser: TestClient, query: str = "") -> str:
    answer = browser.get(f"/dashboard/policies{query}")
    assert answer.status_code == 200, answer.text
    return answer.text


def counts(text: str) -> dict[str, str]:
    """The versions table: each version's pinned count."""
    rows = re.findall(r"<strong>([a-z0-9._-]+@\d+)</strong>.*?<td class=\"pinned\"[^>]*>([^<]*)<",
                      text, re.S)
    return {ref: count.strip() for ref, count in rows}


def version_row(text: str, ref: str) -> str:
    """The versions table's row of ``ref``, from the version's cell to the row's end."""
    return text.split(f"<strong>{ref}</strong>")[1].split("</tr>")[0]


@pytest.fixture
def recruiter(api: Any, candidacies: Candidacies) -> TestClient:
    candidacies.policies.publish(QUICK)
    return sign_in(api, candidacies)


def test_versions_side_by_side_with_pinned_counts(recruiter: TestClient, client: Any,
                                                  candidacies: Candidacies) -> None:
    walk_to(client, "awaiting")
    client.post("/candidacies", json=_interview(policy="playbook@2"))
    client.post("/candidacies", json=_interview(policy="playbook@2", company="Contoso"))
    follower(candidacies).run_once()

    text = page(recruiter)

    assert counts(text) == {"playbook@1": "1", "playbook@2": "2"}
    assert "start on this one" in version_row(text, "playbook@1")
    differing = re.findall(r'<tr class="differs">\s*<th scope="row"><span class="rule">'
                           r'([^<]+)</span>', text)
    assert differing == ["nudge.spacing_business_days"]
    row = text.split("nudge.spacing_business_days")[1].split("</tr>")[0]
    assert re.findall(r'<td data-label="playbook@\d">([^<]*)</td>', row) == ["5", "3"]
    assert text.count('<th scope="row">') == 34  # every rule, not only the differing one
    narrowed = page(recruiter, "?company=Contoso")
    assert counts(narrowed) == {"playbook@1": "0", "playbook@2": "1"}
    only = page(recruiter, "?show=playbook@1&show=playbook@2&differences=true")
    assert only.count('<th scope="row">') == 1
    alone = page(recruiter, "?show=playbook@2")
    assert '<th scope="col">playbook@1</th>' not in alone
    missing = recruiter.get("/dashboard/policies?show=playbook@9")
    assert missing.status_code == 404 and "No published policy version playbook@9" in \
        missing.text
    assert recruiter.get("/dashboard/policies?workspace=rival-agency").status_code == 404
    # `show` is a list and repeats; a single-valued one given twice is named on a page.
    twice = recruiter.get("/dashboard/policies?show=playbook@2&differences=true"
                          "&differences=false")
    assert twice.status_code == 422 and twice.headers["content-type"].startswith("text/html")
    assert "differences: query parameter &#39;differences&#39; is given 2 times" in twice.text


def _interview(**overrides: Any) -> dict[str, Any]:
    from builders import PANEL, interview

    return interview(interviewers=PANEL, **overrides)


def post(browser: TestClient, path: str, data: dict[str, str], *, csrf: str | None = None,
         headers: dict[str, str] | None = None) -> Any:
    token = csrf if csrf is not None else csrf_of(page(browser))
    return browser.post(f"/dashboard/policies/{path}", data={"csrf": token, **data},
                        headers=ORIGIN if headers is None else headers,
                        follow_redirects=False)


def test_the_migration_form_dry_runs_then_moves_and_lists_failures(
        recruiter: TestClient, client: Any, candidacies: Candidacies) -> None:
    awaiting = walk_to(client, "awaiting")
    stalled = walk_to(client, "stalled")

    dry = post(recruiter, "migrations", {"to": "playbook@2", "scope": "filter",
                                         "stage": "awaiting", "dry_run": "on"})
    assert dry.status_code == 200
    assert "Dry run: what would move to playbook@2" in dry.text and awaiting in dry.text
    assert candidacies.get(awaiting, WORKSPACE).policy["version"] == 1

    moved = post(recruiter, "migrations", {"to": "playbook@2", "scope": "one",
                                           "candidacy_id": awaiting, "reason": "pilot"})
    assert "Moved to playbook@2" in moved.text
    assert re.search(r'<strong class="moved">1</strong>', moved.text)
    event = candidacies.history(awaiting, WORKSPACE)[-1]
    assert (event.type, event.data["reason"]) == ("PolicyMigrated", "pilot")
    assert event.actor.startswith("recruiter@")

    refused = post(recruiter, "migrations", {"to": "playbook@2", "scope": "one",
                                             "candidacy_id": stalled})
    assert re.search(r'<strong class="failed">1</strong>', refused.text)
    assert "illegal-command" in refused.text and "stage &#39;stalled&#39;" in refused.text
    everything = post(recruiter, "migrations", {"to": "playbook@2", "scope": "all"})
    assert "<strong>1</strong> already on it" in everything.text


def test_the_migration_form_refuses_what_the_api_refuses(recruiter: TestClient) -> None:
    for data, status, words in [
        ({"to": "playbook@9", "scope": "all"}, 404, "no policy &#39;playbook&#39; version 9"),
        ({"to": "playbook", "scope": "all"}, 422, "is not NAME@VERSION"),
        ({"to": "playbook@2", "scope": "one", "candidacy_id": ""}, 422, "candidacy_ids"),
        ({"to": "playbook@2", "scope": "filter", "stage": "limbo"}, 422, "filter.stage"),
    ]:
        answer = post(recruiter, "migrations", data)
        assert answer.status_code == status, (data, answer.text)
        assert words in answer.text, (data, answer.text)
    nowhere = post(recruiter, "migrations", {"to": "playbook@2"})
    assert nowhere.status_code == 422 and "Say which candidacies to move" in nowhere.text


def test_forms_need_the_csrf_token_this_site_and_a_role_that_acts(
        api: Any, recruiter: TestClient, client: Any, candidacies: Candidacies) -> None:
    awaiting = walk_to(client, "awaiting")
    move = {"to": "playbook@2", "scope": "one", "candidacy_id": awaiting}
    assert post(recruiter, "migrations", move, csrf="forged").status_code == 403
    assert post(recruiter, "migrations", move,
                headers={"Origin": "http://evil.example"}).status_code == 403
    assert post(recruiter, "migrations", move, headers={}).status_code == 403
    assert post(recruiter, "starting", {"policy": "playbook@2"}, csrf="").status_code == 403

    viewer = sign_in(api, candidacies, role="viewer")
    seen = page(viewer)
    assert "Move candidacies" not in seen and "Your role only reads" in seen
    assert post(viewer, "migrations", move, csrf=csrf_of(seen)).status_code == 403
    assert post(viewer, "starting", {"policy": "playbook@2"},
                csrf=csrf_of(seen)).status_code == 403
    assert candidacies.get(awaiting, WORKSPACE).policy["version"] == 1
    assert candidacies.policies.starting(WORKSPACE) is None


def test_the_starting_form_chooses_the_version_new_candidacies_start_on(
        recruiter: TestClient, client: Any, candidacies: Candidacies) -> None:
    answer = post(recruiter, "starting", {"policy": "playbook@2"})
    assert answer.status_code == 303 and answer.headers["location"] == "/dashboard/policies"
    text = page(recruiter)
    assert "New candidacies now start on playbook@2." in text
    assert "start on this one" in version_row(text, "playbook@2")
    assert "start on this one" not in version_row(text, "playbook@1")
    started = client.post("/candidacies", json=_interview()).json()["id"]
    assert candidacies.get(started, WORKSPACE).policy == {"name": "playbook", "version": 2}
    assert post(recruiter, "starting", {"policy": "playbook@7"}).status_code == 404


def test_a_hostile_description_renders_inert(recruiter: TestClient,
                                             candidacies: Candidacies) -> None:
    hostile = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
    candidacies.policies.publish(QUICK.model_copy(update={"version": 3,
                                                          "description": hostile}))
    text = page(recruiter)
    assert hostile not in text and "<script>alert" not in text
    assert str(escape(hostile)) in text  # shown, as text
