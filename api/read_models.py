"""The dashboard's read models, kept current from the candidacies' history.

Three read models (`engine.follower.ReadModel`), each with its tables and its handlers,
written by the follower in one transaction with its tracking position:

- **pipeline**: per candidacy its stage, round, company, workspace, recruiter and last
  actor, and when it entered its stage (``rm_pipeline``); every stage a candidacy was in,
  per round, from when to when (``rm_stage_intervals``): counts per stage, funnel and
  passthrough per round, median and p90 time in stage.
- **compliance**: per thank-you (candidacy and round) the interview's local day and
  whether a thank-you was *delivered* that same local day (``rm_thank_yous``: deliveries
  are counted, not decisions); per nudge whether it went on time (``rm_nudges``); manual
  overrides of the pest line or patience with their reasons (``rm_overrides``).
- **timeline**: one row per candidacy event (``rm_timeline``): fact, decision, delivery or
  correction, its type, time, the rule and policy version of a decision, a short summary.

Handlers go by the event's type *name* and read fields with defaults, so they take today's
events (`ThankYouSent` / `NudgeSent` with ``decided_by``: decided and assumed delivered)
and the decided/requested/delivered events of the truthful history alike
(`ThankYouDecided`, `NudgeDecided`, `ThankYouRequested`, `NudgeRequested`,
`MessageDelivered`, `MessageBlocked`, `MessageDeadLettered`, `TaskReady`).  An event type
they do not know still gets its timeline row (every candidacy event has ``stage``,
``actor``, ``workspace`` and ``timestamp``).

The figures the pages show are the query functions at the end (`stage_counts`, `funnel`,
`time_in_stage`, `thank_you_compliance`, `nudge_compliance`, `overrides`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from statistics import median
from typing import Any
from zoneinfo import ZoneInfo

from engine.follower import Follower, ReadModel, ReadModelRecorder, Tx, view_for
from engine.lifecycle import Stage
from engine.policy import MessageKind

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


def _name(event: Any) -> str:
    return type(event).__name__


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


# -- pipeline ---------------------------------------------------------------------------


class Pipeline(ReadModel):
    """Where each candidacy stands, and every stage it passed through, per round."""

    name = "pipeline"
    table_names = ("rm_pipeline", "rm_stage_intervals")
    tables = (
        ("CREATE TABLE IF NOT EXISTS rm_pipeline (candidacy_id TEXT PRIMARY KEY, "
        "workspace TEXT NOT NULL, company TEXT, role TEXT, candidate TEXT, recruiter TEXT, "
        "actor TEXT, stage TEXT NOT NULL, round INTEGER NOT NULL, "
        "entered_stage_at TEXT NOT NULL, updated_at TEXT NOT NULL, version INTEGER NOT NULL, "
        "intervals INTEGER NOT NULL)"),
        "CREATE INDEX IF NOT EXISTS rm_pipeline_stage ON rm_pipeline (workspace, stage)",
        ("CREATE TABLE IF NOT EXISTS rm_stage_intervals (candidacy_id TEXT NOT NULL, "
        "seq INTEGER NOT NULL, workspace TEXT NOT NULL, recruiter TEXT, company TEXT, "
        "round INTEGER NOT NULL, stage TEXT NOT NULL, entered_at TEXT NOT NULL, left_at TEXT, "
        "PRIMARY KEY (candidacy_id, seq))"),
        ("CREATE INDEX IF NOT EXISTS rm_stage_intervals_stage ON rm_stage_intervals "
        "(workspace, round, stage)"),
    )

    def apply(self, tx: Tx, event: Any, notification_id: int) -> None:
        cid, at, stage = _cid(event), _iso(event.timestamp), str(event.stage)
        if _name(event) == "InterviewRecorded":
            candidate = getattr(event, "candidate", {}) or {}
            tx.execute("INSERT INTO rm_pipeline (candidacy_id, workspace, company, role, "
                       "candidate, recruiter, actor, stage, round, entered_stage_at, "
                       "updated_at, version, intervals) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, "
                       "?, ?, 1)",
                       (cid, event.workspace, event.company, event.role, candidate.get("name"),
                        event.actor, event.actor, stage, at, at, event.originator_version))
            tx.execute("INSERT INTO rm_stage_intervals (candidacy_id, seq, workspace, "
                       "recruiter, company, round, stage, entered_at) "
                       "VALUES (?, 1, ?, ?, ?, 1, ?, ?)",
                       (cid, event.workspace, event.actor, event.company, stage, at))
            tx.memo[cid] = (stage, 1, 1, event.actor, event.company)
            return
        row = tx.memo.get(cid) or tx.one("SELECT stage, round, intervals, recruiter, company "
                                         "FROM rm_pipeline WHERE candidacy_id=?", (cid,))
        if row is None:
            return  # its opening event could not be read (passed over)
        old_stage, old_round, intervals, recruiter, company = row
        new_round = int(getattr(event, "round", old_round)) if _name(event) == "RoundStarted" \
            else old_round
        if stage == old_stage and new_round == old_round:
            tx.execute("UPDATE rm_pipeline SET actor=?, updated_at=?, version=? "
                       "WHERE candidacy_id=?", (event.actor, at, event.originator_version, cid))
            return
        tx.execute("UPDATE rm_stage_intervals SET left_at=? WHERE candidacy_id=? AND seq=?",
                   (at, cid, intervals))
        tx.execute("INSERT INTO rm_stage_intervals (candidacy_id, seq, workspace, recruiter, "
                   "company, round, stage, entered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (cid, intervals + 1, event.workspace, recruiter, company, new_round, stage,
                    at))
        tx.execute("UPDATE rm_pipeline SET stage=?, round=?, entered_stage_at=?, actor=?, "
                   "updated_at=?, version=?, intervals=? WHERE candidacy_id=?",
                   (stage, new_round, at, event.actor, at, event.originator_version,
                    intervals + 1, cid))
        tx.memo[cid] = (stage, new_round, intervals + 1, recruiter, company)


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
        ("CREATE TABLE IF NOT EXISTS rm_nudges (candidacy_id TEXT NOT NULL, "
        "version INTEGER NOT NULL, workspace TEXT NOT NULL, recruiter TEXT, company TEXT, "
        "round INTEGER NOT NULL, manual INTEGER NOT NULL, rule TEXT, due_at TEXT, "
        "due_day TEXT, decided_at TEXT, delivered_at TEXT, on_time INTEGER, "
        "PRIMARY KEY (candidacy_id, version))"),
        ("CREATE TABLE IF NOT EXISTS rm_overrides (candidacy_id TEXT NOT NULL, "
        "version INTEGER NOT NULL, workspace TEXT NOT NULL, recruiter TEXT, at TEXT NOT NULL, "
        "command TEXT NOT NULL, rule TEXT, reason TEXT, PRIMARY KEY (candidacy_id, version))"),
    )

    def apply(self, tx: Tx, event: Any, notification_id: int) -> None:
        name, cid = _name(event), _cid(event)
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
        at = _iso(getattr(event, "at", None) or event.timestamp)
        if kind in THANK_YOU_KINDS:
            self._thank_you_delivered(tx, cid, context, at)
        elif kind in NUDGE_KINDS:
            # The earliest nudge of the candidacy not yet delivered is the one delivered.
            row = tx.one("SELECT version, due_day FROM rm_nudges WHERE candidacy_id=? AND "
                         "delivered_at IS NULL ORDER BY version LIMIT 1", (cid,))
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


class Timeline(ReadModel):
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

    def apply(self, tx: Tx, event: Any, notification_id: int) -> None:
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


READ_MODELS: dict[str, type[ReadModel]] = {
    m.name: m for m in (Pipeline, Compliance, Timeline)}


def read_models(app: Any, names: Sequence[str] | None = None) -> list[ReadModel]:
    """The dashboard's read models (or those named) on ``app``'s database."""
    chosen = list(names or READ_MODELS)
    unknown = [n for n in chosen if n not in READ_MODELS]
    if unknown:
        raise ValueError(f"no read model named {', '.join(unknown)} "
                         f"(there are: {', '.join(READ_MODELS)})")
    return [READ_MODELS[n](view_for(app, READ_MODELS[n].tables)) for n in chosen]


def follower(app: Any, names: Sequence[str] | None = None, *, batch: int = 500) -> Follower:
    """A follower of ``app``'s log keeping the dashboard's read models current."""
    return Follower(app, read_models(app, names), batch=batch)


# -- the figures ------------------------------------------------------------------------


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
                 recruiter: str | None = None, company: str | None = None) -> dict[str, int]:
    """How many candidacies stand in each stage now."""
    where, params = _where({"workspace": workspace, "recruiter": recruiter,
                            "company": company})
    rows = view.read(f"SELECT stage, COUNT(*) FROM rm_pipeline WHERE {where} GROUP BY stage",
                     params)
    return {str(stage): int(count) for stage, count in rows}


def funnel(view: ReadModelRecorder, round_: int = 1, *, workspace: str | None = None,
           recruiter: str | None = None, company: str | None = None
           ) -> list[tuple[str, int, float | None]]:
    """Per funnel step of round ``round_``: how many candidacies reached it, and the
    share of those that reached the next step (None for the last, or when none reached)."""
    where, params = _where({"workspace": workspace, "recruiter": recruiter,
                            "company": company, "round": round_})
    reached: dict[str, set[str]] = {}
    for cid, stage in view.read(f"SELECT candidacy_id, stage FROM rm_stage_intervals "
                                f"WHERE {where}", params):
        reached.setdefault(str(stage), set()).add(cid)
    steps = []
    for step in FUNNEL:
        ids: set[str] = set()
        for stage in _REACHED.get(step.value, (step.value,)):
            ids |= reached.get(stage, set())
        steps.append((step.value, ids))
    answer = []
    for i, (step_name, ids) in enumerate(steps):
        nxt = steps[i + 1][1] if i + 1 < len(steps) else None
        share = None if nxt is None or not ids else len(ids & nxt) / len(ids)
        answer.append((step_name, len(ids), share))
    return answer


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]  # nearest rank


def time_in_stage(view: ReadModelRecorder, *, workspace: str | None = None,
                  recruiter: str | None = None, company: str | None = None,
                  since: str | None = None, until: str | None = None
                  ) -> dict[str, tuple[int, float, float]]:
    """Per stage: how many stays have ended, their median and p90 (nearest rank) in
    seconds; stays entered in ``[since, until)`` (ISO dates or moments)."""
    where, params = _where({"workspace": workspace, "recruiter": recruiter,
                            "company": company}, "entered_at", since, until)
    durations: dict[str, list[float]] = {}
    for stage, entered, left in view.read(
            f"SELECT stage, entered_at, left_at FROM rm_stage_intervals WHERE {where} "
            "AND left_at IS NOT NULL", params):
        seconds = (datetime.fromisoformat(left) - datetime.fromisoformat(entered)).total_seconds()
        durations.setdefault(str(stage), []).append(seconds)
    return {stage: (len(v), float(median(v)), float(_p90(v))) for stage, v in durations.items()}


def _week(day: str) -> str:
    year, week, _ = date.fromisoformat(day).isocalendar()
    return f"{year}-W{week:02d}"


def thank_you_compliance(view: ReadModelRecorder, *, workspace: str | None = None,
                         recruiter: str | None = None, company: str | None = None
                         ) -> dict[tuple[str, str], tuple[int, int]]:
    """Per (recruiter, ISO week of the interview's local day): how many interviews, and
    how many had a thank-you delivered that same local day."""
    where, params = _where({"workspace": workspace, "recruiter": recruiter,
                            "company": company})
    return _weekly_tally(view.read(f"SELECT recruiter, interview_day, same_day FROM "
                                   f"rm_thank_yous WHERE {where}", params))


def nudge_compliance(view: ReadModelRecorder, *, workspace: str | None = None,
                     recruiter: str | None = None, company: str | None = None
                     ) -> dict[tuple[str, str], tuple[int, int]]:
    """Per (recruiter, ISO week of the due day): policy nudges due, and how many were
    delivered by their due local day."""
    where, params = _where({"workspace": workspace, "recruiter": recruiter,
                            "company": company})
    return _weekly_tally(view.read(f"SELECT recruiter, due_day, on_time FROM rm_nudges "
                                   f"WHERE {where} AND due_day IS NOT NULL", params))


def _weekly_tally(rows: list[tuple[Any, ...]]) -> dict[tuple[str, str], tuple[int, int]]:
    """(recruiter, day, met) rows counted per (recruiter, ISO week): (rows, rows met)."""
    out: dict[tuple[str, str], tuple[int, int]] = {}
    for who, day, met in rows:
        key = (str(who), _week(day))
        total, done = out.get(key, (0, 0))
        out[key] = (total + 1, done + int(met or 0))
    return out


def overrides(view: ReadModelRecorder, *, workspace: str | None = None,
              recruiter: str | None = None) -> list[tuple[Any, ...]]:
    """Manual overrides of the pest line or patience: candidacy, when, command, rule, reason."""
    where, params = _where({"workspace": workspace, "recruiter": recruiter})
    return view.read(f"SELECT candidacy_id, at, command, rule, reason FROM rm_overrides "
                     f"WHERE {where} ORDER BY at, candidacy_id", params)


def dump(model: ReadModel) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of ``model``, in a stable order (for comparisons)."""
    return {table: sorted(model.view.read(f"SELECT * FROM {table}"), key=repr)
            for table in model.table_names}
