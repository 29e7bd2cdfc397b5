"""The playbook's order, declared once as a state machine.

`Lifecycle` (python-statemachine) is the single declaration of which command
is allowed at which stage and where it leads; its guards carry the playbook's
conditions.  Running a machine instance costs ~180 µs a command, so the
command path asks `TRANSITIONS`, a table derived from the machine class at
import time that evaluates the very same guard functions in the machine's own
order (`tests/test_lifecycle.py` checks the two always agree).

Guards receive the candidacy as ``candidacy`` plus the command's arguments.
Each guard's docstring is the reason shown when it refuses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import reduce
from operator import or_
from typing import Any

from statemachine import State, StateMachine

from engine.errors import IllegalCommand
from engine.values import ReplyKind


class Stage(StrEnum):
    """Where a candidacy stands in the playbook."""

    INTERVIEWED = "interviewed"
    HESITATIONS_ADDRESSED = "hesitations_addressed"
    NEXT_STEP_CLOSED = "next_step_closed"
    THANKED = "thanked"
    AWAITING = "awaiting"
    NUDGED = "nudged"
    ADVANCED = "advanced"
    STALLED = "stalled"


# -- guards: the playbook's conditions ---------------------------------------


# The guards run for every command, in replay millions of times: plain loops, which
# cost a third of a generator expression's calls on the few hesitations a round has.


def hesitation_is_open(candidacy: Any, hesitation_id: str = "", **_: Any) -> bool:
    """the hesitation must be one that is raised and not yet answered"""
    for h in candidacy.hesitations:
        if h["id"] == hesitation_id and h["answer"] is None:
            return True
    return False


def answers_last_open_hesitation(candidacy: Any, **_: Any) -> bool:
    """it must be the last open hesitation"""
    open_ = 0
    for h in candidacy.hesitations:
        if h["answer"] is None:
            open_ += 1
    return open_ == 1


def no_hesitation_raised(candidacy: Any, **_: Any) -> bool:
    """no hesitation may have been raised in this round"""
    return not candidacy.hesitations


def every_hesitation_answered(candidacy: Any, **_: Any) -> bool:
    """every hesitation must be answered first"""
    for h in candidacy.hesitations:
        if h["answer"] is None:
            return False
    return True


def thanks_whole_panel(
    candidacy: Any, to: tuple[str, ...] = (), covers_panel: bool = False, **_: Any
) -> bool:
    """after this thank-you every interviewer must have been thanked"""
    if covers_panel:
        return True
    panel = {i["name"] for i in candidacy.interview["interviewers"]}
    return panel <= set(candidacy.thanked) | set(to)


def thanks_someone_new(
    candidacy: Any, to: tuple[str, ...] = (), covers_panel: bool = False, **_: Any
) -> bool:
    """the thank-you must go to an interviewer not yet thanked"""
    return covers_panel or bool(set(to) - set(candidacy.thanked))


def no_thank_you_pending(candidacy: Any, **_: Any) -> bool:
    """no thank-you may be waiting for delivery already"""
    return candidacy.pending_thank_you is None


def delivers_pending_thank_you(candidacy: Any, trigger_version: int = 0, **_: Any) -> bool:
    """the message must carry the thank-you waiting for delivery"""
    pending = candidacy.pending_thank_you
    return pending is not None and trigger_version in pending["triggers"]


def delivery_thanks_whole_panel(candidacy: Any, **_: Any) -> bool:
    """after the thank-you waiting for delivery every interviewer must have been thanked"""
    pending = candidacy.pending_thank_you
    return thanks_whole_panel(candidacy, tuple(pending["to"]) if pending else ())


def delivers_no_pending_thank_you(candidacy: Any, trigger_version: int = 0, **_: Any) -> bool:
    """the message must not carry the thank-you waiting for delivery"""
    return not delivers_pending_thank_you(candidacy, trigger_version)


def reply_advances(candidacy: Any, kind: str = "", **_: Any) -> bool:
    """the reply must say the candidate advances"""
    return kind == ReplyKind.ADVANCED


def reply_rejects(candidacy: Any, kind: str = "", **_: Any) -> bool:
    """the reply must be a rejection"""
    return kind == ReplyKind.REJECTED


def reply_is_not_a_decision(candidacy: Any, kind: str = "", **_: Any) -> bool:
    """an advance or a rejection ends the wait, so only other replies keep it"""
    return kind not in (ReplyKind.ADVANCED, ReplyKind.REJECTED)


def cadence_running(candidacy: Any, at: Any = None, **_: Any) -> bool:
    """the cadence must not be paused already"""
    return not is_paused(candidacy.paused, at)


def cadence_paused(candidacy: Any, at: Any = None, **_: Any) -> bool:
    """the cadence must be paused"""
    return is_paused(candidacy.paused, at)


def is_paused(pause: Any, at: Any) -> bool:
    """Whether a pause (``{"since", "ends_at", ...}`` or None) still holds at ``at``:
    a pause with an end date holds until that moment, an open one until resumed."""
    if pause is None:
        return False
    return pause["ends_at"] is None or at is None or at < pause["ends_at"]


def _stay(*states: State, cond: Any = None) -> Any:
    """A self-transition on each of ``states`` (same guard on each)."""
    return reduce(or_, (s.to.itself(cond=cond) if cond else s.to.itself() for s in states))


class Lifecycle(StateMachine):
    """interviewed → hesitations addressed → next step closed → thanked → awaiting
    → nudged → advanced or stalled.  `advanced` is final for the round only:
    the next round starts from it.  `stalled` is final: a delivery learned after it is
    recorded on the outbox's message only.  A thank-you is decided or requested without
    moving the stage; its delivery moves it."""

    interviewed = State(value=Stage.INTERVIEWED.value, initial=True)
    hesitations_addressed = State(value=Stage.HESITATIONS_ADDRESSED.value)
    next_step_closed = State(value=Stage.NEXT_STEP_CLOSED.value)
    thanked = State(value=Stage.THANKED.value)
    awaiting = State(value=Stage.AWAITING.value)
    nudged = State(value=Stage.NUDGED.value)
    advanced = State(value=Stage.ADVANCED.value)
    stalled = State(value=Stage.STALLED.value, final=True)

    raise_hesitation = interviewed.to.itself() | hesitations_addressed.to(interviewed)
    address_hesitation = interviewed.to(
        hesitations_addressed, cond=[hesitation_is_open, answers_last_open_hesitation]
    ) | interviewed.to.itself(cond=hesitation_is_open)
    record_no_hesitations = interviewed.to(hesitations_addressed, cond=no_hesitation_raised)
    close_next_step = hesitations_addressed.to(next_step_closed, cond=every_hesitation_answered)
    send_thank_you = (
        next_step_closed.to(awaiting, cond=thanks_whole_panel)
        | next_step_closed.to(thanked)
        | thanked.to(awaiting, cond=[thanks_someone_new, thanks_whole_panel])
        | thanked.to.itself(cond=thanks_someone_new)
    )
    # A decided or requested thank-you keeps the stage: only its delivery thanks.
    decide_thank_you = _stay(next_step_closed, thanked, cond=no_thank_you_pending)
    request_thank_you = _stay(next_step_closed, thanked, cond=no_thank_you_pending)
    send_nudge = awaiting.to(nudged) | nudged.to.itself()
    # A decided or requested nudge counts at once (the pest line); deliveries are facts on it.
    decide_nudge = awaiting.to(nudged) | nudged.to.itself()
    request_nudge = awaiting.to(nudged) | nudged.to.itself()
    deliver_message = (
        next_step_closed.to(awaiting,
                            cond=[delivers_pending_thank_you, delivery_thanks_whole_panel])
        | next_step_closed.to(thanked, cond=delivers_pending_thank_you)
        | thanked.to(awaiting, cond=[delivers_pending_thank_you, delivery_thanks_whole_panel])
        | thanked.to.itself(cond=delivers_pending_thank_you)
        | _stay(next_step_closed, thanked, awaiting, nudged, cond=delivers_no_pending_thank_you)
        | advanced.to.itself()  # (a thank-you still pending when the employer said yes)
    )
    block_message = _stay(next_step_closed, thanked, awaiting, nudged, advanced)
    dead_letter_message = _stay(next_step_closed, thanked, awaiting, nudged, advanced)
    ready_task = _stay(next_step_closed, thanked, awaiting, nudged, advanced)
    receive_reply = (
        next_step_closed.to(advanced, cond=reply_advances)
        | thanked.to(advanced, cond=reply_advances)
        | awaiting.to(advanced, cond=reply_advances)
        | nudged.to(advanced, cond=reply_advances)
        | next_step_closed.to(stalled, cond=reply_rejects)
        | thanked.to(stalled, cond=reply_rejects)
        | awaiting.to(stalled, cond=reply_rejects)
        | nudged.to(stalled, cond=reply_rejects)
        | _stay(next_step_closed, thanked, awaiting, nudged, cond=reply_is_not_a_decision)
        # A rejection ends the round at any stage that is not final, however early.
        | interviewed.to(stalled, cond=reply_rejects)
        | hesitations_addressed.to(stalled, cond=reply_rejects)
        | advanced.to(stalled, cond=reply_rejects)
    )
    note_competing_offer = _stay(
        interviewed, hesitations_addressed, next_step_closed, thanked, awaiting, nudged, advanced
    )
    pause_cadence = _stay(
        interviewed, hesitations_addressed, next_step_closed, thanked, awaiting, nudged,
        cond=cadence_running,
    )
    resume_cadence = _stay(
        interviewed, hesitations_addressed, next_step_closed, thanked, awaiting, nudged,
        cond=cadence_paused,
    )
    send_reminder = _stay(
        interviewed, hesitations_addressed, next_step_closed, thanked, awaiting, nudged, advanced
    )
    stall = awaiting.to(stalled) | nudged.to(stalled)
    withdraw = stalled.from_(
        interviewed, hesitations_addressed, next_step_closed, thanked, awaiting, nudged, advanced
    )
    start_next_round = advanced.to(interviewed)
    migrate_policy = _stay(
        interviewed, hesitations_addressed, next_step_closed, thanked, awaiting, nudged, advanced
    )
    # Correcting a recorded contact, name or title keeps the stage (issue 13).
    correct_details = _stay(
        interviewed, hesitations_addressed, next_step_closed, thanked, awaiting, nudged, advanced
    )


# -- the table derived from the machine ---------------------------------------


@dataclass(frozen=True, slots=True)
class _Guard:
    func: Callable[..., bool]
    expected: bool

    def holds(self, candidacy: Any, args: Mapping[str, Any]) -> bool:
        # Every guard takes the candidacy first (python-statemachine passes it by name).
        return bool(self.func(candidacy, **args)) is self.expected

    @property
    def reason(self) -> str:
        text = (self.func.__doc__ or self.func.__name__).strip()
        return text if self.expected else f"not: {text}"


@dataclass(frozen=True, slots=True)
class _Transition:
    target: str
    guards: tuple[_Guard, ...]


def _event_id(event: Any) -> str:
    return str(getattr(event, "id", event))


class TransitionTable:
    """``(stage, command) → transitions`` in the machine's own order and guards."""

    def __init__(self, machine: type[StateMachine]) -> None:
        self._table: dict[tuple[str, str], list[_Transition]] = {}
        self.commands: tuple[str, ...] = tuple(_event_id(e) for e in machine._events)
        for state in machine.states:
            for transition in state.transitions:
                guards = tuple(
                    _Guard(spec.func, spec.expected_value is not False)
                    for spec in transition.cond
                )
                for event in transition.events:
                    key = (state.value, _event_id(event))
                    self._table.setdefault(key, []).append(
                        _Transition(transition.target.value, guards)
                    )
        # Most (stage, command) pairs have one transition and no guard: its target at once.
        self._unguarded: dict[tuple[str, str], str] = {
            key: transitions[0].target for key, transitions in self._table.items()
            if len(transitions) == 1 and not transitions[0].guards}
        self.stages: tuple[str, ...] = tuple(s.value for s in machine.states)
        self._allowed = {
            stage: tuple(c for c in self.commands if (stage, c) in self._table)
            for stage in self.stages
        }

    def allowed(self, stage: str) -> tuple[str, ...]:
        """Commands the stage allows before guards are asked."""
        return self._allowed[stage]

    def enabled(self, stage: str, candidacy: Any, at: Any = None) -> tuple[str, ...]:
        """The commands a person may give now: offered to people (`PERSON_COMMANDS`) and
        accepted at ``stage`` with some valid arguments, guards asked (for errors and
        menus; the playbook's timing rules, `engine.decisions.manual_refusal`, apart)."""
        return tuple(
            command for command in self._allowed.get(stage, ())
            if command in PERSON_COMMANDS
            and any(self.is_enabled(stage, command, candidacy, at=at, **args)
                    for args in _probes(command, candidacy)))

    def stages_of(self, command: str) -> tuple[str, ...]:
        """The stages at which ``command`` is declared at all."""
        return tuple(s for s in self.stages if (s, command) in self._table)

    def target(self, stage: str, command: str, candidacy: Any, **args: Any) -> str:
        """The stage ``command`` leads to, or `IllegalCommand` naming stage and allowed ones."""
        unguarded = self._unguarded.get((stage, command))
        if unguarded is not None:
            return unguarded
        transitions = self._table.get((stage, command))
        if transitions is None:
            stages = self.stages_of(command)
            why = f"{command} is possible only at {', '.join(stages)}" if stages else ""
            raise IllegalCommand(command, stage,
                                 self.enabled(stage, candidacy, args.get("at")), why=why)
        # Every command of every candidacy comes here, in replay millions of times: the
        # guards are asked in a plain loop (the first one failing ends the transition),
        # each as `_Guard.holds` asks it, without that call.
        for transition in transitions:
            for guard in transition.guards:
                if bool(guard.func(candidacy, **args)) is not guard.expected:
                    break
            else:
                return transition.target
        failed = next(g for g in transitions[0].guards if not g.holds(candidacy, args))
        raise IllegalCommand(command, stage, self.enabled(stage, candidacy, args.get("at")),
                             why=failed.reason)

    def is_enabled(self, stage: str, command: str, candidacy: Any, **args: Any) -> bool:
        """Whether ``command`` would be accepted now (guards asked)."""
        return any(
            all(g.holds(candidacy, args) for g in t.guards)
            for t in self._table.get((stage, command), ())
        )


# -- what a person may do (issue 13: honest answers) --------------------------------------

MACHINE_COMMANDS = frozenset({
    "send_reminder", "decide_thank_you", "decide_nudge", "block_message",
    "dead_letter_message", "ready_task", "deliver_message", "request_thank_you",
    "request_nudge", "migrate_policy"})
"""Commands no answer offers by their own name: the scheduler's (`send_reminder`,
`decide_*`) and the outbox's (`*_message`, `ready_task`) alone; `request_*` is the
thank-you's and nudges' own route with ``mode="send_for_me"``, offered as those; a
person's confirmation of a card or voicemail task (`deliver_message`) is offered on the
message itself (`confirmMessage`); `migrate_policy` moves the candidacy to another policy
version, an operator's decision about the cadence, not a step of the follow-up
(`migratePolicy`, `/policies/.../migrations`)."""

PERSON_COMMANDS: frozenset[str] = frozenset(
    # On the class, `events` is the metaclass's property (a list); mypy sees the instance's.
    command for command in (e.id for e in Lifecycle.events)  # type: ignore[attr-defined]
    if command not in MACHINE_COMMANDS)
"""The commands people give, each with an HTTP route of its own name."""

_REPLY_KINDS = tuple(kind.value for kind in ReplyKind)


def _probes(command: str, candidacy: Any) -> list[dict[str, Any]]:
    """The arguments that could make ``command`` pass its guards for ``candidacy``: each
    open hesitation to address, the whole panel to thank, every kind of reply."""
    if command == "address_hesitation":
        return [{"hesitation_id": h["id"]} for h in candidacy.hesitations
                if h["answer"] is None]
    if command == "send_thank_you":
        return [{"to": (), "covers_panel": True}]
    if command == "receive_reply":
        return [{"kind": kind} for kind in _REPLY_KINDS]
    return [{}]


TRANSITIONS = TransitionTable(Lifecycle)


def mermaid_diagram() -> str:
    """The lifecycle as a Mermaid state diagram, generated from `Lifecycle`."""
    return format(Lifecycle, "mermaid")
