"""Counterfactual replay: recorded histories re-run under other cadence policies.

A candidacy's recorded events split in two (see `engine.candidacy`): *facts* (the
interview, hesitations, the next step, the employer's replies and their times, competing
offers, pauses, a person's own messages) and *decisions* a policy made (``decided_by``
set).  Replay keeps the facts as recorded, drops the decisions, and lets policy P decide
again with `engine.simulation.drive`: the same loop `closer simulate` records through,
calling the same `plan`, applying actions through the same `apply_action` mapping.

Nothing here reconstructs aggregates.  Rows are streamed from the store in
``(originator_id, originator_version)`` order with a plain cursor, decoded with the
application's own mapper (`engine.codec`: its transcoder, and any compressor or cipher
configured), grouped per candidacy and folded into a
`ReplayState` with the aggregate's own ``assign`` functions; the stage comes from
`TRANSITIONS` (the lifecycle's guards), not from the record, because under another policy
the stage differs.  Memory holds one candidacy at a time, so it is flat in the number of
events.  Partitions of the id space can run in worker processes (``workers``).

This module runs as Python: the decision function and the calendar under it are the
compiled ones (setup.py, `engine.COMPILED`); compiling replay too saved nothing measurable.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import time as _time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from queue import Empty
from typing import Any, cast
from uuid import UUID

from eventsourcing.persistence import Mapper

from engine.application import SCHEDULER, apply_action
from engine.candidacy import Candidacy
from engine.codec import state_decoder, stored_event_mapper
from engine.decisions import Action
from engine.errors import IllegalCommand, InvalidInput
from engine.lifecycle import TRANSITIONS, Stage
from engine.policy import CadencePolicy
from engine.simulation import APPLIED, REFUSED, SKIPPED, drive
from engine.values import Actor, ReplyKind, in_range
from engine.work_calendar import WorkCalendar

__all__ = [
    "METRICS", "Agreement", "Difference", "JsonlSource", "Metrics", "PostgresSource",
    "ReplayPolicy", "ReplayResult",
    "ReplayState", "ReplayTarget", "SQLiteSource", "agreement", "candidacy_histories",
    "replay", "source_for",
]

_new = object.__new__
_WEEK = timedelta(weeks=1)
_SCHEDULER = Actor(user=SCHEDULER, workspace="replay")


# -- the state replay folds into ---------------------------------------------------------------


class ReplayState:
    """A candidacy's state as plain attributes, the same ones `Candidacy` keeps, so that
    `plan`, the lifecycle's guards and the events' ``assign`` functions read and write it
    exactly as they do the aggregate.  Its methods ARE the aggregate's (plain functions)."""

    __slots__ = ("stage", "round", "workspace", "candidate", "company", "role", "timezone",
                 "country", "subdivision", "applied_on", "policy", "outcome", "paused",
                 "pauses", "offers", "interview", "hesitations", "no_hesitations", "next_step",
                 "thank_yous", "thanked", "awaiting_since", "nudges", "last_reply",
                 "last_update_at", "reminders", "pending_thank_you", "version")
    stage: str
    version: int

    begin_round = Candidacy.begin_round
    begin_pause = Candidacy.begin_pause
    end_pause = Candidacy.end_pause
    local_midnight = Candidacy.local_midnight
    # The scheduler's commands, called by `engine.application.apply_action`.
    send_thank_you = Candidacy.send_thank_you
    send_nudge = Candidacy.send_nudge
    send_reminder = Candidacy.send_reminder
    stall = Candidacy.stall
    decide_thank_you = Candidacy.decide_thank_you
    decide_nudge = Candidacy.decide_nudge
    deliver_message = Candidacy.deliver_message
    nudge_of = Candidacy.nudge_of
    delivery_item = Candidacy.delivery_item
    message_failed = Candidacy.message_failed
    ThankYouSent = Candidacy.ThankYouSent
    NudgeSent = Candidacy.NudgeSent
    ThankYouDecided = Candidacy.ThankYouDecided
    NudgeDecided = Candidacy.NudgeDecided
    MessageDelivered = Candidacy.MessageDelivered
    ReminderSent = Candidacy.ReminderSent
    Stalled = Candidacy.Stalled

    def _trigger(self, command: str, event_class: type[Candidacy.Event], actor: Actor,
                 at: datetime, guard_args: dict[str, Any] | None = None, **data: Any) -> None:
        """`Candidacy._trigger` without the event object: the lifecycle says the stage,
        then, as `Event.apply` does, the stage is set and the event's data assigned.  A
        decision's version counts down from -1, apart from the recorded versions its
        folded facts keep (a delivery names the version of what it delivers)."""
        stage = TRANSITIONS.target(self.stage, command, self, at=at, **(guard_args or {}))
        self.version -= 1
        data["originator_version"] = self.version
        data["timestamp"] = at
        data["stage"] = stage
        self.stage = stage
        event_class.assign(_Payload(data), self)  # type: ignore[arg-type]


class _Payload:
    """An event's data as attributes (its decoded dict is the instance dict: no copy)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.__dict__ = data


# -- decoding recorded events ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Spec:
    """How replay reads one event type: the command that produced it (for the lifecycle),
    its assign function, its guard arguments."""

    name: str
    command: str
    assign: Callable[[Any, Any], None]
    guard: Callable[[Any], dict[str, Any]] | None = None
    decision: bool = False  # a policy decides it when decided_by is set
    policy_only: bool = False  # always a decision (its command requires decided_by)
    message: bool = False   # a person's own message: skipped if refused while open
    delivery: bool = False   # what a channel did with a message (names its trigger)
    fact: type = field(init=False, repr=False, compare=False)
    """The class of this event's recorded facts, whose instance dict is the decoded
    payload: it knows its spec and name, so that decoding stores neither in every fact."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "fact", type(f"{self.name}Fact", (),
                                              {"spec": self, "name": self.name}))


def _hesitation_guard(fact: Any) -> dict[str, Any]:
    return {"hesitation_id": fact.hesitation_id}


def _thank_you_guard(fact: Any) -> dict[str, Any]:
    return {"to": tuple(fact.to), "covers_panel": False}


def _reply_guard(fact: Any) -> dict[str, Any]:
    return {"kind": fact.kind}


def _delivery_guard(fact: Any) -> dict[str, Any]:
    return {"trigger_version": fact.trigger_version}


_C = Candidacy
_SPECS: tuple[_Spec, ...] = (
    _Spec("InterviewRecorded", "record_interview", _C.InterviewRecorded.assign),
    _Spec("HesitationRaised", "raise_hesitation", _C.HesitationRaised.assign,
          guard=_hesitation_guard),
    _Spec("HesitationAddressed", "address_hesitation", _C.HesitationAddressed.assign,
          guard=_hesitation_guard),
    _Spec("NoHesitationsRecorded", "record_no_hesitations", _C.NoHesitationsRecorded.assign),
    _Spec("NextStepClosed", "close_next_step", _C.NextStepClosed.assign),
    _Spec("ThankYouSent", "send_thank_you", _C.ThankYouSent.assign,
          guard=_thank_you_guard, decision=True, message=True),
    _Spec("NudgeSent", "send_nudge", _C.NudgeSent.assign, decision=True,
          message=True),
    _Spec("ThankYouDecided", "decide_thank_you", _C.ThankYouDecided.assign,
          decision=True),
    _Spec("NudgeDecided", "decide_nudge", _C.NudgeDecided.assign, decision=True,
          policy_only=True),
    _Spec("ThankYouRequested", "request_thank_you", _C.ThankYouRequested.assign,
          message=True),
    _Spec("NudgeRequested", "request_nudge", _C.NudgeRequested.assign, message=True),
    # What a channel did: facts about a person's request, folded; about a decision, they
    # carry no pending item of the replayed state and change nothing but the metrics'
    # count (`ReplayTarget.decide` reads them back for the decision it reproduces).
    _Spec("MessageDelivered", "deliver_message", _C.MessageDelivered.assign,
          guard=_delivery_guard, message=True, delivery=True),
    _Spec("MessageBlocked", "block_message", _C.MessageBlocked.assign, message=True, delivery=True),
    _Spec("MessageDeadLettered", "dead_letter_message", _C.MessageDeadLettered.assign,
          message=True, delivery=True),
    _Spec("TaskReady", "ready_task", _C.TaskReady.assign, message=True,
          delivery=True),
    _Spec("ReplyReceived", "receive_reply", _C.ReplyReceived.assign, guard=_reply_guard),
    _Spec("CompetingOfferNoted", "note_competing_offer", _C.CompetingOfferNoted.assign),
    _Spec("CadencePaused", "pause_cadence", _C.CadencePaused.assign),
    _Spec("CadenceResumed", "resume_cadence", _C.CadenceResumed.assign),
    _Spec("ReminderSent", "send_reminder", _C.ReminderSent.assign, decision=True,
          message=True),
    _Spec("Stalled", "stall", _C.Stalled.assign, decision=True),
    _Spec("Withdrawn", "withdraw", _C.Withdrawn.assign),
    _Spec("RoundStarted", "start_next_round", _C.RoundStarted.assign),
    _Spec("PolicyMigrated", "migrate_policy", _C.PolicyMigrated.assign),
)
# Corrections of what was recorded (issue 13): names matter to the thank-you guards.
_SPECS += (
    _Spec("ContactCorrected", "correct_details", _C.ContactCorrected.assign),
    _Spec("NameCorrected", "correct_details", _C.NameCorrected.assign),
    _Spec("DetailCorrected", "correct_details", _C.DetailCorrected.assign),
)
_TOPIC_PREFIX = "engine.candidacy:Candidacy."
SPECS: dict[str, _Spec] = {_TOPIC_PREFIX + s.name: s for s in _SPECS}
"""Candidacy event topics replay reads; any other aggregate's topic is skipped."""

for _spec in _SPECS:  # every candidacy event must be known to replay
    assert isinstance(getattr(Candidacy, _spec.name), type), _spec.name


def decode(spec: _Spec, data: dict[str, Any]) -> tuple[Any, bool]:
    """A decoded event's data (`engine.codec.state_decoder`'s) as replay reads it, and
    whether a policy decided it: a decision as its dict; a fact as a ``spec.fact`` (its
    instance dict is the decoded one, no copy), ``at`` its own moment."""
    if spec.decision and data.get("decided_by") is not None:
        return data, True
    data["at"] = data.get("occurred_at") or data["timestamp"]
    fact: Any = _new(spec.fact)
    fact.__dict__ = data
    return fact, False


class DecidedMark:
    """A recorded thank-you decision's key and version: not a fact to fold, the link
    from its delivery facts to the decided key."""

    def __init__(self, key: str, version: int, at: datetime,
                 versions: dict[int, str]) -> None:
        self.key = key
        self.version = version
        self.at = at
        self.versions = versions  # every mark's: the versions whose messages carry a key
        versions[version] = key


def _decided_mark(data: dict[str, Any], marks: list[Any]) -> DecidedMark:
    versions: dict[int, str] = marks[-1].versions if marks else {}
    return DecidedMark(data["decided_by"]["key"], data["originator_version"],
                       data["timestamp"], versions)


_AFTER_THE_TICK = timedelta(microseconds=1)
"""A recorded decision's delivery is ordered after the decisions of the tick that
recorded it (the outbox delivers after the scheduler), though recorded at its moment."""


def _link_delivery(fact: Any, marks: list[Any]) -> None:
    """Name the decided key a delivery fact carries (``decided_key``), following
    fallbacks; a thank-you decision's delivery comes just after its tick."""
    versions: dict[int, str] = marks[-1].versions
    key = versions.get(fact.trigger_version)
    if key is None:
        return
    fact.decided_key = key
    fact.at = fact.at + _AFTER_THE_TICK
    if fact.name in ("MessageBlocked", "MessageDeadLettered") and fact.fallback is not None:
        versions[fact.originator_version] = key


@dataclass(slots=True)
class RecordedDelivery:
    """What the channels did for one recorded thank-you decision: when and on which
    channel it was delivered (None: never), and the channels that failed for it."""

    delivered_at: datetime | None = None
    channel: str | None = None
    failed: list[str] = field(default_factory=list)


def recorded_deliveries(facts: Sequence[Any],
                        marks: Sequence[Any]) -> tuple[dict[str, RecordedDelivery], list[str]]:
    """Per decided key (``marks``), what the recorded delivery facts say happened to that
    thank-you (following fallbacks: a failure's fallback message names the failure's
    version); and every channel the history shows failing."""
    keys: dict[int, str] = {}
    deliveries: dict[str, RecordedDelivery] = {}
    failing: list[str] = []
    for mark in marks:
        keys[mark.version] = mark.key
        deliveries[mark.key] = RecordedDelivery()
    for fact in facts:
        name = fact.name
        if name in ("MessageBlocked", "MessageDeadLettered"):
            if fact.channel not in failing:
                failing.append(fact.channel)
            key = keys.get(fact.trigger_version)
            if key is not None:
                deliveries[key].failed.append(fact.channel)
                if fact.fallback is not None:
                    keys[fact.originator_version] = key
        elif name == "MessageDelivered":
            key = keys.get(fact.trigger_version)
            if key is not None and deliveries[key].delivered_at is None:
                deliveries[key].delivered_at = fact.at
                deliveries[key].channel = fact.channel
    return deliveries, failing


# -- replaying one candidacy ---------------------------------------------------------------------


class ReplayTarget:
    """The loop's target for replay: recorded facts folded with the events' own ``assign``
    after the lifecycle's guards say the stage; decisions via `apply_action` onto the state.

    A decided thank-you is delivered as the recorded history says for the same decided
    key: by its recorded delivery fact, folded when the loop reaches it (or at once when
    the replayed decision comes after it), never if it never went; a decision the record
    does not hold is assumed delivered at once, on the first of its channels the history
    did not show failing."""

    __slots__ = ("deliveries", "failing", "state")

    def __init__(self) -> None:
        self.state: Any = None
        self.deliveries: dict[str, RecordedDelivery] = {}
        self.failing: list[str] = []

    def create(self, fact: Any) -> None:
        state = ReplayState()
        fact.stage = state.stage = Stage.INTERVIEWED.value
        Candidacy.InterviewRecorded.assign(fact, cast(Any, state))
        state.version = 0
        self.state = state

    def read(self, history: History) -> None:
        """Learn what the recorded deliveries say (before `drive`)."""
        if history.marks:
            self.deliveries, self.failing = recorded_deliveries(history.facts, history.marks)

    def fact(self, fact: Any) -> str:
        spec: _Spec = fact.spec
        state = self.state
        decided_key = getattr(fact, "decided_key", None) if spec.delivery else None
        if decided_key is not None:
            # A recorded decision's delivery fact: the replayed decision of that key (if
            # it is pending) is delivered by it; else it changes nothing.
            pending = state.pending_thank_you
            if (spec.name == "MessageDelivered" and pending is not None
                    and pending["decided_by"] is not None
                    and pending["decided_by"]["key"] == decided_key
                    and state.stage != Stage.STALLED):
                self._deliver(fact.channel, fact.occurred_at)  # (its moment, not its order)
            return APPLIED
        try:
            if spec.guard is None:
                stage = TRANSITIONS.target(state.stage, spec.command, state, at=fact.timestamp)
            else:
                stage = TRANSITIONS.target(state.stage, spec.command, state,
                                           at=fact.timestamp, **spec.guard(fact))
        except IllegalCommand:
            if state.stage == Stage.STALLED:
                return REFUSED
            # A person's message the counterfactual made redundant (the policy already
            # thanked): nothing to fold.  Any other fact refused ends the replay too.
            return SKIPPED if spec.message else REFUSED
        fact.stage = state.stage = stage
        spec.assign(fact, state)
        return APPLIED

    def decide(self, action: Action, policy: Any, at: datetime) -> None:
        state = self.state
        apply_action(state, _SCHEDULER, at, action, action.decided_by(policy, stored=False))
        if action.kind != "thank_you":
            return
        recorded = self.deliveries.get(action.key)
        if recorded is None:
            channel = self._first_working_channel(state.pending_thank_you["medium"], policy)
            if channel is not None:
                self._deliver(channel, at)
        elif (recorded.delivered_at is not None and recorded.channel is not None
              and recorded.delivered_at <= at):
            self._deliver(recorded.channel, at)  # it went before this decision: at once

    def _deliver(self, channel: str, at: datetime) -> None:
        state = self.state
        state.deliver_message(_SCHEDULER, at, message_id="replayed", kind="thank_you",
                              channel=channel,
                              trigger_version=state.pending_thank_you["version"])

    def _first_working_channel(self, medium: str, policy: Any) -> str | None:
        failing = self.failing
        channels = list(_MEDIUM_CHANNELS.get(medium, (medium,)))
        for preferred in policy.thank_you.media:
            channels.extend(_MEDIUM_CHANNELS.get(preferred.value, ()))
        for channel in channels:
            if channel not in failing:
                return channel
        return None


_MEDIUM_CHANNELS: dict[str, tuple[str, ...]] = {
    "card": ("card",), "email": ("email",), "voicemail": ("voicemail", "email"),
    "voicemail_and_email": ("voicemail", "email")}


class ReplayPolicy:
    """A cadence policy as replay hands it to `plan`: the same rule objects (its sections
    are the policy's own), with a label for the report."""

    def __init__(self, policy: CadencePolicy, label: str | None = None) -> None:
        self.__dict__.update({name: getattr(policy, name) for name in type(policy).model_fields})
        self.policy = policy
        self.places = policy.places  # the calendar maths `plan` keeps with the policy
        self.label = label or f"{policy.name} v{policy.version}"

    def work_calendar(self, country: str | None, subdivision: str | None = None) -> WorkCalendar:
        return self.policy.work_calendar(country, subdivision)

    def __getstate__(self) -> dict[str, Any]:
        return {"policy": self.policy, "label": self.label}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["policy"], state["label"])  # type: ignore[misc]


# -- metrics --------------------------------------------------------------------------------------

METRICS: dict[str, str] = {
    "thank_you_misses": "rounds whose panel was not fully thanked by the deadline",
    "pester_load": "nudges sent to an employer who replied later in the round",
    "impatience": "nudges (not offer nudges) before the late end of a stated timeline",
    "premature_stalls": "stalled before an employer reply that did come",
    "premature_stalls_advanced": "premature stalls whose reply was an advance",
    "stalls": "stalls the policy declared",
    "advanced": "rounds that reached an advance",
    "days_to_next_step": "mean days from interview to the advance, rounds that advanced",
    "nudges": "nudges sent (the policy's and people's own)",
    "messages": "messages to employers, per channel (email, voicemail, card)",
    "reminders": "reminders and alerts to the candidate",
}
"""What replay reports per policy (docs/replay.md defines each precisely)."""

_HISTOGRAM_BINS = 1000  # half days, up to 500 days: a median without keeping every value


_COUNTERS = ("candidacies", "rounds", "thank_yous", "thank_you_misses", "nudges",
             "policy_nudges", "offer_nudges", "pester_load", "impatience", "stalls",
             "premature_stalls", "premature_stalls_advanced", "advanced", "rejected",
             "updates", "withdrawn", "reminders", "superseded", "ended_early")
"""The counts `Metrics` keeps, in report order."""
_METRICS_STATE = (*_COUNTERS, "label", "channels", "days_sum", "days_count",
                  "days_histogram", "_unanswered")


class Metrics:
    """One policy's counts over the candidacies replayed (constant memory: counters and a
    half-day histogram).  Implements the loop's tally hooks."""

    candidacies: int
    rounds: int
    thank_yous: int
    thank_you_misses: int
    nudges: int
    policy_nudges: int
    offer_nudges: int
    pester_load: int
    impatience: int
    stalls: int
    premature_stalls: int
    premature_stalls_advanced: int
    advanced: int
    rejected: int
    updates: int
    withdrawn: int
    reminders: int
    superseded: int
    ended_early: int
    label: str
    channels: dict[str, int]
    days_sum: float
    days_count: int
    days_histogram: list[int]
    _unanswered: int

    def __init__(self, label: str = "") -> None:  # no argument: how pickle rebuilds one
        self.label = label
        for name in _COUNTERS:
            setattr(self, name, 0)
        self.channels: dict[str, int] = {"email": 0, "voicemail": 0, "card": 0}
        self.days_sum = 0.0
        self.days_count = 0
        self.days_histogram = [0] * _HISTOGRAM_BINS
        self._unanswered = 0

    # -- the loop's hooks --

    def fact(self, fact: Any, state: Any) -> None:
        name = fact.name
        if name == "ReplyReceived":
            kind = fact.kind
            if kind == ReplyKind.OUT_OF_OFFICE:
                return
            self.pester_load += self._unanswered
            self._unanswered = 0
            if kind == ReplyKind.ADVANCED:
                self.advanced += 1
                days = (fact.at - state.interview["interviewed_at"]).total_seconds() / 86400
                self.days_sum += days
                self.days_count += 1
                self.days_histogram[min(max(int(days * 2), 0), _HISTOGRAM_BINS - 1)] += 1
            elif kind == ReplyKind.REJECTED:
                self.rejected += 1
            else:
                self.updates += 1
        elif name == "InterviewRecorded":
            self.candidacies += 1
            self.rounds += 1
            self._unanswered = 0
        elif name == "RoundStarted":
            self.rounds += 1
            self._unanswered = 0
        elif name == "NudgeSent":
            self._nudge(fact.at, fact.channels, state, offer=False)
        elif name == "ThankYouSent":
            self._thank_you(fact.medium)
        elif name == "Withdrawn":
            self.withdrawn += 1

    def decision(self, action: Action, at: datetime, state: Any) -> None:
        kind = action.kind
        if kind == "nudge" or kind == "offer_nudge":
            self.policy_nudges += 1
            self._nudge(at, action.channels, state, offer=kind == "offer_nudge")
        elif kind == "thank_you":
            self._thank_you(state.pending_thank_you["medium"] if state.pending_thank_you
                            else state.thank_yous[-1]["medium"])
        elif kind == "stall":
            self.stalls += 1
        else:
            self.reminders += 1
            if kind == "thank_you_overdue":
                self.thank_you_misses += 1

    def skipped(self, fact: Any) -> None:
        self.superseded += 1

    def refused(self, facts: Sequence[Any], index: int, end: int, state: Any) -> None:
        outcome = state.outcome
        if not (state.stage == Stage.STALLED and outcome and outcome["kind"] == "stalled"):
            self.ended_early += 1
            return
        # Stalled by the policy: did the employer reply later in this round?
        replied = advanced = False
        for k in range(index, end):
            fact = facts[k]
            if fact.name == "RoundStarted":
                break
            if fact.name == "ReplyReceived" and fact.kind != ReplyKind.OUT_OF_OFFICE:
                replied = True
                if fact.kind != ReplyKind.UPDATE:
                    advanced = fact.kind == ReplyKind.ADVANCED
                    break
        if replied:
            self.premature_stalls += 1
            self.pester_load += self._unanswered
            if advanced:
                self.premature_stalls_advanced += 1

    def _nudge(self, at: datetime, channels: Sequence[str], state: Any, *, offer: bool) -> None:
        self.nudges += 1
        self._unanswered += 1
        for channel in channels:
            self.channels[channel] = self.channels.get(channel, 0) + 1
        if offer:
            self.offer_nudges += 1
            return
        interview = state.interview
        timeline = interview.get("timeline")
        if timeline and not interview.get("asked_to_follow_up") and (
                at < interview["interviewed_at"] + timeline["max_weeks"] * _WEEK):
            self.impatience += 1

    def _thank_you(self, medium: str) -> None:
        self.thank_yous += 1
        for channel in ("voicemail", "email") if medium == "voicemail_and_email" else (medium,):
            self.channels[channel] = self.channels.get(channel, 0) + 1

    # -- results --

    def merge(self, other: Metrics) -> None:
        for name in _COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for channel, n in other.channels.items():
            self.channels[channel] = self.channels.get(channel, 0) + n
        self.days_sum += other.days_sum
        self.days_count += other.days_count
        for i, n in enumerate(other.days_histogram):
            self.days_histogram[i] += n

    def median_days(self) -> float | None:
        """The median days to the next step, to the half day."""
        if not self.days_count:
            return None
        half, seen = (self.days_count + 1) / 2, 0
        for i, n in enumerate(self.days_histogram):
            seen += n
            if seen >= half:
                return (i + 0.5) / 2
        return None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"policy": self.label}
        data.update({name: getattr(self, name) for name in _COUNTERS})
        data["days_to_next_step"] = (round(self.days_sum / self.days_count, 2)
                                     if self.days_count else None)
        data["days_to_next_step_median"] = self.median_days()
        data["messages"] = dict(self.channels)
        return data

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _METRICS_STATE}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)


# -- sources ----------------------------------------------------------------------------------

Row = tuple[Any, int, str, bytes]
_SELECT = "SELECT originator_id, originator_version, topic, state FROM {table}"
_ORDER = " ORDER BY originator_id, originator_version"


class SQLiteSource:
    """Stored events in a SQLite file, read-only, streamed with ``fetchmany``."""

    def __init__(self, path: str | Path, table: str = "stored_events",
                 batch: int = 4096) -> None:
        self.path = str(path)
        self.table = table
        self.batch = batch

    def _read_only_uri(self) -> str:
        return f"{Path(self.path).resolve().as_uri()}?mode=ro"

    def partitions(self, count: int) -> list[Any]:
        """``count`` ranges of the (hex text) originator ids."""
        return _hex_ranges(count, lambda k: format(k, "04x"))

    def batches(self, partition: Any = None) -> Iterator[list[Row]]:
        connection = sqlite3.connect(self._read_only_uri(), uri=True)
        try:
            sql, params = _ranged(_SELECT.format(table=self.table), partition, "?")
            cursor = connection.execute(sql + _ORDER, params)
            while rows := cursor.fetchmany(self.batch):
                yield rows
        finally:
            connection.close()

    def count(self) -> int:
        connection = sqlite3.connect(self._read_only_uri(), uri=True)
        try:
            return int(connection.execute(f"SELECT COUNT(*) FROM {self.table}").fetchone()[0])
        finally:
            connection.close()


class PostgresSource:
    """Stored events in PostgreSQL (the same SQL), streamed with a server-side cursor."""

    def __init__(self, url: str, table: str = "closer_events", batch: int = 4096) -> None:
        self.url = url
        self.table = table
        self.batch = batch

    def partitions(self, count: int) -> list[Any]:
        return _hex_ranges(count, lambda k: f"{k:04x}0000-0000-0000-0000-000000000000")

    def batches(self, partition: Any = None) -> Iterator[list[Row]]:
        import psycopg

        with psycopg.connect(self.url) as connection, connection.transaction():
            sql, params = _ranged(_SELECT.format(table=f'"{self.table}"'), partition, "%s")
            with connection.cursor(name="closer_replay") as cursor:
                cursor.execute(sql + _ORDER, params)
                while rows := cursor.fetchmany(self.batch):
                    yield [(r[0], r[1], r[2], bytes(r[3])) for r in rows]

    def count(self) -> int:
        import psycopg

        with psycopg.connect(self.url) as connection:
            row = connection.execute(f'SELECT COUNT(*) FROM "{self.table}"').fetchone()
            return int(row[0]) if row else 0


class JsonlSource:
    """Events exported by `closer export` (one a line, in originator order)."""

    def __init__(self, path: str | Path, batch: int = 4096) -> None:
        self.path = Path(path)
        self.batch = batch

    def partitions(self, count: int) -> list[Any]:
        return [None]

    def batches(self, partition: Any = None) -> Iterator[list[Row]]:
        from engine.history_io import parse_line

        with self.path.open("rb") as lines:
            batch: list[Row] = []
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    batch.append(parse_line(line, number))
                    if len(batch) >= self.batch:
                        yield batch
                        batch = []
            if batch:
                yield batch

    def count(self) -> int:
        with self.path.open("rb") as lines:
            return sum(1 for line in lines if line.strip())


Source = SQLiteSource | PostgresSource | JsonlSource


def source_for(database_url: str, table: str) -> SQLiteSource | PostgresSource:
    """The events ``table`` of the store at ``database_url`` (as `engine.store` reads it)."""
    from engine.errors import InvalidInput
    from engine.store import eventsourcing_env

    env = eventsourcing_env(database_url)
    if env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite":
        return SQLiteSource(env["SQLITE_DBNAME"], table)
    if env["PERSISTENCE_MODULE"] != "eventsourcing.postgres":
        raise InvalidInput("CLOSER_DATABASE_URL", "replay reads the tables of a SQLite or "
                                                  "PostgreSQL store, not an in-memory one")
    return PostgresSource(database_url, table)


def _hex_ranges(count: int, bound: Callable[[int], str]) -> list[Any]:
    if count <= 1:
        return [None]
    edges = [bound(k * 0x10000 // count) for k in range(1, count)]
    return [(low, high) for low, high in zip([None, *edges], [*edges, None], strict=True)]


def _ranged(sql: str, partition: Any, mark: str) -> tuple[str, tuple[Any, ...]]:
    if partition is None:
        return sql, ()
    low, high = partition
    clauses, params = [], []
    if low is not None:
        clauses.append(f"originator_id >= {mark}")
        params.append(low)
    if high is not None:
        clauses.append(f"originator_id < {mark}")
        params.append(high)
    return sql + " WHERE " + " AND ".join(clauses), tuple(params)


# -- streaming candidacies ----------------------------------------------------------------------


@dataclass(slots=True)
class History:
    """One candidacy's recorded events: its facts (decoded), the decisions recorded (when
    asked for), and the stage its last event recorded."""

    id: Any
    facts: list[Any]
    decisions: list[dict[str, Any]]
    final_stage: str
    events: int
    marks: list[Any] = field(default_factory=list)  # `DecidedMark`s, oldest first


def candidacy_histories(batches: Iterable[list[Row]], *, keep_decisions: bool = False,
                        counter: Callable[[int], None] | None = None,
                        mapper: Mapper[UUID] | None = None) -> Iterator[History]:
    """Rows in originator order, decoded with ``mapper`` (the application's, as this
    process's configuration makes it, by default: its transcoder, compressor and cipher),
    grouped into one `History` per candidacy (other aggregates' events skipped, not
    decoded).  A policy's recorded decisions are kept only with ``keep_decisions``:
    replay re-derives them.  ``counter(n)`` hears how many rows were read."""
    decoded_state = state_decoder(mapper or stored_event_mapper())
    current: Any = None
    facts: list[Any] = []
    decisions: list[dict[str, Any]] = []
    marks: list[Any] = []
    stage = ""
    events = 0
    specs = SPECS
    thank_you_decided = SPECS[_TOPIC_PREFIX + "ThankYouDecided"]
    uid: Any = None
    skipped: tuple[Any, int, str, bytes] | None = None  # the last event, if not decoded

    def final_stage() -> str:
        return stage if skipped is None else str(decoded_state(*skipped)["stage"])

    for rows in batches:
        for originator_id, version, topic, state in rows:
            if originator_id != current:
                if events:
                    yield History(current, facts, decisions, final_stage(), events, marks)
                current, facts, decisions, events, marks = originator_id, [], [], 0, []
                uid = None
            spec = specs.get(topic)
            if spec is None:
                continue
            events += 1
            if uid is None:  # the id as the aggregate's, once a candidacy (not per event)
                uid = originator_id if isinstance(originator_id, UUID) else UUID(originator_id)
            if spec.policy_only and not keep_decisions:
                # Its topic says it is a decision: replay makes its own (decoded only if
                # it is the last, for the stage it recorded).
                skipped = (uid, version, topic, state)
                continue
            skipped = None
            decoded, decided = decode(spec, decoded_state(uid, version, topic, state))
            if not decided:
                stage = decoded.stage
                if marks and spec.delivery:
                    _link_delivery(decoded, marks)
                facts.append(decoded)
                continue
            stage = decoded["stage"]
            if spec is thank_you_decided:
                # Its key and version: a delivery fact names the version, and the
                # replayed decision with the same key takes its recorded outcome.
                marks.append(_decided_mark(decoded, marks))
            if keep_decisions:
                decisions.append(decoded)
        if counter is not None:
            counter(len(rows))
    if events:
        yield History(current, facts, decisions, final_stage(), events, marks)


@dataclass(frozen=True)
class Filters:
    """Which recorded candidacies to replay."""

    stage: str | None = None        # the final recorded stage
    since: datetime | None = None   # interviewed (first round) at or after
    country: str | None = None
    workspace: str | None = None
    policy: str | None = None       # the recorded policy's name

    def admit(self, history: History) -> bool:
        first = history.facts[0]
        if self.stage is not None and history.final_stage != self.stage:
            return False
        if self.since is not None and first.interview["interviewed_at"] < self.since:
            return False
        if self.country is not None and first.country != self.country:
            return False
        if self.workspace is not None and first.workspace != self.workspace:
            return False
        return self.policy is None or first.policy.get("name") == self.policy

    @classmethod
    def parse(cls, where: Sequence[str] = (), since: str | None = None) -> Filters:
        """From ``--where key=value`` (stage, country, workspace, policy) and ``--since``."""
        known = {"stage", "country", "workspace", "policy"}
        values: dict[str, Any] = {}
        for item in where:
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in known or not value.strip():
                raise InvalidInput("--where", f"{item!r}: use key=value with key one of "
                                              f"{', '.join(sorted(known))}")
            values[key] = value.strip().upper() if key == "country" else value.strip()
        if "stage" in values and values["stage"] not in {s.value for s in Stage}:
            raise InvalidInput("--where", f"unknown stage {values['stage']!r}; stages: "
                                          f"{', '.join(s.value for s in Stage)}")
        if since:
            values["since"] = parse_moment(since, "--since")
        return cls(**values)


def parse_moment(text: str, option: str) -> datetime:
    """An ISO date (its midnight UTC) or an ISO moment with its UTC offset, in the range
    every moment given to Closer must fall in (`engine.values.in_range`)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(option, f"{text!r} is not an ISO-8601 date or moment") from None
    if moment.tzinfo is None:
        if len(text.strip()) > 10:
            raise InvalidInput(option, "a moment needs a UTC offset, e.g. 2026-01-05T09:00+00:00")
        moment = moment.replace(tzinfo=UTC)
    return in_range(moment, option)


# -- the replay run ---------------------------------------------------------------------------


@dataclass
class ReplayResult:
    """Per-policy metrics, and what was read."""

    metrics: list[Metrics]
    events: int = 0
    candidacies: int = 0
    replayed: int = 0
    malformed: int = 0
    seconds: float = 0.0
    workers: int = 1

    def merge(self, other: ReplayResult) -> None:
        for mine, theirs in zip(self.metrics, other.metrics, strict=True):
            mine.merge(theirs)
        self.events += other.events
        self.candidacies += other.candidacies
        self.replayed += other.replayed
        self.malformed += other.malformed

    def as_dict(self) -> dict[str, Any]:
        return {"events": self.events, "candidacies": self.candidacies,
                "replayed": self.replayed, "malformed": self.malformed,
                "seconds": round(self.seconds, 3), "workers": self.workers,
                "policies": [m.as_dict() for m in self.metrics]}


def replay(source: Any, policies: Sequence[CadencePolicy | ReplayPolicy], *,
           filters: Filters | None = None, until: datetime | None = None, workers: int = 1,
           progress: Callable[[int], None] | None = None,
           mapper: Mapper[UUID] | None = None) -> ReplayResult:
    """Replay every recorded candidacy of ``source`` under each policy, in one pass over
    the events, decoded with ``mapper`` (see `candidacy_histories`).  ``workers`` > 1
    splits the candidacy ids between that many processes."""
    started = _time.perf_counter()
    mapper = mapper or stored_event_mapper()
    views = [p if isinstance(p, ReplayPolicy) else ReplayPolicy(p) for p in policies]
    filters = filters or Filters()
    partitions = source.partitions(workers * RANGES_PER_WORKER if workers > 1 else 1)
    if len(partitions) == 1:
        result = _replay_partition(source, partitions[0], views, filters, until, progress,
                                   mapper)
        result.workers = 1
    else:
        result = _in_processes(source, partitions, workers, views, filters, until, progress,
                               mapper)
        result.workers = workers
    result.seconds = _time.perf_counter() - started
    return result


RANGES_PER_WORKER = 8
"""With workers, the candidacy ids are cut into this many ranges per worker, which take
the next one as they finish one: a worker slowed by other work on the machine then
replays fewer, instead of the others waiting for it at the end."""


def _replay_partition(source: Any, partition: Any, policies: Sequence[ReplayPolicy],
                      filters: Filters, until: datetime | None,
                      progress: Callable[[int], None] | None,
                      mapper: Mapper[UUID]) -> ReplayResult:
    result = ReplayResult([Metrics(p.label) for p in policies])
    runs = list(zip(policies, result.metrics, strict=True))
    for history in candidacy_histories(source.batches(partition), counter=progress,
                                       mapper=mapper):
        result.events += history.events
        result.candidacies += 1
        facts = history.facts
        if not facts or facts[0].name != "InterviewRecorded":
            result.malformed += 1
            continue
        if not filters.admit(history):
            continue
        result.replayed += 1
        for policy, metrics in runs:
            target = ReplayTarget()
            target.read(history)
            drive(target, facts, policy, until=until,  # type: ignore[arg-type]
                  tally=metrics)
    return result


def _in_processes(source: Any, partitions: list[Any], workers: int,
                  policies: Sequence[ReplayPolicy], filters: Filters, until: datetime | None,
                  progress: Callable[[int], None] | None, mapper: Mapper[UUID]) -> ReplayResult:
    """``workers`` forked processes take the id ranges in turn; each streams its own rows
    and sends back its counts (and its progress now and then)."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    taken = context.Value("i", 0)  # the next range to take, under its lock
    processes = [context.Process(target=_worker, daemon=True,
                                 args=(source, partitions, taken, policies, filters, until,
                                       queue, mapper))
                 for _ in range(min(workers, len(partitions)))]
    for process in processes:
        process.start()
    result: ReplayResult | None = None
    pending = len(processes)
    try:
        while pending:
            try:
                kind, payload = queue.get(timeout=1)
            except Empty:
                if not any(p.is_alive() for p in processes):
                    raise RuntimeError("a replay worker died without a result") from None
                continue
            if kind == "progress":
                if progress is not None:
                    progress(payload)
            elif kind == "done":
                pending -= 1
                if result is None:
                    result = payload
                else:
                    result.merge(payload)
            else:
                raise RuntimeError(f"a replay worker failed:\n{payload}")
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
    assert result is not None
    return result


def _worker(source: Any, partitions: list[Any], taken: Any, policies: Sequence[ReplayPolicy],
            filters: Filters, until: datetime | None, queue: Any, mapper: Mapper[UUID]) -> None:
    read = 0

    def report(rows: int) -> None:
        nonlocal read
        read += rows
        if read >= 20_000:
            queue.put(("progress", read))
            read = 0

    try:
        result: ReplayResult | None = None
        while True:
            with taken.get_lock():
                index = taken.value
                taken.value = index + 1
            if index >= len(partitions):
                break
            part = _replay_partition(source, partitions[index], policies, filters, until,
                                     report, mapper)
            if result is None:
                result = part
            else:
                result.merge(part)
        if read:
            queue.put(("progress", read))
        queue.put(("done", result or ReplayResult([Metrics(p.label) for p in policies])))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        queue.put(("error", traceback.format_exc()))


# -- live and replay agree -------------------------------------------------------------------


class _DecisionLog:
    """A tally that only lists the decisions, as (kind, key, due_at)."""

    def __init__(self) -> None:
        self.decisions: list[tuple[str, str, str]] = []

    def fact(self, fact: Any, state: Any) -> None:
        pass

    def decision(self, action: Action, at: datetime, state: Any) -> None:
        self.decisions.append((action.kind, action.key, action.due_at.isoformat()))

    def skipped(self, fact: Any) -> None:
        pass

    def refused(self, facts: Sequence[Any], index: int, end: int, state: Any) -> None:
        pass


@dataclass
class Agreement:
    """How many candidacies' replayed decisions equal the recorded ones exactly, and,
    for the others (the first ``keep``), each decision that differs and why."""

    candidacies: int = 0
    agreeing: int = 0
    differing: list[tuple[Any, list[tuple[str, str]], list[tuple[str, str]]]] = field(
        default_factory=list)
    differences: list[Difference] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Difference:
    """One recorded decision replay did not reproduce (or one it made that was not
    recorded): the candidacy, the decision's key, and why."""

    candidacy_id: str
    key: str
    recorded_due: str | None
    replayed_due: str | None
    why: str

    def as_dict(self) -> dict[str, Any]:
        return {"candidacy_id": self.candidacy_id, "key": self.key,
                "recorded_due": self.recorded_due, "replayed_due": self.replayed_due,
                "why": self.why}


def agreement(source: Any, policy_of: Callable[[dict[str, Any]], CadencePolicy], *,
              until: datetime | None = None, keep: int = 5,
              mapper: Mapper[UUID] | None = None) -> Agreement:
    """Replay each candidacy under the policy it was recorded under (``policy_of`` maps
    its ``{"name", "version"}``) and compare the decisions, key and due moment, with the
    ones the live scheduler recorded.  A decision replay reproduces is applied when the
    record says it was (the tick that recorded it, a moment at or after its due one) and
    delivered as the recorded delivery facts say, so what follows is decided from the
    same state the live scheduler had."""
    views: dict[tuple[str, int], ReplayPolicy] = {}
    report = Agreement()
    for history in candidacy_histories(source.batches(None), keep_decisions=True,
                                       mapper=mapper):
        if not history.facts or history.facts[0].name != "InterviewRecorded":
            continue
        ref = history.facts[0].policy
        key = (ref["name"], ref["version"])
        if key not in views:
            views[key] = ReplayPolicy(policy_of(ref))
        log = _DecisionLog()
        target = ReplayTarget()
        target.read(history)
        applied_at: dict[tuple[str, str], datetime] = {}
        for decision in history.decisions:
            decided = decision["decided_by"]
            applied_at[(decided["key"], decided["due_at"])] = decision["timestamp"]

        def when(action: Action, applied_at: dict[tuple[str, str], datetime] = applied_at
                 ) -> datetime:
            return applied_at.get((action.key, action.due_at.isoformat()), action.due_at)

        drive(target, history.facts, views[key], until=until,  # type: ignore[arg-type]
              tally=log, when=when)
        replayed = [(k, due) for _, k, due in log.decisions]
        recorded = [(d["decided_by"]["key"], d["decided_by"]["due_at"])
                    for d in history.decisions]
        report.candidacies += 1
        if replayed == recorded:
            report.agreeing += 1
            continue
        if len(report.differing) < keep:
            report.differing.append((history.id, recorded, replayed))
        report.differences.extend(_differences(_id_text(history.id), recorded, replayed,
                                               target.state))
    return report


def _id_text(value: Any) -> str:
    """A candidacy id as the API writes it, whatever the store returned (UUID, hex, bytes)."""
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray)) and len(value) == 16:
        return str(UUID(bytes=bytes(value)))
    try:
        return str(UUID(str(value)))
    except ValueError:
        return str(value)


def _differences(candidacy_id: str, recorded: list[tuple[str, str]],
                 replayed: list[tuple[str, str]], state: Any) -> list[Difference]:
    """Why the two decision lists differ, decision by decision, in recorded order."""
    out: list[Difference] = []
    replayed_due = dict(replayed)
    recorded_due = dict(recorded)
    for position, (key, due) in enumerate(recorded):
        again = replayed_due.get(key)
        if again is None:
            out.append(Difference(candidacy_id, key, due, None,
                                  f"replay did not decide it (replay ended at stage "
                                  f"{state.stage})"))
        elif again != due:
            out.append(Difference(candidacy_id, key, due, again,
                                  f"replay decided it due at {again}, recorded due at {due}"))
        elif position < len(replayed) and replayed[position][0] != key:
            out.append(Difference(candidacy_id, key, due, again,
                                  "replay decided it in another order"))
    for key, due in replayed:
        if key not in recorded_due:
            out.append(Difference(candidacy_id, key, None, due,
                                  f"replay decided it (due {due}); nothing was recorded"))
    return out
