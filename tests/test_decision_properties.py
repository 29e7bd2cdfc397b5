"""Properties of the decision function and the scheduler, over random histories and policies.

Two generators:

- `test_scheduled_history_keeps_the_playbook`: a random valid policy is published,
  a candidacy is opened under it, and a random sequence of commands (closing the next
  step, thank-yous and nudges by hand, updates, out-of-office replies, pauses and
  resumes, competing offers, a decision) is applied through the application in
  memory (the unit tier) and on a SQLite store while a punctual scheduler ticks exactly
  when the candidacy's row says something is due.  The recorded history must keep the
  playbook: never more counted nudges than the pest line, every scheduled nudge at a send
  time (working day, send window, outside quiet hours) and never during a pause, no
  scheduled nudge before the patience window unless its rule names the reason, spacing
  kept, stall only once the nudges are exhausted; and the row's ``due_at`` agrees with
  `decide`.
- `test_decide_is_a_pure_prefix_of_plan`: random aggregates built in memory (no store),
  under random policies, at random moments: `decide` answers the same twice, equals
  the prefix of `plan` due by then, and `plan` is sorted with one action per key.

Examples are bounded (see `settings`) so both run in well under a minute.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import pytest
from builders import PANEL, interview
from hypothesis import HealthCheck, example, given, reject, settings
from hypothesis import strategies as st
from outbox_support import console_outbox

from conftest import MEMORY, memory_url
from engine.application import Candidacies
from engine.candidacy import Candidacy
from engine.clock import FixedClock
from engine.decisions import decide, next_due_at, plan
from engine.errors import CloserError
from engine.policy import (
    CadencePolicy,
    PolicyError,
    SendWindow,
    default_policy,
    policy_from_dict,
)
from engine.store import eventsourcing_env
from engine.values import Actor
from engine.work_calendar import is_send_time, work_calendar

ACTOR = Actor(user="coach@agency.example", workspace="agency", on_behalf_of="maya")
PLACES = [("Europe/London", "GB"), ("America/New_York", "US"), ("Asia/Kolkata", "IN"),
          ("Australia/Sydney", "AU"), ("America/Sao_Paulo", "BR"), ("Europe/Berlin", None)]
WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
REASONS = ("follow_up.", "competing_offer.", "patience.after_update")
EPOCH = datetime(2026, 1, 5, tzinfo=UTC)


# ---------------------------------------------------------------- strategies


def _clock(hour: int, minute: int) -> str:
    return f"{hour:02d}:{minute:02d}"


@st.composite
def policies(draw: st.DrawFn) -> CadencePolicy:
    """A random valid cadence policy (invalid combinations are rejected, not fixed)."""
    start = draw(st.integers(6, 13))
    end = draw(st.integers(start + 1, 22))
    data: dict[str, Any] = {
        "name": "random",
        "version": 1,
        "patience": {
            "first_nudge_after_timeline_min_business_days": draw(st.integers(0, 5)),
            "first_nudge_without_timeline_business_days": draw(st.integers(1, 12)),
            "window_without_timeline_weeks": draw(st.integers(1, 8)),
        },
        "nudge": {"spacing_business_days": draw(st.integers(1, 10))},
        "pest_line": {"max_nudges": draw(st.integers(0, 5))},
        "stall": {"grace_business_days": draw(st.integers(0, 10))},
        "follow_up": {
            "first_nudge_after_business_days": draw(st.integers(1, 5)),
            "spacing_business_days": draw(st.integers(1, 5)),
            "max_nudges": draw(st.integers(0, 8)),
        },
        "competing_offer": {
            "nudge_business_days_before_deadline": draw(st.integers(1, 10)),
            "counts_toward_pest_line": draw(st.booleans()),
        },
        "send_window": {"start": _clock(start, draw(st.sampled_from([0, 30]))),
                        "end": _clock(end, draw(st.sampled_from([0, 15])))},
        "quiet_hours": {"start": _clock(draw(st.integers(17, 23)), 0),
                        "end": _clock(draw(st.integers(0, 10)), draw(st.sampled_from([0, 45])))},
        "working_week": {"days": draw(st.lists(st.sampled_from(WEEKDAYS), min_size=1,
                                               max_size=7, unique=True))},
        "holidays": {"honour": draw(st.booleans()), "observed": draw(st.booleans())},
    }
    try:
        policy = policy_from_dict(data)
    except PolicyError:
        reject()  # e.g. a send window lying inside the quiet hours
    # A name of its own per distinct policy, so publishing never clashes.
    return policy.model_copy(update={"name": "p" + policy.fingerprint()[:20]})


@st.composite
def openings(draw: st.DrawFn) -> dict[str, Any]:
    """When, where and how the interview went."""
    zone, country = draw(st.sampled_from(PLACES))
    start = EPOCH + timedelta(minutes=draw(st.integers(0, 600 * 24 * 60)))
    minimum = draw(st.sampled_from([0.5, 1, 2, 3, 4]))
    timeline = draw(st.none() | st.just({"min_weeks": minimum,
                                         "max_weeks": minimum + draw(st.integers(0, 4))}))
    return {"at": start, "timezone": zone, "country": country, "timeline": timeline,
            "asked_to_follow_up": draw(st.booleans()),
            "format": draw(st.sampled_from(["in_person", "video", "phone"]))}


_SIMPLE = st.sampled_from([("close_next_step",), ("thank_by_hand",), ("nudge_by_hand",),
                           ("nudge_by_hand",), ("update",), ("resume",)])
_TIMED = st.one_of(
    st.tuples(st.just("out_of_office"), st.integers(-1, 20)),  # back in N days (even past)
    st.tuples(st.just("pause"), st.none() | st.integers(0, 20)),  # until N days / resumed
    st.tuples(st.just("offer"), st.sampled_from(["Contoso", "Fabrikam"]),
              st.integers(1, 30 * 24)),  # deadline in N hours
)
# An employer's decision ends the cadence, so it is rarer than the rest.
COMMAND = st.one_of(_SIMPLE, _TIMED, _SIMPLE, _TIMED, _SIMPLE,
                    st.sampled_from([("advanced",), ("rejected",)]))
# Minutes before each command: hours, or days so the cadence runs between them.
GAP = st.one_of(st.integers(1, 12 * 60), st.integers(1, 14 * 24 * 60))
# Most histories close the next step early on (else little is ever due).
_CLOSE = st.tuples(GAP, st.just(("close_next_step",)))
STEPS = st.tuples(st.one_of(st.none(), _CLOSE, _CLOSE, _CLOSE),
                  st.lists(st.tuples(GAP, COMMAND), max_size=10)).map(
    lambda parts: ([parts[0]] if parts[0] else []) + parts[1])


# Histories that once broke a rule, kept as explicit examples (regressions).
LONDON_OPENING = {"at": datetime(2026, 11, 25, 10, 0, tzinfo=UTC), "timezone": "Europe/London",
                  "country": "GB", "timeline": {"min_weeks": 3, "max_weeks": 4},
                  "asked_to_follow_up": False, "format": "in_person"}
# A nudge by hand two days after the thank-you: the next scheduled one used to follow
# 5 business days later, two weeks before the employer's stated timeline.
EARLY_NUDGE_BY_HAND = [(30, ("close_next_step",)), (2 * 24 * 60, ("nudge_by_hand",))]
# An out-of-office reply "back today" (its end, local midnight, before the reply) used to
# make the decision function raise, so the reply could not be recorded.
BACK_TODAY = [(30, ("close_next_step",)), (24 * 60, ("out_of_office", 0)),
              (60, ("out_of_office", -1)), (60, ("pause", 0))]


# ---------------------------------------------------------------- the app property


@pytest.fixture(scope="module", params=[MEMORY, "sqlite"])
def store(request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], str]]:
    """A function giving a new, empty store's URL each time it is called."""
    if request.param == "memory":
        yield memory_url
        return
    folder = tmp_path_factory.mktemp("cadence-properties")
    yield lambda: f"sqlite:///{folder}/run{next(_counter)}.db"


_counter = itertools.count()


def _issue(app: Candidacies, candidacy_id: str, command: tuple[Any, ...]) -> None:
    """Apply one random command; one the playbook refuses at this stage is skipped."""
    now = app.clock.now()
    name = command[0]
    try:
        if name == "close_next_step":
            app.close_next_step(ACTOR, candidacy_id, "Final round")
        elif name == "thank_by_hand":
            app.send_thank_you(ACTOR, candidacy_id, "email", covers_panel=True)
        elif name == "nudge_by_hand":
            app.send_nudge(ACTOR, candidacy_id, reason="called the recruiter")
        elif name == "update":
            app.receive_reply(ACTOR, candidacy_id, "update", note="still interviewing")
        elif name == "out_of_office":
            app.receive_reply(ACTOR, candidacy_id, "out_of_office",
                              back_on=now.date() + timedelta(days=command[1]))
        elif name == "pause":
            until = None if command[1] is None else now.date() + timedelta(days=command[1])
            app.pause_cadence(ACTOR, candidacy_id, "candidate travelling", until=until)
        elif name == "resume":
            app.resume_cadence(ACTOR, candidacy_id)
        elif name == "offer":
            app.note_competing_offer(ACTOR, candidacy_id, command[1],
                                     now + timedelta(hours=command[2]))
        else:
            app.receive_reply(ACTOR, candidacy_id, name)
    except CloserError:
        pass  # illegal at this stage (or a date the application refuses): not recorded


def _run_until(app: Candidacies, candidacy_id: str, until: datetime) -> None:
    """A punctual scheduler: tick exactly when the row says something is due."""
    clock: FixedClock = app.clock  # type: ignore[assignment]
    for _ in range(100):
        row = app.row(candidacy_id)
        assert row is not None
        if row.due_at is None or row.due_at > until:
            break
        clock.set(max(row.due_at, clock.now()))
        applied = app.apply_policy(candidacy_id, clock.now())
        console_outbox(app).run_once()  # what was decided is delivered at once
        if not applied:
            # Due, but late and outside the window its message obeys: it waits for the
            # window (never a call at 22:00), then goes.
            candidacy = app.get(candidacy_id, ACTOR.workspace)
            policy = app.policies.of(candidacy)
            held = plan(candidacy, policy)[0]
            assert not decide_allows(held, candidacy, policy, clock.now())
            clock.set(next_allowed(held, candidacy, policy, clock.now()))
            assert app.apply_policy(candidacy_id, clock.now()), "the window opened, nothing went"
    else:
        raise AssertionError("the scheduler kept finding something due: a loop")
    clock.set(max(until, clock.now()))


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
@given(policy=policies(), opening=openings(), steps=STEPS)
@example(policy=default_policy(), opening=LONDON_OPENING, steps=EARLY_NUDGE_BY_HAND)
@example(policy=default_policy(), opening=LONDON_OPENING, steps=BACK_TODAY)
def test_scheduled_history_keeps_the_playbook(store: Callable[[], str], policy: CadencePolicy,
                                              opening: dict[str, Any],
                                              steps: list[tuple[int, tuple[Any, ...]]]) -> None:
    clock = FixedClock(opening["at"])
    app = Candidacies(eventsourcing_env(store()), clock=clock)
    try:
        app.policies.publish(policy)
        details = interview(interviewers=PANEL, interviewed_at=opening["at"].isoformat(),
                            **{k: opening[k] for k in ("timezone", "country", "timeline",
                                                       "asked_to_follow_up", "format")})
        candidacy_id = app.record_interview(
            ACTOR, details, policy={"name": policy.name, "version": policy.version}
        ).candidacy_id
        app.record_no_hesitations(ACTOR, candidacy_id)
        for gap, command in steps:
            _run_until(app, candidacy_id, clock.now() + timedelta(minutes=gap))
            _issue(app, candidacy_id, command)
        # Then let the cadence run its course (to a stall, or to a quiet end).
        _run_until(app, candidacy_id, clock.now() + timedelta(weeks=60))
        _check_history(app, candidacy_id, policy)
    finally:
        app.close()


def _check_history(app: Candidacies, candidacy_id: str, policy: CadencePolicy) -> None:
    candidacy = app.get(candidacy_id, ACTOR.workspace)
    history = app.history(candidacy_id, ACTOR.workspace)
    zone = ZoneInfo(candidacy.timezone)
    calendar = policy.work_calendar(candidacy.country, candidacy.subdivision)
    follow_up = bool(candidacy.interview.get("asked_to_follow_up"))
    max_nudges = policy.follow_up.max_nudges if follow_up else policy.pest_line.max_nudges
    spacing = (policy.follow_up.spacing_business_days if follow_up
               else policy.nudge.spacing_business_days)
    pauses = [(p["since"], p["until"]) for p in candidacy.pauses]
    if candidacy.paused is not None:
        pauses.append((candidacy.paused["since"],
                       candidacy.paused["ends_at"] or datetime.max.replace(tzinfo=UTC)))
    floor = _patience_floor(candidacy, policy, calendar, zone)

    counted: list[datetime] = []
    for entry in history:
        decided = entry.decided_by
        if decided is not None:
            # Every decision names this policy version and a rule, and is recorded once due
            # (later only when the tick came late and its message waited for the window).
            assert (decided["policy"], decided["version"]) == (policy.name, policy.version)
            assert decided["rule"] and decided["key"]
            assert datetime.fromisoformat(decided["due_at"]) <= entry.at
        if entry.type in ("NudgeSent", "NudgeDecided"):
            is_offer = decided is not None and ":offer:" in decided["key"]
            counts = not is_offer or policy.competing_offer.counts_toward_pest_line
            if decided is not None:
                assert is_send_time(entry.at, zone, policy.send_window, policy.quiet_hours,
                                    calendar), f"nudge at {entry.at.astimezone(zone)}"
                assert not any(since <= entry.at < until for since, until in pauses), (
                    f"nudge at {entry.at} during a pause")
                if not decided["rule"].startswith(REASONS):
                    assert floor is not None and entry.at >= floor, (
                        f"{decided['rule']} at {entry.at}, patience until {floor}")
                if counts:
                    assert len(counted) < max_nudges, "the pest line was crossed"
                    if counted and not is_offer:  # an offer nudge keeps its own date
                        gap = calendar.business_days_between(
                            counted[-1].astimezone(zone).date(), entry.at.astimezone(zone).date())
                        assert gap >= spacing, f"nudges {gap} business days apart"
            if counts:
                counted.append(entry.at)
        elif entry.type == "Stalled" and decided is not None:
            assert len(counted) >= max_nudges, "stalled before the nudges were exhausted"
    # The policy never sends more than its pest line allows (a person may nudge by hand
    # at any time; the scheduler's own nudges are checked against every nudge above).
    scheduled = [e for e in history if e.type == "NudgeDecided" and e.decided_by is not None
                 and (":offer:" not in e.decided_by["key"]
                      or policy.competing_offer.counts_toward_pest_line)]
    assert len(scheduled) <= max_nudges, [
        (e.type, e.at.isoformat(), (e.decided_by or {}).get("rule")) for e in history]

    # The same history decides the same: live, reloaded, and as the row says.
    reloaded = app.get(candidacy_id, ACTOR.workspace)
    assert plan(candidacy, policy) == plan(reloaded, policy)
    row = app.row(candidacy_id)
    assert row is not None and row.due_at == next_due_at(candidacy, policy)


def _patience_floor(candidacy: Any, policy: CadencePolicy, calendar: Any,
                    zone: ZoneInfo) -> datetime | None:
    """The earliest a nudge may go without a reason: the early end of the stated
    timeline, or N business days after the thank-you when none was stated."""
    if candidacy.awaiting_since is None:
        return None
    timeline = candidacy.interview.get("timeline")
    if timeline:
        return candidacy.interview["interviewed_at"] + timedelta(weeks=timeline["min_weeks"])
    local = candidacy.awaiting_since.astimezone(zone)
    moved = calendar.add_business_days(local.replace(tzinfo=None),
                                       policy.patience.first_nudge_without_timeline_business_days)
    return moved.replace(tzinfo=zone).astimezone(UTC)


# ---------------------------------------------------------------- the pure property


def _aggregate(opening: dict[str, Any], facts: list[tuple[int, tuple[Any, ...]]]) -> Candidacy:
    """A candidacy built in memory from random facts, as a person would record them."""
    at = opening["at"]
    candidacy = Candidacy.record_interview(
        id=uuid4(), actor=ACTOR, at=at, candidate={"name": "Maya", "email": "m@example.com"},
        company="Northwind", role="Engineer", timezone=opening["timezone"],
        country=opening["country"], subdivision=None,
        interview={"format": opening["format"], "interviewers": PANEL, "interviewed_at": at,
                   "timeline": opening["timeline"],
                   "asked_to_follow_up": opening["asked_to_follow_up"]},
        policy={"name": "random", "version": 1})
    candidacy.record_no_hesitations(ACTOR, at)
    for gap, command in facts:
        at += timedelta(minutes=gap)
        name = command[0]
        # The actions run at once, within this iteration: the defaults bind this step's values.
        methods = {
            "close_next_step": lambda at=at: candidacy.close_next_step(
                ACTOR, at, description="Next"),
            "thank_by_hand": lambda at=at: candidacy.send_thank_you(
                ACTOR, at, medium="email", to=[], covers_panel=True),
            "nudge_by_hand": lambda at=at: candidacy.send_nudge(
                ACTOR, at, channels=["email"], reason="by hand"),
            "update": lambda at=at: candidacy.receive_reply(ACTOR, at, kind="update"),
            "out_of_office": lambda at=at, command=command: candidacy.receive_reply(
                ACTOR, at, kind="out_of_office", back_on=at.date() + timedelta(days=command[1])),
            "pause": lambda at=at, command=command: candidacy.pause_cadence(
                ACTOR, at, reason="away",
                until=None if command[1] is None else at.date() + timedelta(days=command[1])),
            "resume": lambda at=at: candidacy.resume_cadence(ACTOR, at),
            "offer": lambda at=at, command=command: candidacy.note_competing_offer(
                ACTOR, at, company=command[1], deadline=at + timedelta(hours=command[2])),
            "advanced": lambda at=at: candidacy.receive_reply(ACTOR, at, kind="advanced"),
            "rejected": lambda at=at: candidacy.receive_reply(ACTOR, at, kind="rejected"),
        }
        with contextlib.suppress(CloserError):
            methods[name]()
    return candidacy


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def next_allowed(action: Any, candidacy: Any, policy: CadencePolicy, now: datetime) -> datetime:
    """The first moment from ``now`` when ``action``'s message may go."""
    moment = now
    while not decide_allows(action, candidacy, policy, moment):
        moment += timedelta(minutes=1)
    return moment


def decide_allows(action: Any, candidacy: Any, policy: CadencePolicy, now: datetime) -> bool:
    """Whether the send window and quiet hours let ``action`` go at ``now``."""
    zone = ZoneInfo(candidacy.timezone)
    if action.kind == "thank_you":
        if action.medium == "card":
            return True
        if policy.thank_you.within_send_window:
            return is_send_time(now, zone, policy.send_window, policy.quiet_hours,
                                policy.work_calendar(candidacy.country, candidacy.subdivision))
        whole_day = SendWindow(start=time(0, 0), end=time(23, 59, 59))
        return is_send_time(now, zone, whole_day, policy.quiet_hours,
                            work_calendar(None, None, range(7), False))
    return is_send_time(now, zone, policy.send_window, policy.quiet_hours,
                        policy.work_calendar(candidacy.country, candidacy.subdivision))


@given(policy=policies(), opening=openings(), facts=STEPS,
       probes=st.lists(st.integers(-2 * 24 * 60, 120 * 24 * 60), min_size=1, max_size=8))
@example(policy=default_policy(), opening=LONDON_OPENING, facts=BACK_TODAY, probes=[0, 60])
def test_decide_is_a_pure_prefix_of_plan(policy: CadencePolicy, opening: dict[str, Any],
                                         facts: list[tuple[int, tuple[Any, ...]]],
                                         probes: list[int]) -> None:
    candidacy = _aggregate(opening, facts)
    full = plan(candidacy, policy)
    assert full == plan(candidacy, policy)
    assert [a.due_at for a in full] == sorted(a.due_at for a in full)
    assert len({a.key for a in full}) == len(full), "one pending action per key"
    assert next_due_at(candidacy, policy) == (full[0].due_at if full else None)
    for minutes in probes:
        now = candidacy.modified_on + timedelta(minutes=minutes)
        due = decide(candidacy, policy, now)
        assert due == decide(candidacy, policy, now)
        assert due == full[:len(due)], "decide is a prefix of plan"
        due_by_now = [a for a in full if a.due_at <= now]
        assert due == due_by_now[:len(due)]
        if len(due) < len(due_by_now):
            # Only a message to the employer that may not go at `now` holds the rest back.
            held = due_by_now[len(due)]
            assert held.kind in ("nudge", "offer_nudge", "thank_you")
            assert not decide_allows(held, candidacy, policy, now)
    zone = ZoneInfo(candidacy.timezone)
    calendar = policy.work_calendar(candidacy.country)
    for action in full:
        if action.kind in ("nudge", "offer_nudge"):
            assert is_send_time(action.due_at, zone, policy.send_window, policy.quiet_hours,
                                calendar)
            assert action.channels == tuple(c.value for c in policy.nudge.channels)


@given(policy=policies(), opening=openings(), facts=STEPS)
def test_remembered_answers_change_no_plan(policy: CadencePolicy, opening: dict[str, Any],
                                           facts: list[tuple[int, tuple[Any, ...]]]) -> None:
    """`plan` remembers its calendar answers and actions per policy and place: a plan
    from those answers equals one worked out afresh, with no answer remembered."""
    candidacy = _aggregate(opening, facts)
    warm = repr(plan(candidacy, policy))  # repr: the same moments, written the same way
    assert repr(plan(candidacy, policy)) == warm
    assert policy.places or candidacy.stage in ("advanced", "stalled")  # remembered
    assert repr(plan(candidacy, policy.model_copy())) == warm  # and worked out afresh


def test_a_copy_with_other_rules_keeps_none_of_the_originals_places() -> None:
    """A policy keeps the calendar maths it derived per place; a copy whose rules may
    differ (``model_copy(update=...)``) starts without them."""
    policy = default_policy().model_copy()
    plan(_closed_state(datetime(2026, 11, 25, 11, tzinfo=UTC)), policy)
    assert policy.places
    assert policy.model_copy(update={"version": policy.version + 1}).places == {}
    assert policy.places


def _closed_state(closed_at: datetime) -> Any:
    """A candidacy just closed for its next step, interviewed in person that morning."""
    from types import SimpleNamespace

    return SimpleNamespace(
        stage="next_step_closed", round=1, timezone="Europe/London", country="GB",
        subdivision=None, interview={"interviewed_at": datetime(2026, 11, 25, 9, tzinfo=UTC),
                                     "format": "in_person"},
        next_step={"closed_at": closed_at, "scheduled_for": None, "description": "panel"},
        reminders=[], nudges=[], offers=[], pauses=[], paused=None, awaiting_since=None,
        last_update_at=None, pending_thank_you=None)


def test_a_remembered_step_keeps_each_candidacys_own_offset() -> None:
    """Equal moments written with other offsets are not one key: the card thank-you is due
    at the moment the step was closed, written as it was recorded."""
    policy = default_policy()
    in_utc = datetime(2026, 11, 25, 11, tzinfo=UTC)
    in_paris = in_utc.astimezone(timezone(timedelta(hours=1)))
    first = [repr(plan(_closed_state(moment), policy)) for moment in (in_utc, in_paris)]
    fresh = [repr(plan(_closed_state(in_paris), policy.model_copy()))]
    fresh.insert(0, repr(plan(_closed_state(in_utc), policy.model_copy())))
    assert first == fresh
    assert "+01:00" in first[1] or "3600" in first[1]
