"""The one decision function: what is due for a candidacy, under a policy, at a moment.

`plan(candidacy, policy)` lists every step still pending (at most one of each
kind) with the moment it falls due and the rule that produced it;
`decide(candidacy, policy, now)` keeps those due by ``now``.  Both are pure:
no clock reads, no I/O.  They read the candidacy's attributes only (the
aggregate, or the plain state object replay folds with the same events), so
live scheduling and replay decide alike.

Timing rules, in the playbook's words (the numbers live in `CadencePolicy`):

- thank-you the same day: due when the next step is closed; overdue after the
  interview's local day (an alert, once);
- patience: no first nudge before the early end of the timeline the employer
  stated (or N business days after the thank-you when none was stated) unless
  the interviewer asked the candidate to follow up (then sooner, with its own
  spacing and pest line), and never before an employer's update plus spacing;
- persistence: the next nudge a spacing of business days after the last one;
- the pest line: no more than ``max_nudges``;
- a competing offer: one tactful nudge some business days before its deadline;
- stall: nudges exhausted and the late end of the timeline plus grace passed;
- every message to the employer inside the send window, outside quiet hours,
  on a working day of the candidacy's country, in the recipient's time zone;
- pauses (out of office, manual) hold every timer; afterwards later steps
  shift by the time paused (`engine.policy.slip_after_pause`), so at most one
  step fires at resume, never a burst.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta
from functools import lru_cache
from operator import attrgetter
from typing import Any, NamedTuple, cast

from engine.candidacy import OUT_OF_OFFICE
from engine.lifecycle import Stage
from engine.policy import CadencePolicy, Medium, SendWindow, slip_after_pause
from engine.work_calendar import (
    WorkCalendar,
    business_days,
    is_send_time,
    resolve_zone,
    send_schedule,
    work_calendar,
    zone_days,
)

_WHOLE_DAY = SendWindow(start=time(0, 0), end=time(23, 59, 59))
_EVERY_DAY = work_calendar(None, None, range(7), False)
_ACTIVE = frozenset({Stage.AWAITING, Stage.NUDGED})
_BEFORE_THANKS = frozenset({Stage.INTERVIEWED, Stage.HESITATIONS_ADDRESSED,
                            Stage.NEXT_STEP_CLOSED, Stage.THANKED})
_CLOSED = frozenset({Stage.ADVANCED, Stage.STALLED})


class Action(NamedTuple):
    """A step the policy says is due: what, when, why, and its stable identity.

    A named tuple: immutable (remembered alerts are shared) and the cheapest value to
    build, which `plan` does once or so per call."""

    kind: str  # thank_you | thank_you_overdue | nudge | offer_nudge | stall | next_step_reminder
    due_at: datetime
    rule: str
    key: str
    channels: tuple[str, ...] = ()
    medium: str | None = None
    note: str = ""

    def decided_by(self, policy: CadencePolicy, *, stored: bool = True) -> dict[str, Any]:
        """What the resulting event records about this decision.  Replay, which stores
        nothing, asks with ``stored=False`` and keeps the due moment as the datetime: its
        ISO text costs a microsecond a decision and nothing reads it back."""
        due_at = self.due_at
        return {"policy": policy.name, "version": policy.version, "rule": self.rule,
                "key": self.key, "due_at": due_at.isoformat() if stored else due_at}


def decide(candidacy: Any, policy: CadencePolicy, now: datetime) -> list[Action]:
    """The actions due by ``now`` that may be carried out at ``now``, earliest first.

    A prefix of `plan`: it stops at the first action not yet due, and at the first
    message to the employer that ``now`` may not carry (a late tick at 22:00 does
    not call; that nudge waits for the window, and what follows waits behind it).
    """
    return due_prefix(plan(candidacy, policy), candidacy, policy, now)


def due_prefix(planned: list[Action], candidacy: Any, policy: CadencePolicy,
               now: datetime) -> list[Action]:
    """`decide` from an already computed ``plan(candidacy, policy)``."""
    due: list[Action] = []
    for action in planned:
        if action.due_at > now or not _may_go_at(action, candidacy, policy, now):
            break
        due.append(action)
    return due


def held_until(action: Action, candidacy: Any, policy: CadencePolicy, now: datetime) -> datetime:
    """When a due action that ``now`` may not carry can go: the next moment its
    send window and quiet hours allow (``now`` for an action that is not held)."""
    place = place_of(candidacy, policy)
    if action.kind in ("nudge", "offer_nudge") or (
            action.kind == "thank_you" and policy.thank_you.within_send_window
            and action.medium != Medium.CARD.value):
        return place.send_time(now)
    if action.kind == "thank_you" and action.medium != Medium.CARD.value:
        return place.any_day_send_time(now)
    return now


def _may_go_at(action: Action, candidacy: Any, policy: CadencePolicy, now: datetime) -> bool:
    """Whether ``now`` respects the send window and quiet hours the action obeys."""
    if action.kind in ("nudge", "offer_nudge"):
        place = place_of(candidacy, policy)
        return is_send_time(now, place.zone, policy.send_window, policy.quiet_hours,
                            place.calendar)
    if action.kind == "thank_you" and action.medium != Medium.CARD.value:
        place = place_of(candidacy, policy)
        if policy.thank_you.within_send_window:
            return is_send_time(now, place.zone, policy.send_window, policy.quiet_hours,
                                place.calendar)
        return is_send_time(now, place.zone, _WHOLE_DAY, policy.quiet_hours, _EVERY_DAY)
    return True


def next_due_at(candidacy: Any, policy: CadencePolicy) -> datetime | None:
    """When the candidacy next needs the scheduler (None: nothing pending, or held open-ended)."""
    actions = plan(candidacy, policy)
    return actions[0].due_at if actions else None


def plan(candidacy: Any, policy: CadencePolicy) -> list[Action]:
    """Every pending step with its due moment, earliest first."""
    stage = candidacy.stage
    if stage in _CLOSED:
        return []
    rules = _Rules(candidacy, policy)
    due: list[Action] = []
    if stage in _BEFORE_THANKS:
        # A thank-you decided or requested but not yet delivered is not decided twice.
        if (stage == Stage.NEXT_STEP_CLOSED and candidacy.pending_thank_you is None
                and (action := rules.thank_you()) is not None):
            due.append(action)
        if (action := rules.thank_you_overdue()) is not None:
            due.append(action)
    if stage in _ACTIVE:
        # The pest line parts the two: below it the next nudge, at it the stall.
        action = rules.nudge() if len(rules.counted_nudges) < rules.max_nudges else rules.stall()
        if action is not None:
            due.append(action)
        if candidacy.offers:
            due.extend(rules.offer_nudges())
    if candidacy.next_step is not None and (action := rules.next_step_reminder()) is not None:
        due.append(action)
    if len(due) > 1:
        due.sort(key=_EARLIEST)
    return due


# -- what binds a person (issue 13: the playbook binds people too) ---------------------------


class Refusal(NamedTuple):
    """A playbook rule refusing a person's nudge or stall now: the rule, why in a sentence,
    and the moment from which waiting would satisfy it (None: waiting will not)."""

    rule: str
    reason: str
    allowed_from: datetime | None = None


def manual_refusal(candidacy: Any, policy: CadencePolicy, now: datetime,
                   command: str) -> Refusal | None:
    """Which rule refuses a person's ``send_nudge`` or ``stall`` at ``now`` (None: none).

    The very patience, spacing, pause and pest-line maths `plan` uses, under the
    candidacy's own cadence (asked to follow up: the follow-up rule's).  Only for the
    stages where the lifecycle allows the command; elsewhere the lifecycle refuses it."""
    if candidacy.stage not in _ACTIVE or command not in ("send_nudge", "stall"):
        return None
    rules = _Rules(candidacy, policy)
    n = len(rules.counted_nudges)
    pest_line = "follow_up.max_nudges" if rules.asked_to_follow_up else "pest_line.max_nudges"
    if command == "send_nudge":
        if n >= rules.max_nudges:
            return Refusal(pest_line, f"{n} nudges already sent: the pest line is "
                                      f"{rules.max_nudges}")
        next_nudge = rules.next_nudge(n)
        if next_nudge is None:
            return Refusal("pause", "the cadence is paused until resumed")
        due, rule = next_nudge
        if now < due:
            return Refusal(rule, f"{_PATIENCE_WORDS.get(rule, rule)}: no nudge before "
                                 f"{due.isoformat()}", due)
        return None
    if n < rules.max_nudges:
        return Refusal("stall.exhausted_and_patience_spent",
                       f"only {n} of {rules.max_nudges} nudges sent: the pest line is not reached")
    action = rules.stall()
    if action is None:
        return Refusal("pause", "the cadence is paused until resumed")
    if now < action.due_at:
        return Refusal(action.rule, f"patience is not spent: no stall before "
                                    f"{action.due_at.isoformat()}", action.due_at)
    return None


_PATIENCE_WORDS = {
    "patience.timeline_early_end": "the employer's stated timeline has not run out",
    "patience.no_timeline": "patience after the thank-you is not over",
    "patience.after_update": "the employer gave an update: its wait is not over",
    "follow_up.first_nudge": "the interviewer's follow-up cadence is not due yet",
    "follow_up.spacing": "the last nudge's follow-up spacing is not over",
    "nudge.spacing": "the last nudge's spacing is not over",
}


_EARLIEST = attrgetter("due_at", "key")


def outstanding(candidacy: Any, policy: CadencePolicy) -> list[Action]:
    """What stays on the agenda though the scheduler has nothing left to do for it: a
    thank-you whose deadline has been alerted while no thank-you has really gone (decided
    and undelivered, failed on every channel, or never sent), due at its deadline."""
    if candidacy.stage not in _BEFORE_THANKS:
        return []
    rules = _Rules(candidacy, policy)
    key = _keys(rules.round).thank_you_overdue
    if key not in candidacy.reminders:
        return []  # the overdue alert is still to come: `plan` shows it
    deadline = rules.thank_you_deadline(rules.place.days.local_ordinal(rules.interviewed_at()))
    pending = candidacy.pending_thank_you
    note = f"no thank-you has gone (deadline {deadline.isoformat()})"
    if pending is not None and pending.get("failed"):
        note = f"every channel failed: {pending['failed']}"
    elif pending is not None:
        note = f"decided, not yet delivered (deadline {deadline.isoformat()})"
    return [Action("thank_you_overdue", deadline, "thank_you.deadline", key, note=note)]


# How a thank-you medium travels (voicemail is followed by an email), and the kind a
# nudge's channel carries.
MEDIUM_CHANNELS: dict[str, tuple[str, ...]] = {
    Medium.CARD.value: ("card",), Medium.EMAIL.value: ("email",),
    Medium.VOICEMAIL.value: ("voicemail", "email"),
}


def fallback_channel(candidacy: Any, policy: CadencePolicy, trigger_version: int,
                     failed: str) -> str | None:
    """The channel to try after ``failed`` for the thank-you or nudge a message with
    ``trigger_version`` carries: the next in the policy's preference (thank-you
    ``media``: card only for an in-person interview, never postal; nudge ``channels``)
    not yet tried for it.  None: nothing left (or the message carries neither)."""
    pending = candidacy.pending_thank_you
    if pending is not None and trigger_version in pending["triggers"]:
        tried = set(pending["deliveries"]) | {failed}
        for medium in policy.thank_you.media:
            if medium is _CARD and candidacy.interview.get("format") != "in_person":
                continue
            for channel in MEDIUM_CHANNELS[medium.value]:
                if channel not in tried:
                    return channel
        return None
    for nudge in reversed(candidacy.nudges):
        if trigger_version in nudge.get("triggers", ()):
            tried = set(nudge["deliveries"]) | {failed}
            for nudge_channel in policy.nudge.channels:
                if nudge_channel.value not in tried:
                    return nudge_channel.value
            return None
    return None
_CARD = Medium.CARD


class _Rules:
    """The policy's rules applied to one candidacy: each method one rule (`thank_you`,
    `nudge`, `stall`, ...), its attributes the facts the rules read, named as the
    playbook names them."""

    __slots__ = ("asked_to_follow_up", "candidacy", "counted_nudges", "max_nudges", "pausing",
                 "place", "policy", "round", "spacing")

    def __init__(self, candidacy: Any, policy: CadencePolicy) -> None:
        self.candidacy = candidacy
        self.policy = policy
        self.place = place_of(candidacy, policy)
        self.round = candidacy.round
        # Asked to follow up: the follow-up rule's pest line and spacing, not the nudge's.
        self.asked_to_follow_up = asked = bool(candidacy.interview.get("asked_to_follow_up"))
        self.max_nudges = (policy.follow_up.max_nudges if asked
                           else policy.pest_line.max_nudges)
        self.spacing = (policy.follow_up.spacing_business_days if asked
                        else policy.nudge.spacing_business_days)
        self.pausing = bool(candidacy.pauses) or candidacy.paused is not None
        # The nudges the pest line counts.  Read only, so the candidacy's own list serves
        # when every nudge counts; offer nudges are only ever decided for a noted offer
        # (and offers are never forgotten): without one, every nudge counts.
        self.counted_nudges = nudges = candidacy.nudges
        if not policy.competing_offer.counts_toward_pest_line and candidacy.offers:
            for nudge in nudges:
                if _is_offer_nudge(nudge):  # rare: only then a list without them
                    self.counted_nudges = [n for n in nudges if not _is_offer_nudge(n)]
                    break

    # -- the rules ------------------------------------------------------------------

    def thank_you(self) -> Action | None:
        """Thank the panel the same day the next step is closed, by the best medium."""
        closed_at = self.candidacy.next_step["closed_at"]
        medium = self.medium(closed_at)
        due = closed_at
        if medium is not _CARD:
            # The same-day deadline beats the send window, unless the policy says
            # otherwise; quiet hours hold either way.
            due = (self.place.send_time(closed_at) if self.policy.thank_you.within_send_window
                   else self.place.any_day_send_time(closed_at))
        if self.pausing:
            due = self.held(due, closed_at)
            if due is None:
                return None
        value = medium.value
        return Action("thank_you", due, "thank_you.same_day", _keys(self.round).thank_you,
                      (), value, _BY[value])

    def thank_you_overdue(self) -> Action | None:
        """Alert once when the interview's thank-you deadline passes without one."""
        key = _keys(self.round).thank_you_overdue
        if key in self.candidacy.reminders:
            return None
        deadline = self.thank_you_deadline(self.place.days.local_ordinal(self.interviewed_at()))
        return _overdue_alert(key, deadline)

    def nudge(self) -> Action | None:
        """The next nudge, unless the pest line is reached."""
        n = len(self.counted_nudges)
        if n >= self.max_nudges:
            return None
        next_nudge = self.next_nudge(n)
        if next_nudge is None:
            return None
        due, rule = next_nudge
        key, note = _nudge_labels(self.round, n, self.max_nudges)
        return Action("nudge", self.place.send_time(due), rule, key,
                      _channel_values(self.policy.nudge.channels), None, note)

    def next_nudge(self, n: int) -> tuple[datetime, str] | None:
        """When patience and persistence allow the nudge after ``n`` counted ones (before
        the send window), and the rule saying so; None while an open-ended pause holds."""
        anchor = self.candidacy.awaiting_since
        if n == 0:
            if self.asked_to_follow_up:
                raw = self.place.business_days_after(
                    anchor, self.policy.follow_up.first_nudge_after_business_days)
                rule = "follow_up.first_nudge"
            else:
                raw, rule = self.patience_end()
        else:
            anchor = self.counted_nudges[-1]["sent_at"]
            raw = self.place.business_days_after(anchor, self.spacing)
            rule = "follow_up.spacing" if self.asked_to_follow_up else "nudge.spacing"
            if not self.asked_to_follow_up:
                # A nudge sent by hand before the patience window does not open it early.
                patient, patience_rule = self.patience_end()
                if patient > raw:
                    raw, rule = patient, patience_rule
        update = self.candidacy.last_update_at
        if update is not None and update > anchor:
            # An update from the employer restarts the wait: respect the new word.
            after_update = self.place.business_days_after(update, self.spacing)
            if after_update > raw:
                raw, rule, anchor = after_update, "patience.after_update", update
        if self.pausing:
            held = self.held(raw, anchor)
            if held is None:
                return None
            return held, rule
        return raw, rule

    def offer_nudges(self) -> list[Action]:
        """One tactful nudge some business days before each competing offer's deadline."""
        rule = self.policy.competing_offer
        if not self.candidacy.offers or (
                rule.counts_toward_pest_line and len(self.counted_nudges) >= self.max_nudges):
            return []
        sent = {(n.get("decided_by") or {}).get("key") for n in self.candidacy.nudges}
        actions: list[Action] = []
        for offer in self.candidacy.offers:
            key = f"r{self.round}:offer:{offer['company']}"
            if key in sent:
                continue
            deadline = offer["deadline"]
            # That business day from its start (then the send window), whatever the
            # deadline's time of day: an evening deadline must not push it a day later.
            days = self.place.days
            day = days.local_ordinal(
                self.place.business_days_after(deadline, -rule.nudge_business_days_before_deadline))
            raw = days.wall_time(day, _MIDNIGHT)
            anchor = max(offer["noted_at"], self.candidacy.awaiting_since)
            due = self.held(max(raw, anchor), anchor)
            if due is None:
                continue
            due = self.place.send_time(due)
            if due >= deadline:
                continue  # too late to be tactful: the deadline has come
            actions.append(Action("offer_nudge", due, "competing_offer.before_deadline", key,
                                  channels=_channel_values(self.policy.nudge.channels),
                                  note=f"offer from {offer['company']} due "
                                       f"{deadline.isoformat()}"))
        return actions

    def stall(self) -> Action | None:
        """Stalled: nudges exhausted and the late end of the timeline plus grace passed."""
        n = len(self.counted_nudges)
        if n < self.max_nudges:
            return None
        timeline = self.timeline()
        if timeline is not None:
            late_end = self.interviewed_at() + _weeks(timeline[1])
        else:
            late_end = self.candidacy.awaiting_since + _weeks(
                self.policy.patience.window_without_timeline_weeks)
        raw = self.place.business_days_after(late_end, self.policy.stall.grace_business_days)
        anchor = self.candidacy.awaiting_since
        if self.counted_nudges:
            # The last nudge gets its spacing to be answered.
            last = self.counted_nudges[-1]["sent_at"]
            raw = max(raw, self.place.business_days_after(last, self.spacing))
            anchor = last
        due = self.held(raw, anchor)
        if due is None:
            return None
        return Action("stall", due, "stall.exhausted_and_patience_spent", _keys(self.round).stall,
                      note=f"{n} nudges sent; patience ended {raw.isoformat()}")

    def next_step_reminder(self) -> Action | None:
        """Remind the candidate the day before the next step, at the send window's start."""
        step = self.candidacy.next_step
        if step is None or step["scheduled_for"] is None:
            return None
        key = _keys(self.round).next_step_reminder
        if key in self.candidacy.reminders:
            return None
        scheduled_for = step["scheduled_for"]
        days = self.place.days
        due = days.wall_time(days.local_ordinal(scheduled_for) - 1, self.policy.send_window.start)
        if step["closed_at"] <= due < scheduled_for:  # else closed too late for "tomorrow"
            return Action("next_step_reminder", due, "reminder.next_step_tomorrow", key,
                          note=step["description"])
        return None

    # -- derived facts ------------------------------------------------------------------

    def medium(self, at: datetime) -> Medium:
        """The first medium in the policy's order that is possible now: a card only when
        the interview was in person and it can be left at reception the same day."""
        for medium in self.policy.thank_you.media:
            if medium is not _CARD:
                return medium
            if self.candidacy.interview["format"] == "in_person":
                zone = self.place.zone
                local = at.astimezone(zone)
                if (local.date() == self.interviewed_at().astimezone(zone).date()
                        and local.time() < self.policy.send_window.end):
                    return medium
        return Medium.EMAIL

    def patience_end(self) -> tuple[datetime, str]:
        """When patience allows a nudge without a reason, and the rule saying so: the
        early end of the stated timeline, or N business days after the thank-you."""
        anchor = self.candidacy.awaiting_since
        interview = self.candidacy.interview
        patience = self.policy.patience
        after = self.place.business_days_after
        timeline = interview.get("timeline")
        if not timeline:
            return (after(anchor, patience.first_nudge_without_timeline_business_days),
                    "patience.no_timeline")
        early_end = interview["interviewed_at"] + _weeks(timeline["min_weeks"])
        patient = max(anchor, after(early_end,
                                    patience.first_nudge_after_timeline_min_business_days))
        return patient, "patience.timeline_early_end"

    def thank_you_deadline(self, day: int) -> datetime:
        """The thank-you deadline of an interview on the local day ``day`` (an ordinal)."""
        rule = self.policy.thank_you
        return self.place.days.wall_time(day + rule.deadline_days_after_interview,
                                         rule.deadline_local_time)

    def timeline(self) -> tuple[float, float] | None:
        timeline = self.candidacy.interview.get("timeline")
        if not timeline:
            return None
        return timeline["min_weeks"], timeline["max_weeks"]

    def interviewed_at(self) -> datetime:
        return cast(datetime, self.candidacy.interview["interviewed_at"])

    def held(self, due: datetime, anchor: datetime) -> datetime | None:
        """``due`` after the slip rule for every pause since ``anchor`` (out-of-office ones
        only when the policy says they pause); None while an open-ended pause holds.  A pause
        ending when or before it starts (an out-of-office reply "back today", logged after
        midnight) holds nothing."""
        if not self.pausing:
            return due
        holds_out_of_office = self.policy.pause.out_of_office_pauses
        for pause in self.candidacy.pauses:
            if not holds_out_of_office and pause.get("reason") == OUT_OF_OFFICE:
                continue
            start = max(pause["since"], anchor)
            if pause["until"] > start:
                due = slip_after_pause(due, start, pause["until"])
        current = self.candidacy.paused
        if current is not None and (holds_out_of_office or current["reason"] != OUT_OF_OFFICE):
            ends_at = current["ends_at"]
            if ends_at is None:
                return None
            start = max(current["since"], anchor)
            if ends_at > start:
                due = slip_after_pause(due, start, ends_at)
        return due


_CACHE_LIMIT = 512
"""Entries a table of remembered answers keeps, keeping memory flat: places per policy
(then forgotten at once), round keys, nudge labels, channel names and week spans (the
least recently used forgotten first); overdue alerts 8 times as many."""


class _Keys:
    """The keys of one round's steps (the same strings every call)."""

    __slots__ = ("next_step_reminder", "stall", "thank_you", "thank_you_overdue")

    def __init__(self, round_: int) -> None:
        self.thank_you = f"r{round_}:thank_you"
        self.thank_you_overdue = f"r{round_}:thank_you_overdue"
        self.stall = f"r{round_}:stall"
        self.next_step_reminder = f"r{round_}:next_step_reminder"


# Remembered with functools' bounded cache: the same few values every call.
@lru_cache(maxsize=_CACHE_LIMIT)
def _keys(round_: int) -> _Keys:
    return _Keys(round_)


@lru_cache(maxsize=_CACHE_LIMIT)
def _nudge_labels(round_: int, n: int, max_nudges: int) -> tuple[str, str]:
    """The key and note of the nudge after ``n`` sent."""
    return f"r{round_}:nudge:{n + 1}", f"nudge {n + 1} of {max_nudges}"


@lru_cache(maxsize=8 * _CACHE_LIMIT)
def _overdue_alert(key: str, deadline: datetime) -> Action:
    """One alert per round and deadline (in UTC), whatever the policy."""
    return Action("thank_you_overdue", deadline, "thank_you.deadline", key,
                  note=f"no thank-you by {deadline.isoformat()}")


@lru_cache(maxsize=_CACHE_LIMIT)
def _channel_values(channels: tuple[Any, ...]) -> tuple[str, ...]:
    """The nudge channels' names, in the policy's order."""
    return tuple(channel.value for channel in channels)


@lru_cache(maxsize=_CACHE_LIMIT)
def _weeks(weeks: float) -> timedelta:
    """``timedelta(weeks=weeks)``, built once per value."""
    return timedelta(weeks=weeks)


_BY = {medium.value: f"by {medium.value}" for medium in Medium}
_MIDNIGHT = time(0)


def _is_offer_nudge(nudge: dict[str, Any]) -> bool:
    key = (nudge.get("decided_by") or {}).get("key") or ""
    return ":offer:" in key


# -- what a place fixes once ----------------------------------------------------------------

def place_of(candidacy: Any, policy: CadencePolicy) -> Place:
    """The candidacy's time zone and working days under the policy, kept by the policy
    (`CadencePolicy.places`): a place's calendar maths is built once, not every plan."""
    places: dict[tuple[Any, str | None, str | None], Place] = policy.places
    key = (candidacy.timezone, candidacy.country, candidacy.subdivision)
    place = places.get(key)
    if place is None:
        if len(places) >= _CACHE_LIMIT:
            places.clear()  # memory stays flat; the next plans build their places again
        place = places[key] = Place(resolve_zone(key[0]), policy.work_calendar(key[1], key[2]),
                                    policy)
    return place


class Place:
    """A time zone and a working calendar under one policy, with their calendar maths
    (whose answers are shared by policies with the same zone and calendar)."""

    __slots__ = ("any_day_send_time", "business_days_after", "calendar", "days", "policy",
                 "send_time", "zone")

    def __init__(self, zone: Any, calendar: WorkCalendar, policy: CadencePolicy) -> None:
        self.zone = zone
        self.calendar = calendar
        self.policy = policy
        self.days = zone_days(zone)
        # Each schedule is built when first asked (a policy may have none to build),
        # then its own `next` answers.
        self.send_time: Callable[[datetime], datetime] = self._first_send_time
        self.any_day_send_time: Callable[[datetime], datetime] = self._first_any_day_send_time
        # (moment, days) -> ``days`` working days after ``moment`` on the recipient's wall clock.
        self.business_days_after: Callable[[datetime, int], datetime] = business_days(
            zone, calendar).after

    def _first_send_time(self, moment: datetime) -> datetime:
        """The first moment from ``moment`` inside the send window, outside quiet hours,
        on a working day."""
        self.send_time = send_schedule(self.zone, self.policy.send_window,
                                       self.policy.quiet_hours, self.calendar).next
        return self.send_time(moment)

    def _first_any_day_send_time(self, moment: datetime) -> datetime:
        """The first moment from ``moment`` outside quiet hours, any day."""
        self.any_day_send_time = send_schedule(self.zone, _WHOLE_DAY, self.policy.quiet_hours,
                                               _EVERY_DAY).next
        return self.any_day_send_time(moment)
