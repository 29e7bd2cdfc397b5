"""`closer replay --check`: the live policy replayed over a store the scheduler wrote,
ticking every minute or every hour with the outbox delivering after each tick, reproduces
every recorded decision (delivered or blocked); one it does not is reported with why.
SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import math
from datetime import datetime, timedelta
from typing import Any

import pytest
from adapters_fixtures import SmtpServer, smtp_server  # noqa: F401
from typer.testing import CliRunner

from adapters.console import ConsoleAdapter
from adapters.email import EmailAdapter
from adapters.outbox import Dispatcher
from api.cli import app as cli
from api.settings import get_settings
from engine.application import Candidacies
from engine.candidacy import Candidacy
from engine.errors import IllegalCommand
from engine.replay import agreement, source_for
from engine.scheduler import tick
from engine.simulation import actor_for, generate

WORLDS = 12


def _ceil(moment: datetime, step: timedelta) -> datetime:
    """The first tick of a scheduler ticking every ``step`` at or after ``moment``."""
    epoch = datetime(2000, 1, 1, tzinfo=moment.tzinfo)
    steps = math.ceil((moment - epoch) / step)
    return epoch + steps * step


def scheduled_store(app: Candidacies, server: SmtpServer, step: timedelta, *,
                    seed: int = 11) -> list[str]:
    """Simulated people's facts recorded at their moments, the scheduler ticking every
    ``step`` (only the ticks with something due are run: the others record nothing) and
    the outbox delivering after each tick: email to a real SMTP server, the rest on a
    console at once.  Every third candidacy's interviewers have no email, so their email
    thank-you is blocked and falls back to a voicemail."""
    console = ConsoleAdapter(stream=io.StringIO())
    outbox = Dispatcher(app, adapters={
        "email": EmailAdapter(host=server.host, port=server.port, starttls=False),
        **{c: console for c in ("card", "voicemail", "calendar")}})
    worlds = [generate(i, seed) for i in range(WORLDS)]
    for n, world in enumerate(worlds):
        for k, interviewer in enumerate(world.facts[0].kwargs["interview"]["interviewers"]):
            interviewer["phone"] = "+44 20 7946 0958"
            interviewer["email"] = None if n % 3 == 0 else f"i{n}.{k}@northwind.example"
    queue = sorted(((f.at, n, k, f) for n, w in enumerate(worlds)
                    for k, f in enumerate(w.facts)), key=lambda item: item[:3])
    ids = [str(w.facts[0].kwargs["id"]) for w in worlds]
    clock: Any = app.clock
    clock.set(queue[0][0])
    for _ in range(100_000):
        dues = [row.due_at for row in map(app.row, ids) if row is not None and row.due_at]
        next_tick = _ceil(max(min(dues), clock.now()), step) if dues else None
        if queue and (next_tick is None or queue[0][0] <= next_tick):
            at, n, _, fact = queue.pop(0)
            at = max(at, clock.now())
            clock.set(at)
            actor = actor_for(worlds[n])
            if fact.command == "record_interview":
                candidacy = Candidacy.record_interview(actor=actor, at=at, **fact.kwargs)
            else:
                candidacy = app.get(ids[n], actor.workspace)
                try:
                    getattr(candidacy, fact.command)(actor, at, **fact.kwargs)
                except IllegalCommand:
                    continue  # refused by the playbook now: nothing recorded
            app.save(candidacy, rows=[app.current_row(candidacy)])
            continue
        if next_tick is None:
            return ids
        clock.set(next_tick)
        tick(app, next_tick)
        outbox.run_once()
    raise AssertionError("the store did not settle")


@pytest.mark.parametrize("step", [timedelta(minutes=1), timedelta(hours=1)],
                         ids=["every-minute", "every-hour"])
def test_the_live_policy_reproduces_every_recorded_decision(
        candidacies: Candidacies, database_url: str, smtp_server: SmtpServer,
        step: timedelta) -> None:
    ids = scheduled_store(candidacies, smtp_server, step)
    histories = [candidacies.history(cid, "simulated") for cid in ids]
    types = {e.type for h in histories for e in h}
    # The store holds what --check must reproduce: decisions, deliveries and a fallback.
    assert {"ThankYouDecided", "NudgeDecided", "MessageDelivered", "MessageBlocked"} <= types
    source = source_for(database_url, candidacies.recorder.events_table_name)

    report = agreement(source, lambda ref: candidacies.policies.get(ref["name"],
                                                                    ref["version"]),
                       until=candidacies.clock.now())

    assert report.candidacies == WORLDS
    assert report.differences == []
    assert report.agreeing == WORLDS


def test_replay_check_on_the_cli_reports_a_decision_it_does_not_reproduce(
        candidacies: Candidacies, database_url: str, smtp_server: SmtpServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ids = scheduled_store(candidacies, smtp_server, timedelta(hours=1))
    monkeypatch.setenv("CLOSER_DATABASE_URL", database_url)
    monkeypatch.setenv("CLOSER_LOG_LEVEL", "error")
    get_settings.cache_clear()
    until = ["--until", candidacies.clock.now().isoformat()]
    runner = CliRunner()
    try:
        clean = runner.invoke(cli, ["replay", "--check", "--json", *until])
        assert clean.exit_code == 0, clean.output
        assert json.loads(clean.output) == {"candidacies": WORLDS, "agreeing": WORLDS,
                                            "differences": []}

        # A recorded decision the live policy never makes (as a scheduler with another
        # policy, or a bug, would have written it): reported, with why.
        # (On the first candidacy the policy nudged: which one that is follows the
        # simulated times to decision.)
        n, forged, first = next((n, cid, e) for n, cid in enumerate(ids)
                                for e in candidacies.history(cid, "simulated")
                                if e.type == "NudgeDecided")
        candidacy = candidacies.get(forged, "simulated")
        candidacy.send_reminder(actor_for(generate(n, 11)), candidacies.clock.now(),
                                kind="thank_you_overdue", key="r1:forged",
                                decided_by={"policy": "playbook", "version": 1,
                                            "rule": "thank_you.deadline", "key": "r1:forged",
                                            "due_at": first.at.isoformat()})
        candidacies.save(candidacy, rows=[candidacies.current_row(candidacy)])

        found = runner.invoke(cli, ["replay", "--check", *until])
        assert found.exit_code == 1, found.output
        assert f"{forged} r1:forged: replay did not decide it" in found.output.replace("\n", " ")
    finally:
        get_settings.cache_clear()
