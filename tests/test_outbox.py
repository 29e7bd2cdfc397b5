"""The outbox dispatcher: notifications -> queued messages -> proofed -> delivered once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import pytest
from adapters_fixtures import SECRET, SmtpServer, free_port, http_receiver, smtp_server  # noqa: F401
from builders import interview

from adapters.email import EmailAdapter
from adapters.message import message_id
from adapters.outbox import TRACKING_NAME, Backoff, Dispatcher, history
from adapters.outbox_rows import message_rows
from adapters.webhook import WebhookAdapter
from engine.application import Candidacies
from engine.scheduler import tick
from engine.store import eventsourcing_env
from engine.values import Actor

MAYA = Actor(user="maya@example.com", workspace="maya")
LATER = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)


def closed(app: Candidacies, **overrides: object) -> str:
    """A video interview whose next step is closed; the scheduler then records the thank-you."""
    data = interview(format="video", **overrides)
    candidacy_id = app.record_interview(MAYA, data).candidacy_id
    app.record_no_hesitations(MAYA, candidacy_id)
    app.close_next_step(MAYA, candidacy_id, "a systems design interview")
    return candidacy_id


def email(server: SmtpServer, **extra: object) -> EmailAdapter:
    return EmailAdapter(host=server.host, port=server.port, starttls=False, **extra)


def thank_you_id(app: Candidacies, candidacy_id: str, channel: str = "email") -> str:
    version = next(e.version for e in app.history(candidacy_id, MAYA.workspace)
                   if e.type == "ThankYouDecided")
    return message_id(candidacy_id, version, channel)


def thank_you_row(app: Candidacies, candidacy_id: str) -> object:
    """The email thank-you's row (a failed one is followed by its fallback's and alerts)."""
    expected = thank_you_id(app, candidacy_id)
    [row] = [r for r in message_rows(app, candidacy_id=candidacy_id) if r.id == expected]
    return row


def test_the_thank_you_email_arrives_at_a_real_smtp_server_and_the_history_shows_it_sent(
        candidacies: Candidacies, smtp_server: SmtpServer) -> None:
    candidacy_id = closed(candidacies)
    assert tick(candidacies, LATER).actions["thank_you"] == 1

    dispatcher = Dispatcher(candidacies, adapters={"email": email(smtp_server)})
    report = dispatcher.run_once()

    assert (report.queued, report.sent, report.blocked) == (1, 1, 0)
    [received] = smtp_server.sink.received
    expected = thank_you_id(candidacies, candidacy_id)
    assert received.message["Message-ID"] == f"<{expected}@closer.local>"
    assert received.rcpt_tos == ["daniel@northwind.example"]
    assert "Daniel Whitfield <daniel@northwind.example>" in received.message["To"]
    assert "Maya Okafor <maya@example.com>" in received.message["From"]
    assert received.message["Subject"]
    body = received.message.get_content()
    assert "Daniel" in body and "systems design interview" in body
    assert "thank" in body.lower()

    kinds = [kind for kind, _ in history(candidacies, expected)]
    assert kinds == ["Queued", "Proofed", "Sent"]
    [row] = message_rows(candidacies, candidacy_id=candidacy_id)
    assert (row.id, row.status, row.attempts, row.kind) == (expected, "sent", 1, "thank_you")
    assert row.summary["receipt"]["detail"]["message_id_header"] == f"<{expected}@closer.local>"

    # Idempotent: nothing new to follow, nothing due: nothing is sent again.
    again = dispatcher.run_once()
    assert (again.queued, again.sent) == (0, 0)
    assert len(smtp_server.sink.received) == 1


def test_the_position_and_the_queued_messages_commit_together(
        candidacies: Candidacies, smtp_server: SmtpServer) -> None:
    closed(candidacies)
    tick(candidacies, LATER)
    dispatcher = Dispatcher(candidacies, adapters={"email": email(smtp_server)})
    assert candidacies.recorder.max_tracking_id(TRACKING_NAME) is None
    assert dispatcher.follow()
    position = candidacies.recorder.max_tracking_id(TRACKING_NAME)
    assert position == candidacies.recorder.max_notification_id() - 1  # 1 Queued after it
    assert [r.status for r in message_rows(candidacies)] == ["queued"]
    # A second follower of the same page (a restart racing) records nothing twice.
    dispatcher.follow()
    assert len(message_rows(candidacies)) == 1
    assert smtp_server.sink.received == []


def test_routing_card_voicemail_nudge_stall_and_invite(candidacies: Candidacies,
                                                       tmp_path: object) -> None:
    dispatcher = Dispatcher(candidacies, recruiter={"name": "Dana Reyes",
                                                    "email": "dana@closer.example"})
    candidacy_id = candidacies.record_interview(MAYA, interview()).candidacy_id
    candidacies.record_no_hesitations(MAYA, candidacy_id)
    candidacies.close_next_step(MAYA, candidacy_id, "an onsite",
                                scheduled_for=datetime(2026, 12, 3, 14, tzinfo=UTC))
    candidacies.send_thank_you(MAYA, candidacy_id, "card", decided_by={"rule": "t"})
    candidacies.send_nudge(MAYA, candidacy_id, decided_by={"rule": "nudge.first"})
    candidacies.send_nudge(MAYA, candidacy_id,  # a person's own nudge: nothing queued
                           override={"reason": "the recruiter asked for a call"})
    dispatcher.follow()
    rows = {(r.kind, r.channel) for r in message_rows(candidacies)}
    assert rows == {("next_step_invite", "calendar"), ("thank_you", "card"),
                    ("nudge_voicemail", "voicemail"), ("nudge_email", "email")}


def test_a_proof_failure_is_recorded_with_findings_and_never_sent(
        candidacies: Candidacies, smtp_server: SmtpServer, tmp_path: Path) -> None:
    # A workspace's own template misspells the interviewer and sounds desperate.
    (tmp_path / "thank_you.email.j2").write_text(
        "Subject: Thank you\n\nDear Daniel Whitfeld,\n\nThank you for your time and "
        "interest. I really need this job!!! I look forward to the next step.\n\n"
        "{{ candidate.name }}\n")
    candidacy_id = closed(candidacies)
    tick(candidacies, LATER)
    dispatcher = Dispatcher(candidacies,
                            adapters={"email": email(smtp_server, templates=str(tmp_path))})
    report = dispatcher.run_once()
    # The email, then its fallback voicemail (the interviewer has no phone), then the
    # recruiter's alert (none is configured here) are blocked.
    assert (report.blocked, report.sent) == (3, 0)
    assert smtp_server.sink.received == []
    assert {(r.kind, r.channel) for r in message_rows(candidacies, candidacy_id=candidacy_id)} == {
        ("thank_you", "email"), ("thank_you", "voicemail"), ("alert_overdue", "email")}
    row = thank_you_row(candidacies, candidacy_id)
    assert (row.status, row.next_attempt_at) == ("blocked", None)
    excerpts = " ".join(f["excerpt"] + f["message"] for f in row.summary["findings"])
    assert "Whitfeld" in excerpts and "need this job" in excerpts
    expected = thank_you_id(candidacies, candidacy_id)
    [(_, _), (kind, data)] = history(candidacies, expected)
    assert kind == "Blocked" and data["findings"] == row.summary["findings"]
    # Nothing due any more: a blocked message is never tried again by itself.
    assert dispatcher.run_once().sent == 0 and smtp_server.sink.received == []


def test_a_missing_template_variable_blocks_with_a_finding(
        candidacies: Candidacies, smtp_server: SmtpServer, tmp_path: Path) -> None:
    (tmp_path / "thank_you.email.j2").write_text("Subject: Hi\n\nDear {{ nobody }},\n")
    candidacy_id = closed(candidacies)
    tick(candidacies, LATER)
    Dispatcher(candidacies, adapters={"email": email(smtp_server, templates=str(tmp_path))}
               ).run_once()
    row = thank_you_row(candidacies, candidacy_id)
    assert row.status == "blocked"
    assert [f["code"] for f in row.summary["findings"]] == ["template_error"]
    assert smtp_server.sink.received == []


def test_retry_with_backoff_then_dead_letter_then_a_person_retries(
        candidacies: Candidacies, clock: object, smtp_server: SmtpServer) -> None:
    candidacy_id = closed(candidacies)
    tick(candidacies, LATER)
    closed_port = free_port()
    failing = EmailAdapter(host="127.0.0.1", port=closed_port, starttls=False, timeout=2)
    dispatcher = Dispatcher(candidacies, adapters={"email": failing},
                            backoff=Backoff(base_seconds=60, factor=2, max_attempts=3))
    report = dispatcher.run_once()
    assert report.failed == 1
    row = thank_you_row(candidacies, candidacy_id)
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.next_attempt_at == clock.now() + timedelta(seconds=60)
    assert dispatcher.run_once().failed == 0  # not due yet

    clock.advance(timedelta(seconds=60))
    assert dispatcher.run_once().failed == 1
    row = thank_you_row(candidacies, candidacy_id)
    assert (row.status, row.attempts) == ("failed", 2)
    assert row.next_attempt_at == clock.now() + timedelta(seconds=120)

    clock.advance(timedelta(seconds=120))
    assert dispatcher.run_once().dead_lettered == 1
    row = thank_you_row(candidacies, candidacy_id)
    assert (row.status, row.attempts, row.next_attempt_at) == ("dead_letter", 3, None)
    assert "ConnectionRefused" in row.summary["last_error"]
    assert [r.id for r in message_rows(candidacies, status="dead_letter")] == [row.id]
    clock.advance(timedelta(days=1))
    assert dispatcher.run_once().dead_lettered == 0  # a dead letter stays put

    # The relay is fixed; a person re-queues the dead letter and it goes out once.
    dispatcher.adapters["email"] = email(smtp_server)
    dispatcher.retry(row.id, by="maya@example.com", reason="relay fixed")
    assert dispatcher.run_once().sent == 1
    assert [r.message["Message-ID"] for r in smtp_server.sink.received] == \
        [f"<{row.id}@closer.local>"]
    kinds = [k for k, _ in history(candidacies, row.id)]
    assert kinds == ["Queued", "Proofed", "Failed", "Proofed", "Failed", "Proofed",
                     "DeadLettered", "Retried", "Proofed", "Sent"]
    # Only the retried email went: the thank-you is delivered at last, and thanks.
    facts = [e.type for e in candidacies.history(candidacy_id, MAYA.workspace)
             if e.type.startswith(("Message", "TaskReady"))]
    assert facts == ["MessageDeadLettered", "MessageBlocked", "MessageDelivered"]
    assert candidacies.get(candidacy_id, MAYA.workspace).stage == "awaiting"
    with pytest.raises(ValueError, match="only a dead letter"):
        dispatcher.retry(row.id, by="maya@example.com")


def test_a_permanent_refusal_dead_letters_at_once(candidacies: Candidacies,
                                                  smtp_server: SmtpServer) -> None:
    smtp_server.sink.refuse.add("daniel@northwind.example")
    candidacy_id = closed(candidacies)
    tick(candidacies, LATER)
    report = Dispatcher(candidacies, adapters={"email": email(smtp_server)}).run_once()
    assert report.dead_lettered == 1
    assert thank_you_row(candidacies, candidacy_id).status == "dead_letter"


def test_a_workspace_can_send_through_its_webhook_with_an_idempotency_key(
        candidacies: Candidacies, http_receiver: object) -> None:
    candidacy_id = closed(candidacies)
    tick(candidacies, LATER)
    hook = WebhookAdapter(url=http_receiver.url, secret=SECRET)
    dispatcher = Dispatcher(candidacies, adapters={"webhook": hook},
                            reroute={"maya": {"email": "webhook"}})
    assert dispatcher.run_once().sent == 1
    expected = thank_you_id(candidacies, candidacy_id, "webhook")
    assert list(http_receiver.applied) == [expected]
    assert http_receiver.requests[0]["headers"]["Idempotency-Key"] == expected


@pytest.mark.postgres
def test_two_dispatchers_on_one_postgres_never_deliver_the_same_message(
        postgres_url: str, clock: object, smtp_server: SmtpServer) -> None:
    from conftest import truncate_postgres

    truncate_postgres(postgres_url)
    apps = [Candidacies(eventsourcing_env(postgres_url), clock=clock) for _ in range(2)]
    try:
        for _ in range(20):
            closed(apps[0])
        tick(apps[0], LATER)
        dispatchers = [Dispatcher(app, adapters={"email": email(smtp_server)},
                                  database_url=postgres_url) for app in apps]
        reports: list[object] = [None, None]
        start = threading.Barrier(2)

        def run(i: int) -> None:
            start.wait()
            reports[i] = dispatchers[i].run_once()

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.standby for r in reports) == [False, True]
        ids = [r.message["Message-ID"] for r in smtp_server.sink.received]
        assert len(ids) == 20 and len(set(ids)) == 20
        # The first lets go: the other takes over (nothing left to send).
        winner = next(d for d, r in zip(dispatchers, reports, strict=True) if not r.standby)
        winner.release()
        other = next(d for d in dispatchers if d is not winner)
        assert other.run_once().standby is False
        assert len(smtp_server.sink.received) == 20
        for d in dispatchers:
            d.release()
    finally:
        for app in apps:
            app.close()


def test_message_ids_are_deterministic(candidacies: Candidacies) -> None:
    candidacy_id = closed(candidacies)
    tick(candidacies, LATER)
    Dispatcher(candidacies).follow()
    [row] = message_rows(candidacies)
    assert UUID(row.id) == UUID(thank_you_id(candidacies, candidacy_id))


def test_a_workspace_that_requires_approval_sends_only_after_a_person_approves(
        candidacies: Candidacies, smtp_server: SmtpServer) -> None:
    candidacy_id = closed(candidacies)
    tick(candidacies, LATER)
    dispatcher = Dispatcher(candidacies, adapters={"email": email(smtp_server)},
                            approval_workspaces=frozenset({MAYA.workspace}))

    first = dispatcher.run_once()
    assert (first.sent, first.awaiting_approval) == (0, 1)
    assert smtp_server.sink.received == []
    expected = thank_you_id(candidacies, candidacy_id)
    [row] = message_rows(candidacies, candidacy_id=candidacy_id)
    assert row.status == "approval_needed"
    assert dispatcher.run_once().sent == 0  # waiting is not retried on its own

    dispatcher.approve(expected, by="recruiter@agency.example")
    assert dispatcher.run_once().sent == 1
    assert len(smtp_server.sink.received) == 1
    kinds = [kind for kind, _ in history(candidacies, expected)]
    assert kinds == ["Queued", "ApprovalRequested", "Approved", "Proofed", "Sent"]
    with pytest.raises(ValueError, match="only a message awaiting approval"):
        dispatcher.approve(expected, by="recruiter@agency.example")
