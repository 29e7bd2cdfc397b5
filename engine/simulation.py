"""The simulation loop, and plausible histories generated through it (`closer simulate`).

One loop, `drive`, moves a candidacy through simulated time: facts in time order and,
between two facts, whatever the cadence policy says falls due first.  It asks
`engine.decisions.plan` (the one decision function) and applies the earliest action with
`engine.application.apply_action` (the scheduler's own mapping from action to command), stamped
at its due moment, as a scheduler ticking at that moment would.  Two uses share it:

- **replay** (`engine.replay`): the facts are a candidacy's *recorded* ones, folded into a
  plain state object with the aggregate's own ``assign`` functions, under any policy;
- **simulate** (here): the facts are *generated* employer and candidate behaviour, applied
  to a real `Candidacy` through its command methods, under the policy that is live; the
  aggregates are then saved through the application.

Because both go through the same loop, replaying a simulated history under the policy
that was live reproduces exactly the decisions that were recorded (a test checks it).

Rules of simulated time, the same for both uses:

- facts that happen at the same moment are applied together, before anything that falls
  due at that moment (facts win ties);
- time never runs backwards: an action already overdue is applied at the current moment;
- a fact the lifecycle refuses is skipped while the candidacy is open (a person's command
  refused, nothing recorded); once the candidacy is stalled, the history ends there.

The employer's time from the candidate's *application* to its decision (offer or rejection,
as Glassdoor measures it) is drawn per country from a lognormal distribution whose mean is
Glassdoor's published average (see `MEAN_DAYS` and docs/replay.md for how the spread was
chosen); the first interview comes some way into it (`APPLICATION_SHARE`), and the application
day is recorded with the interview.  Worlds whose employer follows a response model
(``employer=``) keep their decision times from the first interview, as before.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol
from uuid import UUID
from zoneinfo import ZoneInfo

from engine.application import SCHEDULER, apply_action
from engine.candidacy import Candidacy
from engine.decisions import Action, plan
from engine.errors import CloserError, IllegalCommand
from engine.lifecycle import Stage
from engine.policy import CadencePolicy
from engine.values import Actor, ReplyKind

APPLIED, SKIPPED, REFUSED = "applied", "skipped", "refused"
"""What a target did with a fact: applied it, skipped it (refused while the candidacy is
open: nothing changes), or refused it because the candidacy has ended (the history stops)."""

DECIDED = (ReplyKind.ADVANCED, ReplyKind.REJECTED)
"""The employer's decision, as Glassdoor counts it: an offer (advanced) or a rejection."""

MAX_STEPS = 10_000
"""A runaway guard per candidacy: far above any real history's length."""


class SimulationError(CloserError):
    """The loop could not finish a candidacy (a bug, never a user mistake)."""


class Fact(Protocol):
    """Anything the loop can order: it happened ``at`` (its effective moment)."""

    at: datetime


class Target(Protocol):
    """What the loop moves: ``state`` is what `plan` reads."""

    state: Any

    def create(self, fact: Any) -> None: ...

    def fact(self, fact: Any) -> str: ...

    def decide(self, action: Action, policy: CadencePolicy, at: datetime) -> None: ...


class Tally(Protocol):
    """Optional observer of the loop (replay's metrics)."""

    def fact(self, fact: Any, state: Any) -> None: ...

    def decision(self, action: Action, at: datetime, state: Any) -> None: ...

    def skipped(self, fact: Any) -> None: ...

    def refused(self, facts: Sequence[Any], index: int, end: int, state: Any) -> None: ...


React = Callable[[Action, datetime, Any], "list[Any] | None"]
When = Callable[[Action], datetime]


def drive(target: Target, facts: list[Any], policy: CadencePolicy, *,
          until: datetime | None = None, tally: Tally | None = None,
          react: React | None = None, when: When | None = None) -> None:
    """Run one candidacy: ``facts`` in order (the first creates it), the policy's
    decisions in between, until nothing is left to apply (or up to ``until``).

    ``react(action, at, state)`` may answer a decision with new facts (a simulated
    employer's out-of-office reply); they are inserted in time order.  ``when(action)``
    says the moment a due action is applied (default: its due moment), e.g. the tick
    that recorded it.
    """
    first = facts[0]
    target.create(first)
    state = target.state
    if tally is not None:
        tally.fact(first, state)
    now = first.at
    end = len(facts)
    i = 1
    actions: list[Action] | None = None
    for _ in range(MAX_STEPS):
        if i < end:
            fact = facts[i]
            t = fact.at
            if until is not None and t > until:
                end = i  # the history is observed up to `until`
                continue
            if t > now:
                # Only a later fact leaves room for a decision in between.
                if actions is None:
                    actions = plan(state, policy)
                if actions and (actions[0].due_at if when is None else when(actions[0])) < t:
                    now, end = _decide(target, policy, actions[0], now, tally, react, facts,
                                       i, end, when)
                    actions = None
                    continue
            else:
                t = now  # the same moment (or logged late): time never runs backwards
            result = target.fact(fact)
            if result == REFUSED:
                if tally is not None:
                    tally.refused(facts, i, end, state)
                return
            now = t
            i += 1
            if result == APPLIED:
                actions = None
                if tally is not None:
                    tally.fact(fact, state)
            elif tally is not None:
                tally.skipped(fact)  # nothing changed: the plan in hand still holds
            continue
        if actions is None:
            actions = plan(state, policy)
        if not actions or (until is not None and actions[0].due_at > until):
            return
        now, end = _decide(target, policy, actions[0], now, tally, react, facts, i, end, when)
        actions = None
    raise SimulationError(f"candidacy did not settle within {MAX_STEPS} steps")


def _decide(target: Target, policy: CadencePolicy, action: Action, now: datetime,
            tally: Tally | None, react: React | None, facts: list[Any], i: int,
            end: int, when: When | None = None) -> tuple[datetime, int]:
    at = max(now, action.due_at if when is None else when(action))
    target.decide(action, policy, at)
    if tally is not None:
        tally.decision(action, at, target.state)
    if react is not None:
        for new in react(action, at, target.state) or ():
            position = i
            while position < len(facts) and facts[position].at <= new.at:
                position += 1
            facts.insert(position, new)
            if position <= end:
                end += 1  # a fact past `until` is cut when the loop reaches it
    return at, end


# -- simulate: a real aggregate moved by its command methods -------------------------------


@dataclass(slots=True)
class SimulatedFact:
    """A generated fact: the command a person issues ``at`` that moment, with its data."""

    at: datetime
    command: str
    kwargs: dict[str, Any]


class AggregateTarget:
    """A real `Candidacy`: facts through its command methods (the lifecycle's guards
    included), decisions through `engine.application.apply_action` as the scheduler records them."""

    __slots__ = ("state", "actor", "scheduler")

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self.scheduler = Actor(user=SCHEDULER, workspace=actor.workspace)
        self.state: Any = None

    def create(self, fact: SimulatedFact) -> None:
        self.state = Candidacy.record_interview(actor=self.actor, at=fact.at, **fact.kwargs)

    def fact(self, fact: SimulatedFact) -> str:
        if not fact.command:
            return SKIPPED  # an employer's decision a nudge redrew (`World.react`)
        try:
            getattr(self.state, fact.command)(self.actor, fact.at, **fact.kwargs)
        except IllegalCommand:
            return REFUSED if self.state.stage == Stage.STALLED else SKIPPED
        return APPLIED

    def decide(self, action: Action, policy: CadencePolicy, at: datetime) -> None:
        apply_action(self.state, self.scheduler, at, action, action.decided_by(policy))
        pending = self.state.pending_thank_you
        if action.kind == "thank_you" and pending is not None:
            # The simulated outbox delivers a decided thank-you at once, on its first channel.
            channel = "voicemail" if pending["medium"] == "voicemail_and_email" \
                else pending["medium"]
            self.state.deliver_message(self.scheduler, at,
                                       message_id=f"simulated:{pending['version']}:{channel}",
                                       kind="thank_you", channel=channel,
                                       trigger_version=pending["version"])


# -- the simulated world ---------------------------------------------------------------------

# Average days from application to offer or rejection, first half of 2017: Glassdoor Economic
# Research, "How Long Does it Take to Hire? Interview Duration in 25 Countries" (A. Chamberlain,
# 9 Aug 2017), as in tests/data/interview_duration_by_country.csv (a test keeps them equal).
MEAN_DAYS: dict[str, float] = {
    "BR": 39.6, "FR": 38.9, "CH": 37.6, "IT": 36.0, "BE": 36.0, "AE": 35.8, "EG": 35.2,
    "ES": 31.7, "MX": 31.2, "JP": 30.9, "DE": 28.5, "GB": 27.5, "PL": 25.9, "IE": 25.5,
    "NL": 25.4, "SG": 25.4, "CN": 24.7, "US": 23.8, "AU": 23.3, "PH": 21.8, "MY": 21.7,
    "CA": 20.1, "RO": 19.2, "IL": 16.9, "IN": 16.1,
}

SIGMA = 0.5
"""Spread of the lognormal time to decision (log scale): median 0.88x the mean, 10th to
90th percentile 0.47x to 1.67x (see docs/replay.md for why)."""

APPLICATION_SHARE = (0.15, 0.45)
"""How far into the time from the application to the decision the first interview comes
(uniform over this range: 30% on average, about 7 days in the US and 12 in Brazil).  An
assumption, not a published figure (docs/replay.md): a slow process is slow from the start,
and the interview always comes before the decision."""

ZONES: dict[str, tuple[str, ...]] = {
    "BR": ("America/Sao_Paulo",), "FR": ("Europe/Paris",), "CH": ("Europe/Zurich",),
    "IT": ("Europe/Rome",), "BE": ("Europe/Brussels",), "AE": ("Asia/Dubai",),
    "EG": ("Africa/Cairo",), "ES": ("Europe/Madrid",), "MX": ("America/Mexico_City",),
    "JP": ("Asia/Tokyo",), "DE": ("Europe/Berlin",), "GB": ("Europe/London",),
    "PL": ("Europe/Warsaw",), "IE": ("Europe/Dublin",), "NL": ("Europe/Amsterdam",),
    "SG": ("Asia/Singapore",), "CN": ("Asia/Shanghai",),
    "US": ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles"),
    "AU": ("Australia/Sydney", "Australia/Melbourne", "Australia/Perth"),
    "PH": ("Asia/Manila",), "MY": ("Asia/Kuala_Lumpur",),
    "CA": ("America/Toronto", "America/Vancouver"), "RO": ("Europe/Bucharest",),
    "IL": ("Asia/Jerusalem",), "IN": ("Asia/Kolkata",),
}

DEFAULT_START = date(2025, 1, 6)
"""Simulated first interviews fall in the year from this Monday."""

# How often each behaviour happens (per candidacy, or per round where it says so).
P_SILENCE = 0.15          # the employer never decides (the policy ends up stalling)
P_OFFER = 0.35            # a decision is an offer (else a rejection)
P_SECOND_ROUND = 0.4      # after an advance there is another interview round...
P_THIRD_ROUND = 0.15      # ...and sometimes a third
P_TIMELINE = 0.6          # the employer states a timeline (per round)
P_ASKED_TO_FOLLOW_UP = 0.1
P_LATE_CLOSE = 0.07       # the next step is closed the next day, not at the interview
P_MANUAL_CARD = 0.25      # in person: the candidate leaves a card at reception themselves
P_UPDATE = 0.3            # the employer sends an update while deciding (per round)
P_COMPETING_OFFER = 0.12
P_MANUAL_NUDGE = 0.05
P_MANUAL_PAUSE = 0.03
P_WITHDRAW = 0.02
P_VACATION = 0.12         # the interviewer is away for a while: messages get an auto-reply

_FIRST = ("Maya", "Luis", "Anika", "Tom", "Priya", "Kenji", "Sofia", "Omar", "Lena", "Chidi",
          "Ana", "Mateo", "Yara", "Noah", "Ines", "Ravi", "Mei", "Jonas", "Zara", "Felix")
_LAST = ("Okafor", "Ortega", "Sharma", "Becker", "Raman", "Sato", "Rossi", "Haddad", "Novak",
         "Eze", "Silva", "Garcia", "Cohen", "Smith", "Dubois", "Iyer", "Chen", "Weber",
         "Khan", "Moreau")
_COMPANIES = ("Northwind Analytics", "Contoso Health", "Fabrikam", "Globex", "Initech",
              "Umbrella Robotics", "Tailspin Travel", "Wide World Importers", "Litware",
              "Adventure Works", "Proseware", "Lucerne Publishing")
_ROLES = ("Data Engineer", "Platform Engineer", "Product Manager", "Backend Developer",
          "Site Reliability Engineer", "Engineering Manager", "Data Scientist",
          "Frontend Developer")
_TITLES = ("Engineering Manager", "Staff Engineer", "VP Engineering", "Head of Data",
           "Recruiter", "CTO", "Product Director", "Team Lead")
_HESITATIONS = ("Limited experience with streaming pipelines", "Never managed a team this size",
                "Worried about on-call experience", "Gap in the last year",
                "Little exposure to our industry", "Salary expectations look high")
_NEXT_STEPS = ("Technical deep-dive with the platform team", "Call with the hiring manager",
               "Take-home exercise", "Onsite with the CTO", "Reference checks",
               "Panel with the product team")


@dataclass
class World:
    """One simulated candidacy's world: the facts people cause, in time order, and how
    the employer answers messages while away.  ``decision_at`` is when the employer
    decides (None: it never does), whatever the policy did meanwhile."""

    id: UUID
    country: str
    timezone: str
    facts: list[SimulatedFact]
    first_interview_at: datetime
    decision_at: datetime | None
    decision: str | None
    rounds: int
    vacation: tuple[datetime, datetime] | None = None
    applied_on: date | None = None  # the day the candidate applied (recorded)
    answered_vacation: bool = field(default=False, repr=False)

    employer: Any = field(default=None, repr=False)  # `EmployerDraw`: replies from a model
    update_draw: Any = field(default=None, repr=False)  # `UpdateDraw`: updates from a model
    updates: dict[int, SimulatedFact] = field(default_factory=dict, repr=False)  # by day
    withdrawn_at: datetime | None = field(default=None, repr=False)
    nudge_days: list[int] = field(default_factory=list, repr=False)
    pending: SimulatedFact | None = field(default=None, repr=False)  # the drawn decision
    live: list[SimulatedFact] | None = field(default=None, repr=False)  # drive's fact list

    def react(self, action: Action, at: datetime, state: Any) -> list[SimulatedFact] | None:
        """An automatic out-of-office reply to the first message reaching an interviewer
        who is away (a card left at reception gets none); with a response model, a nudge
        may bring the employer's decision forward (or put it back)."""
        new = self._out_of_office(action, at)
        if self.employer is not None and action.kind in ("nudge", "offer_nudge"):
            moved = self._redraw(at)
            if moved is not None:
                new = [*(new or ()), moved]
            if self.update_draw is not None:
                more = self._place_updates(self.employer.day_of(at))
                new = [*(new or ()), *more] or None
        return new

    def _place_updates(self, after: int) -> list[SimulatedFact]:
        """The employer's updates after business day ``after`` drawn (again) given the
        nudges so far, before its decision and a withdrawal; those no longer drawn are
        blanked in the live list, the new ones returned."""
        draw = self.update_draw
        earlier = sum(1 for day in self.updates if day <= after)
        wanted: dict[int, SimulatedFact] = {}
        for day in draw.days(self.nudge_days, after, earlier):
            fact = self.updates.get(day)
            if fact is None:
                fact = SimulatedFact(draw.moment(day), "receive_reply", {
                    "kind": ReplyKind.UPDATE, "note": "Still interviewing other candidates"})
            if ((self.pending is None or fact.at < self.pending.at)
                    and (self.withdrawn_at is None or fact.at < self.withdrawn_at)):
                wanted[day] = fact
        for day in [d for d in self.updates if d > after and d not in wanted]:
            gone = self.updates.pop(day)
            if self.live is not None:
                for k, fact in enumerate(self.live):
                    if fact is gone:
                        self.live[k] = SimulatedFact(fact.at, "", {})  # no longer happens
                        break
        new = [fact for day, fact in wanted.items() if day not in self.updates]
        self.updates.update(wanted)
        return new

    def _out_of_office(self, action: Action, at: datetime) -> list[SimulatedFact] | None:
        if self.vacation is None or self.answered_vacation:
            return None
        away, back = self.vacation
        if not away <= at < back:
            return None
        if action.kind not in ("nudge", "offer_nudge") and not (
                action.kind == "thank_you" and action.medium != "card"):
            return None
        self.answered_vacation = True
        back_on = back.astimezone(ZoneInfo(self.timezone)).date()
        return [SimulatedFact(at + timedelta(minutes=2), "receive_reply",
                              {"kind": ReplyKind.OUT_OF_OFFICE, "back_on": back_on})]

    def _redraw(self, at: datetime) -> SimulatedFact | None:
        """A nudge sent ``at``: the employer's decision from the next business day on is
        drawn again (the same uniforms, the hazard with this nudge)."""
        draw = self.employer
        day = draw.day_of(at)
        self.nudge_days.append(day)
        pending = self.pending
        if pending is not None and (pending.at <= at or draw.day_of(pending.at) <= day):
            return None  # decided today already, or before the nudge
        decided = draw.decision_day(self.nudge_days, after=day)
        new = None if decided is None else self._decision(decided)
        if pending is not None and self.live is not None:
            for k, fact in enumerate(self.live):
                if fact is pending:
                    self.live[k] = SimulatedFact(fact.at, "", {})  # no longer happens
                    break
        self.pending = new
        self.decision_at = None if new is None else new.at
        self.decision = None if new is None else new.kwargs["kind"]
        return new

    def _decision(self, day: int) -> SimulatedFact:
        draw = self.employer
        kind = draw.kind(sum(1 for k in self.nudge_days if k < day))
        return SimulatedFact(draw.moment(day), "receive_reply", {
            "kind": kind,
            "note": "Offer extended" if kind == "advanced" else "Went with another candidate"})


def lognormal_mu(mean: float, sigma: float = SIGMA) -> float:
    """The log-scale location of a lognormal with this arithmetic mean."""
    return math.log(mean) - sigma * sigma / 2


def days_from_application(applied_on: date, at: datetime, timezone: str) -> int:
    """Calendar days from the application day to the day of ``at`` where the candidacy is
    (Glassdoor's measure: application to offer or rejection, in days)."""
    return (at.astimezone(ZoneInfo(timezone)).date() - applied_on).days


def generate(index: int, seed: int, *, country: str | None = None,
             start: date = DEFAULT_START, policy: dict[str, Any] | None = None,
             employer: Any = None) -> World:
    """The ``index``-th simulated candidacy of ``seed`` (the same every time).

    The employer decides ``days`` after the application (drawn with Glassdoor's mean); the
    application came ``lag`` whole days before the first interview, a share of ``days``
    (`APPLICATION_SHARE`); each from its own stream, so the calibrated times depend on no
    other choice.

    With ``employer`` (an `engine.response_model.ResponseModel`) the employer's decision is
    drawn from that model, day by day, from the candidacy's own seeded stream (the same
    under every policy), and a nudge can change it (`World.react`); such worlds have one
    round, and the candidate's own behaviour is spread over ``days`` from the first
    interview, exactly as before the application day was drawn (their decision times
    must not move: studies compare them across releases)."""
    rng = random.Random(f"{seed}:{index}")
    code = country or rng.choice(tuple(MEAN_DAYS))
    zone_name = rng.choice(ZONES[code])
    zone = ZoneInfo(zone_name)
    timing = random.Random(f"{seed}:{index}:decision")
    days = timing.lognormvariate(lognormal_mu(MEAN_DAYS[code]), SIGMA)
    lag = max(1, round(days * random.Random(f"{seed}:{index}:applied")
                       .uniform(*APPLICATION_SHARE)))

    first = _interview_moment(rng, start + timedelta(days=rng.randrange(365)), zone)
    applied_on = first.astimezone(zone).date() - timedelta(days=lag)
    logged = first + timedelta(minutes=30 + rng.randrange(0, 120, 5))
    since_interview = days if employer is not None else days - lag
    decision_at = max(_working_moment(first + timedelta(days=since_interview), zone),
                      _working_moment(logged + timedelta(days=1), zone, forward=True))
    silent = rng.random() < P_SILENCE
    decision = None if silent else (ReplyKind.ADVANCED if rng.random() < P_OFFER
                                    else ReplyKind.REJECTED)

    # Earlier rounds end in an advance, each some way towards the employer's decision.
    rounds = 1
    if rng.random() < P_SECOND_ROUND:
        rounds = 3 if rng.random() < P_THIRD_ROUND / P_SECOND_ROUND else 2
    if employer is not None:
        rounds = 1
    interviews = [first]
    advances: list[datetime] = []
    for fraction in sorted(rng.uniform(0.25, 0.75) for _ in range(rounds - 1)):
        advanced = _working_moment(first + (decision_at - first) * fraction, zone)
        nxt = _interview_moment(rng, (advanced + timedelta(days=2 + rng.randrange(6)))
                                .astimezone(zone).date(), zone)
        if advanced <= interviews[-1] + timedelta(days=3) or nxt + timedelta(days=4) > decision_at:
            break
        advances.append(advanced)
        interviews.append(nxt)

    name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    candidate = {"name": name, "email": f"{name.lower().replace(' ', '.')}@example.com",
                 "phone": None}
    actor_facts: list[tuple[datetime, int, SimulatedFact]] = []
    seq = 0

    def add(at: datetime, command: str, **kwargs: Any) -> None:
        nonlocal seq
        seq += 1
        actor_facts.append((at, seq, SimulatedFact(at, command, kwargs)))

    panel = _panel(rng)
    for number, interviewed_at in enumerate(interviews, start=1):
        last = number == len(interviews)
        ends_at = decision_at if last else advances[number - 1]
        if number > 1:
            panel = _panel(rng) if rng.random() < 0.6 else panel
        interview = _interview(rng, interviewed_at, panel, code, ends_at)
        at = logged if number == 1 else (
            interviewed_at + timedelta(minutes=30 + rng.randrange(0, 120, 5)))
        if number == 1:
            add(at, "record_interview", id=UUID(int=rng.getrandbits(128), version=4),
                candidate=candidate, company=rng.choice(_COMPANIES), role=rng.choice(_ROLES),
                timezone=zone_name, country=code, subdivision=None, interview=interview,
                policy=dict(policy or {"name": "playbook", "version": 1}),
                applied_on=applied_on)
        else:
            add(at, "start_next_round", interview=interview)
        _interview_day(rng, add, at, number, interview, zone)
        _while_waiting(rng, add, at, ends_at, zone, number,
                       updates=employer is None or employer.update is None)
        if not last:
            add(ends_at, "receive_reply", kind=ReplyKind.ADVANCED, note="Invited to the next round")
    if decision is not None and employer is None:
        add(decision_at, "receive_reply", kind=decision,
            note="Offer extended" if decision == ReplyKind.ADVANCED
            else "Went with another candidate")

    vacation = None
    if rng.random() < P_VACATION:
        away = logged + timedelta(days=rng.uniform(0.5, 20))
        back = datetime.combine((away + timedelta(days=rng.randint(4, 14))).astimezone(zone)
                                .date(), time(0), zone).astimezone(UTC)
        vacation = (away, back)
    actor_facts.sort(key=lambda item: (item[0], item[1]))
    world = World(id=actor_facts[0][2].kwargs["id"], country=code, timezone=zone_name,
                  facts=[f for _, _, f in actor_facts], first_interview_at=first,
                  decision_at=None if silent else decision_at, decision=decision,
                  rounds=len(interviews), vacation=vacation, applied_on=applied_on)
    if employer is not None:
        _draw_employer(world, employer, random.Random(f"{seed}:{index}:employer"),
                       random.Random(f"{seed}:{index}:updates"))
    return world


def _draw_employer(world: World, model: Any, rng: random.Random,
                   update_rng: random.Random) -> None:
    """The world's employer from ``model``: its decision given the candidate's own
    nudges (known in advance); the policy's nudges redraw it as they come.  With an
    update hazard (``model.update``), its updates too, from ``update_rng``."""
    from engine.response_model import (
        EmployerDraw,
        RoundContext,
        UpdateDraw,
        business_days_between,
        country_value,
    )

    first = world.facts[0]
    zone = ZoneInfo(world.timezone)
    interview = first.kwargs["interview"]
    day = interview["interviewed_at"].astimezone(zone).date()
    offers = [business_days_between(day, f.at.astimezone(zone).date())
              for f in world.facts if f.command == "note_competing_offer"]
    ctx = RoundContext(day, zone, interview["timeline"], 1, country_value(world.country),
                       offers[0] if offers else None)
    draw = EmployerDraw(ctx, model, rng)
    world.employer = draw
    world.nudge_days = [draw.day_of(f.at) for f in world.facts if f.command == "send_nudge"]
    decided = draw.decision_day(world.nudge_days)
    world.pending = None if decided is None else world._decision(decided)
    world.decision_at = None if world.pending is None else world.pending.at
    world.decision = None if world.pending is None else world.pending.kwargs["kind"]
    if world.pending is not None:
        world.facts.append(world.pending)
        world.facts.sort(key=lambda f: f.at)
    if model.update is not None:
        world.update_draw = UpdateDraw(ctx, model.update, model.horizon_days,
                                       model.decay_days, update_rng)
        world.withdrawn_at = next((f.at for f in world.facts if f.command == "withdraw"),
                                  None)
        world.facts.extend(world._place_updates(0))
        world.facts.sort(key=lambda f: f.at)


def _panel(rng: random.Random) -> list[dict[str, Any]]:
    names = rng.sample([f"{f} {last}" for f in _FIRST[:10] for last in _LAST[10:]],
                       rng.choice((1, 1, 2, 2, 3)))
    return [{"name": n, "title": rng.choice(_TITLES), "email": None, "phone": None}
            for n in names]


def _interview(rng: random.Random, at: datetime, panel: list[dict[str, Any]], country: str,
               ends_at: datetime) -> dict[str, Any]:
    timeline = None
    if rng.random() < P_TIMELINE:
        # What employers say, from how long they usually take: often optimistic.
        weeks = max(1.0, round(MEAN_DAYS[country] * rng.uniform(0.35, 0.7) / 7))
        timeline = {"min_weeks": weeks, "max_weeks": weeks + rng.choice((1.0, 1.0, 2.0))}
    return {"format": rng.choice(("in_person", "in_person", "video", "video", "phone")),
            "interviewers": panel, "interviewed_at": at, "timeline": timeline,
            "asked_to_follow_up": rng.random() < P_ASKED_TO_FOLLOW_UP}


def _interview_day(rng: random.Random, add: Callable[..., None], at: datetime, number: int,
                   interview: dict[str, Any], zone: ZoneInfo) -> None:
    """The playbook in the room: hesitations asked for and answered, the next step closed
    (now, or the next morning when the candidate forgets), maybe a card left at reception."""
    hesitations = rng.choice((0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 3))
    if hesitations == 0:
        add(at, "record_no_hesitations")
    for k in range(1, hesitations + 1):
        add(at, "raise_hesitation", hesitation_id=f"r{number}h{k}",
            text=rng.choice(_HESITATIONS))
    for k in range(1, hesitations + 1):
        add(at, "address_hesitation", hesitation_id=f"r{number}h{k}",
            answer="Walked them through a concrete example from my last role")
    closed_at = at
    if rng.random() < P_LATE_CLOSE:
        closed_at = _local(at.astimezone(zone).date() + timedelta(days=1), time(9, 30), zone)
    scheduled_for = None
    if rng.random() < 0.25:
        scheduled_for = _local(closed_at.astimezone(zone).date()
                               + timedelta(days=rng.randint(5, 12)), time(10), zone)
    add(closed_at, "close_next_step", description=rng.choice(_NEXT_STEPS),
        scheduled_for=scheduled_for)
    if interview["format"] == "in_person" and rng.random() < P_MANUAL_CARD:
        add(closed_at, "send_thank_you", medium="card", to=[], covers_panel=True)


def _while_waiting(rng: random.Random, add: Callable[..., None], at: datetime,
                   ends_at: datetime, zone: ZoneInfo, number: int, updates: bool = True
                   ) -> None:
    """What may happen before the employer's word: an update (not with ``updates``
    False: drawn from a model instead; the same random draws either way), a competing
    offer, a nudge of the candidate's own, a pause, a withdrawal."""
    span = (ends_at - at).total_seconds() / 86400

    def moment(low: float, high_margin: float) -> datetime | None:
        if span - high_margin <= low:
            return None
        when = _working_moment(at + timedelta(days=rng.uniform(low, span - high_margin)), zone)
        return when if at < when < ends_at else None

    if rng.random() < P_UPDATE and (when := moment(3, 1)) is not None and updates:
        add(when, "receive_reply", kind=ReplyKind.UPDATE,
            note="Still interviewing other candidates")
    if number == 1 and rng.random() < P_COMPETING_OFFER and (when := moment(2, 0.5)):
        deadline = _local(when.astimezone(zone).date() + timedelta(days=rng.randint(5, 14)),
                          time(17), zone)
        add(when, "note_competing_offer", company=rng.choice(_COMPANIES), deadline=deadline)
    if rng.random() < P_MANUAL_NUDGE and (when := moment(4, 1)):
        add(when, "send_nudge", channels=["email"], reason="the candidate's own follow-up")
    if rng.random() < P_MANUAL_PAUSE and (when := moment(2, 1)):
        until = when.astimezone(zone).date() + timedelta(days=rng.randint(5, 10))
        add(when, "pause_cadence", until=until, reason="candidate travelling")
    if rng.random() < P_WITHDRAW and (when := moment(2, 0.5)):
        add(when, "withdraw", reason="accepted another offer")


def _local(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, zone).astimezone(UTC)


def _interview_moment(rng: random.Random, day: date, zone: ZoneInfo) -> datetime:
    """A weekday between 09:00 and 18:45 local (mostly before 17:00)."""
    while day.weekday() >= 5:
        day += timedelta(days=1)
    hour = rng.randint(17, 18) if rng.random() < 0.08 else rng.randint(9, 16)
    return _local(day, time(hour, rng.choice((0, 15, 30, 45))), zone)


def _working_moment(moment: datetime, zone: ZoneInfo, forward: bool = False) -> datetime:
    """The nearest weekday moment between 09:00 and 18:00 local (``forward``: the next one)."""
    local = moment.astimezone(zone)
    day, clock = local.date(), local.time().replace(tzinfo=None)
    if clock < time(9):
        clock = time(9)
    elif clock >= time(18):
        if forward:
            day, clock = day + timedelta(days=1), time(9)
        else:
            clock = time(17, 59)
    if day.weekday() == 5:
        day += timedelta(days=2) if forward else timedelta(days=-1)
    elif day.weekday() == 6:
        day += timedelta(days=1)
    return _local(day, clock, zone)


def actor_for(world: World, workspace: str = "simulated") -> Actor:
    return Actor(user="coach@simulated.closer", workspace=workspace,
                 on_behalf_of=world.facts[0].kwargs["candidate"]["name"])


def run_world(world: World, policy: CadencePolicy, *, workspace: str = "simulated",
              until: datetime | None = None) -> Candidacy:
    """The world's candidacy as a real aggregate, moved through the loop under ``policy``
    (its events pending, ready to save)."""
    target = AggregateTarget(actor_for(world, workspace))
    world.live = list(world.facts)
    drive(target, world.live, policy, until=until, react=world.react)
    return target.state  # type: ignore[no-any-return]


def simulate_in_memory(count: int, seed: int, policy: CadencePolicy, *,
                       country: str | None = None, start: date = DEFAULT_START,
                       first: int = 0, employer: Any = None
                       ) -> Iterator[tuple[World, Candidacy]]:
    """Simulated candidacies with their aggregates, nothing saved (``employer``: a
    response model the employer's decisions are drawn from, see `generate`)."""
    ref = {"name": policy.name, "version": policy.version}
    for index in range(first, first + count):
        world = generate(index, seed, country=country, start=start, policy=ref,
                         employer=employer)
        yield world, run_world(world, policy)


@dataclass
class Calibration:
    """One country's days from the application to the employer's decision (offer or
    rejection, `days_from_application`): the published ``target``; every simulated employer
    that decided (``decided``); the decisions the store records (``recorded``, read from
    the saved candidacies); and the decisions that came after the live policy had stalled
    (``cut_off``: the record ends at the stall, so these are missing from it)."""

    target: float
    decided: int = 0
    decided_days: int = 0
    recorded: int = 0
    recorded_days: int = 0
    cut_off: int = 0
    cut_off_days: int = 0

    @staticmethod
    def _mean(total: int, count: int) -> float | None:
        return total / count if count else None

    @property
    def decided_mean(self) -> float | None:
        return self._mean(self.decided_days, self.decided)

    @property
    def recorded_mean(self) -> float | None:
        return self._mean(self.recorded_days, self.recorded)

    @property
    def cut_off_mean(self) -> float | None:
        return self._mean(self.cut_off_days, self.cut_off)


@dataclass
class SimulationReport:
    """What `simulate` wrote, and per country how its time to decision compares with the
    published table (`Calibration`)."""

    candidacies: int = 0
    events: int = 0
    stages: Counter[str] = field(default_factory=Counter)
    decisions_lost_to_stalls: int = 0
    calibration: dict[str, Calibration] = field(default_factory=dict)

    def add(self, world: World, candidacy: Candidacy) -> None:
        self.candidacies += 1
        self.events += candidacy.version
        self.stages[candidacy.stage] += 1
        outcome = candidacy.outcome or {}
        lost = world.decision_at is not None and outcome.get("kind") == "stalled"
        if lost:
            self.decisions_lost_to_stalls += 1
        country = self.calibration.get(world.country)
        if country is None:
            country = self.calibration[world.country] = Calibration(MEAN_DAYS[world.country])
        if world.decision_at is not None and world.applied_on is not None:
            days = days_from_application(world.applied_on, world.decision_at, world.timezone)
            country.decided += 1
            country.decided_days += days
            if lost:
                country.cut_off += 1
                country.cut_off_days += days
        # What the saved candidacy itself says: its application day and its decision.
        if outcome.get("kind") in DECIDED and candidacy.applied_on is not None:
            country.recorded += 1
            country.recorded_days += days_from_application(candidacy.applied_on, outcome["at"],
                                                           candidacy.timezone)


def simulate(app: Any, count: int, seed: int, *, policy: CadencePolicy | None = None,
             country: str | None = None, start: date = DEFAULT_START, batch: int = 200,
             progress: Callable[[int], None] | None = None,
             employer: Any = None) -> SimulationReport:
    """Write ``count`` simulated candidacies into ``app``'s store: the engine's own
    aggregates and events, saved ``batch`` candidacies per transaction with their rows."""
    from engine.policy import default_policy

    policy = policy or default_policy()
    if (policy.name, policy.version) != (default_policy().name, default_policy().version):
        app.policies.publish(policy)
    report = SimulationReport()
    pending: list[Candidacy] = []
    for world, candidacy in simulate_in_memory(count, seed, policy, country=country,
                                               start=start, employer=employer):
        report.add(world, candidacy)
        pending.append(candidacy)
        if len(pending) >= batch:
            _save(app, pending)
            if progress is not None:
                progress(len(pending))
            pending = []
    if pending:
        _save(app, pending)
        if progress is not None:
            progress(len(pending))
    return report


def _save(app: Any, aggregates: list[Candidacy]) -> None:
    app.save(*aggregates, rows=[app.current_row(c) for c in aggregates])
