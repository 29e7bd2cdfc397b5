"""Safe operations through the real CLI, on SQLite and PostgreSQL: `tick --now` never writes
the future into the live store, `--dry-run` writes nothing, `dispatch --once` says by its
exit code when every delivery failed, and an export holds no token and no message and is
never sent again once imported (messages counted on a real SMTP server)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from adapters_fixtures import (  # noqa: F401
    HttpReceiver,
    SmtpServer,
    free_port,
    http_receiver,
    smtp_server,
)
from builders import interview
from cli_support import configure, run, runner

from adapters.console import ConsoleAdapter
from adapters.outbox import Dispatcher
from adapters.outbox_rows import message_rows
from api.auth import TokenVerifier, create_token
from api.cli import app as cli
from api.settings import get_settings
from conftest import truncate_postgres
from engine.application import Candidacies
from engine.clock import FixedClock
from engine.policy import default_policy
from engine.scheduler import tick
from engine.store import eventsourcing_env
from engine.values import Actor

MAYA = Actor(user="maya@example.com", workspace="maya")


@pytest.fixture
def store(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[str]:
    """The CLI configured for a fresh store (SQLite file or PostgreSQL), SMTP without TLS."""
    configure(monkeypatch, database_url, tmp_path)
    yield database_url
    get_settings.cache_clear()


def application(url: str, at: datetime) -> Candidacies:
    return Candidacies(eventsourcing_env(url), clock=FixedClock(at))


def midday(days: int, hour: int = 11) -> datetime:
    """``days`` from today (negative: ago) at ``hour`` UTC, moved on to a weekday: inside
    London's send window whatever the time the test runs."""
    moment = (datetime.now(UTC) + timedelta(days=days)).replace(hour=hour, minute=0, second=0,
                                                                microsecond=0)
    while moment.weekday() >= 5:
        moment += timedelta(days=1 if days >= 0 else -1)
    return moment


def thanked_by_the_policy(url: str, at: datetime, *, candidate: str = "Maya Castellanos"
                          ) -> str:
    """A video interview an hour before ``at`` whose thank-you the scheduler decided at
    ``at``; each candidate has an interviewer (and address) of their own."""
    app = application(url, at - timedelta(minutes=30))
    try:
        first = candidate.split()[0].lower()
        data = interview(format="video", interviewed_at=(at - timedelta(hours=1)).isoformat(),
                         interviewers=[{"name": "Daniel Whitfield", "title": "VP Engineering",
                                        "email": f"daniel.{first}@northwind.example"}])
        data["candidate"] = {**data["candidate"], "name": candidate}
        candidacy_id = app.record_interview(MAYA, data).candidacy_id
        app.record_no_hesitations(MAYA, candidacy_id)
        app.close_next_step(MAYA, candidacy_id, "a systems design interview")
        report = tick(app, at)
        assert report.actions["thank_you"] == 1
        return candidacy_id
    finally:
        app.close()


def delivered(url: str, at: datetime) -> None:
    """The outbox delivers the decided thank-you (to a console that keeps it): the stage
    reaches awaiting only then, and the nudge's clock starts."""
    app = application(url, at)
    try:
        assert Dispatcher(app, adapters={"email": ConsoleAdapter(stream=io.StringIO())}
                          ).run_once().sent == 1
    finally:
        app.close()


def counts(url: str) -> tuple[Any, ...]:
    """Everything a command could write: events, candidacy rows, message rows and the
    outbox's position."""
    app = Candidacies(eventsourcing_env(url))
    try:
        recorder: Any = app.recorder
        return (len(recorder.select_notifications(start=None, limit=1_000_000)),
                [(r.id, r.version, r.stage, r.due_at) for r in recorder.select_all_rows()],
                [(m.id, m.status, m.attempts) for m in message_rows(app)],
                recorder.max_tracking_id("Outbox"))
    finally:
        app.close()


def smtp_to(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    monkeypatch.setenv("CLOSER_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("CLOSER_SMTP_PORT", str(port))


# -- closer tick --now --------------------------------------------------------------------


def test_tick_refuses_a_moment_after_the_stores_clock_and_writes_nothing(
        store: str, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    thanked_by_the_policy(store, midday(-3))
    before = counts(store)
    future = (now + timedelta(days=30)).isoformat()

    refused = runner.invoke(cli, ["tick", "--now", future])

    assert refused.exit_code == 2, refused.output
    assert refused.output.startswith("error: --now ") and "after the store's clock" in \
        refused.output
    assert len(refused.output.strip().splitlines()) == 1 and "Traceback" not in refused.output
    assert counts(store) == before
    # The past is fine: deciding for three days ago records what was due then, once.
    assert "recorded" in run("tick", "--now", (now - timedelta(days=2)).isoformat())


def test_the_stores_clock_is_its_latest_recorded_event_when_that_is_later(store: str) -> None:
    # A store that already holds events ten days ahead (a clock that ran fast, say).
    ahead = midday(10)
    thanked_by_the_policy(store, ahead)
    before = counts(store)

    run("tick", "--now", (ahead - timedelta(days=1)).isoformat())
    assert counts(store) == before  # allowed: not after the store's clock (nothing due)
    refused = runner.invoke(cli, ["tick", "--now", (ahead + timedelta(days=1)).isoformat()])
    assert refused.exit_code == 2, refused.output
    assert counts(store) == before


def test_tick_dry_run_prints_the_decisions_and_writes_nothing(store: str) -> None:
    thanked_by_the_policy(store, midday(-1))
    delivered(store, midday(-1))
    before = counts(store)
    # No reply for six weeks: the policy would nudge.
    future = midday(42, hour=12).isoformat()

    printed = run("tick", "--now", future, "--dry-run")

    assert "would record" in printed and "nudge" in printed and "nothing written" in printed
    assert counts(store) == before


def test_tick_on_a_copy_decides_the_future_there_and_leaves_the_store_alone(
        store: str, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    candidacy_id = thanked_by_the_policy(store, midday(-1))
    delivered(store, midday(-1))
    before = counts(store)
    copy = tmp_path / "ahead.db"

    printed = run("tick", "--now", midday(42, hour=12).isoformat(), "--on-copy", str(copy))

    assert "nudge" in printed and str(copy) in printed
    assert counts(store) == before
    ahead = Candidacies(eventsourcing_env(f"sqlite:///{copy}"))
    try:
        types = [e.type for e in ahead.history(candidacy_id, MAYA.workspace)]
        assert {"NudgeSent", "NudgeDecided"} & set(types), types
    finally:
        ahead.close()
    again = runner.invoke(cli, ["tick", "--now", now.isoformat(), "--on-copy", str(copy)])
    assert again.exit_code == 1 and "already exists" in again.output


# -- closer dispatch ---------------------------------------------------------------------


def test_dispatch_dry_run_renders_and_proofs_but_sends_and_writes_nothing(
        store: str, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    thanked_by_the_policy(store, midday(-1))
    smtp_to(monkeypatch, smtp_server.port)
    before = counts(store)

    printed = run("dispatch", "--dry-run")

    assert "thank_you" in printed and "would go to" in printed
    assert "nothing sent or written" in printed
    assert smtp_server.sink.received == []
    assert counts(store) == before
    assert "sent 1" in run("dispatch", "--once")
    assert len(smtp_server.sink.received) == 1


def test_dispatch_once_exits_1_only_when_every_delivery_of_the_pass_failed(
        store: str, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    smtp_to(monkeypatch, free_port())  # nobody listens
    assert "queued 0" in run("dispatch", "--once")  # nothing due: not a failure
    thanked_by_the_policy(store, midday(-2))
    failed = run("dispatch", "--once", code=1)
    assert "dead-lettered 1" in failed and "every delivery of this pass failed" in failed

    # One delivery refused by the server, one accepted: the pass did not fail.
    smtp_to(monkeypatch, smtp_server.port)
    thanked_by_the_policy(store, midday(-2, hour=12), candidate="Ana Lima")
    smtp_server.sink.refuse.add("daniel.tomas@northwind.example")
    thanked_by_the_policy(store, midday(-2, hour=13), candidate="Tomas Berg")
    mixed = run("dispatch", "--once")
    assert "sent" in mixed and "sent 0" not in mixed


# -- closer export / import ---------------------------------------------------------------


def served_store(url: str, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch  # noqa: F811
                 ) -> tuple[str, str]:
    """A store as a served one is: an admin token, a published policy, a thank-you the
    outbox delivered over SMTP.  Returns the token and the candidacy id."""
    app = application(url, datetime.now(UTC))
    try:
        token = create_token(app, workspace=MAYA.workspace, role="admin")
        app.policies.publish(default_policy().model_copy(update={"name": "house"}))
    finally:
        app.close()
    candidacy_id = thanked_by_the_policy(url, midday(-2))
    smtp_to(monkeypatch, smtp_server.port)
    assert "sent 1" in run("dispatch", "--once")
    assert len(smtp_server.sink.received) == 1
    return token, candidacy_id


def fresh(url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty store of the same kind, configured for the CLI."""
    if url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path}/fresh.db"
    else:
        truncate_postgres(url)
    monkeypatch.setenv("CLOSER_DATABASE_URL", url)
    return url


def test_an_export_of_a_served_store_holds_no_token_and_no_message(
        store: str, tmp_path: Path, smtp_server: SmtpServer,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    token, candidacy_id = served_store(store, smtp_server, monkeypatch)
    plain, full = tmp_path / "plain.jsonl", tmp_path / "full.jsonl"

    run("export", "--out", str(plain))
    run("export", "--out", str(full), "--with-policies")

    for path, topics in ((plain, {"engine.candidacy:Candidacy"}),
                         (full, {"engine.candidacy:Candidacy",
                                 "engine.policy_book:PublishedPolicy"})):
        lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
        assert {line["topic"].rsplit(".", 1)[0] for line in lines} == topics
        text = path.read_text()
        assert "ApiToken" not in text and "OutboxMessage" not in text
        assert token not in text and "Issued" not in text
    assert candidacy_id in plain.read_text()


def test_a_reimported_export_sends_nothing_again_and_its_old_token_does_not_work(
        store: str, tmp_path: Path, smtp_server: SmtpServer,  # noqa: F811
        http_receiver: HttpReceiver, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    token, _ = served_store(store, smtp_server, monkeypatch)
    # A decision the old store's outbox had not delivered yet is history in the copy too.
    thanked_by_the_policy(store, midday(-2, hour=12), candidate="Ana Lima")
    exported = tmp_path / "served.jsonl"
    run("export", "--out", str(exported), "--with-policies")
    copy = fresh(store, tmp_path, monkeypatch)
    before = counts(copy)

    assert "would be imported" in run("import", str(exported), "--dry-run")
    assert counts(copy) == before
    assert "2 candidacies" in run("import", str(exported))
    # The copy reroutes its email to a webhook: not even a reroute sends old thank-yous.
    monkeypatch.setenv("CLOSER_WEBHOOK_URL", http_receiver.url)
    monkeypatch.setenv("CLOSER_WEBHOOK_WORKSPACES", MAYA.workspace)
    assert "queued 0" in run("dispatch", "--once")

    assert len(smtp_server.sink.received) == 1 and http_receiver.requests == []
    app = Candidacies(eventsourcing_env(copy))
    try:
        assert TokenVerifier(app).verify(token) is None
        assert message_rows(app) == []
    finally:
        app.close()
    # Work decided after the import is the copy's own: it goes.
    monkeypatch.delenv("CLOSER_WEBHOOK_WORKSPACES")
    thanked_by_the_policy(copy, midday(-1, hour=13), candidate="Tomas Berg")
    assert "sent 1" in run("dispatch", "--once")
    assert len(smtp_server.sink.received) == 2


def test_import_refuses_a_store_whose_outbox_has_not_caught_up(
        store: str, tmp_path: Path, smtp_server: SmtpServer,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    served_store(store, smtp_server, monkeypatch)
    exported = tmp_path / "served.jsonl"
    run("export", "--out", str(exported), "--with-policies")
    copy = fresh(store, tmp_path, monkeypatch)
    # The copy has a decision of its own that its outbox has not followed yet.
    thanked_by_the_policy(copy, midday(-1, hour=13), candidate="Tomas Berg")
    before = counts(copy)

    refused = run("import", str(exported), code=1)

    assert "has not yet followed" in refused and "closer dispatch --once" in refused
    assert counts(copy) == before
    assert "sent 1" in run("dispatch", "--once")  # its own thank-you still goes


def test_policy_publish_dry_run_writes_nothing(store: str, tmp_path: Path) -> None:
    policy = tmp_path / "short.toml"
    policy.write_text('name = "short"\nversion = 1\n[pest_line]\nmax_nudges = 1\n')
    before = counts(store)
    assert "would be published" in run("policy", "publish", str(policy), "--dry-run")
    assert counts(store) == before
    assert "short version 1: published" in run("policy", "publish", str(policy))
    assert "already published" in run("policy", "publish", str(policy), "--dry-run")
