"""Correcting what was recorded over HTTP (issue 13): a correction is an event beside the
original; a blocked message is then retried or rerouted by a recruiter and delivered."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adapters_fixtures import SmtpServer, smtp_server  # noqa: F401
from api_support import history, ok, problem, record
from builders import interview

from adapters.email import EmailAdapter
from adapters.outbox import Dispatcher
from engine.application import Candidacies
from engine.scheduler import tick

pytest_plugins = ["api_fixtures"]  # api, client and client_for

LATER = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
PHONE_ONLY = [{"name": "Daniel Whitfield", "title": "VP Engineering",
               "phone": "+44 20 7946 0018"}]


def blocked(client: Any, candidacies: Candidacies,
            smtp_server: SmtpServer) -> tuple[str, str, str]:  # noqa: F811
    """A thank-you email to an interviewer recorded without an email: blocked, and its
    voicemail fallback too (no voicemail channel configured); the candidacy, the email's
    and the voicemail's message ids."""
    recorded = ok(client.post("/candidacies",
                              json=interview(format="video", interviewers=PHONE_ONLY)))
    candidacy_id = recorded.json()["id"]
    ok(client.post(f"/candidacies/{candidacy_id}/no-hesitations"))
    ok(client.post(f"/candidacies/{candidacy_id}/next-step",
                   json={"description": "a systems design interview"}))
    tick(candidacies, LATER)
    dispatch(candidacies, smtp_server)
    listed = client.get(f"/candidacies/{candidacy_id}/messages").json()["messages"]
    by_channel = {m["channel"]: m for m in listed if m["kind"] == "thank_you"}
    assert {(m["kind"], m["channel"], m["status"]) for m in listed} == {
        ("thank_you", "email", "blocked"), ("thank_you", "voicemail", "blocked"),
        ("alert_overdue", "email", "blocked")}, listed  # (the alert: no recruiter configured)
    assert "no email recorded" in by_channel["email"]["findings"][0]["message"]
    return candidacy_id, by_channel["email"]["id"], by_channel["voicemail"]["id"]


def dispatch(candidacies: Candidacies, smtp_server: SmtpServer) -> Any:  # noqa: F811
    email = EmailAdapter(host=smtp_server.host, port=smtp_server.port, starttls=False)
    return Dispatcher(candidacies, adapters={"email": email}).run_once()


def test_a_correction_then_a_retry_delivers_and_the_history_keeps_both(
        client: Any, client_for: Any, candidacies: Candidacies,
        smtp_server: SmtpServer) -> None:  # noqa: F811
    candidacy_id, message_id, fallback_id = blocked(client, candidacies, smtp_server)
    stage = client.get(f"/candidacies/{candidacy_id}").json()["stage"]

    answer = ok(client.post(f"/candidacies/{candidacy_id}/corrections", json={
        "person": "Daniel Whitfield", "field": "email", "value": "daniel@northwind.example"}))
    assert answer.json()["stage"] == stage  # the stage is untouched
    corrected = history(client, candidacy_id)[-1]
    assert (corrected["type"], corrected["data"]) == ("ContactCorrected", {
        "person": "Daniel Whitfield", "field": "email", "before": None,
        "after": "daniel@northwind.example"})

    url = f"/candidacies/{candidacy_id}/messages/{message_id}/retry"
    problem(client_for("viewer").post(url), 403, "forbidden")
    [read] = [m for m in client.get(f"/candidacies/{candidacy_id}/messages").json()["messages"]
              if m["id"] == message_id]
    stale = problem(client.post(url, headers={"If-Match": f'"{read["version"] - 1}"'}), 412,
                    "version-conflict")  # not the version it is at: nothing recorded
    assert stale["current_version"] == read["version"]
    [queued] = [m for m in ok(client.post(url, json={"reason": "his email, from his card"},
                                          headers={"If-Match": f'"{read["version"]}"'})
                              ).json()["messages"] if m["id"] == message_id]
    assert queued["version"] == read["version"] + 1
    assert queued["status"] == "queued"
    assert dispatch(candidacies, smtp_server).sent == 1
    [received] = smtp_server.sink.received
    assert received.rcpt_tos == ["daniel@northwind.example"]
    problem(client.post(url), 409, "message-state")  # sent: nothing to retry
    # The blocked voicemail fallback cannot go too: the thank-you was delivered.
    refused = problem(client.post(f"/candidacies/{candidacy_id}/messages/{fallback_id}/retry"),
                      409, "message-state")
    assert f"already delivered on email (message {message_id})" in refused["detail"]


def test_a_blocked_message_is_rerouted_to_another_channel(
        client: Any, candidacies: Candidacies, smtp_server: SmtpServer) -> None:  # noqa: F811
    candidacy_id, message_id, _ = blocked(client, candidacies, smtp_server)
    url = f"/candidacies/{candidacy_id}/messages/{message_id}/reroute"

    assert problem(client.post(url, json={"channel": "fax"}), 422,
                   "invalid-input")["field"] == "channel"
    assert problem(client.post(url, json={"channel": "postal"}), 422,
                   "invalid-input")["field"] == "channel"
    [read] = [m for m in client.get(f"/candidacies/{candidacy_id}/messages").json()["messages"]
              if m["id"] == message_id]
    problem(client.post(url, json={"channel": "voicemail"},
                        headers={"If-Match": f'"{read["version"] + 1}"'}), 412,
            "version-conflict")
    [rerouted] = [m for m in ok(client.post(url, json={
        "channel": "voicemail", "reason": "he has a phone, no email"})).json()["messages"]
        if m["id"] == message_id]
    assert (rerouted["status"], rerouted["channel"]) == ("queued", "voicemail")
    problem(client.post(url, json={"channel": "card"}), 409, "message-state")
    other = record(client)
    problem(client.post(f"/candidacies/{other}/messages/{message_id}/reroute",
                        json={"channel": "email"}), 404, "not-found")


def test_a_correction_names_the_field_that_is_wrong(client: Any) -> None:
    candidacy_id = record(client)
    url = f"/candidacies/{candidacy_id}/corrections"
    for body, field in [
            ({"person": "candidate", "field": "email", "value": "nope"}, "value"),
            ({"person": "Nobody Known", "field": "phone", "value": "+1 555 0100"}, "person"),
            ({"person": "candidate", "field": "shoe_size", "value": "9"}, "field"),
            ({"person": "candidate", "field": "why_i_fit", "value": "one\ntwo"}, "value")]:
        assert problem(client.post(url, json=body), 422, "invalid-input")["field"] == field
    ok(client.post(url, json={"person": "candidate", "field": "name", "value": "Maya Okafor-Reid"}))
    view = client.get(f"/candidacies/{candidacy_id}").json()
    assert view["candidate"]["name"] == "Maya Okafor-Reid"
    assert [e["type"] for e in history(client, candidacy_id)] == [
        "InterviewRecorded", "NameCorrected"]
