"""The outbox's tables, written in the same transaction as the events they go with.

- ``closer_messages``: one current row per outbound message (`MessageRow`: status,
  attempts, when it may next be tried), so the outbox finds what to deliver without
  loading every message;
- ``closer_passed_over``: each notification the outbox could not decode and went past
  (`PassedOver`), written with its tracked position, so it is never silently lost.

Both are `engine.store.ExtraTable`s: `use` adds them to an application's recorder, after
which ``app.save(message, message_rows=[...], passed_over=[...])`` writes them with the
events on SQLite, PostgreSQL and the in-memory store alike.  The queries below answer
the same on the three (tests/test_outbox_rows.py compares them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from engine.personal_data import register_scrub
from engine.tables import ExtraTable, Tx, as_stored_json, in_utc, stored_moment


@dataclass(frozen=True, slots=True)
class MessageRow:
    """An outbound message's current row: enough to know whether and when to deliver it."""

    id: str
    candidacy_id: str
    workspace: str
    kind: str
    channel: str
    status: str  # queued | approval_needed | blocked | sent | failed | dead_letter | cancelled
    attempts: int
    next_attempt_at: datetime | None
    updated_at: datetime
    summary: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PassedOver:
    """A notification a follower of the log (the outbox) could not read and went past:
    recorded with its position, in the same transaction, so it is never silently lost."""

    reader: str
    notification_id: int
    originator_id: str
    originator_version: int
    error: str
    at: datetime


_MESSAGE_COLUMNS = ("id, candidacy_id, workspace, kind, channel, status, attempts, "
                    "next_attempt_at, updated_at, summary")
# The channel too: a person may reroute a blocked message to another (issue 13).
_MESSAGE_UPSERT = (f"INSERT INTO closer_messages ({_MESSAGE_COLUMNS}) VALUES "
                   "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                   "channel=excluded.channel, status=excluded.status, "
                   "attempts=excluded.attempts, next_attempt_at=excluded.next_attempt_at, "
                   "updated_at=excluded.updated_at, summary=excluded.summary")


def _message_row(values: Sequence[Any]) -> MessageRow:
    (id_, candidacy_id, workspace, kind, channel, status, attempts, next_attempt_at,
     updated_at, summary) = values
    return MessageRow(
        id=id_, candidacy_id=candidacy_id, workspace=workspace, kind=kind, channel=channel,
        status=status, attempts=attempts,
        next_attempt_at=datetime.fromisoformat(next_attempt_at) if next_attempt_at else None,
        updated_at=datetime.fromisoformat(updated_at), summary=orjson.loads(summary),
    )


class Messages(ExtraTable):
    """``closer_messages``, from the save keyword ``message_rows``."""

    keyword = "message_rows"
    statements = (
        "CREATE TABLE IF NOT EXISTS closer_messages (id TEXT PRIMARY KEY, "
        "candidacy_id TEXT NOT NULL, workspace TEXT NOT NULL, kind TEXT NOT NULL, "
        "channel TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL, "
        "next_attempt_at TEXT, updated_at TEXT NOT NULL, summary TEXT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS closer_messages_due ON closer_messages "
        "(status, next_attempt_at)",
        "CREATE INDEX IF NOT EXISTS closer_messages_candidacy ON closer_messages "
        "(candidacy_id)",
    )
    recorded_at = ("closer_messages", "updated_at")

    def write(self, tx: Tx, rows: Sequence[MessageRow]) -> None:
        tx.executemany(_MESSAGE_UPSERT, [
            (m.id, m.candidacy_id, m.workspace, m.kind, m.channel, m.status, m.attempts,
             stored_moment(m.next_attempt_at), stored_moment(m.updated_at),
             orjson.dumps(m.summary).decode())
            for m in rows])

    def hold(self, held: dict[Any, Any], rows: Sequence[MessageRow]) -> None:
        for message in rows:
            # The SQL upsert changes only these columns of a known message.
            held[message.id] = replace(
                held.get(message.id) or message, channel=message.channel,
                status=message.status, attempts=message.attempts,
                next_attempt_at=in_utc(message.next_attempt_at),
                updated_at=in_utc(message.updated_at), summary=as_stored_json(message.summary))

    def latest_held(self, held: dict[Any, Any]) -> datetime | None:
        return max((m.updated_at for m in held.values()), default=None)


_PASSED_OVER_COLUMNS = "reader, notification_id, originator_id, originator_version, error, at"


class PassedOverTable(ExtraTable):
    """``closer_passed_over``, from the save keyword ``passed_over`` (the first record
    of a notification passed over stays)."""

    keyword = "passed_over"
    statements = (
        "CREATE TABLE IF NOT EXISTS closer_passed_over (reader TEXT NOT NULL, "
        "notification_id BIGINT NOT NULL, originator_id TEXT NOT NULL, "
        "originator_version INTEGER NOT NULL, error TEXT NOT NULL, at TEXT NOT NULL, "
        "PRIMARY KEY (reader, notification_id))",
    )

    def write(self, tx: Tx, rows: Sequence[PassedOver]) -> None:
        tx.executemany(f"INSERT INTO closer_passed_over ({_PASSED_OVER_COLUMNS}) VALUES "
                       "(?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                       [(p.reader, p.notification_id, p.originator_id, p.originator_version,
                         p.error, stored_moment(p.at)) for p in rows])

    def hold(self, held: dict[Any, Any], rows: Sequence[PassedOver]) -> None:
        for passed in rows:
            held.setdefault((passed.reader, passed.notification_id),
                            replace(passed, at=passed.at.astimezone(UTC)))


MESSAGES = Messages()
PASSED_OVER = PassedOverTable()


ERASED_SUMMARY = ('{"trigger": null, "subject": "erased", "findings": [], '
                  '"last_error": null, "receipt": null, "erased": true}')
SCRUBS = (
    # An erased candidacy's messages: no subject, finding, error or receipt kept in the
    # clear, and none still waiting goes (engine.personal_data.register_scrub).
    f"UPDATE closer_messages SET summary = '{ERASED_SUMMARY}', status = CASE WHEN status "
    "IN ('sent', 'dead_letter', 'cancelled') THEN status ELSE 'cancelled' END, "
    "next_attempt_at = NULL WHERE candidacy_id = ?",
)


def use(app: Any) -> Any:
    """``app``'s recorder, with the outbox's tables added (created if missing), and
    their scrubs run with each erasure of a candidacy."""
    recorder = app.recorder
    recorder.add_table(MESSAGES)
    recorder.add_table(PASSED_OVER)
    register_scrub(app, *SCRUBS)
    return recorder


def _held(recorder: Any, table: ExtraTable) -> list[Any] | None:
    """The in-memory store's rows of ``table`` (a copy of each, as a read from SQL
    decodes its own), or None on a SQL store."""
    if not hasattr(recorder, "held"):
        return None
    return [replace(r, summary=as_stored_json(r.summary)) if hasattr(r, "summary") else r
            for r in recorder.held(table)]


# -- the queries ----------------------------------------------------------------------


def deliverable_messages(app: Any, now: datetime, *, limit: int = 100) -> list[MessageRow]:
    """Messages waiting for delivery whose next attempt is due, oldest first."""
    recorder = use(app)
    held = _held(recorder, MESSAGES)
    if held is not None:
        bound = now.astimezone(UTC).isoformat()
        due = [(m.next_attempt_at.isoformat(), m.id, m) for m in held
               if m.status in ("queued", "failed") and m.next_attempt_at is not None
               and m.next_attempt_at.isoformat() <= bound]  # held in UTC: as SQL compares
        return [m for _, _, m in sorted(due)[:limit]]
    return [_message_row(r) for r in recorder.read(
        f"SELECT {_MESSAGE_COLUMNS} FROM closer_messages WHERE status IN "
        "('queued', 'failed') AND next_attempt_at<=? ORDER BY next_attempt_at, id LIMIT ?",
        (stored_moment(now), limit))]


def message_rows(app: Any, *, candidacy_id: str | None = None, status: str | None = None,
                 limit: int = 1000) -> list[MessageRow]:
    """Message rows of one candidacy and/or in one status, in creation order."""
    recorder = use(app)
    held = _held(recorder, MESSAGES)
    if held is not None:
        rows = [m for m in held if (not candidacy_id or m.candidacy_id == candidacy_id)
                and (not status or m.status == status)]
        return sorted(rows, key=lambda m: (stored_moment(m.updated_at), m.id))[:limit]
    sql = f"SELECT {_MESSAGE_COLUMNS} FROM closer_messages WHERE 1=1"
    params: list[Any] = []
    if candidacy_id:
        sql += " AND candidacy_id=?"
        params.append(candidacy_id)
    if status:
        sql += " AND status=?"
        params.append(status)
    params.append(limit)
    return [_message_row(r) for r in recorder.read(sql + " ORDER BY updated_at, id LIMIT ?",
                                                    params)]


def message_failures(app: Any) -> tuple[dict[str, int], MessageRow | None]:
    """How many messages are failed and dead-lettered now, and the latest of them."""
    recorder = use(app)
    counts = {"failed": 0, "dead_letter": 0}
    held = _held(recorder, MESSAGES)
    if held is not None:
        failing = [m for m in held if m.status in counts]
        for message in failing:
            counts[message.status] += 1
        # The latest, and the lowest id among the latest (SQL: updated_at DESC, id).
        latest = min(failing, key=lambda m: (-m.updated_at.timestamp(), m.id), default=None)
        return counts, latest
    for status, count in recorder.read(
            "SELECT status, COUNT(*) FROM closer_messages WHERE status IN "
            "('failed', 'dead_letter') GROUP BY status"):
        counts[status] = int(count)
    latest_rows = recorder.read(
        f"SELECT {_MESSAGE_COLUMNS} FROM closer_messages WHERE status IN "
        "('failed', 'dead_letter') ORDER BY updated_at DESC, id LIMIT 1")
    return counts, (_message_row(latest_rows[0]) if latest_rows else None)


def passed_over(app: Any, *, limit: int = 10_000) -> list[PassedOver]:
    """What the outbox recorded passing over, in log order."""
    recorder = use(app)
    held = _held(recorder, PASSED_OVER)
    if held is not None:
        return sorted(held, key=lambda p: (p.notification_id, p.reader))[:limit]
    rows = recorder.read(f"SELECT {_PASSED_OVER_COLUMNS} FROM closer_passed_over "
                         "ORDER BY notification_id, reader LIMIT ?", (limit,))
    return [PassedOver(r[0], int(r[1]), r[2], int(r[3]), r[4], datetime.fromisoformat(r[5]))
            for r in rows]
