"""`closer messages list|retry|approve` and `closer dispatch --once`, on a SQLite file."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from adapters_fixtures import SmtpServer, free_port, smtp_server  # noqa: F401
from builders import interview
from cli_support import configure, run, runner

from api.cli import app as cli
from api.settings import get_settings
from engine.application import Candidacies
from engine.clock import FixedClock
from engine.scheduler import tick
from engine.store import eventsourcing_env
from engine.values import Actor

MAYA = Actor(user="maya@example.com", workspace="maya")


def thank_you_decided(store: str, **details: object) -> str:
    """A video interview on 25 November, its next step closed, ticked at 18:00: its
    thank-you email decided for the outbox.  The candidacy's id."""
    app = Candidacies(eventsourcing_env(store),
                      clock=FixedClock(datetime(2026, 11, 25, 10, 0, tzinfo=UTC)))
    try:
        candidacy_id = app.record_interview(MAYA, interview(format="video", **details)
                                            ).candidacy_id
        app.record_no_hesitations(MAYA, candidacy_id)
        app.close_next_step(MAYA, candidacy_id, "a systems design interview")
        tick(app, datetime(2026, 11, 25, 18, 0, tzinfo=UTC))
    finally:
        app.close()
    return str(candidacy_id)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path}/closer.db"
    configure(monkeypatch, url, tmp_path)
    yield url
    get_settings.cache_clear()


def test_a_dead_letter_is_listed_then_retried_by_a_person_and_delivered(
        store: str, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    candidacy_id = thank_you_decided(store)

    monkeypatch.setenv("CLOSER_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CLOSER_SMTP_PORT", str(free_port()))  # nobody listens: refused
    # The pass's only delivery failed: the dispatcher says so with its exit code.
    assert "dead-lettered 1" in run("dispatch", "--once", code=1)
    listed = run("messages", "list", "--status", "dead_letter")
    [message_id] = re.findall(r"^([0-9a-f-]{36})\s+dead_letter\s+thank_you", listed, re.M)

    assert "queued again" in run("messages", "retry", message_id, "--by", "maya")
    monkeypatch.setenv("CLOSER_SMTP_PORT", str(smtp_server.port))
    assert "sent 1" in run("dispatch", "--once")
    assert [m.message["Message-ID"] for m in smtp_server.sink.received] == [
        f"<{message_id}@closer.local>"]
    assert "sent" in run("messages", "list", "--candidacy", candidacy_id)

    get_settings.cache_clear()
    refused = runner.invoke(cli, ["messages", "approve", message_id, "--by", "maya"])
    assert refused.exit_code == 1
    assert "only a message awaiting approval" in refused.output


def test_dispatch_once_survives_a_card_that_cannot_be_written_and_sends_the_rest(
        store: str, tmp_path: Path, smtp_server: SmtpServer,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FixedClock(datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    app = Candidacies(eventsourcing_env(store), clock=clock)
    try:
        for format_ in ("in_person", "video"):  # a card first, then an email
            candidacy_id = app.record_interview(MAYA, interview(format=format_)).candidacy_id
            app.record_no_hesitations(MAYA, candidacy_id)
            app.close_next_step(MAYA, candidacy_id, "a systems design interview")
        tick(app, datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    finally:
        app.close()
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "cards").write_text("not a folder")  # the card cannot be written
    monkeypatch.setenv("CLOSER_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("CLOSER_SMTP_PORT", str(smtp_server.port))

    output = run("dispatch", "--once")

    # The video's email went; the dead card's thank-you fell back to email and went too.
    assert "sent 2" in output and "dead-lettered 1" in output
    assert len(smtp_server.sink.received) == 2
    listed = run("messages", "list", "--status", "dead_letter")
    assert re.search(r"dead_letter\s+thank_you\s+card .*FileExistsError", listed), listed
    sent = run("messages", "list", "--status", "sent")
    assert len(re.findall(r"^[0-9a-f-]{36}\s+sent\s+thank_you\s+email", sent, re.M)) == 2, sent


def test_a_contact_corrected_by_command_line_lets_a_retry_deliver_and_reroute_refuses_politely(
        store: str, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    candidacy_id = thank_you_decided(store, interviewers=[
        {"name": "Daniel Whitfield", "title": "VP Engineering"}])
    monkeypatch.setenv("CLOSER_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CLOSER_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("CLOSER_RECRUITER_NAME", "Dana Reyes")
    monkeypatch.setenv("CLOSER_RECRUITER_EMAIL", "dana@closer.example")
    # No email, no phone: the email is blocked, its voicemail fallback too; Dana is alerted.
    assert "sent 1, blocked 2" in run("dispatch", "--once")
    [alert] = smtp_server.sink.received
    assert alert.rcpt_tos == ["dana@closer.example"]
    smtp_server.sink.received.clear()
    listed = run("messages", "list")
    [message_id] = re.findall(r"^([0-9a-f-]{36})\s+blocked\s+thank_you\s+email", listed, re.M)
    assert re.search(r"blocked\s+thank_you\s+voicemail .*no phone recorded", listed), listed

    assert "corrected" in run("correct", candidacy_id, "--person", "Daniel Whitfield",
                              "--field", "email", "--value", "daniel@northwind.example",
                              "--by", "maya")
    refused = runner.invoke(cli, ["messages", "reroute", message_id, "--channel", "fax",
                                  "--by", "maya"])
    assert refused.exit_code == 1 and "no adapter for channel 'fax'" in refused.output
    assert "queued again" in run("messages", "retry", message_id, "--by", "maya",
                                 "--reason", "email corrected")
    assert "sent 1" in run("dispatch", "--once")
    assert smtp_server.sink.received[0].rcpt_tos == ["daniel@northwind.example"]
    wrong = runner.invoke(cli, ["correct", candidacy_id, "--person", "candidate", "--field",
                                "email", "--value", "nope", "--by", "maya"])
    assert wrong.exit_code == 1 and "not an email address" in wrong.output


TASK_CLOCK = FixedClock(datetime(2026, 11, 25, 10, 0, tzinfo=UTC))


def voicemail_task_sent(store: str) -> tuple[str, str]:
    """A thank-you by voicemail (the interviewer has only a phone) dispatched: a task a
    person confirms.  Its candidacy's id and its message's."""
    app = Candidacies(eventsourcing_env(store), clock=TASK_CLOCK)
    try:
        phone_only = [{"name": "Daniel Whitfield", "title": "VP Engineering",
                       "phone": "+44 20 7946 0958"}]
        candidacy_id = app.record_interview(
            MAYA, interview(format="video", interviewers=phone_only)).candidacy_id
        app.record_no_hesitations(MAYA, candidacy_id)
        app.close_next_step(MAYA, candidacy_id, "a systems design interview")
        app.send_thank_you(MAYA, candidacy_id, "voicemail_and_email", mode="send_for_me")
    finally:
        app.close()
    run("dispatch", "--once")
    listed = run("messages", "list", "--candidacy", candidacy_id)
    [message_id] = re.findall(r"^([0-9a-f-]{36})\s+sent\s+thank_you\s+voicemail", listed, re.M)
    return candidacy_id, message_id


def test_a_voicemail_task_is_confirmed_on_the_cli(store: str, tmp_path: Path) -> None:
    candidacy_id, message_id = voicemail_task_sent(store)

    confirmed = run("messages", "confirm", message_id, "--by", "maya")

    assert "confirmed delivered" in confirmed and "awaiting" in confirmed
    get_settings.cache_clear()
    again = runner.invoke(cli, ["messages", "confirm", message_id, "--by", "maya"])
    assert again.exit_code == 1 and "already confirmed" in again.output


def test_a_task_on_a_broken_chain_is_not_confirmed(store: str) -> None:
    """`closer messages confirm` records a delivery on the candidacy: not on altered
    events (docs/audit.md); the API's confirm route refuses it the same way."""
    from tests.test_audit import Raw

    candidacy_id, message_id = voicemail_task_sent(store)  # with Northwind Analytics
    app = Candidacies(eventsourcing_env(store), clock=TASK_CLOCK)
    try:
        raw = Raw(store, app)
        _, _, state = raw.event(candidacy_id, 1)
        assert b"Northwind" in state
        raw.set_state(candidacy_id, 1, state.replace(b"Northwind", b"Southwind"))
        before = app.get(candidacy_id, MAYA.workspace).version
    finally:
        app.close()

    get_settings.cache_clear()
    refused = runner.invoke(cli, ["messages", "confirm", message_id, "--by", "maya"])
    assert refused.exit_code == 1, refused.output
    assert "not applied" in refused.output and "altered" in refused.output
    app = Candidacies(eventsourcing_env(store), clock=TASK_CLOCK)
    try:
        assert app.get(candidacy_id, MAYA.workspace).version == before  # nothing recorded
    finally:
        app.close()


def test_a_message_awaiting_approval_is_edited_on_the_cli_and_goes_with_the_new_text(
        store: str, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        tmp_path: Path) -> None:
    thank_you_decided(store)
    monkeypatch.setenv("CLOSER_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CLOSER_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("CLOSER_SMTP_STARTTLS", "false")
    monkeypatch.setenv("CLOSER_APPROVAL_WORKSPACES", "maya")
    get_settings.cache_clear()
    run("dispatch", "--once")
    [(message_id, read_at)] = re.findall(
        r"^([0-9a-f-]{36})\s+approval_needed\s+thank_you.* version=(\d+)",
        run("messages", "list"), re.M)
    text = ("Dear Daniel Whitfield,\n\nThank you for your time today and for your interest "
            "in me. I look forward to a systems design interview, the next step.\n\n"
            "Best regards,\nMaya Okafor\n")
    mine = tmp_path / "mine.txt"
    mine.write_text(text.replace("Whitfield", "Whitfeld"))
    refused = runner.invoke(cli, ["messages", "edit", message_id, "--body-file", str(mine),
                                  "--by", "maya"])
    assert refused.exit_code == 1 and "proofing would block it" in refused.output
    preview = run("messages", "edit", message_id, "--body-file", str(mine), "--by", "maya",
                  "--dry-run")
    assert "finding" in preview and "not recorded (dry run)" in preview
    mine.write_text(text)
    assert "edited" in run("messages", "edit", message_id, "--body-file", str(mine),
                           "--by", "maya")
    # Approving at the version read before the edit approves what was read, or nothing.
    stale = runner.invoke(cli, ["messages", "approve", message_id, "--by", "maya",
                                "--version", read_at])
    assert stale.exit_code == 1 and f"not {read_at}: it changed since" in stale.output
    [now_at] = re.findall(rf"^{message_id}\s+approval_needed.* version=(\d+)",
                          run("messages", "list"), re.M)
    assert int(now_at) == int(read_at) + 1
    assert "approved" in run("messages", "approve", message_id, "--by", "maya",
                             "--version", now_at)
    assert "sent 1" in run("dispatch", "--once")
    [mail] = smtp_server.sink.received
    assert mail.message.get_body(("plain",)).get_content().strip().splitlines() == \
        text.strip().splitlines()
