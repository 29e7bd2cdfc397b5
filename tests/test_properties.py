"""Random command sequences, valid and invalid, in memory, on SQLite and on PostgreSQL.

After every command: the candidacy loaded from the store (through its snapshots, and
folded from every event without them) equals the one the application held in memory
when it saved; versions in the history run 1..n; a refused command left no event; the
current row agrees.  At the end a new application object on the same store loads the
same candidacy.

Each example builds its own application on a fresh store (a new in-memory store or
SQLite file, or the session's PostgreSQL database emptied), so no function-scoped fixture is shared
between examples.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from builders import PANEL, interview
from hypothesis import Phase, event, given, settings
from hypothesis import strategies as st

from engine.application import SNAPSHOT_INTERVAL, Candidacies, Outcome
from engine.candidacy import Candidacy
from engine.clock import FixedClock
from engine.errors import (
    IdempotencyKeyReused,
    IllegalCommand,
    InvalidInput,
    PlaybookRule,
    VersionConflict,
)
from engine.lifecycle import TRANSITIONS
from engine.store import eventsourcing_env
from engine.values import Actor
from tests.conftest import MEMORY, memory_url, truncate_postgres

START = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
ACTORS = [Actor("coach@agency.example", "agency", "maya"), Actor("maya", "agency")]
NAMES = ["Priya Raman", "Tom Becker", "Ada Lin", "Nobody Known"]
REFUSALS = (IllegalCommand, InvalidInput, VersionConflict, IdempotencyKeyReused, PlaybookRule)

# The playbook's way forward from each stage (biases sequences towards later stages).
FORWARD = {
    "interviewed": ("record_no_hesitations", {}),
    "hesitations_addressed": ("close_next_step", {"description": "Onsite"}),
    "next_step_closed": ("send_thank_you", {"medium": "email", "to": ["Priya Raman"]}),
    "thanked": ("send_thank_you", {"medium": "card", "covers_panel": True}),
    "awaiting": ("send_nudge", {"override": {"reason": "asked to call"}}),
    "nudged": ("receive_reply", {"kind": "advanced"}),
    "advanced": ("start_next_round", {}),
}


class RecordingCandidacies(Candidacies):
    """The real application, remembering the candidacy object it last saved."""

    name = "Closer"  # eventsourcing names a subclass's tables after it otherwise
    last_saved: Candidacy | None = None

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        recordings = super().save(*objs, **kwargs)
        for obj in objs:
            if isinstance(obj, Candidacy):
                self.last_saved = obj
        return recordings


def offset(hours: int | None) -> Any:
    """A moment relative to the clock, resolved when the step runs (None stays None)."""
    return ("offset", hours)


def moments() -> st.SearchStrategy[Any]:
    # Mostly past or absent; sometimes in the future or naive (both refused).
    return st.one_of(st.none(), st.sampled_from([offset(-30), offset(-2), offset(5)]),
                     st.just(("naive", None)))


def step_args(command: str) -> st.SearchStrategy[dict[str, Any]]:
    texts = st.sampled_from(["Visa sponsorship?", "Salary band?", "  "])
    strategies: dict[str, st.SearchStrategy[dict[str, Any]]] = {
        "raise_hesitation": st.fixed_dictionaries({"text": texts, "occurred_at": moments()}),
        "address_hesitation": st.fixed_dictionaries({
            "hesitation_id": st.sampled_from(["r1h1", "r1h2", "r2h1", "r9h9"]),
            "answer": st.sampled_from(["Sponsored before", "Flexible"]),
            "occurred_at": moments()}),
        "record_no_hesitations": st.just({}),
        "close_next_step": st.fixed_dictionaries({
            "description": st.sampled_from(["Onsite with the CTO", ""]),
            "scheduled_for": st.one_of(st.none(), st.just(offset(24 * 7)),
                                       st.just(("naive", None)))}),
        "send_thank_you": st.fixed_dictionaries({
            "medium": st.sampled_from(["email", "card", "voicemail_and_email", "postal"]),
            "to": st.lists(st.sampled_from(NAMES), unique=True, max_size=3),
            "covers_panel": st.booleans(), "mode": MODES}),
        "send_nudge": st.fixed_dictionaries({
            "channels": st.sampled_from([None, ["phone"], ["voicemail", "email"], ["fax"]]),
            "override": st.sampled_from([None, {"reason": "asked to call"}, {"reason": ""}]),
            "mode": MODES}),
        "receive_reply": st.fixed_dictionaries({
            "kind": st.sampled_from(["advanced", "rejected", "update", "out_of_office", "maybe"]),
            "received_at": moments(),
            "back_on": st.sampled_from([None, 3, -3])}),
        "note_competing_offer": st.fixed_dictionaries({
            "company": st.sampled_from(["Contoso", "Fabrikam", ""]),
            "deadline": st.sampled_from([offset(24 * 10), ("naive", None)]),
            "occurred_at": moments()}),
        "pause_cadence": st.fixed_dictionaries({
            "reason": st.sampled_from(["Holiday", ""]),
            "until": st.sampled_from([None, 2, 10, -1])}),
        "resume_cadence": st.just({}),
        "send_reminder": st.fixed_dictionaries({
            "kind": st.sampled_from(["reminder_next_step", "reminder_thank_you_due"]),
            "key": st.sampled_from(["k1", "k2"])}),
        "stall": st.fixed_dictionaries({
            "reason": st.sampled_from(["Pest line reached", ""]),
            "override": st.sampled_from([None, {"reason": "the role was frozen"}])}),
        "withdraw": st.fixed_dictionaries({"reason": st.sampled_from(["Took another offer"])}),
        "start_next_round": st.fixed_dictionaries({
            "next_round": st.sampled_from([None, {"format": "video", "interviewers": [
                {"name": "Ada Lin", "title": "CTO"}]}, {"format": "telepathy"}])}),
        "correct_details": st.fixed_dictionaries({"correction": st.sampled_from([
            {"person": "candidate", "field": "email", "value": "maya.o@example.com"},
            {"person": "Priya Raman", "field": "name", "value": "Priya Ramanathan"},
            {"person": "Tom Becker", "field": "title", "value": "Principal Engineer"},
            {"person": "Nobody Known", "field": "phone", "value": "+1 555 0100"}])}),
        "migrate_policy": st.fixed_dictionaries({
            "name": st.just("playbook"), "version": st.sampled_from([1, 7, 0])}),
    }
    return strategies[command]


MODES = st.sampled_from(["sent", "send_for_me", "maybe"])
# The lifecycle's commands a person issues through the application (the scheduler's
# decisions and the outbox's delivery facts are the aggregate's own, tested elsewhere).
APPLICATION_COMMANDS = [c for c in TRANSITIONS.commands if hasattr(Candidacies, c)]


@st.composite
def steps(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["forward", "forward", "any", "any", "any"]))
    step: dict[str, Any] = {"kind": kind, "actor": draw(st.sampled_from(ACTORS)),
                            "advance_hours": draw(st.sampled_from([0, 1, 20, 24 * 4]))}
    if kind == "any":
        command = draw(st.sampled_from(APPLICATION_COMMANDS))
        step["command"] = command
        step["args"] = draw(step_args(command))
    options: dict[str, Any] = {}
    if draw(st.integers(0, 9)) == 0:
        options["expected_version"] = draw(st.sampled_from(["current", "stale"]))
    if draw(st.integers(0, 7)) == 0:
        options["idempotency_key"] = draw(st.sampled_from(["retry-1", "retry-2"]))
    step["options"] = options
    return step


def resolve(value: Any, now: datetime) -> Any:
    """Turn the strategies' relative moments and day offsets into real arguments."""
    if isinstance(value, tuple) and value and value[0] == "offset":
        return now + timedelta(hours=value[1])
    if isinstance(value, tuple) and value and value[0] == "naive":
        return now.replace(tzinfo=None)
    return value


def run_step(app: Candidacies, candidacy_id: str, step: dict[str, Any]) -> Outcome:
    now = app.clock.now()
    candidacy = app.get(candidacy_id, "agency")
    if step["kind"] == "forward":
        command, forward_args = FORWARD.get(candidacy.stage, ("withdraw", {"reason": "Done"}))
        args = dict(forward_args)
    else:
        command = step["command"]
        args = {k: resolve(v, now) for k, v in step["args"].items()}
    if command == "receive_reply" and isinstance(args.get("back_on"), int):
        args["back_on"] = now.date() + timedelta(days=args["back_on"])
    if command == "pause_cadence" and isinstance(args.get("until"), int):
        args["until"] = now.date() + timedelta(days=args["until"])
    options = dict(step["options"])
    if "expected_version" in options:
        options["expected_version"] = candidacy.version - (options["expected_version"] == "stale")
    positional = {"raise_hesitation": ["text"], "address_hesitation": ["hesitation_id", "answer"],
                  "close_next_step": ["description"], "send_thank_you": ["medium"],
                  "receive_reply": ["kind"], "note_competing_offer": ["company", "deadline"],
                  "pause_cadence": ["reason"], "send_reminder": ["kind", "key"],
                  "stall": ["reason"], "withdraw": ["reason"],
                  "migrate_policy": ["name", "version"], "correct_details": ["correction"]
                  }.get(command, [])
    call_args = [args.pop(name) for name in positional]
    return getattr(app, command)(step["actor"], candidacy_id, *call_args, **args, **options)


def state(candidacy: Candidacy) -> dict[str, Any]:
    return {k: v for k, v in vars(candidacy).items() if k != "_pending_events"}


def folded(app: Candidacies, candidacy_id: str) -> Candidacy:
    """The candidacy from every stored event, no snapshot."""
    candidacy = None
    for stored in app.events.get(UUID(candidacy_id)):
        candidacy = stored.mutate(candidacy)
    assert isinstance(candidacy, Candidacy)
    return candidacy


@pytest.fixture(scope="module", params=[MEMORY, "sqlite", pytest.param(
    "postgres", marks=pytest.mark.postgres)])
def fresh_store(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A function giving a new, empty store's URL each time it is called."""
    if request.param == "memory":
        yield memory_url
        return
    if request.param == "sqlite":
        with tempfile.TemporaryDirectory(prefix="closer-props-") as folder:
            counter = iter(range(10**9))
            yield lambda: f"sqlite:///{folder}/example-{next(counter)}.db"
        return
    url = request.getfixturevalue("postgres_url")

    def emptied() -> str:
        truncate_postgres(url)
        return url

    yield emptied


# No explain phase: re-running a failing example line by line on PostgreSQL takes minutes.
@settings(max_examples=50, deadline=None,
          phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])
@given(sequence=st.lists(steps(), min_size=1, max_size=45),
       panel=st.sampled_from([PANEL, PANEL[:1]]),
       padding=st.integers(0, 2 * SNAPSHOT_INTERVAL))
def test_random_sequences_reload_to_the_same_candidacy(
        fresh_store: Any, sequence: list[dict[str, Any]], panel: list[dict[str, str]],
        padding: int) -> None:
    clock = FixedClock(START)
    app = RecordingCandidacies(eventsourcing_env(fresh_store()), clock=clock)
    try:
        actor = ACTORS[0]
        first = app.record_interview(actor, interview(interviewers=panel))
        candidacy_id, uid = first.candidacy_id, UUID(first.candidacy_id)
        for number in range(padding):  # so that sequences cross snapshot versions
            app.send_reminder(actor, candidacy_id, "reminder_next_step", f"padding-{number}")
        in_memory = app.last_saved
        assert app.repository.cache is None  # every get below reads the store
        for step in sequence:
            clock.advance(timedelta(hours=step["advance_hours"]))
            before = len(app.history(candidacy_id, "agency"))
            try:
                outcome = run_step(app, candidacy_id, step)
            except REFUSALS as refusal:
                event(f"refused: {type(refusal).__name__}")
                outcome = None
            history = app.history(candidacy_id, "agency")
            assert [e.version for e in history] == list(range(1, len(history) + 1))
            if outcome is None or outcome.replayed:
                assert len(history) == before  # a refused or replayed command left no event
            else:
                assert len(history) == before + 1 == outcome.version
                in_memory = app.last_saved
                assert outcome.stage == in_memory.stage == history[-1].stage
            stored = app.repository.get(uid)
            assert stored.version == len(history) == in_memory.version
            assert state(stored) == state(in_memory)
            assert state(folded(app, candidacy_id)) == state(in_memory)
            row = app.row(candidacy_id)
            assert (row.stage, row.version, row.round) == (
                in_memory.stage, in_memory.version, in_memory.round)
        event(f"ended at {in_memory.stage}, round {in_memory.round}")
        if in_memory.version >= SNAPSHOT_INTERVAL:
            event("loaded through a snapshot")
        again = Candidacies(app.env, clock=clock)
        try:
            assert state(again.get(candidacy_id, "agency")) == state(in_memory)
        finally:
            again.close()
    finally:
        app.close()
