"""`GET /agenda` and `next_due`: what is due, per day, across the workspace."""

from __future__ import annotations

from typing import Any

import pytest
from api_support import (
    ok,
    problem,
    sqlite_only,
    walk_to,
)

pytest_plugins = ["api_fixtures"]  # api, client and client_for


def test_the_agenda_answers_for_a_day(client: Any) -> None:
    walk_to(client, "awaiting")
    agenda = ok(client.get("/agenda", params={"on": "2026-11-26"})).json()
    assert agenda["on"] == "2026-11-26" and isinstance(agenda["items"], list)
    assert ok(client.get("/agenda")).json()["on"] == "2026-11-25"  # the clock's day


@sqlite_only
@pytest.mark.parametrize("on", ["tomorrow", "2026-13-01", "2026-11-25T10:00:00"])
def test_a_bad_day_is_a_422(client: Any, on: str) -> None:
    body = problem(client.get("/agenda", params={"on": on}), 422, "invalid-input")
    assert body["field"] == "on"


def test_a_thank_you_due_today_is_on_the_agenda_and_is_next_due(client: Any) -> None:
    # Interviewed in person at 09:00 London, next step closed at 10:00: the playbook wants
    # the thank-you the same day (a card, left at reception), due as the next step closes.
    candidacy_id = walk_to(client, "next_step_closed")

    agenda = ok(client.get("/agenda", params={"on": "2026-11-25"})).json()
    view = ok(client.get(f"/candidacies/{candidacy_id}")).json()

    thank_yous = [i for i in agenda["items"] if i["kind"] == "thank_you"]
    assert [(i["candidacy_id"], i["overdue"]) for i in thank_yous] == [(candidacy_id, False)]
    assert thank_yous[0]["due_at"] == "2026-11-25T10:00:00Z"
    assert thank_yous[0]["medium"] == "card" and thank_yous[0]["candidate"] == "Maya Okafor"
    assert view["next_due"]["kind"] == "thank_you"
    assert not ok(client.get("/agenda", params={"on": "2026-11-24"})).json()["items"]
