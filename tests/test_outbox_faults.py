"""One message's fault stays that message's: recorded, retried or dead-lettered, never a
stopped dispatcher, never a queue held behind it (issue 14)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from builders import interview
from eventsourcing.persistence import IntegrityError

from adapters.base import DeliveryReceipt
from adapters.card import CardAdapter
from adapters.console import ConsoleAdapter
from adapters.message import Message, MessageContext
from adapters.outbox import Backoff, Dispatcher, history
from adapters.outbox_rows import deliverable_messages, message_rows
from engine.application import Candidacies
from engine.clock import FixedClock
from engine.scheduler import tick
from engine.values import Actor

MAYA = Actor(user="maya@example.com", workspace="maya")
NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class Faulty(ConsoleAdapter):
    """The console channel writing to a folder, with faults on chosen messages."""

    def __init__(self, directory: Path, *, deliver: dict[str, BaseException] | None = None,
                 render: dict[str, Exception] | None = None, report_fails: bool = False
                 ) -> None:
        super().__init__(directory=directory)
        self.deliver_faults = deliver or {}
        self.render_faults = render or {}
        self.report_fails = report_fails
        self.delivered: list[str] = []

    def render(self, context: MessageContext) -> Message:
        if context.message_id in self.render_faults:
            raise self.render_faults[context.message_id]
        return super().render(context)

    def deliver(self, message: Message) -> DeliveryReceipt:
        if message.message_id in self.deliver_faults:
            raise self.deliver_faults[message.message_id]
        receipt = super().deliver(message)
        self.delivered.append(message.message_id)
        return receipt

    def report(self, receipt: DeliveryReceipt) -> dict[str, Any]:
        if self.report_fails:
            raise ValueError("this adapter cannot describe its receipts")
        return super().report(receipt)


def thank_yous(app: Candidacies, *formats: str, follower: Dispatcher | None = None
               ) -> list[str]:
    """One closed candidacy per format, thanked by the scheduler at noon (in person: a card,
    else an email), queued by ``follower``; the messages' ids in the order the dispatcher
    takes them."""
    for format_ in formats:
        candidacy_id = app.record_interview(MAYA, interview(format=format_)).candidacy_id
        app.record_no_hesitations(MAYA, candidacy_id)
        app.close_next_step(MAYA, candidacy_id, "a systems design interview")
    assert tick(app, NOON).actions["thank_you"] == len(formats)
    (follower or Dispatcher(app)).follow()
    return [r.id for r in deliverable_messages(app, app.clock.now())]


def row(app: Candidacies, message_id: str) -> Any:
    return next(r for r in message_rows(app) if r.id == message_id)


def test_an_adapter_that_raises_fails_that_message_only_and_the_others_go_first(
        candidacies: Candidacies, clock: FixedClock, tmp_path: Path) -> None:
    head, *others = thank_yous(candidacies, "video", "video", "video")
    adapter = Faulty(tmp_path, deliver={head: RuntimeError("the adapter tripped on a bug")})
    dispatcher = Dispatcher(candidacies, adapters={"email": adapter},
                            backoff=Backoff(base_seconds=60, max_attempts=3))

    report = dispatcher.run_once()

    assert (report.sent, report.failed, report.dead_lettered) == (2, 1, 0)
    assert adapter.delivered == others  # the head failed, those behind it still went
    failed = row(candidacies, head)
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert failed.next_attempt_at == clock.now() + timedelta(seconds=60)
    error = failed.summary["last_error"]
    assert "RuntimeError" in error and "the adapter tripped on a bug" in error
    assert head in error and "email" in error
    assert [k for k, _ in history(candidacies, head)] == ["Queued", "Proofed", "Failed"]

    # Fixed meanwhile: after its back-off it goes out, once.
    adapter.deliver_faults.clear()
    assert dispatcher.run_once().sent == 0  # not due yet
    clock.advance(timedelta(seconds=60))
    assert dispatcher.run_once().sent == 1
    assert adapter.delivered == [*others, head]
    assert {r.status for r in message_rows(candidacies)} == {"sent"}


def test_a_card_whose_file_cannot_be_written_is_retried_then_dead_lettered(
        candidacies: Candidacies, clock: FixedClock, tmp_path: Path) -> None:
    ids = thank_yous(candidacies, "in_person", "video")
    [card] = [i for i in ids if row(candidacies, i).channel == "card"]
    [mail] = [i for i in ids if i != card]
    cards = tmp_path / "cards"
    cards.write_text("a file where the card folder should be")  # the folder cannot be made
    email = Faulty(tmp_path / "mail")
    dispatcher = Dispatcher(candidacies, backoff=Backoff(base_seconds=30, max_attempts=2),
                            adapters={"card": CardAdapter(tasks_dir=cards), "email": email})

    report = dispatcher.run_once()

    assert (report.sent, report.failed) == (1, 1)
    assert email.delivered == [mail]
    first = row(candidacies, card)
    assert first.status == "failed" and "FileExistsError" in first.summary["last_error"]

    clock.advance(timedelta(seconds=30))
    report = dispatcher.run_once()
    dead = row(candidacies, card)
    assert (dead.status, dead.attempts, dead.next_attempt_at) == ("dead_letter", 2, None)
    assert "FileExistsError" in dead.summary["last_error"]
    # The card could not go: the policy's next medium, email, carried the thank-you.
    [fallback] = [r for r in message_rows(candidacies) if r.id not in ids]
    assert (fallback.kind, fallback.channel, fallback.status, fallback.summary["trigger"]["type"]
            ) == ("thank_you", "email", "sent", "MessageDeadLettered")
    assert (report.dead_lettered, report.sent, email.delivered) == (1, 1, [mail, fallback.id])
    thanked = candidacies.get(dead.candidacy_id, MAYA.workspace)
    assert [t["medium"] for t in thanked.thank_yous] == ["email"]

    # The folder is fixed, but the thank-you went: a retry of the dead card is refused, by
    # name, and no card is written on top of the email.
    cards.unlink()
    with pytest.raises(ValueError, match=f"already delivered on email \\(message {fallback.id}"):
        dispatcher.retry(card, by="maya@example.com", reason="card folder fixed")
    assert dispatcher.run_once().sent == 0 and not cards.exists()
    assert [k for k, _ in history(candidacies, card)][-1] == "DeadLettered"


def test_a_bug_while_rendering_is_a_failure_naming_its_type(
        candidacies: Candidacies, clock: FixedClock, tmp_path: Path) -> None:
    broken, fine = thank_yous(candidacies, "video", "video")
    adapter = Faulty(tmp_path, render={broken: KeyError("interviewer")})
    dispatcher = Dispatcher(candidacies, adapters={"email": adapter},
                            backoff=Backoff(base_seconds=60, max_attempts=2))

    assert (dispatcher.run_once().failed, adapter.delivered) == (1, [fine])
    assert "KeyError" in row(candidacies, broken).summary["last_error"]
    clock.advance(timedelta(seconds=60))
    assert dispatcher.run_once().dead_lettered == 1
    # Nothing was proofed: the render never produced a message.
    assert [k for k, _ in history(candidacies, broken)] == ["Queued", "Failed", "DeadLettered"]


def test_a_report_that_raises_after_the_hand_off_still_records_the_message_sent(
        candidacies: Candidacies, tmp_path: Path) -> None:
    [only] = thank_yous(candidacies, "video")
    adapter = Faulty(tmp_path, report_fails=True)
    dispatcher = Dispatcher(candidacies, adapters={"email": adapter})

    assert dispatcher.run_once().sent == 1
    sent = row(candidacies, only)
    assert sent.status == "sent"
    assert "ValueError" in sent.summary["receipt"]["report_error"]
    assert dispatcher.run_once().sent == 0 and adapter.delivered == [only]  # never twice


class Fatal(BaseException):
    """Not an error a message can own (like SystemExit): it must reach the supervisor."""


def test_a_fatal_error_is_not_swallowed_and_the_message_waits_unchanged(
        candidacies: Candidacies, tmp_path: Path) -> None:
    [only] = thank_yous(candidacies, "video")
    adapter = Faulty(tmp_path, deliver={only: Fatal("injected")})
    dispatcher = Dispatcher(candidacies, adapters={"email": adapter})

    with pytest.raises(Fatal):
        dispatcher.run_once()

    assert row(candidacies, only).status == "queued"
    adapter.deliver_faults.clear()
    assert dispatcher.run_once().sent == 1


def test_channel_routes_send_a_workspaces_channel_through_another_adapter(
        candidacies: Candidacies, tmp_path: Path) -> None:
    from pydantic import ValidationError

    from api.outbox_cli import build_dispatcher
    from api.settings import Settings

    settings = Settings(channel_routes="maya:email=console, other:card=email",
                        webhook_workspaces="ats", tasks_dir=str(tmp_path),
                        webhook_url="http://127.0.0.1:9/hook")
    assert settings.routes() == {"ats": {"email": "webhook"}, "maya": {"email": "console"},
                                 "other": {"card": "email"}}
    # Without a webhook URL a webhook workspace keeps its email: it has nowhere else to go.
    assert "ats" not in settings.model_copy(update={"webhook_url": None}).routes()
    dispatcher = build_dispatcher(candidacies, settings)
    dispatcher.adapters["console"] = ConsoleAdapter(directory=tmp_path / "console")
    [only] = thank_yous(candidacies, "video", follower=dispatcher)
    assert row(candidacies, only).channel == "console"
    assert dispatcher.run_once().sent == 1
    assert (tmp_path / "console" / f"{only}.eml").is_file()
    with pytest.raises(ValidationError, match="WORKSPACE:CHANNEL=ADAPTER"):
        Settings(channel_routes="maya:email")


def losing_saves(app: Candidacies, monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The ids of messages whose every save loses a race (another process saved them first),
    whichever save carries them (the message alone, or with its candidacy's delivery fact)."""
    losing: set[str] = set()
    save = app.save

    def racing(*objects: Any, **kwargs: Any) -> Any:
        if any(str(getattr(o, "id", "")) in losing for o in objects):
            raise IntegrityError("another dispatcher saved this message first")
        return save(*objects, **kwargs)

    monkeypatch.setattr(app, "save", racing)
    return losing


def test_a_message_that_cannot_be_saved_is_left_for_the_next_pass_and_the_rest_go(
        candidacies: Candidacies, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = thank_yous(candidacies, "video", "video", "video")
    adapter = Faulty(tmp_path)
    dispatcher = Dispatcher(candidacies, adapters={"email": adapter})
    losing = losing_saves(candidacies, monkeypatch)
    losing.add(ids[0])

    dispatcher.run_once()  # drains, and ends although one message is never saved

    assert row(candidacies, ids[0]).status == "queued"
    assert {row(candidacies, i).status for i in ids[1:]} == {"sent"}
    assert candidacies.get(row(candidacies, ids[0]).candidacy_id,
                           MAYA.workspace).pending_thank_you is not None  # no fact without it
    losing.clear()
    assert dispatcher.run_once().sent == 1
    assert {r.status for r in message_rows(candidacies)} == {"sent"}
