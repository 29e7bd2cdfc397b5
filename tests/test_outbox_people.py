"""What people recorded reaches the messages (issue 13): the candidate's "why I fit" line
in the thank-you, names as recorded, and corrections of contacts and names, which later
messages use and a blocked or dead-lettered message can be retried or rerouted with."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from adapters_fixtures import SmtpServer, smtp_server  # noqa: F401
from builders import interview

from adapters.email import EmailAdapter
from adapters.outbox import Dispatcher, history
from adapters.outbox_rows import message_rows
from adapters.voicemail import VoicemailAdapter
from engine.application import Candidacies
from engine.errors import InvalidInput
from engine.scheduler import tick
from engine.values import Actor

MAYA = Actor(user="maya@example.com", workspace="maya")
LATER = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
FIT = "I rebuilt a payments ledger much like the one Kenji Tanaka-Ōshima's team runs."


def closed(app: Candidacies, **overrides: object) -> str:
    """A video interview whose next step is closed; the scheduler then records the thank-you."""
    candidacy_id = app.record_interview(MAYA, interview(format="video", **overrides)).candidacy_id
    app.record_no_hesitations(MAYA, candidacy_id)
    app.close_next_step(MAYA, candidacy_id, "a systems design interview")
    return candidacy_id


def email(server: SmtpServer) -> EmailAdapter:
    return EmailAdapter(host=server.host, port=server.port, starttls=False)


def test_the_thank_you_carries_why_i_fit_and_names_as_recorded(
        candidacies: Candidacies, smtp_server: SmtpServer) -> None:  # noqa: F811
    candidacy_id = closed(
        candidacies,
        candidate={"name": "Zoë O'Neill", "email": "zoe@example.org", "why_i_fit": FIT},
        interviewers=[{"name": "Kenji Tanaka-Ōshima", "title": "Staff Engineer",
                       "email": "kenji@northwind.example"}])
    tick(candidacies, LATER)

    report = Dispatcher(candidacies, adapters={"email": email(smtp_server)}).run_once()

    [row] = message_rows(candidacies, candidacy_id=candidacy_id)
    assert (report.sent, report.blocked, row.status) == (1, 0, "sent"), row.summary
    [received] = smtp_server.sink.received
    body = received.message.get_content()
    assert FIT in body and "Dear Kenji Tanaka-Ōshima" in body and "Zoë O'Neill" in body


# -- corrections ------------------------------------------------------------------------------

NO_EMAIL = [{"name": "Daniel Whitfeld", "title": "VP Engineering", "phone": "+44 20 7946 0018"}]


def blocked_thank_you(candidacies: Candidacies, smtp_server: SmtpServer,  # noqa: F811
                      ) -> tuple[str, str, str]:
    """A thank-you to an interviewer recorded with no email (and a misspelt name): the email
    is blocked, its voicemail fallback too (no voicemail channel is configured yet), then
    the recruiter's alert (no recruiter is configured either).  The candidacy, the email
    and the voicemail message ids."""
    candidacy_id = closed(candidacies, interviewers=NO_EMAIL)
    tick(candidacies, LATER)
    report = Dispatcher(candidacies, adapters={"email": email(smtp_server)}).run_once()
    rows = {(r.kind, r.channel): r for r in message_rows(candidacies, candidacy_id=candidacy_id)}
    findings = {key: row.summary["findings"][0]["message"] for key, row in rows.items()}
    assert (report.blocked, report.sent, sorted(findings)) == (3, 0, [
        ("alert_overdue", "email"), ("thank_you", "email"), ("thank_you", "voicemail")])
    assert "Daniel Whitfeld has no email recorded" in findings["thank_you", "email"]
    assert "tasks_dir" in findings["thank_you", "voicemail"]
    assert candidacies.get(candidacy_id, MAYA.workspace).pending_thank_you["failed"]
    return candidacy_id, rows["thank_you", "email"].id, rows["thank_you", "voicemail"].id


def with_voicemail(candidacies: Candidacies, smtp_server: SmtpServer,  # noqa: F811
                   tasks: Path) -> Dispatcher:
    tasks.mkdir(exist_ok=True)
    return Dispatcher(candidacies, adapters={
        "email": email(smtp_server), "voicemail": VoicemailAdapter(tasks_dir=str(tasks))})


def thanked_by_email(server: SmtpServer) -> list[object]:
    """The emails to the panel (not the candidate's own reminders)."""
    return [r for r in server.sink.received if r.rcpt_tos != [MAYA.user]]


def test_corrections_are_events_beside_the_original_and_a_retry_delivers(
        candidacies: Candidacies, smtp_server: SmtpServer) -> None:  # noqa: F811
    candidacy_id, message, fallback = blocked_thank_you(candidacies, smtp_server)
    dispatcher = Dispatcher(candidacies, adapters={"email": email(smtp_server)})

    candidacies.correct_details(MAYA, candidacy_id, {"person": "Daniel Whitfeld",
                                                     "field": "email",
                                                     "value": "daniel@northwind.example"})
    candidacies.correct_details(MAYA, candidacy_id, {"person": "Daniel Whitfeld",
                                                     "field": "name",
                                                     "value": "Daniel Whitfield"})
    dispatcher.retry(message, by="maya@example.com", reason="email found on LinkedIn")
    assert dispatcher.run_once().sent == 1

    [received] = smtp_server.sink.received
    assert received.rcpt_tos == ["daniel@northwind.example"]
    assert "Daniel Whitfield <daniel@northwind.example>" in received.message["To"]
    assert "Whitfeld" not in received.message.get_content()
    entries = candidacies.history(candidacy_id, MAYA.workspace)
    # The original stays in the history.
    assert entries[0].data["interview"]["interviewers"] == [{**NO_EMAIL[0], "email": None}]
    corrections = [(e.type, e.data) for e in entries if e.type.endswith("Corrected")]
    assert corrections == [
        ("ContactCorrected", {"person": "Daniel Whitfeld", "field": "email", "before": None,
                              "after": "daniel@northwind.example"}),
        ("NameCorrected", {"person": "interviewer", "before": "Daniel Whitfeld",
                           "after": "Daniel Whitfield"})]
    candidacy = candidacies.get(candidacy_id, MAYA.workspace)
    assert candidacy.thanked == ["Daniel Whitfield"]  # renamed wherever the round names him
    assert candidacy.interview["interviewers"][0]["email"] == "daniel@northwind.example"
    assert len(candidacy.thank_yous) == 1 and candidacy.pending_thank_you is None
    # The blocked voicemail fallback cannot go as well: one thank-you, not two.
    with pytest.raises(ValueError, match=f"already delivered on email \\(message {message}"):
        dispatcher.retry(fallback, by="maya@example.com")


def test_a_blocked_message_rerouted_to_another_channel_is_delivered(
        candidacies: Candidacies, smtp_server: SmtpServer, tmp_path: Path) -> None:  # noqa: F811
    candidacy_id, message, fallback = blocked_thank_you(candidacies, smtp_server)
    dispatcher = with_voicemail(candidacies, smtp_server, tmp_path / "tasks")
    candidacies.correct_details(MAYA, candidacy_id, {"person": "Daniel Whitfeld",
                                                     "field": "name",
                                                     "value": "Daniel Whitfield"})

    dispatcher.reroute_message(message, "voicemail", by="maya@example.com",
                               reason="phone only: he gave no email")
    assert dispatcher.run_once().sent == 2  # the voicemail task, and the candidate's reminder

    row = next(r for r in message_rows(candidacies, candidacy_id=candidacy_id) if r.id == message)
    assert (row.status, row.channel) == ("sent", "voicemail")
    assert [kind for kind, _ in history(candidacies, message)] == [
        "Queued", "Blocked", "Rerouted", "Proofed", "Sent"]
    task = Path(row.summary["receipt"]["detail"]["task"]).read_text(encoding="utf-8")
    assert "Daniel Whitfield" in task and "+44 20 7946 0018" in task and "Whitfeld" not in task
    with pytest.raises(ValueError, match="only a dead letter or a blocked message"):
        dispatcher.reroute_message(message, "email", by="maya@example.com")
    # The voicemail fallback that was blocked is not retried into a second task.
    with pytest.raises(ValueError, match="already made a task waiting for the candidate on "
                                         "voicemail"):
        dispatcher.retry(fallback, by="maya@example.com")
    assert len(list((tmp_path / "tasks").iterdir())) == 1


def test_a_blocked_email_whose_fallback_went_is_not_retried(
        candidacies: Candidacies, smtp_server: SmtpServer, tmp_path: Path) -> None:  # noqa: F811
    candidacy_id = closed(candidacies, interviewers=NO_EMAIL)
    tick(candidacies, LATER)
    dispatcher = with_voicemail(candidacies, smtp_server, tmp_path / "tasks")
    report = dispatcher.run_once()

    rows = {r.channel: r for r in message_rows(candidacies, candidacy_id=candidacy_id)
            if r.kind == "thank_you"}
    assert (report.blocked, report.sent) == (1, 2)  # the task, and the candidate's reminder
    assert (rows["email"].status, rows["voicemail"].status) == ("blocked", "sent")
    candidacies.correct_details(MAYA, candidacy_id, {"person": "Daniel Whitfeld",
                                                     "field": "email",
                                                     "value": "daniel@northwind.example"})
    with pytest.raises(ValueError, match=f"cannot be retried: its thank-you was already made a "
                                         f"task .* on voicemail \\(message {rows['voicemail'].id}"):
        dispatcher.retry(rows["email"].id, by="maya@example.com")
    with pytest.raises(ValueError, match="cannot be rerouted"):
        dispatcher.reroute_message(rows["email"].id, "console", by="maya@example.com")
    assert thanked_by_email(smtp_server) == []


def test_a_retry_racing_the_fallback_delivers_one_thank_you(
        candidacies: Candidacies, smtp_server: SmtpServer, tmp_path: Path) -> None:  # noqa: F811
    candidacy_id = closed(candidacies, interviewers=NO_EMAIL)
    tick(candidacies, LATER)
    dispatcher = with_voicemail(candidacies, smtp_server, tmp_path / "tasks")
    while dispatcher.follow():
        pass
    dispatcher.deliver()  # the email is blocked; its voicemail fallback is not queued yet
    [blocked] = message_rows(candidacies, candidacy_id=candidacy_id)
    candidacies.correct_details(MAYA, candidacy_id, {"person": "Daniel Whitfeld",
                                                     "field": "email",
                                                     "value": "daniel@northwind.example"})
    dispatcher.retry(blocked.id, by="maya@example.com", reason="email found")

    dispatcher.run_once()  # the fallback is queued now: both are due

    statuses = sorted(r.status for r in message_rows(candidacies, candidacy_id=candidacy_id)
                      if r.kind == "thank_you")
    assert statuses == ["cancelled", "sent"]
    [cancelled] = message_rows(candidacies, candidacy_id=candidacy_id, status="cancelled")
    assert "was already" in cancelled.summary["last_error"]
    # Whichever went first (the retried email or the voicemail task), only it went.
    assert len(thanked_by_email(smtp_server)) + len(list((tmp_path / "tasks").iterdir())) == 1


def test_messages_queued_after_a_correction_use_it(candidacies: Candidacies,
                                                    smtp_server: SmtpServer) -> None:  # noqa: F811
    candidacy_id = closed(candidacies, interviewers=NO_EMAIL)
    candidacies.correct_details(MAYA, candidacy_id, {"person": "Daniel Whitfeld",
                                                     "field": "email",
                                                     "value": "dw@northwind.example"})
    fit = "I led the same warehouse migration at my last company."
    candidacies.correct_details(MAYA, candidacy_id, {"person": "candidate",
                                                     "field": "why_i_fit", "value": fit})
    tick(candidacies, LATER)

    assert Dispatcher(candidacies, adapters={"email": email(smtp_server)}).run_once().sent == 1
    [received] = smtp_server.sink.received
    assert received.rcpt_tos == ["dw@northwind.example"]
    assert fit in received.message.get_content()


def test_a_correction_names_what_is_wrong(candidacies: Candidacies) -> None:
    candidacy_id = closed(candidacies)
    for correction, field in [
            ({"person": "Nobody Known", "field": "email", "value": "n@x.example"}, "person"),
            ({"person": "candidate", "field": "email", "value": "not-an-address"}, "value"),
            ({"person": "candidate", "field": "title", "value": "CTO"}, "field"),
            ({"person": "Daniel Whitfield", "field": "why_i_fit", "value": "x"}, "field"),
            ({"person": "Daniel Whitfield", "field": "title", "value": "VP Engineering"},
             "value")]:
        with pytest.raises(InvalidInput) as refused:
            candidacies.correct_details(MAYA, candidacy_id, correction)
        assert refused.value.field == field, correction
    assert not [e for e in candidacies.history(candidacy_id, MAYA.workspace)
                if e.type.endswith("Corrected")]
