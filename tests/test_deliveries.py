"""Decisions apart from deliveries: what the policy decided, and what the channel then did,
are both in the candidacy's history; a failed channel falls back along the policy's
preference; voicemail goes first, its email minutes later.  Both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from adapters_fixtures import SmtpServer, smtp_server  # noqa: F401
from api_support import ok, problem, walk_to
from builders import interview

from adapters.card import CardAdapter
from adapters.email import EmailAdapter
from adapters.outbox import Dispatcher
from adapters.outbox_rows import message_rows
from adapters.voicemail import VoicemailAdapter
from api.routes.agenda import get_agenda
from engine.application import Candidacies
from engine.decisions import plan
from engine.errors import InvalidInput
from engine.lifecycle import Stage
from engine.scheduler import tick
from engine.values import Actor

pytest_plugins = ["api_fixtures"]  # api, client and client_for

MAYA = Actor(user="maya@example.com", workspace="maya")
DANA = {"name": "Dana Reyes", "email": "dana@closer.example"}
LATER = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
PHONE_ONLY = [{"name": "Daniel Whitfield", "title": "VP Engineering",
               "phone": "+44 20 7946 0958"}]
NO_CONTACT = [{"name": "Daniel Whitfield", "title": "VP Engineering"}]


def closed(app: Candidacies, **overrides: Any) -> str:
    """A video interview whose next step is closed (the policy thanks by email); the
    clock then stands at LATER, when the scheduler decides the thank-you."""
    candidacy_id = app.record_interview(MAYA, interview(format="video", **overrides)
                                        ).candidacy_id
    app.record_no_hesitations(MAYA, candidacy_id)
    app.close_next_step(MAYA, candidacy_id, "a systems design interview")
    app.clock.set(LATER)  # type: ignore[attr-defined]
    return candidacy_id


def dispatcher(app: Candidacies, server: SmtpServer, tasks: Path) -> Dispatcher:
    return Dispatcher(app, recruiter=DANA, adapters={
        "email": EmailAdapter(host=server.host, port=server.port, starttls=False),
        "voicemail": VoicemailAdapter(tasks_dir=str(tasks))})


def since_decision(app: Candidacies, candidacy_id: str) -> list[Any]:
    entries = app.history(candidacy_id, MAYA.workspace)
    start = next(i for i, e in enumerate(entries) if e.type == "ThankYouDecided")
    return entries[start:]


def test_a_thank_you_decided_keeps_the_stage_until_it_is_delivered(
        candidacies: Candidacies, smtp_server: SmtpServer, tmp_path: Path) -> None:
    candidacy_id = closed(candidacies)
    assert tick(candidacies, LATER).actions["thank_you"] == 1
    decided = candidacies.get(candidacy_id, MAYA.workspace)
    assert decided.stage == Stage.NEXT_STEP_CLOSED and decided.pending_thank_you is not None
    # Decided once: the next tick does not decide a second thank-you while it is pending.
    assert tick(candidacies, LATER + timedelta(minutes=1)).actions.get("thank_you", 0) == 0

    dispatcher(candidacies, smtp_server, tmp_path).run_once()

    assert len(smtp_server.sink.received) == 1
    types = [e.type for e in since_decision(candidacies, candidacy_id)]
    assert types == ["ThankYouDecided", "MessageDelivered"]
    delivered = candidacies.get(candidacy_id, MAYA.workspace)
    assert delivered.stage == Stage.AWAITING and delivered.pending_thank_you is None
    assert delivered.thank_yous[-1]["medium"] == "email"
    assert delivered.awaiting_since == LATER  # the clock's moment the channel took it


def test_a_blocked_email_thank_you_falls_back_to_voicemail_confirmed_by_a_person(
        candidacies: Candidacies, smtp_server: SmtpServer, tmp_path: Path) -> None:
    # The interviewer has a phone but no email: the email is blocked, the voicemail is next.
    candidacy_id = closed(candidacies, interviewers=PHONE_ONLY)
    tick(candidacies, LATER)
    outbox = dispatcher(candidacies, smtp_server, tmp_path)

    outbox.run_once()

    # Only the candidate's reminder went by email: the voicemail is theirs to leave today.
    [reminder] = smtp_server.sink.received
    assert reminder.rcpt_tos == ["maya@example.com"]
    assert "thank-you" in reminder.message["Subject"]
    entries = since_decision(candidacies, candidacy_id)
    assert [e.type for e in entries] == ["ThankYouDecided", "MessageBlocked", "TaskReady"]
    blocked, task = entries[1], entries[2]
    assert blocked.data["channel"] == "email" and blocked.data["fallback"] == "voicemail"
    assert blocked.data["findings"], "the finding that blocked it is on the fact"
    assert task.data["channel"] == "voicemail" and task.data["kind"] == "thank_you"
    assert candidacies.get(candidacy_id, MAYA.workspace).stage == Stage.NEXT_STEP_CLOSED
    rows = {(r.kind, r.channel): r.status
            for r in message_rows(candidacies, candidacy_id=candidacy_id)}
    assert rows == {("thank_you", "email"): "blocked", ("thank_you", "voicemail"): "sent",
                    ("reminder_thank_you_due", "email"): "sent"}
    assert (tmp_path / f"{task.data['message_id']}.json").exists()

    outcome = candidacies.confirm_message(MAYA, candidacy_id, task.data["message_id"])

    assert outcome.stage == Stage.AWAITING
    entries = since_decision(candidacies, candidacy_id)
    assert [e.type for e in entries] == ["ThankYouDecided", "MessageBlocked", "TaskReady",
                                         "MessageDelivered"]
    assert entries[-1].data["confirmed_by"] == MAYA.user
    assert entries[-1].data["channel"] == "voicemail"
    with pytest.raises(InvalidInput, match="already confirmed"):
        candidacies.confirm_message(MAYA, candidacy_id, task.data["message_id"])


def test_every_channel_failing_alerts_the_recruiter_and_stays_overdue_on_the_agenda(
        candidacies: Candidacies, smtp_server: SmtpServer, tmp_path: Path) -> None:
    candidacy_id = closed(candidacies, interviewers=NO_CONTACT)
    tick(candidacies, LATER)

    dispatcher(candidacies, smtp_server, tmp_path).run_once()

    entries = since_decision(candidacies, candidacy_id)
    assert [(e.type, e.data.get("channel"), e.data.get("fallback")) for e in entries] == [
        ("ThankYouDecided", None, None), ("MessageBlocked", "email", "voicemail"),
        ("MessageBlocked", "voicemail", None)]
    [alert] = smtp_server.sink.received
    assert alert.rcpt_tos == ["dana@closer.example"]
    body = alert.message.get_content()
    assert "could not be sent on any channel" in body and "voicemail" in body
    failed = candidacies.get(candidacy_id, MAYA.workspace)
    assert failed.stage == Stage.NEXT_STEP_CLOSED and failed.pending_thank_you["failed"]

    # The deadline passes: the overdue alert fires once, and the thank-you stays owed.
    next_day = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)
    candidacies.clock.set(next_day)  # type: ignore[attr-defined]
    assert tick(candidacies, next_day).actions.get("thank_you_overdue") == 1
    assert tick(candidacies, next_day + timedelta(hours=1)).actions == {}
    for day in ("2026-11-26", "2026-11-27"):
        agenda = get_agenda(candidacies, MAYA, datetime.fromisoformat(day).date())
        [item] = [i for i in agenda.items if i.candidacy_id == candidacy_id]
        assert (item.kind, item.overdue) == ("thank_you_overdue", True)
        assert "every channel failed" in item.note

    # A person says they thanked by hand at last: it leaves the agenda.
    candidacies.send_thank_you(MAYA, candidacy_id, "card")
    agenda = get_agenda(candidacies, MAYA, datetime(2026, 11, 27).date())
    assert not [i for i in agenda.items if i.candidacy_id == candidacy_id
                and i.kind == "thank_you_overdue"]


def test_the_nudge_email_follows_its_voicemail_by_the_channel_gap(
        candidacies: Candidacies, smtp_server: SmtpServer, tmp_path: Path) -> None:
    candidacy_id = closed(candidacies)
    tick(candidacies, LATER)
    outbox = dispatcher(candidacies, smtp_server, tmp_path)
    outbox.run_once()
    candidacy = candidacies.get(candidacy_id, MAYA.workspace)
    first_nudge = candidacies.policies.of(candidacy)
    due = next(a.due_at for a in plan(candidacy, first_nudge) if a.kind == "nudge")
    candidacies.clock.set(due)  # type: ignore[attr-defined]
    tick(candidacies, due)
    assert candidacies.get(candidacy_id, MAYA.workspace).stage == Stage.NUDGED
    outbox.follow()
    rows = {r.channel: r for r in message_rows(candidacies, candidacy_id=candidacy_id)
            if r.kind.startswith("nudge")}
    gap = timedelta(minutes=first_nudge.nudge.channel_gap_minutes)
    assert rows["email"].next_attempt_at == rows["voicemail"].next_attempt_at + gap


def test_a_voicemail_thank_you_emails_within_its_setting(
        candidacies: Candidacies, smtp_server: SmtpServer, tmp_path: Path) -> None:
    candidacy_id = closed(candidacies, interviewers=[{**PHONE_ONLY[0],
                                                      "email": "daniel@northwind.example"}])
    candidacies.send_thank_you(MAYA, candidacy_id, "voicemail_and_email", mode="send_for_me")
    requested = candidacies.get(candidacy_id, MAYA.workspace)
    assert requested.stage == Stage.NEXT_STEP_CLOSED
    assert requested.pending_thank_you["requested_by"] == MAYA.user
    outbox = dispatcher(candidacies, smtp_server, tmp_path)
    outbox.follow()
    rows = {r.channel: r for r in message_rows(candidacies, candidacy_id=candidacy_id)
            if r.kind == "thank_you"}
    within = timedelta(minutes=candidacies.policies.of(requested).thank_you
                       .email_after_voicemail_within_minutes)
    assert rows["email"].next_attempt_at == rows["voicemail"].next_attempt_at + within

    outbox.run_once()  # the voicemail task is ready (and its reminder sent); not the email
    assert [r.rcpt_tos for r in smtp_server.sink.received] == [["maya@example.com"]]
    candidacies.clock.advance(within)  # type: ignore[attr-defined]
    outbox.run_once()
    assert [r.rcpt_tos for r in smtp_server.sink.received][1:] == [
        ["daniel@northwind.example"]]
    types = [e.type for e in candidacies.history(candidacy_id, MAYA.workspace)]
    assert types[-3:] == ["ThankYouRequested", "TaskReady", "MessageDelivered"]
    assert candidacies.get(candidacy_id, MAYA.workspace).stage == Stage.AWAITING


def test_i_sent_it_records_a_fact_and_queues_nothing(
        candidacies: Candidacies, smtp_server: SmtpServer, tmp_path: Path) -> None:
    candidacy_id = closed(candidacies)
    assert candidacies.send_thank_you(MAYA, candidacy_id, "email").stage == Stage.AWAITING
    dispatcher(candidacies, smtp_server, tmp_path).run_once()
    assert message_rows(candidacies, candidacy_id=candidacy_id) == []
    with pytest.raises(InvalidInput, match="mode"):
        candidacies.send_nudge(MAYA, candidacy_id, mode="maybe")


def test_send_it_for_me_over_http_then_a_person_confirms_the_card(
        client: Any, candidacies: Candidacies, tmp_path: Path) -> None:
    candidacy_id = walk_to(client, "next_step_closed")  # interviewed in person by PANEL
    asked = ok(client.post(f"/candidacies/{candidacy_id}/thank-you",
                           json={"medium": "card", "mode": "send_for_me"})).json()
    assert asked["stage"] == "next_step_closed"
    problem(client.post(f"/candidacies/{candidacy_id}/thank-you",
                        json={"medium": "card", "mode": "maybe"}), 422, "invalid-input")
    Dispatcher(candidacies, adapters={"card": CardAdapter(tasks_dir=str(tmp_path))}).run_once()
    events = ok(client.get(f"/candidacies/{candidacy_id}/events")).json()["events"]
    assert [e["type"] for e in events][-2:] == ["ThankYouRequested", "TaskReady"]
    task = events[-1]["data"]["message_id"]

    confirmed = ok(client.post(f"/candidacies/{candidacy_id}/messages/{task}/confirm",
                               json={})).json()

    assert confirmed["stage"] == "awaiting"
    last = ok(client.get(f"/candidacies/{candidacy_id}/events")).json()["events"][-1]
    assert last["type"] == "MessageDelivered" and last["data"]["confirmed_by"]
    again = problem(client.post(f"/candidacies/{candidacy_id}/messages/{task}/confirm"),
                    422, "invalid-input")
    assert "already confirmed" in again["detail"]


def test_a_nudge_queued_before_a_rejection_is_cancelled_not_sent(
        candidacies: Candidacies, smtp_server: SmtpServer, tmp_path: Path) -> None:
    candidacy_id = closed(candidacies)
    candidacies.send_thank_you(MAYA, candidacy_id, "email")  # I sent it: awaiting
    candidacies.send_nudge(MAYA, candidacy_id, channels=["email"], mode="send_for_me",
                           override={"reason": "the recruiter asked for a nudge now"})
    outbox = dispatcher(candidacies, smtp_server, tmp_path)
    outbox.follow()
    candidacies.receive_reply(MAYA, candidacy_id, "rejected", note="went internal")

    outbox.run_once()

    assert smtp_server.sink.received == []
    [row] = message_rows(candidacies, candidacy_id=candidacy_id)
    assert (row.kind, row.status) == ("nudge_email", "cancelled")
    types = [e.type for e in candidacies.history(candidacy_id, MAYA.workspace)]
    assert types[-2:] == ["NudgeRequested", "ReplyReceived"]  # no fact after the end


def test_a_thank_you_delivered_after_the_employer_advanced_is_still_recorded(
        candidacies: Candidacies, smtp_server: SmtpServer, tmp_path: Path) -> None:
    candidacy_id = closed(candidacies)
    tick(candidacies, LATER)
    candidacies.receive_reply(MAYA, candidacy_id, "advanced", note="onsite next week")

    dispatcher(candidacies, smtp_server, tmp_path).run_once()

    assert len(smtp_server.sink.received) == 1
    last = candidacies.history(candidacy_id, MAYA.workspace)[-1]
    assert (last.type, last.stage) == ("MessageDelivered", "advanced")
    assert candidacies.get(candidacy_id, MAYA.workspace).pending_thank_you is None
