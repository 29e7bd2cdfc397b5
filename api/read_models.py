"""The dashboard's read models, kept current from the candidacies' history.

Four read models (`engine.follower.ReadModel`), each with its tables and its handlers,
written by the follower in one transaction with its tracking position:

- **pipeline**: per candidacy its stage, round, company, workspace, recruiter and last
  actor, and when it entered its stage (``rm_pipeline``); every stage a candidacy was in,
  per round, from when to when and for how long (``rm_stage_intervals``); per candidacy and
  round the funnel steps it reached, as bits (``rm_rounds``): counts per stage, funnel and
  passthrough per round, median and p90 time in stage, stalls with their reason and rule.
- **compliance**: per thank-you (candidacy and round) the interview's local day and
  whether a thank-you was *delivered* that same local day (``rm_thank_yous``: deliveries
  are counted, not decisions); per nudge whether it went on time (``rm_nudges``); manual
  overrides of the pest line or patience with their reasons (``rm_overrides``).
- **timeline**: one row per candidacy event (``rm_timeline``): fact, decision, delivery or
  correction, its type, time, the rule and policy version of a decision, a short summary.
- **policies**: per candidacy the policy version it runs under and how often it was moved
  (``rm_policy_pins``): how many candidacies are pinned to each version.

Handlers go by the event's type *name* and read fields with defaults, so they take old
histories' events (`ThankYouSent` / `NudgeSent` with ``decided_by``: decided and assumed delivered)
and the decided/requested/delivered events of the truthful history alike
(`ThankYouDecided`, `NudgeDecided`, `ThankYouRequested`, `NudgeRequested`,
`MessageDelivered`, `MessageBlocked`, `MessageDeadLettered`, `TaskReady`).  An event type
they do not know still gets its timeline row (every candidacy event has ``stage``,
``actor``, ``workspace`` and ``timestamp``).

The figures the pages show are the query functions at the end (`stage_counts`, `rounds`,
`funnel`, `time_in_stage`, `stalled`, `about_to_stall`, `thank_you_compliance`,
`nudge_compliance`, `overrides`, `override_counts`, `pinned_counts`), each narrowed by the
same filters (`api.dashboard.filters.Filters.figures`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple, overload
from zoneinfo import ZoneInfo

from engine.errors import CandidacyNotFound, CorruptHistory
from engine.follower import Follower, ReadModel, ReadModelRecorder
from engine.lifecycle import Stage
from engine.personal_data import register_scrub
from engine.policy import MessageKind
from engine.tables import Tx

DELIVERY_EVENTS = frozenset({"MessageDelivered", "MessageBlocked", "MessageDeadLettered",
                             "TaskReady"})
"""What the channel did, recorded on the candidacy by the outbox."""
DECISION_EVENTS = frozenset({"ThankYouDecided", "NudgeDecided"})
_CORRECTION = re.compile(r"Correct|Retract|Amend|Revok")
THANK_YOU_KINDS = frozenset({MessageKind.THANK_YOU.value})
NUDGE_KINDS = frozenset({MessageKind.NUDGE_EMAIL.value, MessageKind.NUDGE_VOICEMAIL.value,
                         MessageKind.OFFER_NUDGE.value})
FUNNEL = (Stage.INTERVIEWED, Stage.HESITATIONS_ADDRESSED, Stage.NEXT_STEP_CLOSED,
          Stage.THANKED, Stage.ADVANCED)
"""The funnel's steps in order; a candidacy that reached ``awaiting`` (thanked, waiting
for the employer) counts as thanked."""
_REACHED = {Stage.THANKED.value: (Stage.THANKED.value, Stage.AWAITING.value)}
_REACHED_BIT = {stage: 1 << i for i, step in enumerate(FUNNEL)
                for stage in _REACHED.get(step.value, (step.value,))}
"""Each funnel step's bit in ``rm_rounds.reached`` (the stages a round passed through)."""
_NUDGE_EVENTS = frozenset({"NudgeSent", "NudgeDecided", "NudgeRequested"})


def _name(event: Any) -> str:
    return type(event).__name__


@overload
def _iso(moment: datetime) -> str: ...
@overload
def _iso(moment: Any) -> str | None: ...
def _iso(moment: Any) -> str | None:
    """UTC ISO text (sorts as time on both stores), from a datetime or ISO text."""
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).isoformat()
    return str(moment)


def _local_day(moment: str | None, zone: str | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromisoformat(moment).astimezone(ZoneInfo(zone or "UTC")).date().isoformat()


def _decided_by(event: Any) -> dict[str, Any]:
    decided = getattr(event, "decided_by", None)
    return decided if isinstance(decided, dict) else {}


def _cid(event: Any) -> str:
    return str(event.originator_id)


def _policy_ref(policy: Any) -> str | None:
    """``name@version`` of a policy reference (``{"name", "version"}``)."""
    if not isinstance(policy, dict) or "name" not in policy:
        return None
    return f"{policy['name']}@{policy.get('version')}"


# -- pipeline ---------------------------------------------------------------------------


class Pipeline(ReadModel):
    """Where each candidacy stands, and every stage it passed through, per round."""

    name = "pipeline"
    table_names = ("rm_pipeline", "rm_stage_intervals", "rm_rounds", "rm_stay_days",
                   "rm_stay_lengths")
    tables = (
        ("CREATE TABLE IF NOT EXISTS rm_pipeline (candidacy_id TEXT PRIMARY KEY, "
        "workspace TEXT NOT NULL, company TEXT, role TEXT, candidate TEXT, recruiter TEXT, "
        "actor TEXT, stage TEXT NOT NULL, round INTEGER NOT NULL, "
        "entered_stage_at TEXT NOT NULL, updated_at TEXT NOT NULL, version INTEGER NOT NULL, "
        "intervals INTEGER NOT NULL, opened_at TEXT NOT NULL, nudges INTEGER NOT NULL, "
        "reason TEXT, rule TEXT, policy TEXT)"),
        # The stalled list, latest first, reads this index in order instead of sorting.
        ("CREATE INDEX IF NOT EXISTS rm_pipeline_stage_entered ON rm_pipeline "
        "(workspace, stage, entered_stage_at)"),
        ("CREATE TABLE IF NOT EXISTS rm_stage_intervals (candidacy_id TEXT NOT NULL, "
        "seq INTEGER NOT NULL, workspace TEXT NOT NULL, recruiter TEXT, company TEXT, "
        "round INTEGER NOT NULL, stage TEXT NOT NULL, entered_at TEXT NOT NULL, left_at TEXT, "
        "seconds DOUBLE PRECISION, PRIMARY KEY (candidacy_id, seq))"),
        # Median and p90 read one stage's ended stays in order of length, from the index.
        ("CREATE INDEX IF NOT EXISTS rm_stage_intervals_seconds ON rm_stage_intervals "
        "(workspace, stage, seconds)"),
        ("CREATE TABLE IF NOT EXISTS rm_rounds (candidacy_id TEXT NOT NULL, "
        "round INTEGER NOT NULL, workspace TEXT NOT NULL, recruiter TEXT, company TEXT, "
        "opened_at TEXT NOT NULL, reached INTEGER NOT NULL, PRIMARY KEY (candidacy_id, round))"),
        ("CREATE INDEX IF NOT EXISTS rm_rounds_reached ON rm_rounds "
        "(workspace, round, reached)"),
        # Ended stays counted by whole days of length, then by exact length: time in
        # stage finds a rank's day from a few dozen day counts, then its exact length
        # within that day, instead of walking every stay (`time_in_stage`).
        ("CREATE TABLE IF NOT EXISTS rm_stay_days (workspace TEXT NOT NULL, "
        "stage TEXT NOT NULL, recruiter TEXT NOT NULL, company TEXT NOT NULL, "
        "day INTEGER NOT NULL, n INTEGER NOT NULL, "
        "PRIMARY KEY (workspace, stage, recruiter, company, day))"),
        ("CREATE TABLE IF NOT EXISTS rm_stay_lengths (workspace TEXT NOT NULL, "
        "stage TEXT NOT NULL, recruiter TEXT NOT NULL, company TEXT NOT NULL, "
        "seconds DOUBLE PRECISION NOT NULL, n INTEGER NOT NULL, "
        "PRIMARY KEY (workspace, stage, recruiter, company, seconds))"),
        # Covering (the filters and the count too): a day's lengths are read from the
        # index alone (PostgreSQL: 1,060 heap blocks visited for one day without it).
        ("CREATE INDEX IF NOT EXISTS rm_stay_lengths_seconds ON rm_stay_lengths "
        "(workspace, stage, seconds, recruiter, company, n)"),
    )

    scrubs = ("UPDATE rm_pipeline SET candidate = 'erased', reason = CASE WHEN reason IS "
              "NULL THEN NULL ELSE 'erased' END WHERE candidacy_id = ?",)

    def apply(self, tx: Tx, event: Any, notification_id: int) -> None:
        cid, at, stage, name = _cid(event), _iso(event.timestamp), str(event.stage), _name(event)
        nudge = int(name in _NUDGE_EVENTS)
        _scrub_if_erased(self, tx, name, cid)
        if name == "InterviewRecorded":
            candidate = getattr(event, "candidate", {}) or {}
            tx.execute("INSERT INTO rm_pipeline (candidacy_id, workspace, company, role, "
                       "candidate, recruiter, actor, stage, round, entered_stage_at, "
                       "updated_at, version, intervals, opened_at, nudges, policy) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, 1, ?, 0, ?)",
                       (cid, event.workspace, event.company, event.role, candidate.get("name"),
                        event.actor, event.actor, stage, at, at, event.originator_version, at,
                        _policy_ref(getattr(event, "policy", None))))
            tx.execute("INSERT INTO rm_stage_intervals (candidacy_id, seq, workspace, "
                       "recruiter, company, round, stage, entered_at) "
                       "VALUES (?, 1, ?, ?, ?, 1, ?, ?)",
                       (cid, event.workspace, event.actor, event.company, stage, at))
            tx.execute("INSERT INTO rm_rounds (candidacy_id, round, workspace, recruiter, "
                       "company, opened_at, reached) VALUES (?, 1, ?, ?, ?, ?, ?)",
                       (cid, event.workspace, event.actor, event.company, at,
                        _REACHED_BIT.get(stage, 0)))
            tx.memo[cid] = (stage, 1, 1, event.actor, event.company, at)
            return
        row = tx.memo.get(cid) or tx.one(
            "SELECT p.stage, p.round, p.intervals, p.recruiter, p.company, i.entered_at "
            "FROM rm_pipeline p JOIN rm_stage_intervals i ON i.candidacy_id=p.candidacy_id "
            "AND i.seq=p.intervals WHERE p.candidacy_id=?", (cid,))
        if row is None:
            return  # its opening event could not be read (passed over)
        old_stage, old_round, intervals, recruiter, company, entered = row
        new_round = int(getattr(event, "round", old_round)) if name == "RoundStarted" \
            else old_round
        if name == "PolicyMigrated":
            tx.execute("UPDATE rm_pipeline SET policy=? WHERE candidacy_id=?",
                       (_policy_ref(getattr(event, "policy", None)), cid))
        if stage == old_stage and new_round == old_round:
            tx.execute("UPDATE rm_pipeline SET actor=?, updated_at=?, version=?, "
                       "nudges=nudges+? WHERE candidacy_id=?",
                       (event.actor, at, event.originator_version, nudge, cid))
            return
        seconds = (datetime.fromisoformat(at) - datetime.fromisoformat(entered)).total_seconds()
        tx.execute("UPDATE rm_stage_intervals SET left_at=?, seconds=? WHERE candidacy_id=? "
                   "AND seq=?", (at, seconds, cid, intervals))
        stay = (event.workspace, old_stage, recruiter or "", company or "")
        tx.execute("INSERT INTO rm_stay_days (workspace, stage, recruiter, company, day, n) "
                   "VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (workspace, stage, recruiter, "
                   "company, day) DO UPDATE SET n=rm_stay_days.n+1",
                   (*stay, stay_day(seconds)))
        tx.execute("INSERT INTO rm_stay_lengths (workspace, stage, recruiter, company, "
                   "seconds, n) VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (workspace, stage, "
                   "recruiter, company, seconds) DO UPDATE SET n=rm_stay_lengths.n+1",
                   (*stay, seconds))
        tx.execute("INSERT INTO rm_stage_intervals (candidacy_id, seq, workspace, recruiter, "
                   "company, round, stage, entered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (cid, intervals + 1, event.workspace, recruiter, company, new_round, stage,
                    at))
        if new_round != old_round:
            tx.execute("INSERT INTO rm_rounds (candidacy_id, round, workspace, recruiter, "
                       "company, opened_at, reached) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (cid, new_round, event.workspace, recruiter, company, at,
                        _REACHED_BIT.get(stage, 0)))
        elif stage in _REACHED_BIT:
            tx.execute("UPDATE rm_rounds SET reached=reached | ? WHERE candidacy_id=? "
                       "AND round=?", (_REACHED_BIT[stage], cid, new_round))
        # Why it stalled, and by which rule (a stall the policy decided names its rule).
        stalled = stage == Stage.STALLED.value
        tx.execute("UPDATE rm_pipeline SET stage=?, round=?, entered_stage_at=?, actor=?, "
                   "updated_at=?, version=?, intervals=?, "
                   "nudges=CASE WHEN round<>? THEN 0 ELSE nudges+? END, reason=?, rule=? "
                   "WHERE candidacy_id=?",
                   (stage, new_round, at, event.actor, at, event.originator_version,
                    intervals + 1, new_round, nudge,
                    (getattr(event, "reason", None) or summary(event)) if stalled else None,
                    _decided_by(event).get("rule") if stalled else None, cid))
        tx.memo[cid] = (stage, new_round, intervals + 1, recruiter, company, at)


# -- compliance -------------------------------------------------------------------------


class Compliance(ReadModel):
    """Thank-yous delivered the same local day, nudges on time, manual overrides."""

    name = "compliance"
    table_names = ("rm_compliance_candidacies", "rm_thank_yous", "rm_nudges", "rm_overrides")
    tables = (
        ("CREATE TABLE IF NOT EXISTS rm_compliance_candidacies (candidacy_id TEXT PRIMARY KEY, "
        "workspace TEXT NOT NULL, recruiter TEXT, company TEXT, timezone TEXT NOT NULL, "
        "round INTEGER NOT NULL)"),
        ("CREATE TABLE IF NOT EXISTS rm_thank_yous (candidacy_id TEXT NOT NULL, "
        "round INTEGER NOT NULL, workspace TEXT NOT NULL, recruiter TEXT, company TEXT, "
        "interviewed_at TEXT, interview_day TEXT, decided_at TEXT, requested_at TEXT, "
        "delivered_at TEXT, delivered_day TEXT, deliveries INTEGER NOT NULL, "
        "same_day INTEGER NOT NULL, PRIMARY KEY (candidacy_id, round))"),
        # The weekly tallies read these in group order, without a sort.
        ("CREATE INDEX IF NOT EXISTS rm_thank_yous_day ON rm_thank_yous "
        "(workspace, recruiter, interview_day, same_day)"),
        ("CREATE TABLE IF NOT EXISTS rm_nudges (candidacy_id TEXT NOT NULL, "
        "version INTEGER NOT NULL, workspace TEXT NOT NULL, recruiter TEXT, company TEXT, "
        "round INTEGER NOT NULL, manual INTEGER NOT NULL, rule TEXT, due_at TEXT, "
        "due_day TEXT, decided_at TEXT, delivered_at TEXT, on_time INTEGER, "
        "PRIMARY KEY (candidacy_id, version))"),
        ("CREATE INDEX IF NOT EXISTS rm_nudges_day ON rm_nudges "
        "(workspace, recruiter, due_day, on_time)"),
        ("CREATE TABLE IF NOT EXISTS rm_overrides (candidacy_id TEXT NOT NULL, "
        "version INTEGER NOT NULL, workspace TEXT NOT NULL, recruiter TEXT, at TEXT NOT NULL, "
        "command TEXT NOT NULL, rule TEXT, reason TEXT, PRIMARY KEY (candidacy_id, version))"),
    )

    scrubs = ("UPDATE rm_overrides SET reason = 'erased' WHERE candidacy_id = ?",)

    def apply(self, tx: Tx, event: Any, notification_id: int) -> None:
        name, cid = _name(event), _cid(event)
        _scrub_if_erased(self, tx, name, cid)
        if name == "InterviewRecorded":
            tx.execute("INSERT INTO rm_compliance_candidacies (candidacy_id, workspace, "
                       "recruiter, company, timezone, round) VALUES (?, ?, ?, ?, ?, 1)",
                       (cid, event.workspace, event.actor, event.company, event.timezone))
            tx.memo[cid] = {"workspace": event.workspace, "recruiter": event.actor,
                            "company": event.company, "timezone": event.timezone, "round": 1}
            self._open_round(tx, cid, 1, event)
            return
        context = tx.memo.get(cid)
        if context is None:
            row = tx.one("SELECT workspace, recruiter, company, timezone, round FROM "
                         "rm_compliance_candidacies WHERE candidacy_id=?", (cid,))
            if row is None:
                return  # its opening event could not be read (passed over)
            context = tx.memo[cid] = dict(
                zip(("workspace", "recruiter", "company", "timezone", "round"), row, strict=True))
        if name == "RoundStarted":
            round_ = int(getattr(event, "round", context["round"] + 1))
            tx.execute("UPDATE rm_compliance_candidacies SET round=? WHERE candidacy_id=?",
                       (round_, cid))
            self._open_round(tx, cid, round_, event, context)
            context["round"] = round_
        elif name in ("ThankYouSent", "ThankYouDecided", "ThankYouRequested"):
            self._thank_you(tx, cid, context, event, name)
        elif name in ("NudgeSent", "NudgeDecided", "NudgeRequested"):
            self._nudge(tx, cid, context, event, name)
        elif name == "MessageDelivered":
            self._delivered(tx, cid, context, event)
        self._override(tx, cid, context, event, name)

    @staticmethod
    def _open_round(tx: Tx, cid: str, round_: int, event: Any,
                    context: dict[str, Any] | None = None) -> None:
        interview = getattr(event, "interview", {}) or {}
        interviewed_at = _iso(interview.get("interviewed_at")) or _iso(event.timestamp)
        zone = context["timezone"] if context else event.timezone
        workspace = context["workspace"] if context else event.workspace
        recruiter = context["recruiter"] if context else event.actor
        company = context["company"] if context else event.company
        tx.execute("INSERT INTO rm_thank_yous (candidacy_id, round, workspace, recruiter, "
                   "company, interviewed_at, interview_day, deliveries, same_day) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0)",
                   (cid, round_, workspace, recruiter, company, interviewed_at,
                    _local_day(interviewed_at, zone)))

    def _thank_you(self, tx: Tx, cid: str, context: dict[str, Any], event: Any,
                   name: str) -> None:
        at = _iso(event.timestamp)
        decided = bool(_decided_by(event)) or name == "ThankYouDecided"
        if decided:
            tx.execute("UPDATE rm_thank_yous SET decided_at=COALESCE(decided_at, ?) "
                       "WHERE candidacy_id=? AND round=?", (at, cid, context["round"]))
        if name == "ThankYouRequested":
            tx.execute("UPDATE rm_thank_yous SET requested_at=COALESCE(requested_at, ?) "
                       "WHERE candidacy_id=? AND round=?", (at, cid, context["round"]))
        if name == "ThankYouSent":
            # Without decided_by a person says they sent it; with it (histories before
            # deliveries were recorded) the decision is taken as delivered.
            self._thank_you_delivered(tx, cid, context,
                                      _iso(getattr(event, "occurred_at", None) or at))

    @staticmethod
    def _thank_you_delivered(tx: Tx, cid: str, context: dict[str, Any], at: str | None) -> None:
        day = _local_day(at, context["timezone"])
        tx.execute("UPDATE rm_thank_yous SET deliveries=deliveries+1, "
                   "delivered_day=COALESCE(delivered_day, ?), "
                   "same_day=CASE WHEN delivered_at IS NULL AND interview_day=? THEN 1 "
                   "ELSE same_day END, delivered_at=COALESCE(delivered_at, ?) "
                   "WHERE candidacy_id=? AND round=?", (day, day, at, cid, context["round"]))

    @staticmethod
    def _nudge(tx: Tx, cid: str, context: dict[str, Any], event: Any, name: str) -> None:
        at = _iso(event.timestamp)
        decided = _decided_by(event)
        manual = not decided and name != "NudgeDecided"
        due = _iso(decided.get("due_at")) if decided else None
        due_day = _local_day(due, context["timezone"])
        delivered = at if name == "NudgeSent" else None
        on_time = None
        if due is not None and delivered is not None:
            on_time = int(_local_day(delivered, context["timezone"]) <= due_day)  # type: ignore[operator]
        tx.execute("INSERT INTO rm_nudges (candidacy_id, version, workspace, recruiter, "
                   "company, round, manual, rule, due_at, due_day, decided_at, delivered_at, "
                   "on_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (cid, event.originator_version, context["workspace"], context["recruiter"],
                    context["company"], context["round"], int(manual), decided.get("rule"),
                    due, due_day, None if manual else at, delivered, on_time))

    def _delivered(self, tx: Tx, cid: str, context: dict[str, Any], event: Any) -> None:
        kind = str(getattr(event, "kind", ""))
        # When the channel delivered it (``occurred_at``), not when that was recorded.
        at = _iso(getattr(event, "occurred_at", None) or getattr(event, "at", None)
                  or event.timestamp)
        if kind in THANK_YOU_KINDS:
            self._thank_you_delivered(tx, cid, context, at)
        elif kind in NUDGE_KINDS:
            # The nudge it delivers (``trigger_version``); without one, the earliest of the
            # candidacy's nudges not yet delivered.
            trigger = getattr(event, "trigger_version", None)
            if trigger is None:
                row = tx.one("SELECT version, due_day FROM rm_nudges WHERE candidacy_id=? "
                             "AND delivered_at IS NULL ORDER BY version LIMIT 1", (cid,))
            else:
                row = tx.one("SELECT version, due_day FROM rm_nudges WHERE candidacy_id=? "
                             "AND version=? AND delivered_at IS NULL", (cid, int(trigger)))
            if row is None:
                return  # a second channel of a nudge already delivered
            version, due_day = row
            on_time = None if due_day is None else int(
                _local_day(at, context["timezone"]) <= due_day)
            tx.execute("UPDATE rm_nudges SET delivered_at=?, on_time=? WHERE candidacy_id=? "
                       "AND version=?", (at, on_time, cid, version))

    @staticmethod
    def _override(tx: Tx, cid: str, context: dict[str, Any], event: Any, name: str) -> None:
        override = getattr(event, "override", None)
        reason = getattr(event, "override_reason", None)
        if not override and not reason:
            return
        rule = getattr(event, "override_rule", None)
        if isinstance(override, dict):
            # engine.application records {"reason", "overrides": <the rule overridden>}.
            rule = override.get("overrides", override.get("rule", rule))
            reason = override.get("reason", reason)
        elif isinstance(override, str) and not reason:
            reason = override
        tx.execute("INSERT INTO rm_overrides (candidacy_id, version, workspace, recruiter, at, "
                   "command, rule, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (cid, event.originator_version, context["workspace"], context["recruiter"],
                    _iso(event.timestamp), name, None if rule is None else str(rule),
                    None if reason is None else str(reason)))


# -- timeline ---------------------------------------------------------------------------


def event_kind(event: Any) -> str:
    """fact, decision, delivery or correction: what kind of line ``event`` is."""
    name = _name(event)
    if name in DELIVERY_EVENTS:
        return "delivery"
    if _CORRECTION.search(name):
        return "correction"
    if name in DECISION_EVENTS or _decided_by(event):
        return "decision"
    return "fact"


def _words(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()


def summary(event: Any) -> str:
    """A short sentence for a person reading the candidacy's timeline."""
    name = _name(event)

    def get(field: str) -> Any:
        return getattr(event, field, None)

    decided = _decided_by(event)
    if name == "InterviewRecorded":
        who = (get("candidate") or {}).get("name", "")
        return f"interview: {who} for {get('role')} at {get('company')}"
    if name == "HesitationRaised":
        return f"hesitation raised: {get('text')}"
    if name == "HesitationAddressed":
        return f"hesitation answered: {get('answer')}"
    if name == "NoHesitationsRecorded":
        return "no hesitations"
    if name == "NextStepClosed":
        return f"next step closed: {get('description')}"
    if name == "ThankYouSent":
        to = ", ".join(get("to") or [])
        if decided:
            return (f"thank-you decided by the policy and assumed delivered ({get('medium')}) "
                    f"to {to}")
        return f"thank-you sent by a person ({get('medium')}) to {to}"
    if name in ("ThankYouDecided", "NudgeDecided"):
        return f"{_words(name)} ({decided.get('rule', 'policy')})"
    if name == "NudgeSent":
        channels = ", ".join(get("channels") or [])
        if decided:
            return f"nudge decided by the policy and assumed delivered ({channels})"
        return f"nudge sent by a person ({channels}): {get('reason')}"
    if name in DELIVERY_EVENTS:
        detail = get("error") or get("confirmed_by") or ""
        return " ".join(str(p) for p in (_words(name), get("kind"), "on", get("channel"),
                                         detail) if p)
    if name == "ReplyReceived":
        note = get("note")
        return f"reply: {get('kind')}" + (f": {note}" if note else "")
    if name == "CompetingOfferNoted":
        return f"competing offer from {get('company')}"
    if name == "CadencePaused":
        return f"paused: {get('reason')}"
    if name in ("Stalled", "Withdrawn"):
        return f"{name.lower()}: {get('reason')}"
    if name == "ReminderSent":
        return f"reminder: {get('kind')}"
    if name == "RoundStarted":
        return f"round {get('round')} begins"
    if name == "PolicyMigrated":
        policy = get("policy") or {}
        return f"moved to policy {policy.get('name')}@{policy.get('version')}"
    return _words(name)


_PERSONAL_SUMMARIES = frozenset({
    "InterviewRecorded", "HesitationRaised", "HesitationAddressed", "NextStepClosed",
    "NudgeSent", "ReplyReceived", "CadencePaused", "Stalled", "Withdrawn",
    *DELIVERY_EVENTS})
"""The events whose timeline sentence quotes what a person or channel wrote."""


def _scrub_if_erased(model: Any, tx: Tx, name: str, cid: str) -> None:
    """An `Erased` event clears the model's plaintext copies again (the erasure's own
    transaction cleared them already, engine.personal_data.register_scrub: this covers
    a batch that read the events before the key went and wrote them after)."""
    if name == "Erased":
        for sql in model.scrubs:
            tx.execute(sql, (cid,))


class EventTimeline(ReadModel):
    """One row per candidacy event: what kind, when, by which rule, in a sentence."""

    name = "timeline"
    table_names = ("rm_timeline",)
    tables = (
        ("CREATE TABLE IF NOT EXISTS rm_timeline (candidacy_id TEXT NOT NULL, "
        "version INTEGER NOT NULL, notification_id BIGINT NOT NULL, workspace TEXT NOT NULL, "
        "at TEXT NOT NULL, occurred_at TEXT, kind TEXT NOT NULL, type TEXT NOT NULL, "
        "stage TEXT NOT NULL, actor TEXT, rule TEXT, policy TEXT, policy_version INTEGER, "
        "summary TEXT NOT NULL, PRIMARY KEY (candidacy_id, version))"),
    )

    scrubs = ("UPDATE rm_timeline SET summary = 'erased' WHERE candidacy_id = ? AND type IN "
              f"({', '.join(repr(t) for t in sorted(_PERSONAL_SUMMARIES))})",)

    def apply(self, tx: Tx, event: Any, notification_id: int) -> None:
        _scrub_if_erased(self, tx, _name(event), _cid(event))
        decided = _decided_by(event)
        version = decided.get("version")
        tx.execute("INSERT INTO rm_timeline (candidacy_id, version, notification_id, "
                   "workspace, at, occurred_at, kind, type, stage, actor, rule, policy, "
                   "policy_version, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   (_cid(event), event.originator_version, notification_id, event.workspace,
                    _iso(event.timestamp), _iso(getattr(event, "occurred_at", None)),
                    event_kind(event), _name(event), str(event.stage), event.actor,
                    decided.get("rule"), decided.get("policy"),
                    None if version is None else int(version), summary(event)))


# -- policy pins ------------------------------------------------------------------------


class PolicyPins(ReadModel):
    """Which published policy version each candidacy runs under (``rm_policy_pins``), and
    how often it was moved: how many candidacies are pinned to each version."""

    name = "policies"
    table_names = ("rm_policy_pins",)
    tables = (
        ("CREATE TABLE IF NOT EXISTS rm_policy_pins (candidacy_id TEXT PRIMARY KEY, "
         "workspace TEXT NOT NULL, recruiter TEXT, company TEXT, policy TEXT NOT NULL, "
         "policy_version INTEGER NOT NULL, migrations INTEGER NOT NULL, "
         "migrated_at TEXT)"),
        ("CREATE INDEX IF NOT EXISTS rm_policy_pins_policy ON rm_policy_pins "
         "(workspace, policy, policy_version)"),
    )

    def apply(self, tx: Tx, event: Any, notification_id: int) -> None:
        name = _name(event)
        if name not in ("InterviewRecorded", "PolicyMigrated"):
            return
        policy = getattr(event, "policy", None) or {}
        pinned = (str(policy.get("name")), int(policy.get("version", 0)))
        if name == "InterviewRecorded":
            tx.execute("INSERT INTO rm_policy_pins (candidacy_id, workspace, recruiter, "
                       "company, policy, policy_version, migrations) "
                       "VALUES (?, ?, ?, ?, ?, ?, 0)",
                       (_cid(event), event.workspace, event.actor, event.company, *pinned))
            return
        tx.execute("UPDATE rm_policy_pins SET policy=?, policy_version=?, "
                   "migrations=migrations+1, migrated_at=? WHERE candidacy_id=?",
                   (*pinned, _iso(event.timestamp), _cid(event)))


READ_MODELS: dict[str, type[ReadModel]] = {
    m.name: m for m in (Pipeline, Compliance, EventTimeline, PolicyPins)}


def read_models(app: Any, names: Sequence[str] | None = None) -> list[ReadModel]:
    """The dashboard's read models (or those named) on ``app``'s database."""
    chosen = list(names or READ_MODELS)
    unknown = [n for n in chosen if n not in READ_MODELS]
    if unknown:
        raise ValueError(f"no read model named {', '.join(unknown)} "
                         f"(there are: {', '.join(READ_MODELS)})")
    models = [READ_MODELS[n].on(app) for n in chosen]
    for model in models:
        register_scrub(app, *getattr(model, "scrubs", ()))
    return models


def follower(app: Any, names: Sequence[str] | None = None, *, batch: int = 500) -> Follower:
    """A follower of ``app``'s log keeping the dashboard's read models current."""
    return Follower(app, read_models(app, names), batch=batch)


# -- the figures ------------------------------------------------------------------------
#
# Every query takes the same filters: ``workspace``, ``recruiter``, ``company`` and a date
# range ``since`` (inclusive) .. ``until`` (exclusive), ISO dates or moments, applied to the
# figure's own date (named in each docstring); the dashboard's `Filters.figures()` says them.


def _where(filters: dict[str, Any], date_column: str | None = None,
           since: str | None = None, until: str | None = None) -> tuple[str, list[Any]]:
    clauses, params = ["1=1"], []
    for column, value in filters.items():
        if value is not None:
            clauses.append(f"{column}=?")
            params.append(value)
    if date_column and since:
        clauses.append(f"{date_column}>=?")
        params.append(since)
    if date_column and until:
        clauses.append(f"{date_column}<?")
        params.append(until)
    return " AND ".join(clauses), params


def stage_counts(view: ReadModelRecorder, *, workspace: str | None = None,
                 recruiter: str | None = None, company: str | None = None,
                 since: str | None = None, until: str | None = None) -> dict[str, int]:
    """How many candidacies stand in each stage now (of those opened in the range)."""
    where, params = _where({"workspace": workspace, "recruiter": recruiter,
                            "company": company}, "opened_at", since, until)
    rows = view.read(f"SELECT stage, COUNT(*) FROM rm_pipeline WHERE {where} GROUP BY stage",
                     params)
    return {str(stage): int(count) for stage, count in rows}


def rounds(view: ReadModelRecorder, *, workspace: str | None = None,
           recruiter: str | None = None, company: str | None = None,
           since: str | None = None, until: str | None = None) -> int:
    """The highest interview round any candidacy reached (0: none)."""
    where, params = _where({"workspace": workspace, "recruiter": recruiter,
                            "company": company}, "opened_at", since, until)
    [(top,)] = view.read(f"SELECT MAX(round) FROM rm_rounds WHERE {where}", params)
    return int(top or 0)


def funnel(view: ReadModelRecorder, round_: int = 1, *, workspace: str | None = None,
           recruiter: str | None = None, company: str | None = None,
           since: str | None = None, until: str | None = None
           ) -> list[tuple[str, int, float | None]]:
    """Per funnel step of round ``round_`` (rounds opened in the range): how many
    candidacies reached it, and the share of those that reached the next step (None for
    the last, or when none reached)."""
    where, params = _where({"workspace": workspace, "recruiter": recruiter,
                            "company": company, "round": round_}, "opened_at", since, until)
    # One row per combination of steps reached (a few dozen), not per candidacy.
    masks = view.read(f"SELECT reached, COUNT(*) FROM rm_rounds WHERE {where} "
                      "GROUP BY reached", params)
    answer = []
    for i, step in enumerate(FUNNEL):
        bit = 1 << i
        reached = sum(int(n) for mask, n in masks if int(mask) & bit)
        share = None
        if i + 1 < len(FUNNEL) and reached:
            both = bit | (1 << (i + 1))
            share = sum(int(n) for mask, n in masks if int(mask) & both == both) / reached
        answer.append((step.value, reached, share))
    return answer


def stay_day(seconds: float) -> int:
    """The whole days in a stay of ``seconds`` (its bucket in ``rm_stay_days``)."""
    return math.floor(seconds / _DAY)


_DAY = 86_400


def time_in_stage(view: ReadModelRecorder, *, workspace: str | None = None,
                  recruiter: str | None = None, company: str | None = None,
                  since: str | None = None, until: str | None = None
                  ) -> dict[str, tuple[int, float, float]]:
    """Per stage: how many stays have ended, their median and p90 (nearest rank) in
    seconds; stays entered in the range."""
    if since is None and until is None:
        return _time_in_stage_counted(view, workspace=workspace, recruiter=recruiter,
                                      company=company)
    where, params = _where({"workspace": workspace, "recruiter": recruiter,
                            "company": company}, "entered_at", since, until)
    where += " AND seconds IS NOT NULL"
    counts = view.read(f"SELECT stage, COUNT(*) FROM rm_stage_intervals WHERE {where} "
                       "GROUP BY stage", params)
    answer = {}
    for stage, count in sorted(counts):
        n = int(count)

        def nth(offset: int, many: int = 1, stage: str = stage) -> list[float]:
            # In the (workspace, stage, seconds) index's order: a walk, not a sort.
            return [float(s) for (s,) in view.read(
                f"SELECT seconds FROM rm_stage_intervals WHERE {where} AND stage=? "
                f"ORDER BY seconds LIMIT {many} OFFSET {offset}", [*params, stage])]

        middle = nth((n - 1) // 2, 2 - n % 2)
        answer[str(stage)] = (n, sum(middle) / len(middle),
                              nth(max(0, math.ceil(0.9 * n) - 1))[0])
    return answer


def _time_in_stage_counted(view: ReadModelRecorder, *, workspace: str | None,
                           recruiter: str | None, company: str | None
                           ) -> dict[str, tuple[int, float, float]]:
    """`time_in_stage` over every ended stay, from the stays counted as they ended: a
    rank's day from ``rm_stay_days``, then its length from that day's ``rm_stay_lengths``
    (100,000 candidacies, ~730,000 stays: instead of walking the stays' index to each
    rank; see docs/performance.md, "Dashboard (issue 16)")."""
    where, params = _where({"workspace": workspace, "recruiter": recruiter,
                            "company": company})
    days: dict[str, list[tuple[int, int]]] = {}
    for stage, day, n in view.read(f"SELECT stage, day, SUM(n) FROM rm_stay_days WHERE "
                                   f"{where} GROUP BY stage, day ORDER BY stage, day", params):
        days.setdefault(str(stage), []).append((int(day), int(n)))

    def nth(stage: str, rank: int) -> float:
        """The length of the stay at 0-based ``rank`` in order of length."""
        before, at = 0, 0
        while rank >= before + days[stage][at][1]:
            before += days[stage][at][1]
            at += 1
        day = days[stage][at][0]
        # Within the day: the first length whose running count passes the rank.
        [(seconds,)] = view.read(
            f"SELECT seconds FROM (SELECT seconds, SUM(SUM(n)) OVER (ORDER BY seconds) AS "
            f"upto FROM rm_stay_lengths WHERE {where} AND stage=? AND seconds>=? AND "
            f"seconds<? GROUP BY seconds) AS lengths WHERE upto>? ORDER BY seconds LIMIT 1",
            [*params, stage, day * _DAY, (day + 1) * _DAY, rank - before])
        return float(seconds)

    answer = {}
    for stage in sorted(days):
        n = sum(count for _, count in days[stage])
        middle = [nth(stage, (n - 1) // 2)] + ([nth(stage, n // 2)] if n % 2 == 0 else [])
        answer[stage] = (n, sum(middle) / len(middle), nth(stage, max(0, math.ceil(0.9 * n) - 1)))
    return answer


def _week(day: str) -> str:
    year, week, _ = date.fromisoformat(day[:10]).isocalendar()
    return f"{year}-W{week:02d}"


def thank_you_compliance(view: ReadModelRecorder, *, workspace: str | None = None,
                         recruiter: str | None = None, company: str | None = None,
                         since: str | None = None, until: str | None = None
                         ) -> dict[tuple[str, str], tuple[int, int]]:
    """Per (recruiter, ISO week of the interview's local day): how many interviews, and
    how many had a thank-you *delivered* that same local day; interview days in the
    range."""
    where, params = _where({"workspace": workspace, "recruiter": recruiter,
                            "company": company}, "interview_day", since, until)
    return _weekly_tally(view.read(
        f"SELECT recruiter, interview_day, COUNT(*), SUM(same_day) FROM rm_thank_yous "
        f"WHERE {where} GROUP BY recruiter, interview_day", params))


def nudge_compliance(view: ReadModelRecorder, *, workspace: str | None = None,
                     recruiter: str | None = None, company: str | None = None,
                     since: str | None = None, until: str | None = None
                     ) -> dict[tuple[str, str], tuple[int, int]]:
    """Per (recruiter, ISO week of the due day): policy nudges due, and how many were
    *delivered* by their due local day; due days in the range."""
    where, params = _where({"workspace": workspace, "recruiter": recruiter,
                            "company": company}, "due_day", since, until)
    return _weekly_tally(view.read(
        f"SELECT recruiter, due_day, COUNT(*), SUM(COALESCE(on_time, 0)) FROM rm_nudges "
        f"WHERE {where} AND due_day IS NOT NULL GROUP BY recruiter, due_day", params))


def _weekly_tally(rows: list[tuple[Any, ...]]) -> dict[tuple[str, str], tuple[int, int]]:
    """(recruiter, day, rows, rows met) counted per (recruiter, ISO week)."""
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for who, day, count, met in rows:
        key = (str(who), _week(day))
        total, done = out.get(key, (0, 0))
        out[key] = (total + int(count), done + int(met or 0))
    return out


def overrides(view: ReadModelRecorder, *, workspace: str | None = None,
              recruiter: str | None = None, company: str | None = None,
              since: str | None = None, until: str | None = None) -> list[tuple[Any, ...]]:
    """Manual overrides of the pest line or patience, made in the range: candidacy, when,
    command, rule, reason."""
    where, params = _where({"o.workspace": workspace, "o.recruiter": recruiter,
                            "c.company": company}, "o.at", since, until)
    return view.read(f"SELECT o.candidacy_id, o.at, o.command, o.rule, o.reason FROM "
                     f"rm_overrides o JOIN rm_compliance_candidacies c ON "
                     f"c.candidacy_id=o.candidacy_id WHERE {where} "
                     f"ORDER BY o.at, o.candidacy_id", params)


def override_counts(view: ReadModelRecorder, *, workspace: str | None = None,
                    recruiter: str | None = None, company: str | None = None,
                    since: str | None = None, until: str | None = None
                    ) -> dict[tuple[str, str], int]:
    """Per (recruiter, ISO week of the override's local day): how many overrides."""
    where, params = _where({"o.workspace": workspace, "o.recruiter": recruiter,
                            "c.company": company}, "o.at", since, until)
    out: dict[tuple[str, str], int] = {}
    for who, at, zone in view.read(
            f"SELECT o.recruiter, o.at, c.timezone FROM rm_overrides o JOIN "
            f"rm_compliance_candidacies c ON c.candidacy_id=o.candidacy_id WHERE {where}",
            params):
        key = (str(who), _week(_local_day(at, zone) or at))
        out[key] = out.get(key, 0) + 1
    return out


class Stall(NamedTuple):
    """A candidacy stalled, or about to: when, why, by which rule of which policy."""

    candidacy_id: str
    candidate: str | None
    company: str | None
    recruiter: str | None
    at: str
    reason: str | None
    rule: str | None
    policy: str | None


def stalled(view: ReadModelRecorder, *, workspace: str | None = None,
            recruiter: str | None = None, company: str | None = None,
            since: str | None = None, until: str | None = None,
            limit: int = 200) -> list[Stall]:
    """Candidacies that stalled in the range, latest first, with the reason and the rule
    (None: a person stalled it)."""
    where, params = _where({"workspace": workspace, "recruiter": recruiter,
                            "company": company}, "entered_stage_at", since, until)
    return [Stall(*row) for row in view.read(
        f"SELECT candidacy_id, candidate, company, recruiter, entered_stage_at, reason, rule, "
        f"policy FROM rm_pipeline WHERE {where} AND stage='stalled' "
        f"ORDER BY entered_stage_at DESC, candidacy_id LIMIT {int(limit)}", params)]


def about_to_stall(app: Any, view: ReadModelRecorder, now: datetime,
                   within: timedelta = timedelta(days=7), *, workspace: str,
                   recruiter: str | None = None, company: str | None = None,
                   limit: int = 200) -> list[Stall]:
    """Candidacies whose policy will stall them by ``now + within``, soonest first: the
    moment, the reason and the rule are the engine's own (`engine.decisions.plan`).

    Only candidacies with something due by then (their ``closer_candidacies.due_at``, the
    first planned step) can have a stall due by then: those are the ones planned."""
    from engine.decisions import plan

    horizon = now + within
    where, params = _where({"p.workspace": workspace, "p.recruiter": recruiter,
                            "p.company": company})
    rows = view.read(
        f"SELECT p.candidacy_id, p.recruiter FROM rm_pipeline p JOIN closer_candidacies c ON "
        f"c.id=p.candidacy_id WHERE {where} AND p.stage IN ('awaiting', 'nudged') AND "
        f"c.due_at IS NOT NULL AND c.due_at<=? ORDER BY c.due_at, p.candidacy_id "
        f"LIMIT {int(limit)}", [*params, _iso(horizon)])
    answer = []
    for cid, who in rows:
        try:
            candidacy = app.get(cid, workspace)
        except CorruptHistory:
            continue  # `closer doctor` lists it; the page lists the others
        except CandidacyNotFound:
            continue  # another workspace's row: not this page's
        policy = app.policies.of(candidacy)
        for action in plan(candidacy, policy):
            if action.kind == "stall" and action.due_at <= horizon:
                answer.append(Stall(cid, candidacy.candidate.get("name"), candidacy.company,
                                    who, _iso(action.due_at), action.note,
                                    action.rule, f"{policy.name}@{policy.version}"))
    return sorted(answer, key=lambda s: (s.at, s.candidacy_id))


def pinned_counts(view: ReadModelRecorder, *, workspace: str | None = None,
                  recruiter: str | None = None, company: str | None = None
                  ) -> dict[tuple[str, int], int]:
    """How many candidacies run under each policy version, by ``(name, version)``."""
    where, params = _where({"workspace": workspace, "recruiter": recruiter,
                            "company": company})
    rows = view.read(f"SELECT policy, policy_version, COUNT(*) FROM rm_policy_pins "
                     f"WHERE {where} GROUP BY policy, policy_version", params)
    return {(str(name), int(version)): int(count) for name, version, count in rows}


def pinned_ids(view: ReadModelRecorder, *, workspace: str, recruiter: str) -> set[str]:
    """The candidacies of ``recruiter`` (who recorded the interview) in ``workspace``."""
    return {str(row[0]) for row in view.read(
        "SELECT candidacy_id FROM rm_policy_pins WHERE workspace=? AND recruiter=?",
        (workspace, recruiter))}


def dump(model: ReadModel) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of ``model``, in a stable order (for comparisons)."""
    return {table: sorted(model.view.read(f"SELECT * FROM {table}"), key=repr)
            for table in model.table_names}
