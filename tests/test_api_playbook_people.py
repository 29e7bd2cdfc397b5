"""The playbook binds people too (issue 13): a person's nudge or stall keeps patience, the
spacing and the pest line unless overridden with a reason; facts may be backdated, within
reason; a rejection may come at any stage that is not final.  Over HTTP, on both stores."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from api_support import history, ok, problem, record, walk_to

from engine.clock import FixedClock

pytest_plugins = ["api_fixtures"]  # api, client and client_for

OVERRIDE = {"reason": "the recruiter asked the candidate to call on Friday"}


def nudge(client: Any, candidacy_id: str, **body: Any) -> Any:
    return client.post(f"/candidacies/{candidacy_id}/nudges", json=body or None)


def at(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


def test_a_manual_nudge_inside_the_patience_window_is_refused_naming_the_rule(
        client: Any) -> None:
    candidacy_id = walk_to(client, "awaiting")
    before = history(client, candidacy_id)

    refusal = problem(nudge(client, candidacy_id), 409, "playbook-rule")

    # The employer said 3 to 4 weeks from the interview of 25 November, 09:00 UTC.
    assert refusal["rule"] == "patience.timeline_early_end"
    assert refusal["command"] == "send_nudge" and refusal["stage"] == "awaiting"
    assert refusal["allowed_from"] == "2026-12-16T09:00:00Z"
    assert "timeline" in refusal["reason"] and "override" in refusal["detail"]
    assert history(client, candidacy_id) == before  # nothing recorded


def test_past_patience_each_nudge_waits_its_spacing_and_the_fourth_is_beyond_the_pest_line(
        client: Any, clock: FixedClock) -> None:
    candidacy_id = walk_to(client, "awaiting")
    refusal = problem(nudge(client, candidacy_id), 409, "playbook-rule")
    rules = [refusal["rule"]]
    for _ in range(3):
        clock.set(at(refusal["allowed_from"]))
        assert ok(nudge(client, candidacy_id)).json()["stage"] == "nudged"
        refusal = problem(nudge(client, candidacy_id), 409, "playbook-rule")
        rules.append(refusal["rule"])

    assert rules == ["patience.timeline_early_end", "nudge.spacing", "nudge.spacing",
                     "pest_line.max_nudges"]
    assert "allowed_from" not in refusal  # waiting will not help
    assert "3 nudges already sent" in refusal["reason"]
    clock.advance(timedelta(days=60))
    assert problem(nudge(client, candidacy_id), 409, "playbook-rule")["rule"] == (
        "pest_line.max_nudges")
    nudges = [e for e in history(client, candidacy_id) if e["type"] == "NudgeSent"]
    assert len(nudges) == 3 and all("override" not in e["data"] for e in nudges)


def test_asked_to_follow_up_the_candidacy_has_its_own_shorter_cadence(
        client: Any, clock: FixedClock) -> None:
    candidacy_id = walk_to(client, "interviewed")
    asked = record(client, asked_to_follow_up=True)
    for path, body in [("no-hesitations", None), ("next-step", {"description": "Onsite"}),
                       ("thank-you", {"medium": "email"})]:
        ok(client.post(f"/candidacies/{asked}/{path}", json=body))

    refusal = problem(nudge(client, asked), 409, "playbook-rule")
    assert refusal["rule"] == "follow_up.first_nudge"
    assert refusal["allowed_from"] == "2026-11-27T10:00:00Z"  # 2 business days after thanks

    clock.set(at("2026-11-27T10:00:00+00:00"))  # well inside the stated 3 to 4 weeks
    assert ok(nudge(client, asked)).json()["stage"] == "nudged"
    assert problem(nudge(client, asked), 409, "playbook-rule")["rule"] == "follow_up.spacing"
    del candidacy_id


def test_an_override_lets_the_nudge_through_and_is_recorded_with_its_reason(
        client: Any) -> None:
    candidacy_id = walk_to(client, "awaiting")

    ok(nudge(client, candidacy_id, override=OVERRIDE))

    last = history(client, candidacy_id)[-1]
    assert last["type"] == "NudgeSent"
    assert last["data"]["override"] == {**OVERRIDE, "overrides": "patience.timeline_early_end"}
    view = client.get(f"/candidacies/{candidacy_id}").json()
    assert view["nudges"][0]["override"]["reason"] == OVERRIDE["reason"]
    # It counts: the next one waits its spacing like any other.
    assert problem(nudge(client, candidacy_id), 409, "playbook-rule")["rule"] == (
        "patience.timeline_early_end")
    blank = nudge(client, candidacy_id, override={"reason": "  "})
    assert problem(blank, 422, "invalid-input")["field"] == "override.reason"


def test_a_manual_stall_is_refused_until_the_pest_line_and_patience_allow_it(
        client: Any, clock: FixedClock) -> None:
    early = walk_to(client, "awaiting")
    refusal = problem(client.post(f"/candidacies/{early}/stall",
                                  json={"reason": "no word"}), 409, "playbook-rule")
    assert refusal["rule"] == "stall.exhausted_and_patience_spent"
    assert "only 0 of 3 nudges" in refusal["reason"]

    ok(client.post(f"/candidacies/{early}/stall",
                   json={"reason": "no word", "override": {"reason": "the role was frozen"}}))
    stalled = history(client, early)[-1]
    assert (stalled["type"], stalled["stage"]) == ("Stalled", "stalled")
    assert stalled["data"]["override"] == {"reason": "the role was frozen",
                                           "overrides": "stall.exhausted_and_patience_spent"}

    patient = walk_to(client, "awaiting")
    for _ in range(3):
        clock.set(at(problem(nudge(client, patient), 409, "playbook-rule")["allowed_from"]))
        ok(nudge(client, patient))
    refusal = problem(client.post(f"/candidacies/{patient}/stall", json={"reason": "silence"}),
                      409, "playbook-rule")
    assert refusal["rule"] == "stall.exhausted_and_patience_spent"
    assert "patience is not spent" in refusal["reason"]
    clock.set(at(refusal["allowed_from"]))
    ok(client.post(f"/candidacies/{patient}/stall", json={"reason": "silence"}))
    assert "override" not in history(client, patient)[-1]["data"]


# -- backdated facts ----------------------------------------------------------------------

# (path, body, the stage it starts from, the event's field that keeps the moment)
BACKDATED = [
    ("no-hesitations", {}, "interviewed"),
    ("next-step", {"description": "Onsite"}, "hesitations_addressed"),
    ("thank-you", {"medium": "card"}, "next_step_closed"),
    ("nudges", {"override": OVERRIDE}, "awaiting"),
    ("pause", {"reason": "travelling"}, "awaiting"),
    ("withdraw", {"reason": "took another offer"}, "awaiting"),
]


@pytest.mark.parametrize("path, body, start", BACKDATED, ids=[b[0] for b in BACKDATED])
def test_a_fact_keeps_when_it_happened_never_in_the_future_nor_before_the_interview(
        client: Any, path: str, body: dict[str, Any], start: str) -> None:
    candidacy_id = walk_to(client, start)
    url = f"/candidacies/{candidacy_id}/{path}"

    future = problem(client.post(url, json={**body, "occurred_at": "2026-11-25T10:01:00+00:00"}),
                     422, "invalid-input")
    early = problem(client.post(url, json={**body, "occurred_at": "2026-11-25T08:59:00+00:00"}),
                    422, "invalid-input")
    ok(client.post(url, json={**body, "occurred_at": "2026-11-25T09:30:00+00:00"}))

    assert future["field"] == early["field"] == "occurred_at"
    assert "future" in future["reason"] and "before the interview" in early["reason"]
    last = history(client, candidacy_id)[-1]
    assert last["data"]["occurred_at"] == "2026-11-25T09:30:00Z"
    assert last["at"] == "2026-11-25T10:00:00Z"  # logged now


def test_a_nudge_backdated_before_the_interview_is_a_422_not_a_rule(client: Any) -> None:
    candidacy_id = walk_to(client, "awaiting")
    early = nudge(client, candidacy_id, occurred_at="2026-11-24T09:00:00+00:00")
    assert problem(early, 422, "invalid-input")["field"] == "occurred_at"


def test_time_rules_use_when_things_happened(client: Any, clock: FixedClock) -> None:
    candidacy_id = walk_to(client, "next_step_closed")
    clock.set(at("2026-11-26T08:00:00+00:00"))
    # The card was left at reception last night: the thank-you went on the interview's day.
    ok(client.post(f"/candidacies/{candidacy_id}/thank-you",
                   json={"medium": "card", "occurred_at": "2026-11-25T18:00:00+00:00"}))
    view = client.get(f"/candidacies/{candidacy_id}").json()
    assert view["thank_yous"][0]["sent_at"] == "2026-11-25T18:00:00Z"

    clock.set(at("2026-12-21T10:00:00+00:00"))
    ok(nudge(client, candidacy_id, occurred_at="2026-12-16T15:00:00+00:00"))
    # The spacing counts from when the nudge went (Wed 16th), not from when it was logged.
    spacing = problem(nudge(client, candidacy_id), 409, "playbook-rule")
    assert spacing["rule"] == "nudge.spacing"
    assert spacing["allowed_from"] == "2026-12-23T15:00:00Z"

    ok(client.post(f"/candidacies/{candidacy_id}/pause",
                   json={"reason": "travelling", "occurred_at": "2026-12-18T09:00:00+00:00"}))
    paused = client.get(f"/candidacies/{candidacy_id}").json()["paused"]
    assert paused["since"] == "2026-12-18T09:00:00Z"
    before_pause = client.post(f"/candidacies/{candidacy_id}/resume",
                               json={"occurred_at": "2026-12-17T09:00:00+00:00"})
    assert problem(before_pause, 422, "invalid-input")["field"] == "occurred_at"
    ok(client.post(f"/candidacies/{candidacy_id}/resume",
                   json={"occurred_at": "2026-12-20T09:00:00+00:00"}))
    assert history(client, candidacy_id)[-1]["data"]["occurred_at"] == "2026-12-20T09:00:00Z"


def test_a_rejection_can_be_logged_at_any_stage_that_is_not_final(client: Any) -> None:
    for stage in ("interviewed", "hesitations_addressed", "next_step_closed", "advanced"):
        candidacy_id = walk_to(client, stage)
        answer = ok(client.post(f"/candidacies/{candidacy_id}/replies",
                                json={"kind": "rejected", "note": "the role was filled"}))
        assert answer.json()["stage"] == "stalled", stage
        outcome = client.get(f"/candidacies/{candidacy_id}").json()["outcome"]
        assert outcome["kind"] == "rejected", stage

    early = walk_to(client, "interviewed")
    refusal = problem(client.post(f"/candidacies/{early}/replies", json={"kind": "update"}),
                      409, "illegal-command")
    assert refusal["why"] == "the reply must be a rejection"
