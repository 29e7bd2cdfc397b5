"""The service layer: one eventsourcing application, one method per playbook command.

Every command reads *get → call a command method → save*.  Around that one path:
workspace isolation (another workspace's candidacy is simply not found), an
optional expected version (optimistic concurrency), an optional idempotency key
(a retry records nothing and answers the first response), and time from the
injected clock.  The idempotency record and the candidacy's current row are
saved in the same transaction as the events (see `engine.store`).  The candidacies
this object's commands saved last are kept as they left them (`RecentCandidacies`):
the next command on one skips reading it back, and a stale copy is refused by the
save's version check, the command then decided again on the stored state.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import orjson
import structlog
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import EventSourcingError, Snapshot
from eventsourcing.persistence import (
    IntegrityError,
    Mapper,
    PersistenceError,
    StoredEvent,
    Transcoder,
)
from eventsourcing.utils import get_topic
from pydantic import BaseModel

from engine.candidacy import Candidacy
from engine.clock import Clock, SystemClock
from engine.codec import APPLICATION_NAME, QuarantiningMapper, mapper_of, reason, transcoder_of
from engine.decisions import Action, due_prefix, held_until, manual_refusal, next_due_at, plan
from engine.errors import (
    CandidacyNotFound,
    CloserError,
    CorruptHistory,
    IdempotencyKeyReused,
    InvalidInput,
    PlaybookRule,
    VersionConflict,
)
from engine.lifecycle import TRANSITIONS
from engine.personal_data import Erasure, Keyring
from engine.policy_book import PolicyBook
from engine.store import CandidacyRow, IdempotencyRecord

if TYPE_CHECKING:
    from engine.audit_store import (
        AuditedMemoryRecorder,
        AuditedPostgresRecorder,
        AuditedSQLiteRecorder,
    )
from engine.values import (
    Actor,
    Correction,
    NewCandidacy,
    NextRound,
    Offer,
    Reply,
    ReplyKind,
    ThankYou,
    aware,
    validated,
)

log = structlog.get_logger("closer.engine")

SNAPSHOT_INTERVAL = 20
RECENT_CANDIDACIES = 1000
"""How many candidacies a `Candidacies` keeps as its commands left them (0: none)."""
DEFAULT_POLICY = {"name": "playbook", "version": 1}
_BASE_FIELDS = frozenset(
    {"originator_id", "originator_version", "timestamp", "originator_topic", "actor",
     "on_behalf_of", "workspace", "stage", "decided_by"}
)


_OPTIONAL_FIELDS = frozenset({"occurred_at", "override", "applied_on"})
"""Fields added to events with a None default: the history shows them only when given."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a command did: the candidacy's id, version and stage after it, and any
    data it produced (e.g. a hesitation's id).  ``replayed`` when an idempotency key
    answered with the first response instead of recording again."""

    candidacy_id: str
    version: int
    stage: str
    data: dict[str, Any] = field(default_factory=dict)
    replayed: bool = False


@dataclass
class PolicyRun:
    """What `apply_policies` recorded, per candidacy id, which changed meanwhile, and
    which were passed over because their history cannot be read (`CorruptHistory`)."""

    applied: dict[str, list[Action]] = field(default_factory=dict)
    conflicts: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)

    def merge(self, other: PolicyRun) -> None:
        self.applied.update(other.applied)
        self.conflicts.extend(other.conflicts)
        self.corrupt.extend(other.corrupt)


@dataclass
class PolicyDecisions:
    """What `decide_policies` applied in memory to a page of candidacies, not yet saved:
    the candidacies with new events (and their next due moment), and the rows of
    those whose due action waits for its send window."""

    now: datetime
    limit: int
    run: PolicyRun = field(default_factory=PolicyRun)
    decided: list[tuple[Candidacy, datetime | None]] = field(default_factory=list)
    held: list[CandidacyRow] = field(default_factory=list)


_UNKNOWN = object()
_UNREADABLE_SNAPSHOT = object()


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One recorded event, as auditors read it."""

    version: int
    type: str
    at: datetime
    actor: str
    on_behalf_of: str | None
    workspace: str
    stage: str
    data: dict[str, Any]
    decided_by: dict[str, Any] | None


class Candidacies(Application[UUID]):
    """Closer's application service: every candidacy command and query."""

    name = APPLICATION_NAME
    snapshotting_intervals = {Candidacy: SNAPSHOT_INTERVAL}
    if TYPE_CHECKING:  # the store's recorder: the library's, with Closer's tables and queries
        # (eventsourcing_env names the audited recorders: Closer's with the event chain.)
        recorder: AuditedSQLiteRecorder | AuditedPostgresRecorder | AuditedMemoryRecorder

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        clock: Clock | None = None,
        default_policy: dict[str, Any] | None = None,
        recent: int = RECENT_CANDIDACIES,
    ) -> None:
        super().__init__(env)
        self.clock: Clock = clock or SystemClock()
        self.policies = PolicyBook(self)
        self.default_policy = dict(default_policy or DEFAULT_POLICY)
        self.recent = RecentCandidacies(recent)
        # Personal data sealed per candidacy (engine.personal_data): the store's keys.
        self.keyring = Keyring(self.recorder)
        if isinstance(self.mapper, QuarantiningMapper):  # (a MAPPER_TOPIC of one's own: not)
            self.mapper.keyring = self.keyring

    def _record(self, processing_event: Any) -> Any:
        # A new candidacy's (or outbox message's) key goes in its first event's transaction.
        # Steps around `save`: eventsourcing 9.5.6's `Application.save` collects the events,
        # then calls `_record(processing_event)`, which puts them with ``saved_kwargs``
        # (tests/test_erasure.py::test_the_library_still_records_a_save_through_record).
        keys = self.keyring.new_keys(processing_event.events)
        if not keys:
            return super()._record(processing_event)
        saved = processing_event.saved_kwargs
        saved["subject_keys"] = [*(saved.get("subject_keys") or ()), *keys]
        try:
            return super()._record(processing_event)
        finally:
            self.keyring.settle(keys)

    def construct_transcoder(self) -> Transcoder:
        return transcoder_of(self.factory)  # shared with replay (engine.codec)

    def construct_mapper(self) -> Mapper[UUID]:
        return mapper_of(self.factory)

    # -- commands ---------------------------------------------------------------------

    def record_interview(
        self, actor: Actor, details: NewCandidacy | dict[str, Any], *,
        policy: dict[str, Any] | None = None, idempotency_key: str | None = None,
    ) -> Outcome:
        """Open a candidacy from its first interview, on ``policy`` (a published version),
        else the version its workspace starts new candidacies on, else the default."""
        interview = validated(NewCandidacy, details)
        fields = interview.model_dump(mode="json")
        if fields.get("applied_on") is None:
            fields.pop("applied_on", None)  # (absent when not given: older keys still match)
        if policy is not None:
            fields["policy"] = policy  # (absent when not given: older keys still match)
        fingerprint = _fingerprint("record_interview", None, fields, idempotency_key)
        replay = self._replayed(actor, idempotency_key, fingerprint)
        if replay:
            return replay
        if policy is None:
            # The workspace's chosen starting version, else the application's default.
            starting = self.policies.starting(actor.workspace)
            policy = starting.as_dict() if starting else self.default_policy
        policy = dict(policy)
        self.policies.get(policy["name"], policy["version"])  # refuse an unpublished one
        data = interview.model_dump(mode="python")
        candidacy = Candidacy.record_interview(
            id=uuid4(), actor=actor, at=self.clock.now(),
            candidate=data.pop("candidate"), company=data.pop("company"),
            role=data.pop("role"), timezone=data.pop("timezone"),
            country=data.pop("country"), subdivision=data.pop("subdivision"),
            applied_on=data.pop("applied_on"), interview=_interview_data(data), policy=policy,
        )
        return self._save(actor, candidacy, idempotency_key, fingerprint, {})

    def raise_hesitation(self, actor: Actor, candidacy_id: Any, text: str, *,
                         occurred_at: datetime | None = None, **options: Any) -> Outcome:
        """The interviewer voiced a hesitation; answers with its ``hesitation_id``."""
        text = _text("text", text)
        occurred_at = self._past("occurred_at", occurred_at)

        def command(candidacy: Candidacy, now: datetime) -> dict[str, Any]:
            hesitation_id = f"r{candidacy.round}h{len(candidacy.hesitations) + 1}"
            candidacy.raise_hesitation(actor, now, hesitation_id=hesitation_id, text=text,
                                       occurred_at=occurred_at)
            return {"hesitation_id": hesitation_id}

        return self._execute(actor, candidacy_id, "raise_hesitation",
                             {"text": text, "occurred_at": occurred_at}, command, **options)

    def address_hesitation(self, actor: Actor, candidacy_id: Any, hesitation_id: str,
                           answer: str, *, occurred_at: datetime | None = None,
                           **options: Any) -> Outcome:
        """The candidate answered a hesitation."""
        answer = _text("response", answer)
        occurred_at = self._past("occurred_at", occurred_at)
        return self._execute(
            actor, candidacy_id, "address_hesitation",
            {"hesitation_id": hesitation_id, "answer": answer, "occurred_at": occurred_at},
            lambda c, now: c.address_hesitation(actor, now, hesitation_id=hesitation_id,
                                                answer=answer, occurred_at=occurred_at),
            **options)

    def record_no_hesitations(self, actor: Actor, candidacy_id: Any, *,
                              occurred_at: datetime | None = None, **options: Any) -> Outcome:
        """The interviewer had no hesitations (said at ``occurred_at``, default now)."""
        occurred_at = self._past("occurred_at", occurred_at)
        return self._execute(
            actor, candidacy_id, "record_no_hesitations", _when(occurred_at),
            lambda c, now: c.record_no_hesitations(actor, now, occurred_at=occurred_at),
            **options)

    def close_next_step(self, actor: Actor, candidacy_id: Any, description: str, *,
                        scheduled_for: datetime | None = None,
                        occurred_at: datetime | None = None, **options: Any) -> Outcome:
        """The candidate closed for the next step (at ``occurred_at``, default now)."""
        description = _text("description", description)
        aware(scheduled_for, "scheduled_for")
        occurred_at = self._past("occurred_at", occurred_at)
        return self._execute(
            actor, candidacy_id, "close_next_step",
            {"description": description, "scheduled_for": scheduled_for,
             **_when(occurred_at)},
            lambda c, now: c.close_next_step(actor, now, description=description,
                                             scheduled_for=scheduled_for,
                                             occurred_at=occurred_at),
            **options)

    def send_thank_you(self, actor: Actor, candidacy_id: Any, medium: str, *,
                       to: list[str] | None = None, covers_panel: bool = False,
                       decided_by: dict[str, Any] | None = None, mode: str = "sent",
                       occurred_at: datetime | None = None, **options: Any) -> Outcome:
        """A person's thank-you (without ``to`` it covers the whole panel): ``mode="sent"``,
        they sent it themselves (a fact, no message; ``occurred_at``: a card left last
        night); ``"send_for_me"``, the outbox sends it and records what the channel did."""
        thank_you = validated(ThankYou, {"medium": medium, "to": to or [],
                                         "covers_panel": covers_panel})
        mode = _mode(mode)
        occurred_at = self._past("occurred_at", occurred_at)
        if mode == SEND_FOR_ME and occurred_at is not None:
            raise InvalidInput("occurred_at", "a thank-you Closer sends for you goes now: "
                                              "occurred_at is only for one you sent yourself")

        def command(candidacy: Candidacy, now: datetime) -> None:
            panel = {i["name"] for i in candidacy.interview["interviewers"]}
            unknown = [name for name in thank_you.to if name not in panel]
            if unknown:
                raise InvalidInput("to", f"{', '.join(unknown)} did not interview the candidate "
                                         f"(the panel: {', '.join(sorted(panel))})")
            if mode == SEND_FOR_ME:
                candidacy.request_thank_you(actor, now, medium=thank_you.medium.value,
                                            to=list(thank_you.to),
                                            covers_panel=thank_you.covers_panel)
                return
            candidacy.send_thank_you(actor, now, medium=thank_you.medium.value,
                                     to=list(thank_you.to), covers_panel=thank_you.covers_panel,
                                     decided_by=decided_by, occurred_at=occurred_at)

        args = {**thank_you.model_dump(mode="json"), "decided_by": decided_by,
                **_when(occurred_at)}
        if mode == SEND_FOR_ME:
            args["mode"] = mode  # (a "sent" fingerprint stays as it always was)
        return self._execute(actor, candidacy_id, "send_thank_you", args, command, **options)

    def send_nudge(self, actor: Actor, candidacy_id: Any, *,
                   channels: list[str] | None = None, reason: str = "manual nudge",
                   decided_by: dict[str, Any] | None = None, mode: str = "sent",
                   occurred_at: datetime | None = None,
                   override: dict[str, Any] | None = None, **options: Any) -> Outcome:
        """A person's nudge (a voicemail, then an email right after, by default):
        ``mode="sent"``, they nudged themselves; ``"send_for_me"``, the outbox sends it.

        Either way a person's nudge (no ``decided_by``) keeps the playbook: inside the
        patience window, before the spacing after the last nudge, or beyond the pest line it
        is refused (`PlaybookRule`) unless ``override`` gives a reason, recorded on the event."""
        channels = list(channels or ["voicemail", "email"])
        for channel in channels:
            if channel not in ("voicemail", "email", "phone"):
                raise InvalidInput("channels", f"{channel!r} is not voicemail, email or phone")
        mode = _mode(mode)
        occurred_at = self._past("occurred_at", occurred_at)
        override = _override(override)
        if mode == SEND_FOR_ME:
            if "phone" in channels:
                raise InvalidInput("channels", "Closer cannot phone for you: send it for me "
                                               "takes voicemail and email")
            if occurred_at is not None:
                raise InvalidInput("occurred_at", "a nudge Closer sends for you goes now: "
                                                  "occurred_at is only for one you sent yourself")

            def request(candidacy: Candidacy, now: datetime) -> None:
                recorded = self._playbook_allows(candidacy, "send_nudge", now, override)
                candidacy.request_nudge(actor, now, channels=channels, reason=reason,
                                        override=recorded)

            return self._execute(
                actor, candidacy_id, "send_nudge",
                {"channels": channels, "reason": reason, "mode": mode,
                 **({"override": override} if override else {})},
                request, **options)

        def command(candidacy: Candidacy, now: datetime) -> None:
            recorded = override
            if decided_by is None:
                # A moment before the interview is a mistake to name, not a rule to cite.
                _since_interview(candidacy, "occurred_at", occurred_at)
                recorded = self._playbook_allows(candidacy, "send_nudge", occurred_at or now,
                                                 override)
            candidacy.send_nudge(actor, now, channels=channels, reason=reason,
                                 decided_by=decided_by, occurred_at=occurred_at,
                                 override=recorded)

        return self._execute(
            actor, candidacy_id, "send_nudge",
            {"channels": channels, "reason": reason, "decided_by": decided_by,
             **_when(occurred_at), **({"override": override} if override else {})},
            command, **options)

    def confirm_message(self, actor: Actor, candidacy_id: Any, message_id: str, *,
                        occurred_at: datetime | None = None, **options: Any) -> Outcome:
        """A person confirms a card or voicemail task was done: the message is delivered
        (``confirmed_by`` the acting user), which thanks the panel for a thank-you."""
        message_id = _text("message_id", message_id)
        occurred_at = self._past("occurred_at", occurred_at)

        def command(candidacy: Candidacy, now: datetime) -> None:
            task = self._ready_task(candidacy, message_id)
            candidacy.deliver_message(actor, now, message_id=message_id, kind=task.kind,
                                      channel=task.channel,
                                      trigger_version=task.trigger_version,
                                      occurred_at=occurred_at, confirmed_by=actor.user)

        return self._execute(actor, candidacy_id, "confirm_message",
                             {"message_id": message_id, "occurred_at": occurred_at}, command,
                             **options)

    def _ready_task(self, candidacy: Candidacy, message_id: str) -> Any:
        """The `TaskReady` fact of ``message_id`` on the candidacy, not yet confirmed."""
        task = None
        for event in self.events.get(candidacy.id):
            if getattr(event, "message_id", None) != message_id:
                continue
            if isinstance(event, Candidacy.TaskReady):
                task = event
            elif isinstance(event, Candidacy.MessageDelivered):
                raise InvalidInput("message_id", f"message {message_id} is already confirmed "
                                                 "delivered")
        if task is None:
            raise InvalidInput("message_id", f"no card or voicemail task {message_id} is "
                                             "waiting for this candidacy")
        return task

    def receive_reply(self, actor: Actor, candidacy_id: Any, kind: str, *,
                      note: str | None = None, received_at: datetime | None = None,
                      back_on: date | None = None, **options: Any) -> Outcome:
        """The employer replied (advanced, rejected, update, or out of office until ``back_on``)."""
        reply = validated(Reply, {"kind": kind, "note": note, "received_at": received_at,
                                  "back_on": back_on})
        received = self._past("received_at", reply.received_at)

        def command(candidacy: Candidacy, now: datetime) -> None:
            _since_interview(candidacy, "received_at", received)
            back_on = reply.back_on
            if reply.kind is ReplyKind.OUT_OF_OFFICE and back_on is None:
                # No return date given: the policy says how long such a pause lasts.
                policy = self.policies.of(candidacy)
                calendar = policy.work_calendar(candidacy.country, candidacy.subdivision)
                today = (received or now).astimezone(ZoneInfo(candidacy.timezone)).date()
                back_on = calendar.add_business_days(today,
                                                     policy.pause.no_return_date_business_days)
            candidacy.receive_reply(actor, now, kind=reply.kind.value, note=reply.note,
                                    occurred_at=received, back_on=back_on)

        return self._execute(actor, candidacy_id, "receive_reply", reply,
                             command, **options)

    def note_competing_offer(self, actor: Actor, candidacy_id: Any, company: str,
                             deadline: datetime, *, occurred_at: datetime | None = None,
                             **options: Any) -> Outcome:
        """The candidate has an offer elsewhere with a deadline."""
        offer = validated(Offer, {"company": company, "deadline": deadline,
                                  "noted_at": occurred_at})
        noted = self._past("occurred_at", offer.noted_at)
        return self._execute(
            actor, candidacy_id, "note_competing_offer", offer,
            lambda c, now: c.note_competing_offer(actor, now, company=offer.company,
                                                  deadline=offer.deadline, occurred_at=noted),
            **options)

    def pause_cadence(self, actor: Actor, candidacy_id: Any, reason: str, *,
                      until: date | None = None, occurred_at: datetime | None = None,
                      **options: Any) -> Outcome:
        """Hold every timer until ``until`` (or until resumed), from ``occurred_at``."""
        reason = _text("reason", reason)
        occurred_at = self._past("occurred_at", occurred_at)

        def command(candidacy: Candidacy, now: datetime) -> None:
            # A pause ends at local midnight of ``until``: one already over is refused.
            ends_at = candidacy.local_midnight(until)
            if ends_at is not None and ends_at <= now:
                raise InvalidInput("until", f"{until} has already begun in "
                                            f"{candidacy.timezone}: a pause must end later")
            candidacy.pause_cadence(actor, now, until=until, reason=reason,
                                    occurred_at=occurred_at)

        return self._execute(actor, candidacy_id, "pause_cadence",
                             {"reason": reason, "until": until, **_when(occurred_at)},
                             command, **options)

    def resume_cadence(self, actor: Actor, candidacy_id: Any, *,
                       occurred_at: datetime | None = None, **options: Any) -> Outcome:
        """Let the timers run again (from ``occurred_at``: not before the pause began)."""
        occurred_at = self._past("occurred_at", occurred_at)

        def command(candidacy: Candidacy, now: datetime) -> None:
            paused = candidacy.paused
            if occurred_at is not None and paused is not None and occurred_at < paused["since"]:
                raise InvalidInput("occurred_at", f"{occurred_at.isoformat()} is before the "
                                                  f"pause began ({paused['since'].isoformat()})")
            candidacy.resume_cadence(actor, now, occurred_at=occurred_at)

        return self._execute(actor, candidacy_id, "resume_cadence", _when(occurred_at),
                             command, **options)

    def send_reminder(self, actor: Actor, candidacy_id: Any, kind: str, key: str, *,
                      decided_by: dict[str, Any] | None = None, **options: Any) -> Outcome:
        """Record that a reminder or alert went out (once per ``key``)."""
        kind, key = _text("kind", kind), _text("key", key)
        return self._execute(
            actor, candidacy_id, "send_reminder",
            {"kind": kind, "key": key, "decided_by": decided_by},
            lambda c, now: c.send_reminder(actor, now, kind=kind, key=key,
                                           decided_by=decided_by),
            **options)

    def stall(self, actor: Actor, candidacy_id: Any, reason: str, *,
              decided_by: dict[str, Any] | None = None,
              override: dict[str, Any] | None = None, **options: Any) -> Outcome:
        """Declare the candidacy stalled (the policy's pest line and patience are spent).
        A person's stall (no ``decided_by``) before then is refused (`PlaybookRule`)
        unless ``override`` gives a reason, recorded on the event."""
        reason = _text("reason", reason)
        override = _override(override)

        def command(candidacy: Candidacy, now: datetime) -> None:
            recorded = override
            if decided_by is None:
                recorded = self._playbook_allows(candidacy, "stall", now, override)
            candidacy.stall(actor, now, reason=reason, decided_by=decided_by, override=recorded)

        return self._execute(
            actor, candidacy_id, "stall",
            {"reason": reason, "decided_by": decided_by,
             **({"override": override} if override else {})},
            command, **options)

    def withdraw(self, actor: Actor, candidacy_id: Any, reason: str, *,
                 occurred_at: datetime | None = None, **options: Any) -> Outcome:
        """The candidate withdrew (at ``occurred_at``, default now)."""
        reason = _text("reason", reason)
        occurred_at = self._past("occurred_at", occurred_at)
        return self._execute(
            actor, candidacy_id, "withdraw", {"reason": reason, **_when(occurred_at)},
            lambda c, now: c.withdraw(actor, now, reason=reason, occurred_at=occurred_at),
            **options)

    def start_next_round(self, actor: Actor, candidacy_id: Any,
                         next_round: NextRound | dict[str, Any] | None = None,
                         **options: Any) -> Outcome:
        """After advancing, start the next interview round (unset details carry over)."""
        details = validated(NextRound, next_round or {})

        def command(candidacy: Candidacy, now: datetime) -> dict[str, Any]:
            given = _interview_data(details.model_dump(mode="python", exclude_none=True))
            interview = {**candidacy.interview, "interviewed_at": now, **given}
            candidacy.start_next_round(actor, now, interview=interview)
            return {"round": candidacy.round}

        return self._execute(actor, candidacy_id, "start_next_round",
                             details, command, **options)

    def migrate_policy(self, actor: Actor, candidacy_id: Any, name: str, version: object, *,
                       reason: str | None = None, **options: Any) -> Outcome:
        """Move the candidacy to another published cadence policy version, recorded as
        `PolicyMigrated` (from, to, who, why); the scheduler then decides with it.  Refused
        for a stalled candidacy (its follow-up is over) and for the version it is on."""
        name = _text("policy", name)
        if not isinstance(version, int) or version < 1:
            raise InvalidInput("version", "a policy version is a whole number from 1")
        reason = None if reason is None else _text("reason", reason)
        self.policies.get(name, version)  # refuse an unpublished one
        policy = {"name": name, "version": version}
        args = {**policy, **({"reason": reason} if reason else {})}
        return self._execute(actor, candidacy_id, "migrate_policy", args,
                             lambda c, now: c.migrate_policy(actor, now, policy=policy,
                                                             reason=reason),
                             **options)

    def correct_details(self, actor: Actor, candidacy_id: Any,
                        correction: Correction | dict[str, Any], **options: Any) -> Outcome:
        """Correct a recorded contact, name spelling, title or "why I fit"; the original
        stays in the history, and messages queued (or retried) later use the correction."""
        fix = validated(Correction, correction)
        return self._execute(
            actor, candidacy_id, "correct_details", fix,
            lambda c, now: c.correct_details(actor, now, person=fix.person,
                                             field=fix.field.value, value=fix.value),
            **options)

    # -- the policy's decisions ----------------------------------------------------------

    def apply_policy(self, candidacy_id: Any, now: datetime | None = None,
                     *, limit: int = 10) -> list[Action]:
        """Record what the candidacy's policy says is due by ``now``, as its own events
        (each with ``decided_by``: policy, version, rule, key, due moment), in one save.

        Idempotent: once recorded, an action is no longer due, so running again for
        the same moment records nothing.  Several due actions are applied in due order,
        re-deciding after each, never more than ``limit`` (a safety bound, not a rule).
        Raises `VersionConflict` when the candidacy changed meanwhile.
        """
        run = self.apply_policies([candidacy_id], now, limit=limit)
        if run.conflicts:
            raise VersionConflict(candidacy_id, None, None)
        return run.applied.get(str(_uuid(candidacy_id)), [])

    def apply_policies(self, candidacy_ids: list[Any], now: datetime | None = None,
                       *, limit: int = 10) -> PolicyRun:
        """`apply_policy` for many candidacies, saved in one transaction (one commit
        for a page of due candidacies); when another writer changed one of them, each
        is saved on its own and the changed ones are reported as conflicts."""
        return self.record_decisions(self.decide_policies(candidacy_ids, now, limit=limit))

    def decide_policies(self, candidacy_ids: list[Any], now: datetime | None = None,
                        *, limit: int = 10) -> PolicyDecisions:
        """The first half of `apply_policies`: load the candidacies and apply what is
        due to them in memory; nothing is saved until `record_decisions`."""
        now = now or self.clock.now()
        decisions = PolicyDecisions(now=now, limit=limit)
        self._decide(decisions, candidacy_ids)
        return decisions

    def _decide(self, decisions: PolicyDecisions, candidacy_ids: list[Any]) -> None:
        now, limit = decisions.now, decisions.limit
        corrupt: list[CorruptHistory] = []
        loaded = self._load_many(candidacy_ids, corrupt)
        for error in corrupt:
            # Quarantined: the rest of the page is decided; the next tick tries it again.
            log.error("candidacy passed over: its history cannot be read",
                      candidacy_id=str(error.originator_id), version=error.version,
                      notification_id=error.notification_id, error=error.reason)
            decisions.run.corrupt.append(str(error.originator_id))
        for candidacy in loaded:
            if candidacy.erased:
                continue  # (its row says nothing is due; a stale page may still name it)
            policy = self.policies.of(candidacy)
            actor = Actor(user=SCHEDULER, workspace=candidacy.workspace)
            applied: list[Action] = []
            planned = plan(candidacy, policy)
            for _ in range(limit):
                due = due_prefix(planned, candidacy, policy, now)
                if not due:
                    break
                apply_action(candidacy, actor, now, due[0], due[0].decided_by(policy))
                applied.append(due[0])
                planned = plan(candidacy, policy)
            if applied:
                decisions.run.applied[str(candidacy.id)] = applied
                decisions.decided.append((candidacy, planned[0].due_at if planned else None))
            elif planned and planned[0].due_at <= now:
                # Due but held by its send window: the row waits for the window instead
                # of being read again by every tick until then.
                decisions.held.append(self.current_row(
                    candidacy, due_at=held_until(planned[0], candidacy, policy, now)))

    def record_decisions(self, decisions: PolicyDecisions) -> PolicyRun:
        """The second half of `apply_policies`: save what `decide_policies` decided in
        one transaction, or candidacy by candidacy when one changed meanwhile."""
        run, decided, held = decisions.run, decisions.decided, decisions.held
        now, limit = decisions.now, decisions.limit
        if not decided and not held:
            return run
        pending = {c.id: list(c.pending_events) for c, _ in decided}
        try:
            # The held rows go in the same transaction: one commit per page.
            self.save(*(c for c, _ in decided),
                      rows=held + [self.current_row(c, due_at=due_at) for c, due_at in decided])
        except IntegrityError:
            if len(decided) == 1:
                run.conflicts.append(str(decided[0][0].id))
                del run.applied[str(decided[0][0].id)]
                if held:
                    self.save(rows=held)
                return run
            # One of them changed meanwhile: decide again for each on its own.
            retry = PolicyRun(corrupt=list(run.corrupt))
            for candidacy_id in [c.id for c, _ in decided] + [row.id for row in held]:
                retry.merge(self.apply_policies([candidacy_id], now, limit=limit))
            return retry
        for candidacy, _ in decided:
            self._log(Actor(user=SCHEDULER, workspace=candidacy.workspace), candidacy,
                      pending[candidacy.id])
        return run

    def erase(self, actor: Actor, candidacy_id: Any, reason: str) -> Outcome:
        """Erase the candidate's personal data: an `Erased` event (who, why), every key
        of the candidacy (its outbox messages' too) deleted and the registered scrubs of
        plaintext copies run (`engine.personal_data.register_scrub`), in one transaction.
        `engine.personal_data.scrub_storage` then rewrites the files (`closer erase`
        does).  Refused (`CandidacyErased`) if it is erased already."""
        reason = _text("reason", reason)
        uid = _uuid(candidacy_id)
        self.recent.take(uid)
        candidacy = self.get(candidacy_id, actor.workspace)
        now = self.clock.now()
        candidacy.erase(actor, now, reason=reason)
        pending = list(candidacy.pending_events)
        try:
            self.save(candidacy, rows=[self.current_row(candidacy)],
                      subject_keys=[Erasure(str(uid), now, actor.user)])
        except IntegrityError:
            raise VersionConflict(candidacy.id, None, None) from None
        finally:
            self.keyring.forget(str(uid))
        self._log(actor, candidacy, pending)
        return Outcome(str(candidacy.id), candidacy.version, candidacy.stage)

    def erased_ids(self) -> list[str]:
        """Every erased candidacy's id (for exports and `closer doctor`)."""
        return self.keyring.erased_ids()

    # -- queries ----------------------------------------------------------------------

    def get(self, candidacy_id: Any, workspace: str, *, version: int | None = None) -> Candidacy:
        """The candidacy, as of ``version`` if given; not found outside its workspace.
        Raises `CorruptHistory` when a stored event of it cannot be read."""
        uid = _uuid(candidacy_id)
        try:
            if version is None:
                candidacy = self._load(uid)
            else:
                candidacy = self._load_version(uid, version, candidacy_id)
        except CorruptHistory as error:
            raise self._quarantined(error, candidacy_id, workspace) from error.__cause__
        if not isinstance(candidacy, Candidacy) or candidacy.workspace != workspace:
            raise CandidacyNotFound(candidacy_id)
        return candidacy

    def _load_version(self, uid: UUID, version: int, candidacy_id: Any) -> Any:
        try:
            return self.repository.get(uid, version=version, projector_func=_project)
        except AggregateNotFoundError:
            raise CandidacyNotFound(candidacy_id) from None
        except CorruptHistory as error:
            if not error.snapshot:
                raise
            log.error("snapshot cannot be read: loading from the events",
                      originator_id=str(uid), version=error.version, error=error.reason)
        # The snapshot before ``version`` cannot be read: from the first event instead.
        return _project(None, self.events.get(uid, lte=version))

    def _quarantined(self, error: CorruptHistory, candidacy_id: Any,
                     workspace: str) -> CloserError:
        """What a reader in ``workspace`` is told of an unreadable candidacy: that it is
        corrupt, if it is theirs (its row says so), else that there is no such candidacy."""
        row = self.row(candidacy_id)
        if row is None or row.workspace != workspace:
            return CandidacyNotFound(candidacy_id)
        return self._located(error)

    def _located(self, error: CorruptHistory) -> CorruptHistory:
        """``error`` with the notification id of its event, when the read did not know it
        (the load's statement reads versions, not log positions)."""
        finder = getattr(self.recorder, "find_notification_id", None)
        if error.notification_id is not None or error.snapshot or finder is None:
            return error
        return error.at_notification(finder(_uuid(error.originator_id), error.version))

    def _load(self, uid: UUID) -> Any:
        """The current state of one aggregate: its latest snapshot and the events after
        it, read in one statement (the repository reads them in two), then projected
        through the same mapper and projector.  None when there is no such aggregate.
        A snapshot that cannot be decoded is passed over: the events are read from the
        first one (the snapshot stays listed by `closer doctor`)."""
        recorder: Any = self.recorder
        snapshots, events = self._load_tables()
        loaded = self._projected(*recorder.select_for_load(snapshots, events, uid))
        if loaded is _UNREADABLE_SNAPSHOT:
            loaded = self._projected(*recorder.select_for_load(None, events, uid))
        return loaded

    def _load_tables(self) -> tuple[str | None, str]:
        """The snapshots' table (None without snapshots) and the events' table."""
        table = None
        if self.snapshots is not None:
            table = self.snapshots.recorder.events_table_name  # type: ignore[attr-defined]
        return table, self.recorder.events_table_name

    def _projected(self, snapshot: StoredEvent | None, stored: list[StoredEvent]) -> Any:
        start = None
        if snapshot is not None:
            start = self._from_snapshot(snapshot)
            if start is _UNREADABLE_SNAPSHOT:
                return start
        return _project(start, (self.mapper.to_domain_event(s) for s in stored))

    def _from_snapshot(self, snapshot: StoredEvent) -> Any:
        """The aggregate a stored snapshot holds, or `_UNREADABLE_SNAPSHOT` (logged)."""
        try:
            return _project(None, [self.mapper.to_domain_event(snapshot)])
        except CorruptHistory as error:
            log.error("snapshot cannot be read: loading from the events",
                      originator_id=str(snapshot.originator_id),
                      version=snapshot.originator_version, error=error.reason)
            return _UNREADABLE_SNAPSHOT

    def _load_many(self, candidacy_ids: list[Any],
                   corrupt: list[CorruptHistory] | None = None) -> list[Candidacy]:
        """Several candidacies (whatever their workspace) read with two queries: their
        latest snapshots, then the events after them, through the same mapper and
        projector as `get` (one query pair per page instead of per candidacy).

        A candidacy whose history cannot be read raises `CorruptHistory`, or, given a
        ``corrupt`` list, is left out and its error added there; an unreadable snapshot
        is passed over (its candidacy read from its first event)."""
        uids = [_uuid(i) for i in candidacy_ids]
        recorder: Any = self.recorder
        to_domain_event = self.mapper.to_domain_event
        start: dict[UUID, Any] = {}
        if self.snapshots is not None:
            table = self.snapshots.recorder.events_table_name  # type: ignore[attr-defined]
            for record in recorder.select_latest_records(table, uids):
                aggregate = self._from_snapshot(StoredEvent(*record))
                if aggregate is not _UNREADABLE_SNAPSHOT:
                    start[record[0]] = aggregate
        after = {uid: start[uid].version if uid in start else 0 for uid in uids}
        events: dict[UUID, list[Any]] = {uid: [] for uid in uids}
        failed: dict[UUID, CorruptHistory] = {}
        for record in recorder.select_records_after(recorder.events_table_name, after):
            # The record's id is the UUID asked for: no parsing it back from the row.
            if record[0] in failed:
                continue
            try:
                events[record[0]].append(to_domain_event(StoredEvent(*record)))
            except CorruptHistory as error:
                failed[record[0]] = error
        loaded = []
        for uid, candidacy_id in zip(uids, candidacy_ids, strict=True):
            try:
                if uid in failed:
                    raise failed[uid]
                candidacy = _project(start.get(uid), events[uid])
            except CorruptHistory as error:
                if corrupt is None:
                    raise self._located(error) from error.__cause__
                corrupt.append(self._located(error))
                continue
            if not isinstance(candidacy, Candidacy):
                raise CandidacyNotFound(candidacy_id)
            loaded.append(candidacy)
        return loaded

    def history(self, candidacy_id: Any, workspace: str) -> list[HistoryEntry]:
        """Every event of the candidacy, oldest first (`CorruptHistory` when one of them
        cannot be read)."""
        uid = _uuid(candidacy_id)
        try:
            events = list(self.events.get(uid))
            if any(isinstance(e, Candidacy.Erased) for e in events):
                # Read by a process that still held the key: the state as erased reads.
                self.keyring.forget(str(uid))
                events = list(self.events.get(uid))
            entries = [history_entry(e) for e in events]
        except CorruptHistory as error:
            raise self._quarantined(error, candidacy_id, workspace) from error.__cause__
        if not entries or entries[0].workspace != workspace:
            raise CandidacyNotFound(candidacy_id)
        return entries

    def drop_stale_copy(self, candidacy_id: Any, stored_version: int) -> None:
        """Forget the kept copy of the candidacy (`RecentCandidacies`) unless it is at
        ``stored_version``, the version a read of the store just found: another process
        or application object saved it since, and a command decided on the copy would be
        refused at its save (on PostgreSQL failing its batch-mates' script, which is then
        written again save by save) before being decided again on what is stored."""
        self.recent.drop_unless(_uuid(candidacy_id), stored_version)

    def row(self, candidacy_id: Any) -> CandidacyRow | None:
        """The candidacy's current row (no aggregate load)."""
        return self.recorder.find_candidacy_row(str(_uuid(candidacy_id)))

    def rows(self, workspace: str, *, stage: str | None = None, text: str | None = None,
             after: str | None = None, limit: int = 50) -> list[CandidacyRow]:
        """A workspace's candidacies, as current rows, in id order."""
        return self.recorder.select_candidacy_rows(
            workspace, stage=stage, text=text, after=after, limit=limit)

    def due_ids(self, before: datetime, *, batch: int = 1000) -> Iterator[str]:
        """Ids of every candidacy with something due by ``before`` (read from rows only)."""
        after = ("", "")
        while True:
            page = self.recorder.select_due(before, after=after, limit=batch)
            yield from (candidacy_id for _, candidacy_id in page)
            if len(page) < batch:
                return
            after = page[-1]

    # -- the one command path -------------------------------------------------------------

    def _execute(
        self, actor: Actor, candidacy_id: Any, command: str, args: dict[str, Any] | BaseModel,
        run: Callable[[Candidacy, datetime], dict[str, Any] | None], *,
        expected_version: int | None = None, idempotency_key: str | None = None,
    ) -> Outcome:
        fingerprint = _fingerprint(command, str(candidacy_id), args, idempotency_key)
        replay = self._replayed(actor, idempotency_key, fingerprint)
        if replay:
            return replay
        kept = self.recent.take(_uuid(candidacy_id))
        if kept is not None and kept.workspace != actor.workspace:
            self.recent.keep(kept)  # not this caller's: it reads as not found below
        elif kept is not None and (expected_version is None
                                   or expected_version == kept.version):
            try:
                return self._apply(actor, kept, run, expected_version, idempotency_key,
                                   fingerprint)
            except CloserError:
                # The copy may be stale (another writer saved since): whatever it
                # refused or failed to save is decided again on the stored state.
                pass
        candidacy = self.get(candidacy_id, actor.workspace)
        return self._apply(actor, candidacy, run, expected_version, idempotency_key,
                           fingerprint)

    def _apply(self, actor: Actor, candidacy: Candidacy,
               run: Callable[[Candidacy, datetime], dict[str, Any] | None],
               expected_version: int | None, key: str | None, fingerprint: str) -> Outcome:
        if expected_version is not None and expected_version != candidacy.version:
            raise VersionConflict(candidacy.id, expected_version, candidacy.version)
        data = run(candidacy, self.clock.now()) or {}
        return self._save(actor, candidacy, key, fingerprint, data)

    def _replayed(self, actor: Actor, key: str | None, fingerprint: str) -> Outcome | None:
        if key is None:
            return None
        record = self.recorder.find_idempotency(actor.workspace, key)
        if record is None:
            return None
        if record.fingerprint != fingerprint:
            raise IdempotencyKeyReused(key)
        return Outcome(**record.response, replayed=True)

    def _save(self, actor: Actor, candidacy: Candidacy, key: str | None, fingerprint: str,
              data: dict[str, Any]) -> Outcome:
        outcome = Outcome(str(candidacy.id), candidacy.version, candidacy.stage, data)
        record = None
        if key is not None:
            response = asdict(outcome)
            del response["replayed"]
            record = IdempotencyRecord(actor.workspace, key, fingerprint, response,
                                       self.clock.now())
        pending = list(candidacy.pending_events)
        try:
            self.save(candidacy, idempotency=record, rows=[self.current_row(candidacy)])
        except IntegrityError:
            # Either the same key raced us (answer as the winner did) or another
            # writer saved this candidacy first (the caller reloads and retries).
            replay = self._replayed(actor, key, fingerprint)
            if replay:
                return replay
            raise VersionConflict(candidacy.id, None, None) from None
        self.recent.keep(candidacy)
        self._log(actor, candidacy, pending)
        return outcome

    @staticmethod
    def _log(actor: Actor, candidacy: Candidacy, events: list[Any]) -> None:
        for event in events:
            log.info("event recorded", candidacy_id=str(candidacy.id),
                     event_type=type(event).__name__, version=event.originator_version,
                     actor=actor.user, on_behalf_of=actor.on_behalf_of,
                     workspace=actor.workspace, stage=candidacy.stage)

    def current_row(self, candidacy: Candidacy, *,
                    due_at: datetime | None | object = _UNKNOWN) -> CandidacyRow:
        """The candidacy's row in ``closer_candidacies``, as of its current version
        (``due_at`` when the caller has just planned it, else planned here)."""
        if candidacy.erased:
            due_at = None  # it takes no more commands: nothing is due
        elif due_at is _UNKNOWN:
            due_at = next_due_at(candidacy, self.policies.of(candidacy))
        return CandidacyRow(
            id=str(candidacy.id), workspace=candidacy.workspace, stage=candidacy.stage,
            version=candidacy.version, round=candidacy.round,
            candidate=candidacy.candidate["name"], company=candidacy.company,
            role=candidacy.role, updated_at=candidacy.modified_on,
            due_at=due_at,  # type: ignore[arg-type]
            summary={
                "interviewed_at": candidacy.interview["interviewed_at"],
                "timezone": candidacy.timezone, "country": candidacy.country,
                "policy": candidacy.policy, "nudges": len(candidacy.nudges),
                "paused": candidacy.paused is not None,
                "outcome": candidacy.outcome["kind"] if candidacy.outcome else None,
            },
        )

    def _take_snapshots(self, processing_event: Any) -> None:
        if self.snapshots is None:
            return
        for snapshot in self._snapshots_due(processing_event):
            try:
                self.snapshots.put([snapshot])
            except PersistenceError as error:
                # The events are committed: the command happened and is answered so.  A
                # snapshot only shortens later loads (the events make the same state).
                log.warning("snapshot not written", candidacy_id=str(snapshot.originator_id),
                            version=snapshot.originator_version,
                            error=f"{type(error).__name__}: {error}")

    @staticmethod
    def _snapshots_due(processing_event: Any) -> list[Any]:
        # The aggregate in hand is the state at its new version: snapshot it directly
        # instead of reloading it from the store as the library's default does.
        # One pass over the events (a save of many aggregates stays linear).
        due = {e.originator_id for e in processing_event.events
               if e.originator_version % SNAPSHOT_INTERVAL == 0}
        return [type(aggregate).Snapshot.take(aggregate)
                for aggregate in processing_event.aggregates.values() if aggregate.id in due]

    def _playbook_allows(self, candidacy: Candidacy, command: str, at: datetime,
                         override: dict[str, Any] | None) -> dict[str, Any] | None:
        """What to record of ``override`` for a person's ``command`` at ``at``; raises
        `PlaybookRule` when a rule refuses it and no override was given.  The lifecycle
        is asked first, so that a command the stage forbids says so (not a rule)."""
        TRANSITIONS.target(candidacy.stage, command, candidacy, at=at)
        refusal = manual_refusal(candidacy, self.policies.of(candidacy), at, command)
        if override is None:
            if refusal is not None:
                raise PlaybookRule(command, candidacy.stage, refusal.rule, refusal.reason,
                                   refusal.allowed_from)
            return None
        return {**override, "overrides": refusal.rule if refusal else None}

    def _past(self, field_name: str, moment: datetime | None) -> datetime | None:
        """A fact's own time: aware and not in the future (late logging is fine)."""
        aware(moment, field_name)
        if moment is not None and moment > self.clock.now():
            raise InvalidInput(field_name, f"{moment.isoformat()} is in the future")
        return moment


SCHEDULER = "closer-scheduler"
"""The acting user recorded on events the scheduler records for a policy."""

SENT, SEND_FOR_ME = "sent", "send_for_me"
"""A person's thank-you or nudge: they sent it themselves, or Closer sends it for them."""


def _mode(mode: str) -> str:
    if mode not in (SENT, SEND_FOR_ME):
        raise InvalidInput("mode", f"{mode!r} is neither {SENT!r} (I sent it) nor "
                                   f"{SEND_FOR_ME!r} (send it for me)")
    return mode

_THANK_YOU_MEDIUM = {"card": "card", "email": "email", "voicemail": "voicemail_and_email"}


def apply_action(candidacy: Candidacy, actor: Actor, now: datetime, action: Action,
           decided_by: dict[str, Any]) -> None:
    """Turn one due action into the candidacy's decision (the routing table's trigger):
    a thank-you or a nudge is decided here and delivered by the outbox."""
    if action.kind == "thank_you":
        candidacy.decide_thank_you(actor, now,
                                   medium=_THANK_YOU_MEDIUM[action.medium or "email"],
                                   decided_by=decided_by)
    elif action.kind in ("nudge", "offer_nudge"):
        candidacy.decide_nudge(actor, now, channels=list(action.channels), reason=action.note,
                               decided_by=decided_by)
    elif action.kind == "stall":
        candidacy.stall(actor, now, reason=action.note, decided_by=decided_by)
    else:
        candidacy.send_reminder(actor, now, kind=action.kind, key=action.key,
                                decided_by=decided_by)


def _project(aggregate: Any, events: Any) -> Any:
    # The library's projector asserts a runtime-checkable Protocol on every event,
    # a tenth of a command's CPU; our events are all aggregate events.
    event = None
    try:
        for event in events:
            aggregate = event.mutate(aggregate)
    except _UNFIT as error:
        # Decoded, but its data does not fit the aggregate (apply only assigns data).
        if event is None:
            raise
        raise CorruptHistory(event.originator_id, event.originator_version, reason(error),
                             topic=get_topic(type(event)),
                             snapshot=isinstance(event, Snapshot)) from error
    return aggregate


_UNFIT = (AttributeError, KeyError, TypeError, ValueError, EventSourcingError)


def history_entry(event: Any) -> HistoryEntry:
    """An event as auditors read it: its type, when, who, and its own data."""
    fields = event.__dict__
    try:
        return HistoryEntry(
            version=event.originator_version, type=type(event).__name__, at=event.timestamp,
            actor=event.actor, on_behalf_of=event.on_behalf_of, workspace=event.workspace,
            stage=event.stage,
            data={k: v for k, v in fields.items()
                  if k not in _BASE_FIELDS and not (v is None and k in _OPTIONAL_FIELDS)},
            decided_by=fields.get("decided_by"),
        )
    except AttributeError as error:  # decoded, but without the fields every event has
        raise CorruptHistory(event.originator_id, event.originator_version, reason(error),
                             topic=get_topic(type(event))) from error


def _since_interview(candidacy: Candidacy, field_name: str, moment: datetime | None) -> None:
    """A fact of this round cannot precede its interview (the aggregate checks the events'
    ``occurred_at``; this names the request's own field when it is called otherwise)."""
    if moment is not None and moment < candidacy.interview["interviewed_at"]:
        raise InvalidInput(field_name, f"{moment.isoformat()} is before the interview "
                                       f"({candidacy.interview['interviewed_at'].isoformat()})")


def _when(occurred_at: datetime | None) -> dict[str, Any]:
    """A command's ``occurred_at`` for its idempotency fingerprint (absent when not given,
    so that keys recorded before the field existed still match)."""
    return {} if occurred_at is None else {"occurred_at": occurred_at}


def _override(override: object) -> dict[str, Any] | None:
    """A person's override of a playbook rule: its reason, required and non-empty."""
    if override is None:
        return None
    if not isinstance(override, dict) or set(override) - {"reason"}:
        raise InvalidInput("override", "an override is {\"reason\": \"...\"} only")
    return {"reason": _text("override.reason", override.get("reason"))}


def _interview_data(data: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.value if hasattr(v, "value") else v) for k, v in data.items()}


def _text(field_name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(field_name, "must be non-empty text")
    if len(value) > 2000:
        raise InvalidInput(field_name, "must be at most 2000 characters")
    return value.strip()


class RecentCandidacies:
    """The candidacies a `Candidacies` object's commands saved last, as they left them.

    A command on one of them starts from this copy instead of reading the snapshot and
    events back (a round trip and a decode).  The copy is *taken*, so no two threads
    work on one object; it comes back only when its command is saved.  It may be stale
    (another process, or another application object, saved the candidacy since): the
    save's version check refuses it and the command is decided again on what is stored.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[UUID, Candidacy] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, uid: UUID) -> Candidacy | None:
        if not self.size:
            return None
        with self._lock:
            return self._items.pop(uid, None)

    def keep(self, candidacy: Candidacy) -> None:
        if not self.size:
            return
        with self._lock:
            held = self._items.get(candidacy.id)
            if held is not None and held.version > candidacy.version:
                return  # another thread saved a later version meanwhile
            self._items[candidacy.id] = candidacy
            self._items.move_to_end(candidacy.id)
            if len(self._items) > self.size:
                self._items.popitem(last=False)

    def drop_unless(self, uid: UUID, version: int) -> None:
        """Forget the copy of ``uid`` unless it is at ``version``."""
        with self._lock:
            held = self._items.get(uid)
            if held is not None and held.version != version:
                del self._items[uid]

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, uid: UUID) -> bool:
        """Whether a copy is kept (a hint: another thread may take it next)."""
        return uid in self._items


def _uuid(candidacy_id: Any) -> UUID:
    if isinstance(candidacy_id, UUID):
        return candidacy_id
    try:
        return UUID(str(candidacy_id))
    except ValueError:
        raise CandidacyNotFound(candidacy_id) from None


def _fingerprint(command: str, candidacy_id: str | None, args: dict[str, Any] | BaseModel,
                 key: str | None) -> str:
    """What an idempotency key is recorded with (the same key with other arguments is
    refused): ``args`` as JSON (a model's fields as `model_dump` gives them); nothing to
    compute for a command sent without a key."""
    if key is None:
        return ""
    if isinstance(args, BaseModel):
        args = args.model_dump(mode="json")
    payload = orjson.dumps({"command": command, "candidacy": candidacy_id, "args": args},
                           option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(payload).hexdigest()
