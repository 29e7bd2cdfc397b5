"""`GET /candidacies/{id}/messages`: the outbox's messages of one candidacy, over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adapters_fixtures import SmtpServer, smtp_server  # noqa: F401
from api_support import ok, problem
from builders import interview

from adapters.email import EmailAdapter
from adapters.outbox import Dispatcher
from engine.application import Candidacies
from engine.scheduler import tick

pytest_plugins = ["api_fixtures"]  # api, client and client_for


def test_messages_show_the_thank_you_the_outbox_sent(
        client: Any, client_for: Any, candidacies: Candidacies,
        smtp_server: SmtpServer) -> None:  # noqa: F811
    # A video interview with Daniel Whitfield (who has an email address on record).
    candidacy_id = ok(client.post("/candidacies", json=interview(format="video"))).json()["id"]
    ok(client.post(f"/candidacies/{candidacy_id}/no-hesitations"))
    ok(client.post(f"/candidacies/{candidacy_id}/next-step",
                   json={"description": "a systems design interview"}))
    assert ok(client.get(f"/candidacies/{candidacy_id}/messages")).json() == {"messages": []}

    tick(candidacies, datetime(2026, 11, 25, 18, 0, tzinfo=UTC))
    email = EmailAdapter(host=smtp_server.host, port=smtp_server.port, starttls=False)
    Dispatcher(candidacies, adapters={"email": email}).run_once()

    [message] = ok(client.get(f"/candidacies/{candidacy_id}/messages")).json()["messages"]
    assert (message["kind"], message["channel"], message["status"]) == (
        "thank_you", "email", "sent")
    assert message["attempts"] == 1 and message["findings"] == []
    assert message["trigger"]["type"] == "ThankYouDecided"
    assert len(smtp_server.sink.received) == 1

    # Another workspace never learns the candidacy exists.
    other = client_for("admin", workspace="elsewhere")
    problem(other.get(f"/candidacies/{candidacy_id}/messages"), 404, "not-found")


def test_a_person_edits_a_message_awaiting_approval_and_the_edited_text_goes(
        client: Any, client_for: Any, candidacies: Candidacies,
        smtp_server: SmtpServer) -> None:  # noqa: F811
    candidacy_id = ok(client.post("/candidacies", json=interview(format="video"))).json()["id"]
    ok(client.post(f"/candidacies/{candidacy_id}/no-hesitations"))
    ok(client.post(f"/candidacies/{candidacy_id}/next-step",
                   json={"description": "a systems design interview"}))
    tick(candidacies, datetime(2026, 11, 25, 18, 0, tzinfo=UTC))
    email = EmailAdapter(host=smtp_server.host, port=smtp_server.port, starttls=False)
    dispatcher = Dispatcher(candidacies, adapters={"email": email},
                            approval_workspaces=frozenset({"agency"}))
    dispatcher.run_once()
    [message] = ok(client.get(f"/candidacies/{candidacy_id}/messages")).json()["messages"]
    assert message["status"] == "approval_needed" and not message["edited"]
    url = f"/candidacies/{candidacy_id}/messages/{message['id']}/edit"
    version = message["version"]
    text = ("Dear Daniel Whitfield,\n\nThank you for your time today and for your interest "
            "in me. I enjoyed our talk and look forward to a systems design interview, the "
            "next step.\n\nBest regards,\nMaya Okafor")

    # A dry run proofs and records nothing; a slip in a name is a finding.
    preview = ok(client.post(url, json={"body": text.replace("Whitfield", "Whitfeld"),
                                        "dry_run": True})).json()
    assert not preview["passed"] and not preview["recorded"]
    assert any("Whitfeld" in f["excerpt"] for f in preview["findings"])
    assert preview["version"] == version
    # Refused, recording nothing: the viewer, a stale If-Match, empty, too long, proofing.
    problem(client_for("viewer").post(url, json={"body": text}), 403, "forbidden")
    stale = problem(client.post(url, json={"body": text}, headers={"If-Match": f'"{version - 1}"'}),
                    412, "version-conflict")
    assert (stale["expected_version"], stale["current_version"]) == (version - 1, version)
    assert problem(client.post(url, json={"body": " \n "}), 422,
                   "invalid-input")["field"] == "body"
    problem(client.post(url, json={"body": "x" * 5_001}), 422, "invalid-input")
    refused = problem(client.post(url, json={"body": text.replace("Whitfield", "Whitfeld")}),
                      422, "invalid-input")
    assert "proofing would block it" in refused["reason"]

    edited = client.post(url, json={"body": text}, headers={"If-Match": f'"{version}"'})
    body = ok(edited).json()
    assert body["recorded"] and body["passed"] and body["body"] == text
    assert edited.headers["ETag"] == f'"{version + 1}"'
    [message] = ok(client.get(f"/candidacies/{candidacy_id}/messages")).json()["messages"]
    assert message["edited"] and message["version"] == version + 1
    dispatcher.approve(message["id"], by="coach@agency")
    dispatcher.run_once()
    [mail] = smtp_server.sink.received
    assert mail.message.get_body(("plain",)).get_content().strip().splitlines() == \
        text.splitlines()
    # Sent: nothing left to edit.
    problem(client.post(url, json={"body": text}), 409, "message-state")
    problem(client.post(f"/candidacies/{candidacy_id}/messages/{'0' * 8}-0000-0000-0000-"
                        f"{'0' * 12}/edit", json={"body": text}), 404, "not-found")


def test_an_edit_racing_the_outbox_is_refused_as_stale_and_records_nothing(
        client: Any, candidacies: Candidacies, monkeypatch: Any) -> None:
    from uuid import UUID

    from adapters.errors import StaleMessage

    candidacy_id = ok(client.post("/candidacies", json=interview(format="video"))).json()["id"]
    ok(client.post(f"/candidacies/{candidacy_id}/no-hesitations"))
    ok(client.post(f"/candidacies/{candidacy_id}/next-step",
                   json={"description": "a systems design interview"}))
    tick(candidacies, datetime(2026, 11, 25, 18, 0, tzinfo=UTC))
    dispatcher = Dispatcher(candidacies, approval_workspaces=frozenset({"agency"}))
    dispatcher.run_once()
    [message] = ok(client.get(f"/candidacies/{candidacy_id}/messages")).json()["messages"]
    render = dispatcher.render

    def approved_meanwhile(*args: Any, **kwargs: Any) -> Any:
        Dispatcher(candidacies).approve(message["id"], by="someone@agency")
        return render(*args, **kwargs)

    monkeypatch.setattr(dispatcher, "render", approved_meanwhile)
    before = len(list(candidacies.events.get(UUID(message["id"]))))
    text = ("Dear Daniel Whitfield,\n\nThank you for your time today and for your interest "
            "in me. I look forward to a systems design interview, the next step.\n\n"
            "Best regards,\nMaya Okafor")
    try:
        dispatcher.edit(message["id"], text, by="coach@agency")
    except StaleMessage as stale:
        assert (stale.expected, stale.actual) == (message["version"], message["version"] + 1)
    else:
        raise AssertionError("the edit was recorded over the approval")
    events = list(candidacies.events.get(UUID(message["id"])))
    assert len(events) == before + 1 and type(events[-1]).__name__ == "Approved"


def _awaiting_approval(client: Any, candidacies: Candidacies,
                       dispatcher: Dispatcher) -> tuple[str, dict[str, Any]]:
    """A thank-you the outbox proofed and holds for a person's approval."""
    candidacy_id = ok(client.post("/candidacies", json=interview(format="video"))).json()["id"]
    ok(client.post(f"/candidacies/{candidacy_id}/no-hesitations"))
    ok(client.post(f"/candidacies/{candidacy_id}/next-step",
                   json={"description": "a systems design interview"}))
    tick(candidacies, datetime(2026, 11, 25, 18, 0, tzinfo=UTC))
    dispatcher.run_once()
    [message] = ok(client.get(f"/candidacies/{candidacy_id}/messages")).json()["messages"]
    assert message["status"] == "approval_needed"
    return candidacy_id, message


def test_a_person_approves_a_message_over_http_and_a_stale_approval_is_refused(
        client: Any, client_for: Any, candidacies: Candidacies,
        smtp_server: SmtpServer) -> None:  # noqa: F811
    from uuid import UUID

    email = EmailAdapter(host=smtp_server.host, port=smtp_server.port, starttls=False)
    dispatcher = Dispatcher(candidacies, adapters={"email": email},
                            approval_workspaces=frozenset({"agency"}))
    candidacy_id, message = _awaiting_approval(client, candidacies, dispatcher)
    url = f"/candidacies/{candidacy_id}/messages/{message['id']}/approve"
    read_at = message["version"]
    events = candidacies.events

    def kinds() -> list[str]:
        return [type(e).__name__ for e in events.get(UUID(message["id"]))]

    before = kinds()
    # Someone edits the text after it was read: approving what was read is refused.
    text = ("Dear Daniel Whitfield,\n\nThank you for your time today and for your interest "
            "in me. I look forward to a systems design interview, the next step.\n\n"
            "Best regards,\nMaya Okafor")
    ok(client.post(f"/candidacies/{candidacy_id}/messages/{message['id']}/edit",
                   json={"body": text}))
    stale = problem(client.post(url, headers={"If-Match": f'"{read_at}"'}), 412,
                    "version-conflict")
    assert (stale["expected_version"], stale["current_version"]) == (read_at, read_at + 1)
    # A viewer only reads; another workspace never learns the message exists.
    problem(client_for("viewer").post(url, headers={"If-Match": f'"{read_at + 1}"'}), 403,
            "forbidden")
    problem(client_for("admin", workspace="elsewhere").post(url), 404, "not-found")
    problem(client.post(f"/candidacies/{candidacy_id}/messages/{'0' * 8}-0000-0000-0000-"
                        f"{'0' * 12}/approve"), 404, "not-found")
    assert kinds() == [*before, "Edited"]
    assert smtp_server.sink.received == []

    approved = client.post(url, headers={"If-Match": f'"{read_at + 1}"'})
    [shown] = ok(approved).json()["messages"]
    assert approved.headers["ETag"] == f'"{read_at + 2}"' and shown["version"] == read_at + 2
    assert kinds() == [*before, "Edited", "Approved"]
    assert shown["status"] != "approval_needed"
    # Approved once: approving it again is refused by its state.
    problem(client.post(url), 409, "message-state")
    dispatcher.run_once()
    [mail] = smtp_server.sink.received
    assert mail.message.get_body(("plain",)).get_content().strip().splitlines() == \
        text.splitlines()
    problem(client.post(url), 409, "message-state")  # sent


def test_an_approval_racing_an_edit_is_refused_as_stale_and_records_nothing(
        client: Any, candidacies: Candidacies, monkeypatch: Any) -> None:
    from uuid import UUID

    from adapters.errors import StaleMessage

    dispatcher = Dispatcher(candidacies, approval_workspaces=frozenset({"agency"}))
    _, message = _awaiting_approval(client, candidacies, dispatcher)
    save = dispatcher._save
    text = ("Dear Daniel Whitfield,\n\nThank you for your time today and for your interest "
            "in me. I look forward to a systems design interview, the next step.\n\n"
            "Best regards,\nMaya Okafor")

    def edited_meanwhile(*args: Any) -> None:
        Dispatcher(candidacies).edit(message["id"], text, by="someone@agency")
        save(*args)

    monkeypatch.setattr(dispatcher, "_save", edited_meanwhile)
    try:
        dispatcher.approve(message["id"], by="coach@agency", expected_version=message["version"])
    except StaleMessage as stale:
        assert (stale.expected, stale.actual) == (message["version"], message["version"] + 1)
    else:
        raise AssertionError("the approval was recorded over the edit")
    events = list(candidacies.events.get(UUID(message["id"])))
    assert type(events[-1]).__name__ == "Edited"
