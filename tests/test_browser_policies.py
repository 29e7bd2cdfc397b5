"""The Policies page in headless Chromium (Debian's, driven by Playwright): a recruiter
signs in, compares two versions side by side, sees how many candidacies each holds, dry
runs a migration, then moves the candidacies; screenshots go to test-artifacts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_support import LiveServer
from browser_support import LOOPBACK, PageWatch, screenshot
from builders import candidacy_at

from api.app import create_app
from api.auth import create_token
from api.read_models import follower
from api.settings import Settings
from engine.application import Candidacies
from engine.policy import default_policy
from engine.store import eventsourcing_env
from engine.values import Actor

pytest_plugins = ["browser_fixtures"]  # browser, browser_page, page_watch

ACTOR = Actor(user="maya@agency.example", workspace="agency")
QUICK = default_policy().model_copy(update={
    "version": 2, "description": "quicker nudges for the agency",
    "nudge": default_policy().nudge.model_copy(update={"spacing_business_days": 3}),
    "pest_line": default_policy().pest_line.model_copy(update={"max_nudges": 4})})


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[LiveServer, Candidacies, list[str]]]:
    url = f"sqlite:///{tmp_path}/closer.db"
    candidacies = Candidacies(eventsourcing_env(url))
    candidacies.policies.publish(QUICK)
    awaiting = [candidacy_at(candidacies, ACTOR, "awaiting") for _ in range(2)]
    candidacy_at(candidacies, ACTOR, "interviewed")
    follower(candidacies).run_once()
    app = create_app(Settings(database_url=url, host=LOOPBACK,
                              tasks_dir=str(tmp_path / "tasks")), candidacies=candidacies)
    with LiveServer(app) as server:
        yield server, candidacies, awaiting
    candidacies.close()


def test_a_recruiter_compares_versions_and_moves_candidacies(
        browser_page: Any, page_watch: PageWatch,
        served: tuple[LiveServer, Candidacies, list[str]]) -> None:
    server, candidacies, awaiting = served
    page = browser_page
    token = create_token(candidacies, workspace="agency", role="recruiter")

    page.goto(f"{server.url}/dashboard/policies")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard/policies")

    table = page.locator("table.side-by-side")
    assert table.locator("thead th").all_inner_texts() == ["Rule", "playbook@1", "playbook@2"]
    differing = table.locator("tr.differs th .rule").all_inner_texts()
    assert differing == ["nudge.spacing_business_days", "pest_line.max_nudges"]
    assert page.locator("td.pinned").all_inner_texts() == ["3", "0"]

    page.get_by_label("Move to").select_option("playbook@2")
    page.locator("input[name=scope][value=filter]").check()
    page.get_by_label("At stage").select_option("awaiting")
    page.get_by_label("Why (recorded on each move)").fill("the agency's quicker cadence")
    page.get_by_role("button", name="Move").click()
    report = page.locator("#report")
    assert "Dry run: what would move to playbook@2" in report.inner_text()
    assert report.locator("strong.moved").inner_text() == "2"
    assert all(candidacies.get(c, "agency").policy["version"] == 1 for c in awaiting)

    page.get_by_label("dry run: only say what would move").uncheck()
    page.get_by_role("button", name="Move").click()
    assert "Moved to playbook@2" in page.locator("#report").inner_text()
    assert all(candidacies.get(c, "agency").policy["version"] == 2 for c in awaiting)
    assert candidacies.history(awaiting[0], "agency")[-1].data["reason"] == \
        "the agency's quicker cadence"
    screenshot(page, "policies")

    follower(candidacies).run_once()
    page.goto(f"{server.url}/dashboard/policies?differences=true")
    assert page.locator("td.pinned").all_inner_texts() == ["1", "2"]
    assert page.locator("table.side-by-side tbody tr").count() == 2
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "policies-phone")
    assert page_watch.errors == [] and page_watch.refused == []
