"""The playbook's commands over HTTP: each records exactly one event or is refused cleanly;
`If-Match` and `Idempotency-Key` make them safe to retry."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from api_support import (
    COMMANDS,
    history,
    ok,
    problem,
    record,
    sqlite_only,
    walk_to,
)

from api.dependencies import CommandTurns
from engine.application import Candidacies

COMMAND_PATHS = [path for path, *_ in COMMANDS]

pytest_plugins = ["api_fixtures"]  # api, client and client_for


def prepare(client: Any, start: str) -> str:
    """A candidacy ready for a command that starts at ``start``."""
    if start == "hesitation":
        candidacy_id = record(client)
        ok(client.post(f"/candidacies/{candidacy_id}/hesitations", json={"text": "On-call?"}))
        return candidacy_id
    if start == "paused":
        candidacy_id = walk_to(client, "awaiting")
        ok(client.post(f"/candidacies/{candidacy_id}/pause", json={"reason": "travelling"}))
        return candidacy_id
    return walk_to(client, start)


@pytest.mark.parametrize("path, body, start, event, stage", COMMANDS,
                         ids=[c[0].split("/")[-1] for c in COMMANDS])
def test_each_command_records_exactly_one_event(
        client: Any, path: str, body: dict[str, Any] | None, start: str, event: str,
        stage: str) -> None:
    candidacy_id = prepare(client, start)
    before = history(client, candidacy_id)

    response = client.post(f"/candidacies/{candidacy_id}/{path}", json=body)

    assert response.status_code == (201 if path == "hesitations" else 200), response.text
    result = response.json()
    assert result["id"] == candidacy_id and result["stage"] == stage
    assert result["version"] == len(before) + 1
    assert response.headers["ETag"] == f'"{result["version"]}"'
    after = history(client, candidacy_id)
    assert len(after) == len(before) + 1
    assert after[-1]["type"] == event and after[-1]["version"] == result["version"]
    if path == "hesitations":
        assert result["hesitation_id"] == "r1h1"
    if path == "rounds":
        assert result["round"] == 2


def test_command_data_lands_in_the_event(client: Any) -> None:
    candidacy_id = walk_to(client, "awaiting")
    ok(client.post(f"/candidacies/{candidacy_id}/replies",
                   json={"kind": "out_of_office", "back_on": "2026-12-03",
                         "received_at": "2026-11-25T09:30:00+00:00", "on_behalf_of": "maya"}))

    reply = history(client, candidacy_id)[-1]

    assert reply["data"]["kind"] == "out_of_office" and reply["data"]["back_on"] == "2026-12-03"
    assert reply["data"]["occurred_at"] == "2026-11-25T09:30:00Z"
    assert reply["on_behalf_of"] == "maya"
    assert client.get(f"/candidacies/{candidacy_id}").json()["paused"]["until"] == "2026-12-03"


@sqlite_only
@pytest.mark.parametrize("path", COMMAND_PATHS)
def test_every_command_refuses_unknown_fields(client: Any, path: str) -> None:
    candidacy_id = walk_to(client, "interviewed")
    body = problem(client.post(f"/candidacies/{candidacy_id}/{path}", json={"surprise": 1}),
                   422, "invalid-input")
    assert "surprise" in [e["field"] for e in body["errors"]]
    assert len(history(client, candidacy_id)) == 1


@sqlite_only
@pytest.mark.parametrize("path, body, field", [
    ("hesitations", {"text": "   "}, "text"),
    ("hesitations", {"text": "x" * 2001}, "text"),
    ("next-step", {"description": "Onsite", "scheduled_for": "2026-12-02T14:00:00"},
     "scheduled_for"),
    ("thank-you", {"medium": "postal"}, "medium"),
    ("thank-you", {"medium": "email", "to": ["Someone Else"]}, "to"),
    ("replies", {"kind": "update", "back_on": "2026-12-03"}, "back_on"),
    ("replies", {"kind": "update", "received_at": "2027-01-01T00:00:00+00:00"}, "received_at"),
    ("offers", {"company": "Globex"}, "deadline"),
    ("pause", {"reason": "trip", "until": "2020-01-01"}, "until"),
    ("nudges", {"channels": ["fax"]}, "channels.0"),
])
def test_bad_command_data_is_a_422_naming_the_field(
        client: Any, path: str, body: dict[str, Any], field: str) -> None:
    candidacy_id = walk_to(client, "next_step_closed")
    refusal = problem(client.post(f"/candidacies/{candidacy_id}/{path}", json=body), 422,
                      "invalid-input")
    assert refusal["field"] == field, refusal
    assert len(history(client, candidacy_id)) == 3


def test_an_illegal_command_is_a_409_with_the_stage_and_allowed_commands(client: Any) -> None:
    candidacy_id = record(client)

    refusal = problem(client.post(f"/candidacies/{candidacy_id}/nudges"), 409,
                      "illegal-command")

    assert refusal["stage"] == "interviewed" and refusal["command"] == "send_nudge"
    assert "raise_hesitation" in refusal["allowed"] and "send_nudge" not in refusal["allowed"]
    assert len(history(client, candidacy_id)) == 1


def test_a_guard_refusal_says_why(client: Any) -> None:
    candidacy_id = record(client)
    refusal = problem(client.post(f"/candidacies/{candidacy_id}/hesitations/r1h9/address",
                                  json={"response": "?"}), 409, "illegal-command")
    assert "hesitation" in refusal["why"]


def test_a_stalled_candidacy_refuses_everything(client: Any) -> None:
    candidacy_id = walk_to(client, "stalled")
    refusal = problem(client.post(f"/candidacies/{candidacy_id}/withdraw",
                                  json={"reason": "late"}), 409, "illegal-command")
    assert refusal["stage"] == "stalled" and refusal["allowed"] == []
    assert client.get(f"/candidacies/{candidacy_id}").json()["allowed_actions"] == []


# -- If-Match ------------------------------------------------------------------------------------


@pytest.mark.parametrize("if_match", ['"1"', "1", 'W/"1"', "*"])
def test_a_current_if_match_is_accepted(client: Any, if_match: str) -> None:
    candidacy_id = record(client)
    response = client.post(f"/candidacies/{candidacy_id}/no-hesitations",
                           headers={"If-Match": if_match})
    assert ok(response).json()["version"] == 2


def test_a_stale_if_match_is_a_412_and_records_nothing(client: Any) -> None:
    candidacy_id = record(client)
    etag = client.get(f"/candidacies/{candidacy_id}").headers["ETag"]
    ok(client.post(f"/candidacies/{candidacy_id}/hesitations", json={"text": "On-call?"},
                   headers={"If-Match": etag}))

    refusal = problem(client.post(f"/candidacies/{candidacy_id}/hesitations",
                                  json={"text": "Salary?"}, headers={"If-Match": etag}),
                      412, "version-conflict")

    assert refusal["expected_version"] == 1 and refusal["current_version"] == 2
    assert len(history(client, candidacy_id)) == 2


@sqlite_only
@pytest.mark.parametrize("if_match", ["one", '"1", "2"', "-1", "1.5"])
def test_a_malformed_if_match_is_a_422(client: Any, if_match: str) -> None:
    candidacy_id = record(client)
    refusal = problem(client.post(f"/candidacies/{candidacy_id}/no-hesitations",
                                  headers={"If-Match": if_match}), 422, "invalid-input")
    assert refusal["field"] == "If-Match" and refusal["errors"][0]["location"] == "header"


# -- Idempotency-Key -------------------------------------------------------------------------


def test_a_repeated_key_answers_the_first_response_and_records_nothing(client: Any) -> None:
    candidacy_id = walk_to(client, "awaiting")
    headers = {"Idempotency-Key": "nudge-2026-11-25"}
    body = {"channels": ["email"], "override": {"reason": "the recruiter asked for a call"}}
    first = client.post(f"/candidacies/{candidacy_id}/nudges", json=body,
                        headers=headers)
    ok(client.post(f"/candidacies/{candidacy_id}/replies", json={"kind": "update"}))

    again = client.post(f"/candidacies/{candidacy_id}/nudges", json=body,
                        headers=headers)

    assert again.status_code == first.status_code == 200
    assert again.json() == first.json()
    assert again.headers["ETag"] == first.headers["ETag"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    types = [e["type"] for e in history(client, candidacy_id)]
    assert types.count("NudgeSent") == 1 and types[-1] == "ReplyReceived"


def test_a_repeated_record_answers_the_same_candidacy(client: Any) -> None:
    from builders import interview

    headers = {"Idempotency-Key": "interview-maya"}
    first = client.post("/candidacies", json=interview(), headers=headers)
    again = client.post("/candidacies", json=interview(), headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Location"] == first.headers["Location"]
    assert len(ok(client.get("/candidacies")).json()["items"]) == 1


def test_the_same_key_with_another_body_is_a_422(client: Any) -> None:
    candidacy_id = record(client)
    headers = {"Idempotency-Key": "k-1"}
    ok(client.post(f"/candidacies/{candidacy_id}/hesitations", json={"text": "On-call?"},
                   headers=headers))

    problem(client.post(f"/candidacies/{candidacy_id}/hesitations", json={"text": "Salary?"},
                        headers=headers), 422, "idempotency-key-reused")
    problem(client.post(f"/candidacies/{candidacy_id}/no-hesitations", headers=headers),
            422, "idempotency-key-reused")
    assert len(history(client, candidacy_id)) == 2


def test_keys_belong_to_their_workspace(client_for: Any) -> None:
    ours, theirs = client_for("recruiter"), client_for("recruiter", workspace="rival-agency")
    headers = {"Idempotency-Key": "shared-key"}
    from builders import interview

    a = ours.post("/candidacies", json=interview(), headers=headers)
    b = theirs.post("/candidacies", json=interview(company="Globex"), headers=headers)

    assert a.status_code == b.status_code == 201 and a.json()["id"] != b.json()["id"]


@sqlite_only
@pytest.mark.parametrize("key", ["", "x" * 201, "has space", "ünïcode"])
def test_a_malformed_key_is_refused(client: Any, key: str) -> None:
    candidacy_id = record(client)
    response = client.post(f"/candidacies/{candidacy_id}/no-hesitations",
                           headers={"Idempotency-Key": key.encode("utf-8")})
    problem(response, 422, "invalid-input")


def test_a_repeat_while_the_first_is_in_flight_is_a_409(
        client: Any, candidacies: Candidacies, monkeypatch: pytest.MonkeyPatch) -> None:
    candidacy_id = record(client)
    entered, release = threading.Event(), threading.Event()
    slow_command = candidacies.record_no_hesitations

    def held(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        assert release.wait(10), "the test never released the first request"
        return slow_command(*args, **kwargs)

    monkeypatch.setattr(candidacies, "record_no_hesitations", held)
    headers = {"Idempotency-Key": "slow-one"}
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(
        client.post(f"/candidacies/{candidacy_id}/no-hesitations", headers=headers)))
    first.start()
    try:
        assert entered.wait(10), "the first request never reached the engine"
        problem(client.post(f"/candidacies/{candidacy_id}/no-hesitations", headers=headers),
                409, "idempotency-key-in-flight")
    finally:
        release.set()
        first.join(10)
    assert ok(results[0]).json()["version"] == 2
    replay = client.post(f"/candidacies/{candidacy_id}/no-hesitations", headers=headers)
    assert replay.json() == results[0].json() and replay.headers["Idempotent-Replayed"] == "true"


def test_a_number_is_not_a_moment(client: Any) -> None:
    # Lax parsing would read 20000 as seconds since 1970; the field must say so instead.
    candidacy_id = walk_to(client, "awaiting")
    body = problem(client.post(f"/candidacies/{candidacy_id}/replies",
                               json={"kind": "update", "received_at": 20000}), 422,
                   "invalid-input")
    assert body["field"] == "received_at" and "not a number" in body["reason"]


def test_commands_run_off_the_event_loop(client: Any, candidacies: Candidacies,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # A command reads and commits (on SQLite, an fsync): in a worker thread, so the event
    # loop keeps serving other requests meanwhile (measured: SQLite commands run on the
    # loop served 0.51x the requests, docs/performance.md, issue 15 item 3).
    candidacy_id = walk_to(client, "awaiting")
    loops: list[bool] = []
    note = candidacies.note_competing_offer

    def noting(*args: Any, **kwargs: Any) -> Any:
        try:
            asyncio.get_running_loop()
            loops.append(True)
        except RuntimeError:
            loops.append(False)
        return note(*args, **kwargs)

    monkeypatch.setattr(candidacies, "note_competing_offer", noting)
    ok(client.post(f"/candidacies/{candidacy_id}/offers",
                   json={"company": "Rival", "deadline": "2099-01-01T17:00:00+00:00"}))
    assert loops == [False]


@pytest.mark.parametrize("threads", [1, 3])
def test_no_more_commands_run_at_once_than_the_setting_allows(
        api: Any, client_for: Any, candidacies: Candidacies, threads: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # More commands at once than cores only contend for the interpreter
    # (docs/performance.md, "Concurrent commands"): the others wait their turn, and every
    # one is answered.
    api.state.command_turns = CommandTurns(threads)
    client = client_for("recruiter")
    ids = [walk_to(client, "awaiting") for _ in range(6)]
    running, most, lock = 0, 0, threading.Lock()
    note = candidacies.note_competing_offer

    def noting(*args: Any, **kwargs: Any) -> Any:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            threading.Event().wait(0.2)  # long enough for the others to pile up
            return note(*args, **kwargs)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(candidacies, "note_competing_offer", noting)
    body = {"company": "Rival", "deadline": "2099-01-01T17:00:00+00:00"}
    answers: list[Any] = []
    senders = [threading.Thread(target=lambda cid=cid: answers.append(
        client.post(f"/candidacies/{cid}/offers", json=body))) for cid in ids]
    with client:  # one event loop for every request, as the server has
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(30)
    assert [answer.status_code for answer in answers] == [200] * 6
    assert most == threads


def test_concurrent_commands_default_to_the_store() -> None:
    from api.settings import Settings

    assert Settings(database_url="sqlite:///x.db").concurrent_command_count() == 4
    assert Settings(database_url="postgresql://u@h/db").concurrent_command_count() == 40
    assert Settings(database_url="postgres://u@h/db").concurrent_command_count() == 40
    assert Settings(database_url="postgresql://u@h/db",
                    concurrent_commands=2).concurrent_command_count() == 2
