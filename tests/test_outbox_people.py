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
from adapters.outbox import Dispatcher, history, messages
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

    [row] = messages(candidacies, candidacy_id=candidacy_id)
    assert (report.sent, report.blocked, row.status) == (1, 0, "sent"), row.summary
    [received] = smtp_server.sink.received
    body = received.message.get_content()
    assert FIT in body and "Dear Kenji Tanaka-Ōshima" in body and "Zoë O'Neill" in body


# -- corrections ------------------------------------------------------------------------------

NO_EMAIL = [{"name": "Daniel Whitfeld", "title": "VP Engineering", "phone": "+44 20 7946 0018"}]


def blocked_thank_you(candidacies: Candidacies, smtp_server: SmtpServer,  # noqa: F811
                      **adapters: object) -> tuple[str, Dispatcher, str]:
    """A thank-you to an interviewer recorded with no email (and a misspelt name), blocked."""
    candidacy_id = closed(candidacies, interviewers=NO_EMAIL)
    tick(candidacies, LATER)
    dispatcher = Dispatcher(candidacies, adapters={"email": email(smtp_server), **adapters})
    assert dispatcher.run_once().blocked == 1
    [row] = messages(candidacies, candidacy_id=candidacy_id)
    assert row.status == "blocked" and row.summary["findings"], row.summary
    return candidacy_id, dispatcher, row.id


def test_corrections_are_events_beside_the_original_and_a_retry_delivers(
        candidacies: Candidacies, smtp_server: SmtpServer) -> None:  # noqa: F811
    candidacy_id, dispatcher, message = blocked_thank_you(candidacies, smtp_server)

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


def test_a_blocked_message_rerouted_to_another_channel_is_delivered(
        candidacies: Candidacies, smtp_server: SmtpServer, tmp_path: object) -> None:  # noqa: F811
    voicemail = VoicemailAdapter(tasks_dir=str(tmp_path))
    candidacy_id, dispatcher, message = blocked_thank_you(candidacies, smtp_server,
                                                          voicemail=voicemail)
    candidacies.correct_details(MAYA, candidacy_id, {"person": "Daniel Whitfeld",
                                                     "field": "name",
                                                     "value": "Daniel Whitfield"})

    dispatcher.reroute_message(message, "voicemail", by="maya@example.com",
                       reason="phone only: he gave no email")
    assert dispatcher.run_once().sent == 1

    [row] = messages(candidacies, candidacy_id=candidacy_id)
    assert (row.id, row.status, row.channel) == (message, "sent", "voicemail")
    assert [kind for kind, _ in history(candidacies, message)] == [
        "Queued", "Blocked", "Rerouted", "Proofed", "Sent"]
    task = Path(row.summary["receipt"]["detail"]["task"]).read_text(encoding="utf-8")
    assert "Daniel Whitfield" in task and "+44 20 7946 0018" in task and "Whitfeld" not in task
    with pytest.raises(ValueError, match="only a dead letter or a blocked message"):
        dispatcher.reroute_message(message, "email", by="maya@example.com")


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
