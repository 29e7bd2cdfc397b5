"""The Pipeline, At risk, Compliance and Rules pages through the real app (TestClient),
signed in: the hand-worked history's figures in the pages' tables, filters in the URL,
another workspace not found, a bad date refused by name.  (Browser tier, screenshots and
XSS: tests/test_browser_dashboard_figures.py.)"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from test_read_models import LEE, MAYA, hand_worked

from api.app import create_app
from api.auth import create_token
from api.read_models import follower
from api.settings import Settings
from engine.application import Candidacies
from engine.clock import FixedClock

ORIGIN = "http://testserver"
Dash = tuple[TestClient, dict[str, str]]


def signed_in(client: TestClient, token: str) -> TestClient:
    page = client.get("/dashboard/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    answer = client.post("/dashboard/sign-in", data={"csrf": csrf, "token": token,
                                                     "next": "/dashboard/today"},
                         headers={"Origin": ORIGIN}, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return client


@pytest.fixture
def dashboard(candidacies: Candidacies, clock: FixedClock) -> Iterator[Dash]:
    ids = hand_worked(candidacies, clock)
    follower(candidacies).run_once()
    token = create_token(candidacies, workspace="w", role="viewer", user="vera@recruit.example")
    app = create_app(Settings(session_secret="s" * 40), candidacies=candidacies)
    with TestClient(app, base_url=ORIGIN) as client:
        yield signed_in(client, token), ids


def rows(html: str, table: str) -> list[list[str]]:
    """The cells of ``table``'s body rows, tags stripped."""
    body = html.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    return [[re.sub(r"<[^>]+>", "", cell).strip()
             for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body.split("<tbody>", 1)[1], re.S)]


def test_pipeline_page_shows_the_hand_worked_figures(dashboard: Dash) -> None:
    client, _ = dashboard
    page = client.get("/dashboard/pipeline")
    assert page.status_code == 200
    assert dict((r[0], r[1]) for r in rows(page.text, "stages")) == {
        "interviewed": "0", "hesitations addressed": "0", "next step closed": "0",
        "thanked": "0", "awaiting": "1", "nudged": "0", "advanced": "1", "stalled": "1"}
    assert rows(page.text, "funnel-1") == [
        ["interviewed", "3", "100%"], ["hesitations addressed", "3", "100%"],
        ["next step closed", "3", "100%"], ["thanked", "3", "33%"], ["advanced", "1", "–"]]
    stays = {r[0]: r[1:] for r in rows(page.text, "stays")}
    # next_step_closed: 8 h, 1 h and 12 h (median 8 h, p90 12 h); nudged: 8 days.
    assert stays["next step closed"] == ["3", "8 h", "12 h"]
    assert stays["nudged"] == ["1", "8 d", "8 d"]
    # awaiting: 6 d 16 h and 13 d 23 h, median 10 d 7 h 30 min (shown to the hour).
    assert stays["awaiting"] == ["2", "10 d 7 h", "13 d 23 h"]
    assert 'data-chart="chart-funnel"' in page.text and "chart.umd.min.js" in page.text

    lee = client.get(f"/dashboard/pipeline?recruiter={LEE.user}")
    assert dict((r[0], r[1]) for r in rows(lee.text, "stages"))["awaiting"] == "1"
    assert f'value="{LEE.user}"' in lee.text  # the filter stays in the bookmarkable form
    contoso = client.get("/dashboard/pipeline?company=Contoso&since=2026-11-25&until=2026-11-25")
    assert dict((r[0], r[1]) for r in rows(contoso.text, "stages"))["stalled"] == "1"
    later = client.get("/dashboard/pipeline?since=2026-11-26").text
    assert all(r[1] == "0" for r in rows(later, "stages"))  # all three recorded on 25 Nov
    assert client.get("/dashboard/pipeline?workspace=other").status_code == 404
    bad = client.get("/dashboard/pipeline?since=25/11/2026")
    assert bad.status_code == 400 and "since" in bad.text and "YYYY-MM-DD" in bad.text


def test_at_risk_page_lists_the_stall_with_its_reason_and_rule_link(
        dashboard: Dash) -> None:
    client, ids = dashboard
    page = client.get("/dashboard/at-risk")
    assert page.status_code == 200
    [stall] = rows(page.text, "stalled")
    assert stall[1:] == [MAYA.user, "Thu 10 Dec 2026 10:00 UTC", "no reply",
                         "stall.exhausted_and_patience_spent (playbook@1)"]
    assert f'data-candidacy="{ids["B"]}"' in page.text
    assert ('href="/dashboard/rules?policy=playbook@1#rule-stall.exhausted_and_patience_spent"'
            in page.text)
    assert "Nothing will stall within 7 days" in page.text
    assert "stall.exhausted" not in client.get(
        f"/dashboard/at-risk?recruiter={LEE.user}").text.split('id="h-stalled"')[1]
    assert client.get("/dashboard/at-risk?within=0").status_code == 422


def test_compliance_page_counts_per_recruiter_and_week(
        dashboard: Dash) -> None:
    client, _ = dashboard
    page = client.get("/dashboard/compliance")
    assert page.status_code == 200
    assert rows(page.text, "weeks") == [
        ["2026-W48", LEE.user, "1", "1 (100%)", "0", "0 (–)", "0"],
        ["2026-W48", MAYA.user, "2", "1 (50%)", "0", "0 (–)", "0"],
        ["2026-W49", MAYA.user, "0", "0 (–)", "1", "1 (100%)", "0"],
        ["2026-W50", MAYA.user, "0", "0 (–)", "1", "0 (0%)", "0"]]
    week50 = client.get("/dashboard/compliance?since=2026-12-07&until=2026-12-13")
    assert rows(week50.text, "weeks") == [["2026-W50", MAYA.user, "0", "0 (–)", "1", "0 (0%)",
                                          "0"]]
    assert "No override." in page.text


def test_rules_page_has_an_entry_for_every_linked_rule(
        dashboard: Dash) -> None:
    client, _ = dashboard
    page = client.get("/dashboard/rules?policy=playbook@1")
    assert page.status_code == 200
    assert 'id="rule-stall.exhausted_and_patience_spent"' in page.text
    assert "max_nudges" in page.text  # the policy version's settings
    assert client.get("/dashboard/rules?policy=nope@9").status_code == 404
    assert client.get("/dashboard/rules?policy=nope").status_code == 400
