"""A candidacy: one candidate's follow-up with one employer, as an event-sourced aggregate.

Each command method asks the lifecycle whether the playbook allows it now
(guards included), then triggers exactly one event.  An event's ``apply``
only assigns data, so loading history never runs the lifecycle again.

Two kinds of events, kept visibly apart (replay keeps facts and re-derives
decisions): *facts* from the world (`InterviewRecorded`, `HesitationRaised`,
`ReplyReceived`, `CompetingOfferNoted`, ...) and *decisions* of a cadence
policy (`ThankYouDecided`, `NudgeDecided`, `ReminderSent` and `Stalled` when the
scheduler records them, which carry ``decided_by``: the policy name, version and the rule
that fired).  A decision or a person's "send it for me" (`ThankYouRequested`,
`NudgeRequested`) only asks the outbox to send; what the channel then did comes back as a
*delivery fact* (`MessageDelivered`, `MessageBlocked`, `MessageDeadLettered`, `TaskReady`),
and only a delivered thank-you moves the stage to ``thanked``/``awaiting``.  A person who
says they sent it themselves records `ThankYouSent` / `NudgeSent` (no ``decided_by``).
Histories written before decisions and deliveries were apart hold `ThankYouSent` /
`NudgeSent` WITH ``decided_by``: they still load, read as "decided and assumed delivered".

State kept on the aggregate is the current round's; earlier rounds live in the
history.  Attributes are plain dicts, lists, strings and datetimes so that
snapshots transcode them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Any
from uuid import UUID
from zoneinfo import ZoneInfo

from eventsourcing.domain import Aggregate

from engine.errors import CandidacyErased, InvalidInput
from engine.lifecycle import TRANSITIONS, Stage
from engine.values import Actor, ReplyKind

Data = dict[str, Any]
OUT_OF_OFFICE = "out of office"
"""The reason recorded on the pause an out-of-office reply starts."""


class Candidacy(Aggregate):
    """The follow-up after an interview, from the interview to advanced or stalled."""

    # -- events -----------------------------------------------------------------

    class Event(Aggregate.Event):
        """Every event says who acted, for whom, in which workspace, and the stage after it."""

        actor: str
        on_behalf_of: str | None
        workspace: str
        stage: str

        def apply(self, aggregate: Any) -> None:
            aggregate.stage = self.stage
            self.assign(aggregate)

        def assign(self, candidacy: Candidacy) -> None:
            """Copy the event's data onto the candidacy (nothing else)."""

    class InterviewRecorded(Event, Aggregate.Created):
        candidate: Data
        company: str
        role: str
        timezone: str
        country: str | None
        subdivision: str | None
        interview: Data
        policy: Data
        # The day the candidate applied, if known (absent from events recorded before it).
        applied_on: date | None = None

        def assign(self, candidacy: Candidacy) -> None:
            candidacy.workspace = self.workspace
            candidacy.applied_on = getattr(self, "applied_on", None)
            candidacy.candidate = self.candidate
            candidacy.company = self.company
            candidacy.role = self.role
            candidacy.timezone = self.timezone
            candidacy.country = self.country
            candidacy.subdivision = self.subdivision
            candidacy.policy = self.policy
            candidacy.offers = []
            candidacy.paused = None
            candidacy.outcome = None
            candidacy.round = 1
            candidacy.begin_round(self.interview)

    class HesitationRaised(Event):
        hesitation_id: str
        text: str
        occurred_at: datetime

        def assign(self, candidacy: Candidacy) -> None:
            candidacy.hesitations.append(
                {"id": self.hesitation_id, "text": self.text, "raised_at": self.occurred_at,
                 "answer": None, "addressed_at": None}
            )

    class HesitationAddressed(Event):
        hesitation_id: str
        answer: str
        occurred_at: datetime

        def assign(self, candidacy: Candidacy) -> None:
            for hesitation in candidacy.hesitations:
                if hesitation["id"] == self.hesitation_id:
                    hesitation["answer"] = self.answer
                    hesitation["addressed_at"] = self.occurred_at

    class NoHesitationsRecorded(Event):
        occurred_at: datetime

        def assign(self, candidacy: Candidacy) -> None:
            candidacy.no_hesitations = True

    class NextStepClosed(Event):
        description: str
        scheduled_for: datetime | None
        occurred_at: datetime

        def assign(self, candidacy: Candidacy) -> None:
            candidacy.next_step = {
                "description": self.description, "scheduled_for": self.scheduled_for,
                "closed_at": self.occurred_at,
            }

    class ThankYouSent(Event):
        medium: str
        to: list[str]
        occurred_at: datetime
        decided_by: Data | None

        def assign(self, candidacy: Candidacy) -> None:
            candidacy.thank_yous.append({"medium": self.medium, "to": self.to,
                                         "sent_at": self.occurred_at})
            candidacy.thanked = sorted(set(candidacy.thanked) | set(self.to))
            if self.stage == Stage.AWAITING:
                candidacy.awaiting_since = self.occurred_at
                # The panel is thanked: a thank-you still pending has nothing left to do.
                candidacy.pending_thank_you = None

    class NudgeSent(Event):
        channels: list[str]
        reason: str
        decided_by: Data | None
        # A person's nudge: when it went (if not when logged), and the override of the
        # playbook rule that refused it (defaults: older events carry neither).
        occurred_at: datetime | None = None
        override: Data | None = None

        def assign(self, candidacy: Candidacy) -> None:
            nudge = {"sent_at": _occurred(self), "channels": self.channels,
                     "reason": self.reason, "decided_by": self.decided_by}
            override = getattr(self, "override", None)
            if override is not None:
                nudge["override"] = override
            candidacy.nudges.append(nudge)

    class ThankYouDecided(Event):
        """The policy decided to thank (``decided_by``); the outbox sends it."""

        medium: str
        to: list[str]
        occurred_at: datetime
        decided_by: Data | None

        def assign(self, candidacy: Candidacy) -> None:
            candidacy.pending_thank_you = _pending(self, self.medium, self.to,
                                                   self.decided_by, None)

    class ThankYouRequested(Event):
        """A person asked Closer to send a thank-you for them; the outbox sends it."""

        medium: str
        to: list[str]
        occurred_at: datetime

        def assign(self, candidacy: Candidacy) -> None:
            candidacy.pending_thank_you = _pending(self, self.medium, self.to, None,
                                                   self.actor)

    class NudgeDecided(Event):
        """The policy decided to nudge (``decided_by``): it counts toward the pest line at
        once and moves the stage to ``nudged``; its deliveries are facts on it."""

        channels: list[str]
        reason: str
        decided_by: Data | None

        def assign(self, candidacy: Candidacy) -> None:
            candidacy.nudges.append(_nudge(self, self.decided_by, None))

    class NudgeRequested(Event):
        """A person asked Closer to send a nudge for them (counted like any nudge); a
        playbook rule it overrode is recorded with the reason."""

        channels: list[str]
        reason: str
        override: Data | None = None

        def assign(self, candidacy: Candidacy) -> None:
            nudge = _nudge(self, None, self.actor)
            override = getattr(self, "override", None)
            if override is not None:
                nudge["override"] = override
            candidacy.nudges.append(nudge)

    class MessageDelivered(Event):
        """The channel delivered a thank-you or nudge message (``confirmed_by``: the
        person who confirmed a card or voicemail task was done; None: the channel said)."""

        message_id: str
        kind: str
        channel: str
        trigger_version: int
        occurred_at: datetime
        confirmed_by: str | None

        def assign(self, candidacy: Candidacy) -> None:
            pending = candidacy.pending_thank_you
            if pending is not None and self.trigger_version in pending["triggers"]:
                # The medium decided, unless a fallback carried it on another channel.
                medium = pending["medium"]
                if self.channel not in _THANK_YOU_CHANNELS.get(medium, [medium]):
                    medium = self.channel
                candidacy.thank_yous.append({"medium": medium, "to": pending["to"],
                                             "sent_at": self.occurred_at})
                candidacy.thanked = sorted(set(candidacy.thanked) | set(pending["to"]))
                candidacy.pending_thank_you = None
                if self.stage == Stage.AWAITING:
                    candidacy.awaiting_since = self.occurred_at
                return
            nudge = candidacy.nudge_of(self.trigger_version)
            if nudge is not None:
                nudge["deliveries"][self.channel] = "delivered"
                nudge.setdefault("delivered_at", self.occurred_at)

    class MessageBlocked(Event):
        """Proofing or rendering blocked a message (``findings``); ``fallback``: the
        channel tried next along the policy's preference, None when none is left."""

        message_id: str
        kind: str
        channel: str
        trigger_version: int
        findings: list[Data]
        fallback: str | None

        def assign(self, candidacy: Candidacy) -> None:
            reason = "; ".join(str(f.get("message", f.get("code", ""))) for f in self.findings)
            candidacy.message_failed(self, f"{self.channel} blocked: {reason}")

    class MessageDeadLettered(Event):
        """The channel failed for good (``error``); ``fallback`` as for `MessageBlocked`."""

        message_id: str
        kind: str
        channel: str
        trigger_version: int
        error: str
        fallback: str | None

        def assign(self, candidacy: Candidacy) -> None:
            candidacy.message_failed(self, f"{self.channel} failed: {self.error}")

    class TaskReady(Event):
        """A card or voicemail task is ready for the candidate; a person confirms it done."""

        message_id: str
        kind: str
        channel: str
        trigger_version: int

        def assign(self, candidacy: Candidacy) -> None:
            item = candidacy.delivery_item(self.trigger_version)
            if item is not None:
                item["deliveries"][self.channel] = "task"

    class ReplyReceived(Event):
        kind: str
        note: str | None
        occurred_at: datetime
        back_on: date | None
        back_at: datetime | None

        def assign(self, candidacy: Candidacy) -> None:
            candidacy.last_reply = {"kind": self.kind, "note": self.note,
                                    "received_at": self.occurred_at, "back_on": self.back_on}
            if self.kind == ReplyKind.OUT_OF_OFFICE:
                candidacy.begin_pause(self.occurred_at, self.back_on, self.back_at,
                                      OUT_OF_OFFICE)
            elif self.kind == ReplyKind.UPDATE:
                candidacy.last_update_at = self.occurred_at
            elif self.kind in (ReplyKind.ADVANCED, ReplyKind.REJECTED):
                candidacy.outcome = {"kind": self.kind, "at": self.occurred_at,
                                     "reason": self.note}

    class CompetingOfferNoted(Event):
        company: str
        deadline: datetime
        occurred_at: datetime

        def assign(self, candidacy: Candidacy) -> None:
            # One entry per company: a later offer from the same company replaces it.
            candidacy.offers = [o for o in candidacy.offers if o["company"] != self.company]
            candidacy.offers.append({"company": self.company, "deadline": self.deadline,
                                     "noted_at": self.occurred_at})

    class CadencePaused(Event):
        until: date | None
        ends_at: datetime | None
        reason: str
        occurred_at: datetime | None = None  # when it began, if not when logged

        def assign(self, candidacy: Candidacy) -> None:
            candidacy.begin_pause(_occurred(self), self.until, self.ends_at, self.reason)

    class CadenceResumed(Event):
        occurred_at: datetime | None = None  # when it ended, if not when logged

        def assign(self, candidacy: Candidacy) -> None:
            candidacy.end_pause(_occurred(self))

    class ReminderSent(Event):
        kind: str
        key: str
        decided_by: Data | None

        def assign(self, candidacy: Candidacy) -> None:
            candidacy.reminders.append(self.key)

    class Stalled(Event):
        reason: str
        decided_by: Data | None
        override: Data | None = None  # a person's stall the playbook refused, let through

        def assign(self, candidacy: Candidacy) -> None:
            candidacy.outcome = {"kind": "stalled", "at": self.timestamp, "reason": self.reason}

    class Withdrawn(Event):
        reason: str
        occurred_at: datetime | None = None  # when the candidate withdrew, if not when logged

        def assign(self, candidacy: Candidacy) -> None:
            candidacy.outcome = {"kind": "withdrawn", "at": _occurred(self),
                                 "reason": self.reason}

    class RoundStarted(Event):
        round: int
        interview: Data

        def assign(self, candidacy: Candidacy) -> None:
            candidacy.round = self.round
            candidacy.outcome = None
            candidacy.paused = None
            candidacy.begin_round(self.interview)

    class PolicyMigrated(Event):
        """Moved to another published policy version: ``previous`` is the one it left,
        ``reason`` why (given by the person who moved it, if they said)."""

        policy: Data
        previous: Data
        reason: str | None = None  # (events recorded before reasons were kept have none)

        def assign(self, candidacy: Candidacy) -> None:
            candidacy.policy = self.policy

    # -- corrections of what was recorded (issue 13); the original stays in the history --

    class ContactCorrected(Event):
        """An email or phone of the candidate (``person="candidate"``) or of an interviewer
        (``person`` = their name as recorded) was wrong: ``before`` and ``after``."""

        person: str
        field: str
        before: str | None
        after: str

        def assign(self, candidacy: Candidacy) -> None:
            _set_detail(candidacy, self.person, self.field, self.after)

    class NameCorrected(Event):
        """A name was misspelt: the candidate's, or an interviewer's (renamed everywhere the
        round names them: the panel, who was thanked, each thank-you's recipients, and the
        thank-you still pending)."""

        person: str  # "candidate" or "interviewer"
        before: str
        after: str

        def assign(self, candidacy: Candidacy) -> None:
            if self.person == "candidate":
                candidacy.candidate = {**candidacy.candidate, "name": self.after}
                return
            if _set_detail(candidacy, self.before, "name", self.after):
                before, after = self.before, self.after
                candidacy.thanked = sorted(after if n == before else n
                                           for n in candidacy.thanked)
                candidacy.thank_yous = [
                    {**t, "to": [after if n == before else n for n in t["to"]]}
                    for t in candidacy.thank_yous]
                pending = candidacy.pending_thank_you
                if pending is not None:
                    # Delivered later, it thanks him by the name as corrected.
                    candidacy.pending_thank_you = {
                        **pending, "to": [after if n == before else n for n in pending["to"]]}

    class DetailCorrected(Event):
        """An interviewer's title, or the candidate's "why I fit" line, corrected."""

        person: str
        field: str
        before: str | None
        after: str

        def assign(self, candidacy: Candidacy) -> None:
            _set_detail(candidacy, self.person, self.field, self.after)

    # -- erasure (issue 17): the candidate's key is destroyed with this event ------------

    class Erased(Event):
        """The candidate's personal data was erased (who, why: no personal data here).
        Every personal field reads "erased" from now on: the earlier events' sealed
        values cannot be opened any more, and this event clears the state it loads."""

        reason: str

        def assign(self, candidacy: Candidacy) -> None:
            candidacy.erased = True
            _erase_state(candidacy)

    # -- state --------------------------------------------------------------------
    # Declared for type checkers only: class annotations at run time would make
    # eventsourcing turn the aggregate into a dataclass.
    if TYPE_CHECKING:
        workspace: str
        candidate: Data
        company: str
        role: str
        timezone: str
        country: str | None
        subdivision: str | None
        policy: Data  # the policy reference the candidacy follows
        stage: str
        round: int
        outcome: Data | None
        paused: Data | None  # the pause holding now, if any
        pauses: list[Data]  # closed ones
        offers: list[Data]
        # The current round's:
        interview: Data
        hesitations: list[Data]
        no_hesitations: bool
        next_step: Data | None
        thank_yous: list[Data]
        thanked: list[str]
        awaiting_since: datetime | None
        nudges: list[Data]
        last_reply: Data | None
        last_update_at: datetime | None
        reminders: list[str]  # keys of reminders sent

    # pending_thank_you: the decided or requested thank-you not yet delivered, or None
    # (a class default, for snapshots taken before it existed).
    pending_thank_you: Data | None = None
    applied_on: date | None = None  # a class default too, for snapshots taken before it
    erased = False
    """True once `Erased`: every command is refused (`CandidacyErased`)."""

    def __init__(self) -> None:
        """State is assigned by `InterviewRecorded.assign`."""

    def begin_round(self, interview: Data) -> None:
        """Reset the per-round state for a new interview round."""
        self.interview = interview
        self.hesitations = []
        self.no_hesitations = False
        self.next_step = None
        self.thank_yous = []
        self.thanked = []
        self.pending_thank_you = None
        self.nudges = []
        self.last_reply = None
        self.last_update_at = None
        self.awaiting_since = None
        self.reminders = []
        self.pauses = []

    def begin_pause(self, since: datetime, until: date | None, ends_at: datetime | None,
                    reason: str) -> None:
        """Hold the timers from ``since`` (an expired pause is closed first)."""
        self.end_pause(since)
        self.paused = {"since": since, "until": until, "ends_at": ends_at, "reason": reason}

    def end_pause(self, at: datetime) -> None:
        """Close the current pause at ``at`` (or at its own end, if that came first)."""
        if self.paused is not None:
            ends_at = self.paused["ends_at"]
            end = min(at, ends_at) if ends_at is not None else at
            self.pauses.append({"since": self.paused["since"], "until": end,
                                "reason": self.paused["reason"]})
            self.paused = None

    def nudge_of(self, trigger_version: int) -> Data | None:
        """The nudge a message with ``trigger_version`` carries (its decision or a fallback)."""
        for nudge in reversed(self.nudges):
            if trigger_version in nudge.get("triggers", ()):
                return nudge
        return None

    def delivery_item(self, trigger_version: int) -> Data | None:
        """The pending thank-you or the nudge a message with ``trigger_version`` carries."""
        pending = self.pending_thank_you
        if pending is not None and trigger_version in pending["triggers"]:
            return pending
        return self.nudge_of(trigger_version)

    def message_failed(self, fact: Any, reason: str) -> None:
        """A blocked or dead-lettered message: its channel failed; the fallback (if any)
        is queued from this fact, so its version carries the same item; with none left
        and every channel failed, the item failed (the recruiter is alerted)."""
        item = self.delivery_item(fact.trigger_version)
        if item is None:
            return
        deliveries = item["deliveries"]
        deliveries[fact.channel] = "failed"
        item["reasons"] = [*item.get("reasons", []), reason]
        if fact.fallback is not None:
            deliveries[fact.fallback] = "queued"
            item["triggers"] = [*item["triggers"], fact.originator_version]
        elif all(status == "failed" for status in deliveries.values()):
            item["failed"] = "; ".join(item["reasons"])

    # -- commands -----------------------------------------------------------------

    @classmethod
    def record_interview(
        cls, *, id: UUID, actor: Actor, at: datetime, candidate: Data, company: str, role: str,
        timezone: str, country: str | None, subdivision: str | None, interview: Data,
        policy: Data, applied_on: date | None = None,
    ) -> Candidacy:
        """Open a candidacy with its first interview (``applied_on``: the day the candidate
        applied, if known)."""
        return cls._create(
            cls.InterviewRecorded, id=id, timestamp=at, actor=actor.user,
            on_behalf_of=actor.on_behalf_of, workspace=actor.workspace,
            stage=Stage.INTERVIEWED.value, candidate=candidate, company=company, role=role,
            timezone=timezone, country=country, subdivision=subdivision, interview=interview,
            policy=policy, applied_on=applied_on,
        )

    def raise_hesitation(self, actor: Actor, at: datetime, *, hesitation_id: str, text: str,
                         occurred_at: datetime | None = None) -> None:
        """The interviewer voiced a hesitation about moving the candidate forward."""
        self._trigger("raise_hesitation", self.HesitationRaised, actor, at,
                      guard_args={"hesitation_id": hesitation_id},
                      hesitation_id=hesitation_id, text=text, occurred_at=occurred_at or at)

    def address_hesitation(self, actor: Actor, at: datetime, *, hesitation_id: str,
                           answer: str, occurred_at: datetime | None = None) -> None:
        """The candidate answered one hesitation."""
        self._trigger("address_hesitation", self.HesitationAddressed, actor, at,
                      guard_args={"hesitation_id": hesitation_id},
                      hesitation_id=hesitation_id, answer=answer, occurred_at=occurred_at or at)

    def record_no_hesitations(self, actor: Actor, at: datetime, *,
                              occurred_at: datetime | None = None) -> None:
        """The interviewer said they had no hesitations."""
        self._trigger("record_no_hesitations", self.NoHesitationsRecorded, actor, at,
                      occurred_at=occurred_at or at)

    def close_next_step(self, actor: Actor, at: datetime, *, description: str,
                        scheduled_for: datetime | None = None,
                        occurred_at: datetime | None = None) -> None:
        """The candidate closed for the next step (what it is, and when if known)."""
        self._trigger("close_next_step", self.NextStepClosed, actor, at,
                      description=description, scheduled_for=scheduled_for,
                      occurred_at=occurred_at or at)

    def send_thank_you(self, actor: Actor, at: datetime, *, medium: str, to: list[str],
                       covers_panel: bool = False, decided_by: Data | None = None,
                       occurred_at: datetime | None = None) -> None:
        """A thank-you went out to ``to`` (or to the whole panel when ``covers_panel``)."""
        if covers_panel or not to:
            to = [i["name"] for i in self.interview["interviewers"]]
            covers_panel = True
        self._trigger("send_thank_you", self.ThankYouSent, actor, at,
                      guard_args={"to": tuple(to), "covers_panel": covers_panel},
                      medium=medium, to=list(to), occurred_at=occurred_at or at,
                      decided_by=decided_by)

    def send_nudge(self, actor: Actor, at: datetime, *, channels: list[str], reason: str,
                   decided_by: Data | None = None, occurred_at: datetime | None = None,
                   override: Data | None = None) -> None:
        """A person says they nudged themselves (by default a voicemail, then an email),
        or an old history's scheduled nudge (``decided_by``)."""
        self._trigger("send_nudge", self.NudgeSent, actor, at, channels=channels,
                      reason=reason, decided_by=decided_by,
                      **_given(occurred_at=occurred_at, override=override))

    def decide_thank_you(self, actor: Actor, at: datetime, *, medium: str,
                         decided_by: Data) -> None:
        """The policy decided to thank the whole panel by ``medium``; the outbox sends it."""
        to = [i["name"] for i in self.interview["interviewers"]]
        self._trigger("decide_thank_you", self.ThankYouDecided, actor, at, medium=medium,
                      to=to, occurred_at=at, decided_by=decided_by)

    def request_thank_you(self, actor: Actor, at: datetime, *, medium: str, to: list[str],
                          covers_panel: bool = False) -> None:
        """A person asked Closer to send a thank-you for them (to ``to``, or the panel)."""
        if covers_panel or not to:
            to = [i["name"] for i in self.interview["interviewers"]]
        self._trigger("request_thank_you", self.ThankYouRequested, actor, at, medium=medium,
                      to=list(to), occurred_at=at)

    def decide_nudge(self, actor: Actor, at: datetime, *, channels: list[str], reason: str,
                     decided_by: Data) -> None:
        """The policy decided to nudge on ``channels``; the outbox sends it."""
        self._trigger("decide_nudge", self.NudgeDecided, actor, at, channels=channels,
                      reason=reason, decided_by=decided_by)

    def request_nudge(self, actor: Actor, at: datetime, *, channels: list[str],
                      reason: str, override: Data | None = None) -> None:
        """A person asked Closer to send a nudge for them."""
        self._trigger("request_nudge", self.NudgeRequested, actor, at, channels=channels,
                      reason=reason, **_given(override=override))

    def deliver_message(self, actor: Actor, at: datetime, *, message_id: str, kind: str,
                        channel: str, trigger_version: int, occurred_at: datetime | None = None,
                        confirmed_by: str | None = None) -> None:
        """A thank-you or nudge message was delivered (or its task confirmed done)."""
        self._trigger("deliver_message", self.MessageDelivered, actor, at,
                      guard_args={"trigger_version": trigger_version},
                      message_id=message_id, kind=kind, channel=channel,
                      trigger_version=trigger_version, occurred_at=occurred_at or at,
                      confirmed_by=confirmed_by)

    def block_message(self, actor: Actor, at: datetime, *, message_id: str, kind: str,
                      channel: str, trigger_version: int, findings: list[Data],
                      fallback: str | None) -> None:
        """Proofing or rendering blocked a thank-you or nudge message."""
        self._trigger("block_message", self.MessageBlocked, actor, at, message_id=message_id,
                      kind=kind, channel=channel, trigger_version=trigger_version,
                      findings=findings, fallback=fallback)

    def dead_letter_message(self, actor: Actor, at: datetime, *, message_id: str, kind: str,
                            channel: str, trigger_version: int, error: str,
                            fallback: str | None) -> None:
        """A thank-you or nudge message failed for good on its channel."""
        self._trigger("dead_letter_message", self.MessageDeadLettered, actor, at,
                      message_id=message_id, kind=kind, channel=channel,
                      trigger_version=trigger_version, error=error, fallback=fallback)

    def ready_task(self, actor: Actor, at: datetime, *, message_id: str, kind: str,
                   channel: str, trigger_version: int) -> None:
        """A card or voicemail task waits for the candidate (confirmed later)."""
        self._trigger("ready_task", self.TaskReady, actor, at, message_id=message_id,
                      kind=kind, channel=channel, trigger_version=trigger_version)

    def receive_reply(self, actor: Actor, at: datetime, *, kind: str, note: str | None = None,
                      occurred_at: datetime | None = None, back_on: date | None = None) -> None:
        """The employer replied: advanced, rejected, an update, or out of office."""
        self._trigger("receive_reply", self.ReplyReceived, actor, at, guard_args={"kind": kind},
                      kind=kind, note=note, occurred_at=occurred_at or at, back_on=back_on,
                      back_at=self.local_midnight(back_on))

    def note_competing_offer(self, actor: Actor, at: datetime, *, company: str,
                             deadline: datetime, occurred_at: datetime | None = None) -> None:
        """The candidate holds an offer elsewhere, with a deadline."""
        self._trigger("note_competing_offer", self.CompetingOfferNoted, actor, at,
                      company=company, deadline=deadline, occurred_at=occurred_at or at)

    def pause_cadence(self, actor: Actor, at: datetime, *, until: date | None,
                      reason: str, occurred_at: datetime | None = None) -> None:
        """Hold every timer (until a date, or until resumed)."""
        self._trigger("pause_cadence", self.CadencePaused, actor, at, until=until,
                      ends_at=self.local_midnight(until), reason=reason,
                      **_given(occurred_at=occurred_at))

    def resume_cadence(self, actor: Actor, at: datetime, *,
                       occurred_at: datetime | None = None) -> None:
        """Let the timers run again; later steps shift by the time paused."""
        self._trigger("resume_cadence", self.CadenceResumed, actor, at,
                      **_given(occurred_at=occurred_at))

    def send_reminder(self, actor: Actor, at: datetime, *, kind: str, key: str,
                      decided_by: Data | None = None) -> None:
        """A reminder or alert went out (thank-you due, next step tomorrow, overdue...)."""
        self._trigger("send_reminder", self.ReminderSent, actor, at, kind=kind, key=key,
                      decided_by=decided_by)

    def stall(self, actor: Actor, at: datetime, *, reason: str,
              decided_by: Data | None = None, override: Data | None = None) -> None:
        """Give up waiting: the pest line is reached and patience is spent."""
        self._trigger("stall", self.Stalled, actor, at, reason=reason, decided_by=decided_by,
                      **_given(override=override))

    def withdraw(self, actor: Actor, at: datetime, *, reason: str,
                 occurred_at: datetime | None = None) -> None:
        """The candidate withdrew."""
        self._trigger("withdraw", self.Withdrawn, actor, at, reason=reason,
                      **_given(occurred_at=occurred_at))

    def start_next_round(self, actor: Actor, at: datetime, *, interview: Data) -> None:
        """After advancing, the next interview round begins in the same history."""
        self._trigger("start_next_round", self.RoundStarted, actor, at, round=self.round + 1,
                      interview=interview)

    def migrate_policy(self, actor: Actor, at: datetime, *, policy: Data,
                       reason: str | None = None) -> None:
        """Move the candidacy to another cadence policy (name and version); from then on
        the scheduler decides with that version."""
        TRANSITIONS.target(self.stage, "migrate_policy", self, at=at)  # a final stage first
        if policy == self.policy:
            raise InvalidInput("policy", f"the candidacy already runs under {policy['name']}"
                                         f"@{policy['version']}")
        self._trigger("migrate_policy", self.PolicyMigrated, actor, at, policy=policy,
                      previous=self.policy, **_given(reason=reason))

    def correct_details(self, actor: Actor, at: datetime, *, person: str, field: str,
                        value: str) -> None:
        """Correct a recorded contact, name, title or "why I fit" (``person``: "candidate"
        or an interviewer's name as recorded now); the event keeps before and after."""
        if person == "candidate":
            if field not in CANDIDATE_FIELDS:
                raise InvalidInput("field", f"a candidate's {field} cannot be corrected "
                                            f"(only {', '.join(CANDIDATE_FIELDS)})")
            before = self.candidate.get(field)
        else:
            interviewer = next((i for i in self.interview["interviewers"]
                                if i["name"] == person), None)
            if interviewer is None:
                panel = ", ".join(i["name"] for i in self.interview["interviewers"])
                raise InvalidInput("person", f"{person!r} is neither the candidate nor an "
                                             f"interviewer of this round ({panel})")
            if field not in INTERVIEWER_FIELDS:
                raise InvalidInput("field", f"an interviewer's {field} cannot be corrected "
                                            f"(only {', '.join(INTERVIEWER_FIELDS)})")
            if field == "name" and any(i["name"] == value
                                       for i in self.interview["interviewers"]):
                raise InvalidInput("value", f"{value!r} already names an interviewer")
            before = interviewer.get(field)
        if before == value:
            raise InvalidInput("value", f"the {field} is already {value!r}")
        if field == "name":
            self._trigger("correct_details", self.NameCorrected, actor, at,
                          person="candidate" if person == "candidate" else "interviewer",
                          before=before, after=value)
        elif field in ("email", "phone"):
            self._trigger("correct_details", self.ContactCorrected, actor, at, person=person,
                          field=field, before=before, after=value)
        else:
            self._trigger("correct_details", self.DetailCorrected, actor, at, person=person,
                          field=field, before=before, after=value)

    def erase(self, actor: Actor, at: datetime, *, reason: str) -> None:
        """Erase the candidate's personal data (the application destroys the key in the
        same transaction); the stage stays as it was."""
        if self.erased:
            raise CandidacyErased(self.id)
        self.trigger_event(self.Erased, timestamp=at, actor=actor.user,
                           on_behalf_of=actor.on_behalf_of, workspace=self.workspace,
                           stage=self.stage, reason=reason)

    # -- queries --------------------------------------------------------------------

    def open_hesitations(self) -> list[Data]:
        return [h for h in self.hesitations if h["answer"] is None]

    def local_midnight(self, day: date | None) -> datetime | None:
        """The start of ``day`` in the candidacy's time zone (when a pause ends)."""
        if day is None:
            return None
        return datetime.combine(day, time(0), ZoneInfo(self.timezone)).astimezone(UTC)

    # -- the one path every command takes ---------------------------------------------

    def _trigger(self, command: str, event_class: type[Event], actor: Actor, at: datetime,
                 guard_args: dict[str, Any] | None = None, **data: Any) -> None:
        if self.erased:
            raise CandidacyErased(self.id)
        stage = TRANSITIONS.target(self.stage, command, self, at=at, **(guard_args or {}))
        occurred_at = data.get("occurred_at")
        if occurred_at is not None and occurred_at < self.interview["interviewed_at"]:
            # A fact of this round cannot precede its interview (backdated by a person).
            raise InvalidInput("occurred_at", f"{occurred_at.isoformat()} is before the "
                                              f"interview ({self.interview['interviewed_at']})")
        self.trigger_event(event_class, timestamp=at, actor=actor.user,
                           on_behalf_of=actor.on_behalf_of, workspace=self.workspace,
                           stage=stage, **data)


CANDIDATE_FIELDS = ("name", "email", "phone", "why_i_fit")
INTERVIEWER_FIELDS = ("name", "title", "email", "phone")
CORRECTIONS: tuple[type[Candidacy.Event], ...] = (
    Candidacy.ContactCorrected, Candidacy.NameCorrected, Candidacy.DetailCorrected)
"""The events that correct what was recorded (facts about the record, not the world)."""


def _set_detail(candidacy: Any, person: str, field: str, value: str) -> bool:
    """Set ``field`` of the candidate or of the current round's interviewer ``person``,
    copying what it changes (the recorded events share the dicts); False when this round
    has no such interviewer (an outbox message of an earlier round, say)."""
    if person == "candidate":
        candidacy.candidate = {**candidacy.candidate, field: value}
        return True
    interview = candidacy.interview
    interviewers = interview["interviewers"]
    if not any(i["name"] == person for i in interviewers):
        return False
    candidacy.interview = {**interview, "interviewers": [
        {**i, field: value} if i["name"] == person else i for i in interviewers]}
    return True


def _erase_state(candidacy: Any) -> None:
    """The candidacy's personal values (those `engine.personal_data` seals) as "erased",
    so a process still holding the key in memory reads them erased too."""
    def erased(value: Any) -> Any:
        if isinstance(value, str):
            return "erased"
        if isinstance(value, dict):
            return {k: erased(v) for k, v in value.items()}
        return value

    candidacy.candidate = erased(candidacy.candidate)
    candidacy.hesitations = [{**h, "text": "erased", "answer": erased(h.get("answer"))}
                             for h in candidacy.hesitations]
    for name, key in (("next_step", "description"), ("last_reply", "note"),
                      ("outcome", "reason"), ("paused", "reason")):
        value = getattr(candidacy, name, None)
        if isinstance(value, dict) and key in value:
            setattr(candidacy, name, {**value, key: erased(value[key])})
    candidacy.pauses = [{**p, "reason": "erased"} for p in candidacy.pauses]


def _given(**fields: Any) -> Data:
    """The optional fields a person gave: one not given stays out of the payload, which
    then reads exactly as before the field existed (the scheduler's decisions too)."""
    return {name: value for name, value in fields.items() if value is not None}


def _occurred(event: Any) -> datetime:
    """When a fact happened: its ``occurred_at`` when a person gave one, else when logged
    (older events, and replay's decoded payloads, may not carry the field at all)."""
    occurred_at: datetime | None = getattr(event, "occurred_at", None)
    logged_at: datetime = event.timestamp
    return occurred_at if occurred_at is not None else logged_at


_THANK_YOU_CHANNELS = {"email": ["email"], "card": ["card"],
                       "voicemail_and_email": ["voicemail", "email"]}


def _pending(event: Any, medium: str, to: list[str], decided_by: Data | None,
             requested_by: str | None) -> Data:
    """The thank-you a decision or a request asks the outbox to send: the versions whose
    messages carry it (``triggers``) and what each channel did (``deliveries``)."""
    return {"version": event.originator_version, "medium": medium, "to": list(to),
            "decided_at": event.occurred_at, "decided_by": decided_by,
            "requested_by": requested_by, "triggers": [event.originator_version],
            "deliveries": {c: "queued" for c in _THANK_YOU_CHANNELS.get(medium, [medium])},
            "failed": None}


def _nudge(event: Any, decided_by: Data | None, requested_by: str | None) -> Data:
    return {"sent_at": event.timestamp, "channels": event.channels, "reason": event.reason,
            "decided_by": decided_by, "requested_by": requested_by,
            "version": event.originator_version, "triggers": [event.originator_version],
            "deliveries": {c: "queued" for c in event.channels}, "failed": None}


FACTS: tuple[type[Candidacy.Event], ...] = (
    Candidacy.InterviewRecorded, Candidacy.HesitationRaised, Candidacy.HesitationAddressed,
    Candidacy.NoHesitationsRecorded, Candidacy.NextStepClosed,
    Candidacy.ReplyReceived, Candidacy.CompetingOfferNoted, Candidacy.CadencePaused,
    Candidacy.CadenceResumed, Candidacy.Withdrawn, Candidacy.RoundStarted,
    Candidacy.PolicyMigrated, Candidacy.ThankYouRequested, Candidacy.NudgeRequested,
    *CORRECTIONS,
)
"""Events that record what happened in the world; replay keeps them as recorded."""

DECISIONS: tuple[type[Candidacy.Event], ...] = (
    Candidacy.ThankYouDecided, Candidacy.NudgeDecided, Candidacy.ThankYouSent,
    Candidacy.NudgeSent, Candidacy.ReminderSent, Candidacy.Stalled,
)
"""Events a cadence policy decides when the scheduler records them (``decided_by`` set);
`ThankYouSent` / `NudgeSent` issued by a person (a hand-written card) are facts, and
with ``decided_by`` they are decisions of histories written before deliveries were
recorded apart.  Replay re-derives the decisions."""

DELIVERIES: tuple[type[Candidacy.Event], ...] = (
    Candidacy.MessageDelivered, Candidacy.MessageBlocked, Candidacy.MessageDeadLettered,
    Candidacy.TaskReady,
)
"""What the outbox learned from a channel about a decided or requested message: facts,
which replay reads back for the decisions it reproduces."""
