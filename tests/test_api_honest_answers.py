"""Honest answers (issue 13): `allowed_actions` and a 409's `allowed` name only commands
this API offers whose guards pass now, and a refusal says which guard failed."""

from __future__ import annotations

from typing import Any

from api_support import ok, problem, record, walk_to
from builders import interview

from engine.lifecycle import PERSON_COMMANDS

pytest_plugins = ["api_fixtures"]  # api, client and client_for

# Each command a person may give, and its route (docs/api.md lists the same).
ROUTES = {
    "raise_hesitation": "/candidacies/{candidacy_id}/hesitations",
    "address_hesitation": "/candidacies/{candidacy_id}/hesitations/{hesitation_id}/address",
    "record_no_hesitations": "/candidacies/{candidacy_id}/no-hesitations",
    "close_next_step": "/candidacies/{candidacy_id}/next-step",
    "send_thank_you": "/candidacies/{candidacy_id}/thank-you",
    "send_nudge": "/candidacies/{candidacy_id}/nudges",
    "stall": "/candidacies/{candidacy_id}/stall",
    "receive_reply": "/candidacies/{candidacy_id}/replies",
    "note_competing_offer": "/candidacies/{candidacy_id}/offers",
    "pause_cadence": "/candidacies/{candidacy_id}/pause",
    "resume_cadence": "/candidacies/{candidacy_id}/resume",
    "withdraw": "/candidacies/{candidacy_id}/withdraw",
    "start_next_round": "/candidacies/{candidacy_id}/rounds",
    "correct_details": "/candidacies/{candidacy_id}/corrections",
}


def allowed_actions(client: Any, candidacy_id: str) -> list[str]:
    return list(client.get(f"/candidacies/{candidacy_id}").json()["allowed_actions"])


def test_every_command_a_person_is_offered_has_a_route(client: Any) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(ROUTES) == PERSON_COMMANDS
    assert all("post" in paths[path] for path in ROUTES.values())
    assert not {"send_reminder", "migrate_policy"} & PERSON_COMMANDS


def test_allowed_actions_are_exactly_what_may_be_done_now(client: Any) -> None:
    fresh = record(client)
    assert allowed_actions(client, fresh) == [
        "raise_hesitation", "record_no_hesitations", "receive_reply", "note_competing_offer",
        "pause_cadence", "withdraw", "correct_details"]

    ok(client.post(f"/candidacies/{fresh}/hesitations", json={"text": "On-call?"}))
    # An open hesitation: it can be addressed, and "no hesitations" is no longer true.
    assert allowed_actions(client, fresh) == [
        "raise_hesitation", "address_hesitation", "receive_reply", "note_competing_offer",
        "pause_cadence", "withdraw", "correct_details"]

    waiting = walk_to(client, "awaiting")
    assert allowed_actions(client, waiting) == [
        "send_nudge", "receive_reply", "note_competing_offer", "pause_cadence", "stall",
        "withdraw", "correct_details"]
    ok(client.post(f"/candidacies/{waiting}/pause", json={"reason": "travelling"}))
    assert allowed_actions(client, waiting) == [
        "send_nudge", "receive_reply", "note_competing_offer", "resume_cadence", "stall",
        "withdraw", "correct_details"]

    advanced = walk_to(client, "advanced")
    assert allowed_actions(client, advanced) == [
        "receive_reply", "note_competing_offer", "withdraw", "start_next_round",
        "correct_details"]


def test_the_view_says_which_allowed_command_a_playbook_rule_refuses_now(client: Any) -> None:
    waiting = walk_to(client, "awaiting")
    refusals = client.get(f"/candidacies/{waiting}").json()["playbook_refusals"]
    assert refusals["send_nudge"] == {"rule": "patience.timeline_early_end",
                                      "reason": refusals["send_nudge"]["reason"],
                                      "allowed_from": "2026-12-16T09:00:00Z"}
    assert refusals["stall"]["rule"] == "stall.exhausted_and_patience_spent"
    assert set(refusals) == {"send_nudge", "stall"}
    assert client.get(f"/candidacies/{record(client)}").json()["playbook_refusals"] == {}


def test_a_409_lists_what_is_allowed_now_and_says_why(client: Any) -> None:
    fresh = record(client)
    early = problem(client.post(f"/candidacies/{fresh}/nudges"), 409, "illegal-command")
    assert early["allowed"] == ["raise_hesitation", "record_no_hesitations", "receive_reply",
                                "note_competing_offer", "pause_cadence", "withdraw",
                                "correct_details"]
    assert early["why"] == "send_nudge is possible only at awaiting, nudged"

    ok(client.post(f"/candidacies/{fresh}/hesitations", json={"text": "On-call?"}))
    refused = problem(client.post(f"/candidacies/{fresh}/no-hesitations"), 409,
                      "illegal-command")
    assert refused["why"] == "no hesitation may have been raised in this round"
    assert refused["allowed"] == ["raise_hesitation", "address_hesitation", "receive_reply",
                                  "note_competing_offer", "pause_cadence", "withdraw",
                                "correct_details"]

    waiting = walk_to(client, "awaiting")
    resumed = problem(client.post(f"/candidacies/{waiting}/resume"), 409, "illegal-command")
    assert resumed["why"] == "the cadence must be paused"
    assert "resume_cadence" not in resumed["allowed"] and "send_reminder" not in (
        resumed["allowed"])


def test_the_candidate_records_one_line_on_why_they_fit(client: Any) -> None:
    fit = "I ran the same Kafka migration at Globex last year."
    candidacy_id = record(client, candidate={"name": "Zoë O'Neill", "email": "zoe@example.org",
                                             "why_i_fit": fit})
    assert client.get(f"/candidacies/{candidacy_id}").json()["candidate"]["why_i_fit"] == fit
    two_lines = client.post("/candidacies", json={
        **interview(), "candidate": {"name": "Zoë O'Neill", "email": "zoe@example.org",
                                     "why_i_fit": "One line.\nAnd another."}})
    assert problem(two_lines, 422, "invalid-input")["field"] == "candidate.why_i_fit"
