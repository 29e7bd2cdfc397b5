"""What people recorded reaches the messages (issue 13): the candidate's "why I fit" line
in the thank-you, names as recorded, and corrections of contacts and names, which later
messages use and a blocked or dead-lettered message can be retried or rerouted with."""

from __future__ import annotations

from datetime import datetime, timezone

from adapters_fixtures import SmtpServer, smtp_server  # noqa: F401
from builders import interview

from adapters.email import EmailAdapter
from adapters.outbox import Dispatcher, messages
from engine.application import Candidacies
from engine.scheduler import tick
from engine.values import Actor

MAYA = Actor(user="maya@example.com", workspace="maya")
LATER = datetime(2026, 11, 25, 18, 0, tzinfo=timezone.utc)
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
        candidacies: Candidacies, smtp_server: SmtpServer) -> None:
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
