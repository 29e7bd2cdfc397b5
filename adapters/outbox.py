"""The outbox: candidacy transitions become proofed messages, delivered once, never lost.

Two halves, both run by `Dispatcher.run_once`:

1. **follow**: reads the application's notification log from the outbox's tracked
   position (``max_tracking_id("Outbox")``), turns each routed candidacy event into
   `OutboxMessage` aggregates (`OutboxMessage.Queued`), and saves a page's new
   messages *with* ``position=Tracking("Outbox", last notification id)`` in ONE
   save: the position and the queued messages commit together, so a crash between
   pages loses nothing and queues nothing twice.  A notification that cannot be read
   (`CorruptHistory`: its event, or the history its candidacy needs) is logged at error
   level and recorded as `PassedOver` in that same save, then passed over: one poison
   event never stops the follow (`closer doctor` lists both).
2. **deliver**: reads the due rows (`adapters.outbox_rows`), renders with
   the channel's adapter, proofs (`adapters.proofing.prepare`), records `Blocked`
   (never sent), or `ApprovalRequested` when the workspace wants a person to approve
   first (`approve` lets it go), or delivers and records `Proofed` + `Sent`.  Any
   exception while rendering or delivering one message (a `DeliveryError`, an adapter
   bug, a disk, an encoding) records `Failed` on that message with exponential backoff,
   or `DeadLettered` after ``max_attempts`` (at once for a permanent `DeliveryError`);
   the back-off puts it behind the others, so it never holds them up.  A person can
   `retry` a dead letter or a blocked message.

Message ids are ``uuid5(candidacy, triggering event version, channel)``
(`adapters.message.message_id`), so a restart recomputes the same id: the SMTP
``Message-ID`` and the webhook ``Idempotency-Key`` are the same on every attempt.
A kill between a channel's hand-off and the ``Sent`` save re-sends that one
message after restart (at-least-once); a channel that deduplicates applies it once.

Concurrency: on PostgreSQL a dispatcher holds a session-level advisory lock
(``pg_try_advisory_lock(ADVISORY_KEY)``) on a separate connection for as long as it
runs; a second dispatcher stands by until the first is gone.  On SQLite a single
dispatcher is assumed (run one `closer dispatch` per database file).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import structlog
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    Tracking,
)
from pydantic import ValidationError

from adapters.base import Adapter, Registry, refuse_postal
from adapters.errors import (
    AdapterError,
    DeliveryError,
    EditRefused,
    StaleMessage,
    UnknownChannel,
)
from adapters.message import Message, MessageContext, message_id, plain_error
from adapters.outbox_rows import MessageRow, PassedOver, deliverable_messages, use
from adapters.proofing import DEFAULT_RULES, ProofReport, ProofRules, prepare
from adapters.proofing import proof as proof_message
from engine.audit import first_break
from engine.candidacy import CORRECTIONS, Candidacy
from engine.decisions import fallback_channel
from engine.errors import CorruptHistory, IllegalCommand
from engine.lifecycle import Stage
from engine.personal_data import seal_fields
from engine.policy import MessageKind
from engine.values import Actor

log = structlog.get_logger("closer.outbox")

TRACKING_NAME = "Outbox"
ADVISORY_KEY = 0x0C105E_0B0C  # fixed: every Closer dispatcher contends for this key
_CANDIDACY_TOPIC = "engine.candidacy:Candidacy."

Data = dict[str, Any]
DISPATCHER = "closer-outbox"
"""The acting user on the delivery facts the outbox records on candidacies."""
_SETTLE_ATTEMPTS = 5


# -- the message aggregate ------------------------------------------------------------


class OutboxMessage(Aggregate):
    """One outbound message on one channel, from queued to sent (or dead-lettered)."""

    class Event(Aggregate.Event):
        def apply(self, aggregate: Any) -> None:
            self.assign(aggregate)

        def assign(self, message: OutboxMessage) -> None:
            """Copy the event's data onto the message."""

    class Queued(Event, Aggregate.Created):
        candidacy_id: str
        workspace: str
        kind: str
        channel: str
        trigger_type: str
        trigger_version: int
        context: Data  # the MessageContext as JSON (recipients and all), a snapshot
        not_before: datetime | None  # e.g. the email that follows a voicemail minutes later

        def assign(self, message: OutboxMessage) -> None:
            message.candidacy_id = self.candidacy_id
            message.workspace = self.workspace
            message.kind = self.kind
            message.channel = self.channel
            message.trigger = {"type": self.trigger_type, "version": self.trigger_version}
            message.context = self.context
            message.status = "queued"
            message.attempts = 0
            # (Messages queued before ``not_before`` existed have none.)
            message.next_attempt_at = getattr(self, "not_before", None) or self.timestamp
            message.findings = []
            message.receipt = None
            message.last_error = None
            message.subject = None
            message.approved_by = None
            message.edited_body = None

    class Proofed(Event):
        subject: str
        to: list[str]

        def assign(self, message: OutboxMessage) -> None:
            message.findings = []
            message.subject = self.subject

    class Blocked(Event):
        findings: list[Data]

        def assign(self, message: OutboxMessage) -> None:
            message.status = "blocked"
            message.findings = self.findings
            message.next_attempt_at = None

    class Sent(Event):
        receipt: Data

        def assign(self, message: OutboxMessage) -> None:
            message.status = "sent"
            message.attempts += 1
            message.receipt = self.receipt
            message.next_attempt_at = None

    class Failed(Event):
        error: str
        attempt: int
        next_attempt_at: datetime

        def assign(self, message: OutboxMessage) -> None:
            message.status = "failed"
            message.attempts = self.attempt
            message.last_error = self.error
            message.next_attempt_at = self.next_attempt_at

    class DeadLettered(Event):
        error: str
        attempt: int

        def assign(self, message: OutboxMessage) -> None:
            message.status = "dead_letter"
            message.attempts = self.attempt
            message.last_error = self.error
            message.next_attempt_at = None

    class ApprovalRequested(Event):
        """Proofed, and the workspace wants a person to approve it before it goes."""

        subject: str
        to: list[str]
        body: str

        def assign(self, message: OutboxMessage) -> None:
            message.status = "approval_needed"
            message.subject = self.subject
            message.next_attempt_at = None

    class Approved(Event):
        by: str

        def assign(self, message: OutboxMessage) -> None:
            message.status = "queued"
            message.approved_by = self.by
            message.next_attempt_at = self.timestamp

    class Cancelled(Event):
        """Not sent: its candidacy ended (stalled) before it could go, or another message of
        the same thank-you or nudge (its fallback, or a person's retry) went first."""

        reason: str

        def assign(self, message: OutboxMessage) -> None:
            message.status = "cancelled"
            message.last_error = self.reason
            message.next_attempt_at = None

    class Retried(Event):
        by: str
        reason: str
        # The context rebuilt from the corrected candidacy (older events carry none).
        context: Data | None = None

        def assign(self, message: OutboxMessage) -> None:
            message.status = "queued"
            message.attempts = 0
            message.findings = []
            message.next_attempt_at = self.timestamp
            context = getattr(self, "context", None)
            if context is not None:
                message.context = context

    class Edited(Event):
        """A person rewrote the body (what goes; subject, recipients and channel stay):
        proofed when recorded, proofed again when delivered."""

        by: str
        body: str

        def assign(self, message: OutboxMessage) -> None:
            message.edited_body = self.body
            message.findings = []  # the findings were the old text's

    class Rerouted(Event):
        """A person sent a blocked or dead-lettered message on to another channel (an
        edited body was the old channel's text: it is dropped)."""

        by: str
        reason: str
        channel: str
        previous: str
        context: Data

        def assign(self, message: OutboxMessage) -> None:
            message.channel = self.channel
            message.context = self.context
            message.status = "queued"
            message.attempts = 0
            message.findings = []
            message.last_error = None
            message.next_attempt_at = self.timestamp
            message.edited_body = None

    # The state the events assign, declared for type checkers only: class annotations at
    # run time would make eventsourcing turn the aggregate into a dataclass.
    if TYPE_CHECKING:
        candidacy_id: str
        workspace: str
        kind: str
        channel: str
        trigger: Data  # the event that asked for it: type and version
        context: Data
        status: str
        attempts: int
        next_attempt_at: datetime | None
        findings: list[Data]
        receipt: Data | None
        last_error: str | None
        subject: str | None
        approved_by: str | None
        edited_body: str | None  # a person's text, in place of the template's

    @classmethod
    def queue(cls, *, at: datetime, candidacy_id: str, workspace: str, kind: str, channel: str,
              trigger_type: str, trigger_version: int, context: Data,
              not_before: datetime | None = None) -> OutboxMessage:
        mid = message_id(candidacy_id, trigger_version, channel)
        context = {**context, "message_id": mid, "kind": kind}
        return cls._create(cls.Queued, id=UUID(mid), timestamp=at, candidacy_id=candidacy_id,
                           workspace=workspace, kind=kind, channel=channel,
                           trigger_type=trigger_type, trigger_version=trigger_version,
                           context=context, not_before=not_before)

    def record(self, event_class: type[Event], at: datetime, **data: Any) -> None:
        self.trigger_event(event_class, timestamp=at, **data)

    def row(self) -> MessageRow:
        """The message's current row in ``closer_messages``."""
        return MessageRow(
            id=str(self.id), candidacy_id=self.candidacy_id, workspace=self.workspace,
            kind=self.kind, channel=self.channel, status=self.status, attempts=self.attempts,
            next_attempt_at=self.next_attempt_at, updated_at=self.modified_on,
            summary={"trigger": self.trigger, "subject": self.subject,
                     "findings": self.findings, "last_error": self.last_error,
                     "receipt": self.receipt, "version": self.version,
                     "edited": getattr(self, "edited_body", None) is not None},
        )


# Personal data in a message's events, sealed with a key of the message's own filed under
# its candidacy (engine.personal_data): erasing the candidacy destroys it too.
_TOPIC = "adapters.outbox:OutboxMessage."
seal_fields(_TOPIC + "Queued", "context", group="candidacy_id")
for _name, _paths in {"Proofed": ("subject", "to"), "Blocked": ("findings",),
                      "Sent": ("receipt",), "Failed": ("error",), "DeadLettered": ("error",),
                      "ApprovalRequested": ("subject", "to", "body"),
                      "Retried": ("context",), "Rerouted": ("context",),
                      "Edited": ("body",)}.items():
    seal_fields(_TOPIC + _name, *_paths)


# -- from candidacy events to messages ------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoutedMessage:
    """A message a candidacy event asks for: its kind, channel and who it is to."""

    kind: str
    channel: str
    recipients: tuple[str, ...] = ()


# The channel a kind travels on, by the thank-you's medium where it has one.
_KIND_CHANNEL = {
    MessageKind.NUDGE_VOICEMAIL: "voicemail", MessageKind.NUDGE_EMAIL: "email",
    MessageKind.OFFER_NUDGE: "email",
    MessageKind.REMINDER_THANK_YOU_DUE: "email", MessageKind.REMINDER_NEXT_STEP: "email",
    MessageKind.ALERT_STALLED: "email", MessageKind.ALERT_OVERDUE: "email",
    MessageKind.NEXT_STEP_INVITE: "calendar",
}
_THANK_YOU_CHANNELS = {"email": ("email",), "card": ("card",),
                       "voicemail_and_email": ("voicemail", "email")}
_REMINDER_TRIGGER = {"thank_you_due": "thank_you_due", "thank_you_overdue": "thank_you_overdue",
                     "next_step_reminder": "next_step_tomorrow",
                     "next_step_tomorrow": "next_step_tomorrow"}


# The candidacy's events that ask the outbox to send a thank-you or a nudge.
_THANK_YOU_ASKED = (Candidacy.ThankYouDecided, Candidacy.ThankYouRequested)
_NUDGE_ASKED = (Candidacy.NudgeDecided, Candidacy.NudgeRequested)
_FAILED = (Candidacy.MessageBlocked, Candidacy.MessageDeadLettered)
_WENT = (Candidacy.MessageDelivered, Candidacy.TaskReady)
ROUTED = (Candidacy.ThankYouSent, Candidacy.NudgeSent, *_THANK_YOU_ASKED, *_NUDGE_ASKED,
          *_FAILED, Candidacy.TaskReady, Candidacy.Stalled, Candidacy.ReminderSent,
          Candidacy.NextStepClosed)
"""Candidacy events that may ask for messages."""

# Kinds whose delivery is a fact on the candidacy (a thank-you or a nudge went, or not).
DELIVERY_KINDS = frozenset({MessageKind.THANK_YOU.value, MessageKind.NUDGE_VOICEMAIL.value,
                            MessageKind.NUDGE_EMAIL.value, MessageKind.OFFER_NUDGE.value})
_NUDGE_KIND = {"voicemail": MessageKind.NUDGE_VOICEMAIL, "email": MessageKind.NUDGE_EMAIL}


def route_messages(event: Any, routing: Any, candidacy: Any = None) -> list[RoutedMessage]:
    """The messages ``event`` asks for under the policy's ``routing`` (empty: none);
    a failed message's fallback, or the recruiter's alert when every channel failed,
    read ``candidacy`` as of that event."""
    decided = getattr(event, "decided_by", None)
    routed: list[RoutedMessage] = []
    if isinstance(event, _THANK_YOU_ASKED) or (
            isinstance(event, Candidacy.ThankYouSent) and decided):
        # (`ThankYouSent` with ``decided_by``: a decision of an older history.)
        for kind in routing.kinds_for("next_step_closed"):
            if kind == MessageKind.THANK_YOU:
                for channel in _THANK_YOU_CHANNELS.get(event.medium, ("email",)):
                    routed.append(RoutedMessage(MessageKind.THANK_YOU, channel, tuple(event.to)))
            else:
                routed.append(RoutedMessage(kind, _KIND_CHANNEL[MessageKind(kind)]))
    elif isinstance(event, _NUDGE_ASKED) or (isinstance(event, Candidacy.NudgeSent) and decided):
        trigger = "offer_deadline_near" if "offer" in str((decided or {}).get("rule", "")) \
            else "nudge_due"
        for kind in routing.kinds_for(trigger):
            channel = _KIND_CHANNEL[MessageKind(kind)]
            if trigger == "nudge_due" and channel not in event.channels:
                continue
            routed.append(RoutedMessage(kind, channel))
    elif isinstance(event, _FAILED) and candidacy is not None:
        routed += _after_failure(event, candidacy, routing)
    elif isinstance(event, Candidacy.TaskReady) and event.kind == MessageKind.THANK_YOU.value:
        # The card or voicemail is the candidate's to do today: remind them.
        routed += _on_own_channels(routing, "thank_you_due")
    elif isinstance(event, Candidacy.Stalled):
        routed += _on_own_channels(routing, "stalled")
    elif isinstance(event, Candidacy.ReminderSent):
        if (reminder := _REMINDER_TRIGGER.get(event.kind)) is not None:
            routed += _on_own_channels(routing, reminder)
    elif isinstance(event, Candidacy.NextStepClosed) and event.scheduled_for is not None:
        routed.append(RoutedMessage(MessageKind.NEXT_STEP_INVITE, "calendar"))
    # One message per channel per event: the id is (candidacy, event, channel).
    first: dict[str, RoutedMessage] = {}
    for message in routed:
        first.setdefault(message.channel, message)
    return list(first.values())


def _after_failure(event: Any, candidacy: Any, routing: Any) -> list[RoutedMessage]:
    """A blocked or dead-lettered thank-you or nudge: its fallback channel's message, or,
    when every channel failed, the overdue alert to the recruiter (routing's
    ``thank_you_overdue`` kinds) saying why."""
    if event.fallback is not None:
        if event.kind == MessageKind.THANK_YOU.value:
            pending = candidacy.pending_thank_you or {}
            return [RoutedMessage(MessageKind.THANK_YOU, event.fallback,
                                  tuple(pending.get("to", ())))]
        kind = MessageKind.OFFER_NUDGE if event.kind == MessageKind.OFFER_NUDGE.value \
            else _NUDGE_KIND[event.fallback]
        return [RoutedMessage(kind, event.fallback)]
    item = candidacy.delivery_item(event.trigger_version)
    if item is None or not item.get("failed"):
        return []  # another channel of it is still on its way
    return _on_own_channels(routing, "thank_you_overdue")


def _on_own_channels(routing: Any, trigger: str) -> list[RoutedMessage]:
    """The kinds ``routing`` sends on ``trigger``, each on its kind's channel."""
    return [RoutedMessage(k, _KIND_CHANNEL[MessageKind(k)]) for k in routing.kinds_for(trigger)]


def context_data(candidacy: Candidacy, event: Any, routed: RoutedMessage,
                 recruiter: Mapping[str, Any] | None) -> Data:
    """The `MessageContext` fields (as JSON) for ``routed``, from the candidacy as of
    ``event``; validated only at delivery (an invalid one is recorded as Blocked)."""
    interview = candidacy.interview
    step = getattr(candidacy, "next_step", None)
    offers = sorted(candidacy.offers or [], key=lambda o: o["deadline"])
    data: Data = {
        "candidate": {k: v for k, v in candidacy.candidate.items()
                      if k in ("name", "email", "phone")},
        "company": candidacy.company, "role": candidacy.role,
        "interview_format": interview.get("format", "in_person"),
        "interviewers": [{k: v for k, v in i.items() if k in ("name", "title", "email", "phone")}
                         for i in interview.get("interviewers", [])],
        "timezone": candidacy.timezone,
        "recipients": list(routed.recipients),
        "interviewed_at": _iso(interview.get("interviewed_at")),
        "occurred_at": _iso(getattr(event, "occurred_at", None) or event.timestamp),
        "candidacy_id": str(candidacy.id),
    }
    if step:
        data["next_step"] = {"description": step["description"],
                             "scheduled_for": _iso(step.get("scheduled_for"))}
    if offers:
        data["competing_offer"] = {"company": offers[0]["company"],
                                   "deadline": _iso(offers[0]["deadline"])}
    if recruiter:
        data["recruiter"] = dict(recruiter)
    note = getattr(event, "reason", None)
    alert = (MessageKind.ALERT_OVERDUE, MessageKind.ALERT_STALLED)
    if isinstance(event, _FAILED) and routed.kind in alert:
        item = candidacy.delivery_item(event.trigger_version) or {}
        what = "thank-you" if event.kind == MessageKind.THANK_YOU.value else "nudge"
        note = f"The {what} could not be sent on any channel ({item.get('failed')})."
    if note:
        data["note"] = note
    fit = candidacy.candidate.get("why_i_fit")
    if fit:
        data["fit"] = fit  # the thank-you's "why I fit" line, as the candidacy has it now
    return data


def _gap_minutes(routed: RoutedMessage, policy: Any) -> int:
    """Minutes between a voicemail and the email that follows it."""
    if routed.kind == MessageKind.THANK_YOU:
        return int(policy.thank_you.email_after_voicemail_within_minutes)
    return int(policy.nudge.channel_gap_minutes)


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _passed_over(notification: Any, error: Exception, now: datetime) -> PassedOver:
    """The durable record (and the error log line) of a notification the outbox passes
    over: its own event, or the candidacy history it needs, cannot be read, or its
    messages cannot be worked out from it (an event that decodes but lacks its fields)."""
    reason = str(error) if isinstance(error, CorruptHistory) else (
        f"its messages cannot be worked out: {type(error).__name__}: {error}")
    log.error("outbox passed over an event", notification_id=notification.id,
              candidacy_id=str(notification.originator_id),
              version=notification.originator_version, error=reason,
              exc_info=not isinstance(error, CorruptHistory))
    return PassedOver(TRACKING_NAME, notification.id, str(notification.originator_id),
                      notification.originator_version, reason, now)


def _summary(adapter: Adapter, receipt: Any, message: OutboxMessage) -> Data:
    """The adapter's report of ``receipt``; the channel took the message already, so a
    report that fails still records it sent (a retry would send it twice)."""
    try:
        return adapter.report(receipt)
    except Exception as error:  # any adapter bug, after the hand-off
        log.exception("delivery report failed", message_id=str(message.id))
        return {"channel": message.channel, "message_id": str(message.id), "status": "sent",
                "report_error": f"{type(error).__name__}: {error}"}


# -- the dispatcher -------------------------------------------------------------------


@dataclass
class DispatchReport:
    """What one `Dispatcher.run_once` did."""

    standby: bool = False
    notifications: int = 0
    queued: int = 0
    sent: int = 0
    blocked: int = 0
    failed: int = 0
    dead_lettered: int = 0
    awaiting_approval: int = 0
    passed_over: int = 0  # notifications that cannot be read (see `PassedOver`)

    @property
    def idle(self) -> bool:
        return not (self.notifications or self.queued or self.sent or self.blocked
                    or self.failed or self.dead_lettered or self.awaiting_approval
                    or self.passed_over)


@dataclass
class Backoff:
    """Exponential backoff: ``base * factor**(attempt-1)``, capped; dead after ``max_attempts``."""

    base_seconds: float = 60.0
    factor: float = 2.0
    cap_seconds: float = 6 * 3600.0
    max_attempts: int = 5

    def delay(self, attempt: int) -> timedelta:
        return timedelta(seconds=min(self.cap_seconds,
                                     self.base_seconds * self.factor ** (attempt - 1)))


@dataclass
class Dispatcher:
    """Follows the candidacies' notifications into messages and delivers them.

    ``adapters`` maps a channel name to a ready adapter (or the dispatcher builds
    one from ``registry`` and ``channel_settings``); ``reroute`` moves a channel to
    another per workspace (e.g. ``{"ats": {"email": "webhook"}}``: that workspace's
    email goes to its ATS webhook).  ``database_url`` is needed for the PostgreSQL
    advisory lock; without it (or on SQLite) a single dispatcher is assumed.
    """

    app: Any  # engine.application.Candidacies
    adapters: dict[str, Adapter] = field(default_factory=dict)
    registry: Registry | None = None
    channel_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    reroute: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    recruiter: Mapping[str, Any] | None = None
    rules: ProofRules = DEFAULT_RULES
    backoff: Backoff = field(default_factory=Backoff)
    page_size: int = 200
    batch_size: int = 100
    database_url: str | None = None
    approval_workspaces: frozenset[str] = frozenset()
    _lock: Any = None

    def __post_init__(self) -> None:
        use(self.app)  # the outbox's tables, written with its saves

    # -- running ------------------------------------------------------------------

    def run_once(self, *, drain: bool = True) -> DispatchReport:
        """Follow every new notification, then deliver what is due (all of it with
        ``drain``, else one batch).  Stands by (does nothing) without the lock."""
        report = DispatchReport()
        if not self.acquire():
            report.standby = True
            return report
        while True:
            while self.follow(report):
                pass
            delivered = 0
            while (handled := self.deliver(report)) and drain:
                delivered += handled
            # What was delivered may ask for more (a fallback, an alert): follow it too.
            if not (drain and delivered and self._unfollowed()):
                return report

    def _unfollowed(self) -> bool:
        recorder = self.app.recorder
        position = recorder.max_tracking_id(TRACKING_NAME) or 0
        return bool(recorder.select_notifications(start=position, limit=1,
                                                  inclusive_of_start=False))

    def run_forever(self, every: float, stop: Any = None,
                    sleep: Callable[[float], Any] = time.sleep,
                    on_pass: Callable[[], Any] | None = None) -> None:
        """Dispatch every ``every`` seconds until ``stop`` (a threading.Event) is set;
        ``on_pass`` is called after each pass that completed (a supervisor's heartbeat)."""
        while stop is None or not stop.is_set():
            report = self.run_once()
            if not report.idle:
                log.info("dispatch", **{k: v for k, v in vars(report).items()})
            if on_pass is not None:
                on_pass()
            if stop is not None:
                stop.wait(every)
            else:
                sleep(every)

    # -- the advisory lock ------------------------------------------------------------

    def acquire(self) -> bool:
        """True when this dispatcher may work (it holds the PostgreSQL advisory lock,
        or the store is SQLite)."""
        url = self.database_url or ""
        if not url.startswith(("postgresql:", "postgres:")):
            return True
        if self._lock is not None:
            try:
                self._lock.execute("SELECT 1")
                return True
            except Exception:  # the lock's connection died: the lock went with it
                self.release()
        import psycopg

        connection = psycopg.connect(url, autocommit=True)
        row = connection.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_KEY,)).fetchone()
        if row is None or not row[0]:
            connection.close()
            return False
        self._lock = connection
        return True

    def release(self) -> None:
        if self._lock is not None:
            try:
                self._lock.close()  # ends the session: PostgreSQL releases the lock
            finally:
                self._lock = None

    # -- first half: notifications -> queued messages ------------------------------------

    def follow(self, report: DispatchReport | None = None) -> bool:
        """Queue the messages of one page of notifications; True if a page was read."""
        report = report if report is not None else DispatchReport()
        recorder = self.app.recorder
        position = recorder.max_tracking_id(TRACKING_NAME) or 0
        page = recorder.select_notifications(start=position, limit=self.page_size,
                                             inclusive_of_start=False)
        if not page:
            return False
        messages: dict[UUID, OutboxMessage] = {}
        passed: list[PassedOver] = []
        now = self.app.clock.now()
        for notification in page:
            if not notification.topic.startswith(_CANDIDACY_TOPIC):
                continue
            try:
                event = self.app.mapper.to_domain_event(notification)
                asked = self.messages_for(event, now)
            except (OperationalError, InterfaceError):
                raise  # the store itself: this pass ends, the page is read again next time
            except Exception as error:  # noqa: BLE001 - one bad event never stops the rest
                # Quarantined, never a stop: recorded with the position, then passed over.
                passed.append(_passed_over(notification, error, now))
                continue
            for message in asked:
                messages.setdefault(message.id, message)
        fresh = [m for m in messages.values() if not self._exists(m.id)]
        try:
            self.app.save(*fresh, message_rows=[m.row() for m in fresh], passed_over=passed,
                          position=Tracking(TRACKING_NAME, page[-1].id))
        except IntegrityError:
            # Another follower recorded this page first (or a message already exists):
            # nothing is lost, the next call starts from the recorded position.
            log.warning("outbox page already recorded", start=position + 1, end=page[-1].id)
            return True
        report.notifications += len(page)
        report.queued += len(fresh)
        report.passed_over += len(passed)
        return True

    def messages_for(self, event: Any, now: datetime) -> list[OutboxMessage]:
        """The messages a candidacy event asks for (none for most events)."""
        if not isinstance(event, ROUTED):
            return []
        candidacy = self.app.get(event.originator_id, event.workspace,
                                 version=event.originator_version)
        policy = self.app.policies.of(candidacy)
        out = []
        voicemail_at: datetime | None = None
        for routed in route_messages(event, policy.routing, candidacy):
            channel = self.reroute.get(candidacy.workspace, {}).get(routed.channel,
                                                                    routed.channel)
            context = context_data(candidacy, event, routed, self.recruiter)
            not_before = None
            if routed.channel == "voicemail":
                voicemail_at = now
            elif routed.channel == "email" and voicemail_at is not None:
                # Voicemail first; the email follows it minutes later, as the policy says.
                not_before = voicemail_at + timedelta(minutes=_gap_minutes(routed, policy))
            out.append(OutboxMessage.queue(
                at=now, candidacy_id=str(candidacy.id), workspace=candidacy.workspace,
                kind=str(routed.kind), channel=channel, trigger_type=type(event).__name__,
                trigger_version=event.originator_version, context=context,
                not_before=not_before))
        return out

    def _exists(self, uid: UUID) -> bool:
        return bool(self.app.recorder.select_events(uid, limit=1))

    # -- second half: deliver -------------------------------------------------------------

    def deliver(self, report: DispatchReport | None = None) -> int:
        """Deliver one batch of due messages; the number handled.

        A message that cannot even be loaded or saved (say another process changed it
        meanwhile) is logged and left for the next pass; the rest of the batch goes on.
        It is not counted as handled, so a batch of nothing but such messages ends the
        drain instead of looping.  An unreachable store stops the pass (it raises).
        """
        report = report if report is not None else DispatchReport()
        rows = deliverable_messages(self.app, self.app.clock.now(), limit=self.batch_size)
        handled = 0
        for row in rows:
            try:
                self.deliver_one(UUID(row.id), report)
            except (OperationalError, InterfaceError):
                raise
            except Exception as error:  # one message never stops the batch
                log.exception("message not handled", message_id=row.id, channel=row.channel,
                              error=f"{type(error).__name__}: {error}")
                continue
            handled += 1
        return handled

    def deliver_one(self, uid: UUID, report: DispatchReport) -> None:
        """Render, proof and deliver one message, and record what happened to it (and,
        for a thank-you or nudge, what the channel did on the candidacy, in the same save).

        Any exception while rendering or delivering (an adapter bug, a full or read-only
        disk, the network, an encoding) is recorded on this message as `Failed`, retried
        with back-off, or `DeadLettered` after ``max_attempts``; it never stops the
        dispatcher, and the back-off moves the message behind the others.
        """
        message: OutboxMessage = self.app.repository.get(uid)
        if message.status not in ("queued", "failed"):
            return
        try:
            outcome = self._attempt(message, report)
        except Exception as error:  # noqa: BLE001 - recorded on the message, retried
            outcome = self._failed(message, error, report)
        if outcome is None:
            return self._save(message)
        command, facts = outcome
        self._settle(message, command, **facts)

    def _attempt(self, message: OutboxMessage,
                 report: DispatchReport) -> tuple[str, Data] | None:
        """Record on ``message`` what rendering, proofing and delivering it gives (not
        saved); the candidacy's delivery fact to record with it, if any."""
        uid = message.id
        now = self.app.clock.now()
        if self._candidacy_erased(message):
            # Its personal data is destroyed: nothing of it goes out any more.
            message.record(OutboxMessage.Cancelled, now, reason="the candidacy was erased")
            log.info("message cancelled", message_id=str(uid),
                     candidacy_id=message.candidacy_id)
            return None
        if message.kind in DELIVERY_KINDS and self._candidacy_stalled(message):
            # A thank-you or nudge for a candidacy that ended meanwhile is never sent.
            message.record(OutboxMessage.Cancelled, now, reason="the candidacy has ended")
            log.info("message cancelled", message_id=str(uid),
                     candidacy_id=message.candidacy_id)
            return None
        if message.kind in DELIVERY_KINDS and (elsewhere := self.carried_elsewhere(message)):
            # A person's retry and the automatic fallback both queued: one thank-you, not two.
            message.record(OutboxMessage.Cancelled, now, reason=elsewhere)
            log.info("message cancelled", message_id=str(uid), why=elsewhere)
            return None
        broken = first_break(self.app.recorder, UUID(message.candidacy_id))
        if broken is not None:
            # Not sent, and nothing recorded on the candidacy: its stored history is not
            # what was recorded (docs/audit.md); a person retries it once it is restored.
            findings = [{"code": "chain-broken", "excerpt": "", "message": (
                f"not sent: candidacy {message.candidacy_id}'s stored history is not what "
                f"was recorded ({broken.line()}); an admin runs `closer audit verify` and "
                "restores it, then retries this message.")}]
            message.record(OutboxMessage.Blocked, now, findings=findings)
            report.blocked += 1
            log.warning("message blocked: chain broken", message_id=str(uid),
                        candidacy_id=message.candidacy_id, finding=broken.line())
            return None
        try:
            adapter = self.adapter(message.channel)
            context = MessageContext.model_validate(message.context)
        except (ValidationError, AdapterError, ValueError, TypeError) as error:
            findings = [{"code": "context", "message": f"cannot build the {message.channel} "
                                                       f"message: {plain_error(error)}.",
                         "excerpt": ""}]
            message.record(OutboxMessage.Blocked, now, findings=findings)
            report.blocked += 1
            return "block_message", {"findings": findings}
        rendered, proof = with_edit(message, *prepare(adapter, context, self.rules),
                                    context, self.rules)
        if rendered is None or not proof.passed:
            findings = [f.as_dict() for f in proof.findings]
            message.record(OutboxMessage.Blocked, now, findings=findings)
            report.blocked += 1
            log.warning("message blocked", message_id=str(uid),
                        findings=[f.code for f in proof.findings])
            return "block_message", {"findings": findings}
        if message.workspace in self.approval_workspaces and message.approved_by is None:
            message.record(OutboxMessage.ApprovalRequested, now, subject=rendered.subject,
                           to=list(rendered.to), body=rendered.body)
            report.awaiting_approval += 1
            return None
        message.record(OutboxMessage.Proofed, now, subject=rendered.subject,
                       to=list(rendered.to))
        receipt = adapter.deliver(rendered)
        sent_at = self.app.clock.now()
        message.record(OutboxMessage.Sent, sent_at, receipt=_summary(adapter, receipt, message))
        report.sent += 1
        if getattr(receipt, "status", None) == "task":
            # A card or voicemail the candidate still has to do: a person confirms it.
            return "ready_task", {}
        return "deliver_message", {"occurred_at": sent_at}

    def _failed(self, message: OutboxMessage, error: Exception,
                report: DispatchReport) -> tuple[str, Data] | None:
        """Record ``error`` on ``message``: `Failed` with back-off, or `DeadLettered` (the
        candidacy's fact to record with it)."""
        attempt = message.attempts + 1
        now = self.app.clock.now()
        if isinstance(error, DeliveryError):
            reason, retryable = str(error), error.retryable
        else:
            # Not a channel's own refusal: a bug or the machine (disk, encoding); it may
            # be fixed meanwhile, so it is retried like a temporary failure.
            reason, retryable = (f"the {message.channel} channel raised "
                                 f"{type(error).__name__} handling message {message.id}: "
                                 f"{error}"), True
        log.warning("delivery failed", message_id=str(message.id), channel=message.channel,
                    attempt=attempt, error=reason, error_type=type(error).__name__,
                    exc_info=not isinstance(error, DeliveryError))
        if retryable and attempt < self.backoff.max_attempts:
            message.record(OutboxMessage.Failed, now, error=reason, attempt=attempt,
                           next_attempt_at=now + self.backoff.delay(attempt))
            report.failed += 1
            return None
        message.record(OutboxMessage.DeadLettered, now, error=reason, attempt=attempt)
        report.dead_lettered += 1
        return "dead_letter_message", {"error": reason}

    def _save(self, message: OutboxMessage) -> None:
        self.app.save(message, message_rows=[message.row()])

    def _candidacy_erased(self, message: OutboxMessage) -> bool:
        keyring = getattr(self.app, "keyring", None)
        return keyring is not None and keyring.erased(message.candidacy_id)

    def _candidacy_stalled(self, message: OutboxMessage) -> bool:
        row = self.app.row(message.candidacy_id)
        return row is not None and row.stage == Stage.STALLED

    def _settle(self, message: OutboxMessage, command: str, **data: Any) -> None:
        """Save the message's new events and, for a thank-you or nudge, the candidacy's
        delivery fact (``command`` on the candidacy) in the SAME save: the fact is recorded
        exactly when the message's outcome is.  A candidacy changed meanwhile is read
        again and the fact decided again; one that refuses it (stalled, or a later
        round) gets nothing: the outcome stays on the message, logged."""
        if message.kind not in DELIVERY_KINDS:
            return self._save(message)
        events = list(message.pending_events)
        for _ in range(_SETTLE_ATTEMPTS):
            candidacy = self.app.repository.get(UUID(message.candidacy_id))
            try:
                self._record_delivery_fact(candidacy, message, command, data)
            except IllegalCommand as refused:
                log.warning("delivery fact refused by the candidacy", message_id=str(message.id),
                            candidacy_id=message.candidacy_id, fact=command, why=str(refused))
                return self._save(message)
            try:
                self.app.save(message, candidacy, message_rows=[message.row()],
                              rows=[self.app.current_row(candidacy)])
                return None
            except IntegrityError:
                # The candidacy moved meanwhile (a person's command, the scheduler): the
                # message's events go again with the fact decided on the stored state.
                message.pending_events[:] = events
        raise IntegrityError(f"candidacy {message.candidacy_id} kept changing while the "
                             f"outcome of message {message.id} was recorded")

    def _record_delivery_fact(self, candidacy: Candidacy, message: OutboxMessage,
                              command: str, data: Data) -> None:
        """``command`` (``deliver_message``, ``block_message``, ...) on the candidacy, on
        the channel the policy chose, with the fallback channel after a failure."""
        chosen = self._chosen_channel(message)
        args: Data = {"message_id": str(message.id), "kind": message.kind,
                      "channel": chosen, "trigger_version": message.trigger["version"]}
        if command in ("block_message", "dead_letter_message"):
            args["fallback"] = fallback_channel(candidacy, self.app.policies.of(candidacy),
                                                message.trigger["version"], chosen)
        actor = Actor(user=DISPATCHER, workspace=candidacy.workspace)
        getattr(candidacy, command)(actor, self.app.clock.now(), **args, **data)

    def _chosen_channel(self, message: OutboxMessage) -> str:
        """The channel the policy chose (a workspace's reroute may carry it on another)."""
        for chosen, carried_on in self.reroute.get(message.workspace, {}).items():
            if carried_on == message.channel:
                return chosen
        return message.channel

    def adapter(self, channel: str) -> Adapter:
        if channel not in self.adapters:
            registry = self.registry or Registry()
            self.adapters[channel] = registry.create(
                channel, **dict(self.channel_settings.get(channel, {})))
        return self.adapters[channel]

    # -- people ---------------------------------------------------------------------------

    def approve(self, message_id: str, *, by: str,
                expected_version: int | None = None) -> OutboxMessage:
        """A person approves a proofed message; it is delivered on the next pass.  The one
        path of `POST .../messages/{id}/approve`, the dashboard's form and `closer messages
        approve`.  Refused, recording nothing: a message at another version than
        ``expected_version`` or changed while this was recorded (`StaleMessage`: what was
        read is not what would be approved, e.g. its text was edited since), or in another
        state (ValueError).  Answers the message as approved."""
        message = self._at(message_id, expected_version)
        if message.status != "approval_needed":
            raise ValueError(f"message {message_id} is {message.status.replace('_', ' ')}; "
                             "only a message awaiting approval can be approved")
        message.record(OutboxMessage.Approved, self.app.clock.now(), by=by)
        self._save_by_hand(message)
        return message

    def _at(self, message_id: str, expected_version: int | None) -> OutboxMessage:
        """The message, if at ``expected_version`` (None: any), else `StaleMessage`."""
        message: OutboxMessage = self.app.repository.get(UUID(str(message_id)))
        if expected_version is not None and message.version != expected_version:
            raise StaleMessage(str(message.id), expected_version, message.version)
        return message

    def _save_by_hand(self, message: OutboxMessage) -> None:
        """Save a person's decision; `StaleMessage` if the message changed meanwhile."""
        try:
            self._save(message)
        except IntegrityError:  # the outbox (or another person) changed it meanwhile
            now_at = self.app.repository.get(message.id).version
            raise StaleMessage(str(message.id), message.version - 1, now_at) from None

    def render(self, message: OutboxMessage, body: str | None = None
               ) -> tuple[Message | None, ProofReport]:
        """``message`` rendered and proofed exactly as a delivery would now (with its
        edited body, or ``body`` in its place); `EditRefused` if it cannot be built."""
        try:
            adapter = self.adapter(message.channel)
            context = MessageContext.model_validate(message.context)
        except (ValidationError, AdapterError, ValueError, TypeError) as error:
            raise EditRefused(f"cannot build the {message.channel} message: "
                              f"{plain_error(error)}") from None
        return with_edit(message, *prepare(adapter, context, self.rules), context, self.rules,
                         body=body)

    def edit(self, message_id: str, body: str, *, by: str, expected_version: int | None = None,
             dry_run: bool = False) -> tuple[OutboxMessage, Message, ProofReport]:
        """A person's own text for a message awaiting approval, blocked or dead-lettered,
        recorded as `OutboxMessage.Edited` (unless ``dry_run``) and delivered in place of
        the template's once approved or retried.  Refused, recording nothing: a message
        at another version than ``expected_version`` (`StaleMessage`), in another state
        (ValueError), a text empty, too long or that proofing would block, or a channel
        whose text is printed into an attachment (`EditRefused`).  Answers the message,
        the message as it would go, and its proofing."""
        message = self._at(message_id, expected_version)
        if message.status not in EDITABLE:
            raise ValueError(f"message {message_id} is {message.status.replace('_', ' ')}; "
                             "only a message awaiting approval, blocked or dead-lettered "
                             "can be edited")
        text = "\n".join(line.rstrip() for line in body.replace("\r\n", "\n").split("\n"))
        text = text.strip("\n")
        if not text.strip():
            raise EditRefused("the text is empty: write the message (or leave it unedited)")
        if len(text) > BODY_LIMIT:
            raise EditRefused(f"the text is {len(text):,} characters long; at most "
                              f"{BODY_LIMIT:,}")
        rendered, report = self.render(message, text)
        if rendered is None:
            raise EditRefused("the message cannot be rendered: " + "; ".join(
                f.message for f in report.findings), [f.as_dict() for f in report.findings])
        if rendered.attachments:
            raise EditRefused(f"a {message.channel} message's text is printed into its "
                              f"{rendered.attachments[0].filename.rsplit('.', 1)[-1]} when "
                              "rendered; correct a detail on the candidacy instead")
        if not report.passed and not dry_run:
            raise EditRefused("proofing would block it: " + "; ".join(
                f.message for f in report.findings), [f.as_dict() for f in report.findings])
        if not dry_run:
            message.record(OutboxMessage.Edited, self.app.clock.now(), by=by, body=text)
            self._save_by_hand(message)
        return message, rendered, report

    def retry(self, message_id: str, *, by: str, reason: str = "retried by hand",
              expected_version: int | None = None) -> None:
        """Re-queue a dead-lettered or blocked message (a person's decision, recorded),
        its context rebuilt with every correction recorded on the candidacy since.
        `StaleMessage` (nothing recorded) if it is not at ``expected_version`` or changed
        while this was recorded, as `approve`."""
        message = self._stuck(message_id, "retried", expected_version)
        self._not_carried_elsewhere(message, "retried")
        message.record(OutboxMessage.Retried, self.app.clock.now(), by=by, reason=reason,
                       context=self.corrected_context(message))
        self._save_by_hand(message)

    def reroute_message(self, message_id: str, channel: str, *, by: str,
                        reason: str = "rerouted by hand",
                        expected_version: int | None = None) -> None:
        """Send a dead-lettered or blocked message on ``channel`` instead (e.g. a voicemail
        task for an interviewer with no email), with the corrected context; recorded;
        `StaleMessage` as `retry`.
        (Not ``reroute``: that is the field moving a workspace's channel to another.)"""
        message = self._stuck(message_id, "rerouted", expected_version)
        self._not_carried_elsewhere(message, "rerouted")
        refuse_postal(channel)
        known = set(self.adapters) | set(self.channel_settings) | set(
            (self.registry or Registry()).names())
        if channel not in known:
            raise UnknownChannel(f"no adapter for channel {channel!r}; known channels: "
                                 f"{', '.join(sorted(known))}")
        if channel == message.channel:
            raise ValueError(f"message {message_id} is already on {channel}; retry it instead")
        message.record(OutboxMessage.Rerouted, self.app.clock.now(), by=by, reason=reason,
                       channel=channel, previous=message.channel,
                       context=self.corrected_context(message))
        self._save_by_hand(message)

    def _stuck(self, message_id: str, done: str,
               expected_version: int | None = None) -> OutboxMessage:
        """The message, if it is blocked or dead-lettered (else ValueError saying why) and
        at ``expected_version`` (else `StaleMessage`)."""
        message = self._at(message_id, expected_version)
        if message.status not in ("dead_letter", "blocked"):
            raise ValueError(f"message {message_id} is {message.status}; only a dead letter "
                             f"or a blocked message can be {done}")
        return message

    def _not_carried_elsewhere(self, message: OutboxMessage, done: str) -> None:
        elsewhere = self.carried_elsewhere(message)
        if elsewhere:
            raise ValueError(f"message {message.id} cannot be {done}: {elsewhere}")

    def carried_elsewhere(self, message: OutboxMessage) -> str | None:
        """Why ``message`` must not go (None: nothing against it): another message of the
        same thank-you or nudge, linked to it by a fallback (the one queued when it
        failed, or the one it stood in for), was delivered or made a task.  Messages of
        one decision on two channels at once (voicemail and email) are not linked."""
        uid, own = UUID(message.candidacy_id), str(message.id)
        facts = [e for e in self.app.events.get(uid) if isinstance(e, (*_FAILED, *_WENT))]
        trigger_of = {e.message_id: e.trigger_version for e in facts}
        trigger_of[own] = message.trigger["version"]
        # A failed message and the fallback queued from its fact (whose trigger that is).
        links = [{e.message_id, *(m for m, v in trigger_of.items() if v == e.originator_version)}
                 for e in facts if isinstance(e, _FAILED) and e.fallback is not None]
        chain = {own}
        grown = True
        while grown:
            grown = False
            for linked in links:
                if linked & chain and not linked <= chain:
                    chain |= linked
                    grown = True
        for fact in facts:
            if isinstance(fact, _WENT) and fact.message_id in chain and fact.message_id != own:
                what = ("delivered" if isinstance(fact, Candidacy.MessageDelivered)
                        else "made a task waiting for the candidate")
                item = "thank-you" if message.kind == MessageKind.THANK_YOU.value else "nudge"
                return (f"its {item} was already {what} on "
                        f"{fact.channel} (message {fact.message_id})")
        return None

    def corrected_context(self, message: OutboxMessage) -> Data:
        """The message's context built again from its candidacy as of the event that
        caused it, with every correction recorded since applied (contacts, names,
        titles, "why I fit"); the recipients follow a renamed interviewer."""
        uid = UUID(message.candidacy_id)
        version = message.trigger["version"]
        candidacy = self.app.repository.get(uid, version=version)
        [event] = self.app.events.get(uid, gt=version - 1, lte=version)
        recipients = list(message.context.get("recipients") or [])
        for later in self.app.events.get(uid, gt=version):
            if not isinstance(later, CORRECTIONS):
                continue
            later.assign(candidacy)  # its data only: the stage and version stay the trigger's
            if isinstance(later, Candidacy.NameCorrected) and later.person == "interviewer":
                recipients = [later.after if r == later.before else r for r in recipients]
        routed = RoutedMessage(message.kind, message.channel, tuple(recipients))
        context = context_data(candidacy, event, routed, self.recruiter)
        return {**context, "message_id": str(message.id), "kind": message.kind}


EDITABLE = ("approval_needed", "blocked", "dead_letter")
"""The statuses in which a person may edit a message's body."""
BODY_LIMIT = 5_000
"""The longest edited body, in characters: far above proofing's word limits, and within
the 64 KiB a request body may have even with every character escaped in JSON."""


def with_edit(message: OutboxMessage, rendered: Message | None, report: ProofReport,
              context: MessageContext, rules: ProofRules, *, body: str | None = None
              ) -> tuple[Message | None, ProofReport]:
    """``rendered`` with the person's edited body (or ``body``) in place of the template's,
    proofed again; as it was when the message has no edit."""
    body = body if body is not None else getattr(message, "edited_body", None)
    if body is None or rendered is None:
        return rendered, report
    mine = replace(rendered, body=body)
    return mine, proof_message(mine, context, rules)


def history(app: Any, message_id: str) -> list[tuple[str, Data]]:
    """The message's events as (type, data), oldest first."""
    out = []
    for event in app.events.get(UUID(str(message_id))):
        data = {k: v for k, v in event.__dict__.items()
                if k not in ("originator_id", "originator_version", "originator_topic")}
        out.append((type(event).__name__, data))
    return out


