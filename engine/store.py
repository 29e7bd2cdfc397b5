"""Where candidacies are stored: eventsourcing's own SQLite and PostgreSQL (process)
recorders, extended with small tables written in the *same transaction* as the events.

- ``closer_idempotency``: the first response to each idempotency key, so a retried
  command records nothing new and answers the same.
- ``closer_candidacies``: one current row per candidacy (stage, version, when it is
  next due, and a JSON summary), so lists and the scheduler's tick read one row per
  candidacy instead of loading every aggregate.
- other layers' tables (`engine.tables.ExtraTable`, added with ``add_table``), which
  the engine writes without knowing any of them.

They are written from ``Application.save(..., idempotency=..., rows=..., position=...,
KEYWORD=...)``: the keyword arguments travel with the events down to the recorder.
``position`` is an eventsourcing `Tracking` (a follower's position in the notification
log), stored in eventsourcing's own tracking table with what the follower recorded.
``followed_past=(name, ...)`` (an import) moves those followers past the events being
inserted, once their notification ids are known, in the same transaction.

Every save of the process reaches its store through one writer (`GroupWriter`): saves
that arrive together share a transaction and a commit, each checked on its own
(docs/architecture.md, "Storage", says why that is safe).
"""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Any
from urllib.parse import unquote, urlparse
from uuid import UUID

import orjson
import psycopg
from eventsourcing import persistence
from eventsourcing.persistence import Notification, ProgrammingError, StoredEvent, Tracking
from eventsourcing.postgres import PostgresProcessRecorder
from eventsourcing.sqlite import SQLiteProcessRecorder
from eventsourcing.utils import retry
from psycopg import ClientCursor
from psycopg.rows import tuple_row
from psycopg.sql import SQL

from engine.errors import InvalidInput
from engine.tables import SAVE_KEYWORDS, ExtraTable, Tx, stored_moment


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """The first response to an idempotency key."""

    workspace: str
    key: str
    fingerprint: str
    response: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CandidacyRow:
    """A candidacy's current row: enough to list it or to know it is due."""

    id: str
    workspace: str
    stage: str
    version: int
    round: int
    # Nullable columns: the queries answer rows written without them too.
    candidate: str | None
    company: str | None
    role: str | None
    updated_at: datetime
    due_at: datetime | None
    summary: dict[str, Any]


_ADDING = threading.Lock()


def _row_params(row: CandidacyRow) -> tuple[Any, ...]:
    return (
        row.id, row.workspace, row.stage, row.version, row.round, row.candidate, row.company,
        row.role, stored_moment(row.updated_at), stored_moment(row.due_at),
        orjson.dumps(row.summary).decode(),
    )


_COLUMNS = ("id, workspace, stage, version, round, candidate, company, role, updated_at, "
            "due_at, summary")
_UPSERT_SET = ("stage=excluded.stage, version=excluded.version, round=excluded.round, "
               "candidate=excluded.candidate, company=excluded.company, role=excluded.role, "
               "updated_at=excluded.updated_at, due_at=excluded.due_at, "
               "summary=excluded.summary")


# A row never goes back to an older version: a row computed from a candidacy read
# before another writer saved it (the tick's held rows) must not undo that writer's row.
def _row_upsert(assignments: str) -> str:
    return (f"INSERT INTO closer_candidacies ({_COLUMNS}) VALUES "
            f"(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET {assignments} "
            "WHERE closer_candidacies.version <= excluded.version")


_ROW_UPSERT = _row_upsert(_UPSERT_SET)
# SQLite rewrites an index entry whenever one of its columns is assigned, changed or
# not: the stage is set apart, only where it changed, so that a row whose stage stays
# does not rewrite its (workspace, stage, id) entry (most of a page per row).
_ROW_UPSERT_KEEPING_STAGE = _row_upsert(_UPSERT_SET.replace("stage=excluded.stage, ", ""))
_ROW_STAGE = ("UPDATE closer_candidacies SET stage=? WHERE id=? AND version=? "
              "AND stage<>?")

def _row(values: Sequence[Any]) -> CandidacyRow:
    (id_, workspace, stage, version, round_, candidate, company, role, updated_at, due_at,
     summary) = values
    # Positional: keyword arguments cost a tenth of reading a row.
    return CandidacyRow(id_, workspace, stage, version, round_, candidate, company, role,
                        datetime.fromisoformat(updated_at),
                        datetime.fromisoformat(due_at) if due_at else None,
                        orjson.loads(summary))


class _Queries:
    """The read queries both recorders share (the SQL is portable; only the
    placeholder differs)."""

    placeholder = "?"
    group_commit = True
    """Whether saves go through the store's `GroupWriter` (False: each commits alone, the
    benchmarks' comparison)."""
    chains_in_writer = True
    """The audit's chain hashes are computed by the writer, save by save (`_prepare`)."""

    def insert_events(self, stored_events: Sequence[StoredEvent],
                      **kwargs: Any) -> Sequence[int] | None:
        """The save's events and rows in one transaction: through the store's writer, in
        a batch with the saves that arrive meanwhile, or alone."""
        if self.group_commit and self._batchable(stored_events, kwargs):
            return group_writer(self._store_key()).write(_Save(self, stored_events, kwargs))
        prepared = self._prepare(stored_events, kwargs, {})
        ids = self._insert_alone(stored_events, kwargs)
        self._committed(prepared)
        return ids

    def _batchable(self, stored_events: Sequence[StoredEvent], kwargs: dict[str, Any]) -> bool:
        return True

    def _store_key(self) -> Any:
        """What names this store (its writer's key): the same database and events table
        in any recorder of this process."""
        raise NotImplementedError

    def _insert_alone(self, stored_events: Sequence[StoredEvent],
                      kwargs: dict[str, Any]) -> Sequence[int] | None:
        raise NotImplementedError

    def _write_batch(self, batch: list[_Save]) -> None:
        """Write ``batch`` in one transaction, each save's ids or error on it."""
        raise NotImplementedError

    # Hooks the writer calls around each save (the audit's chain: `engine.audit_store`).
    def _prepare(self, stored_events: Sequence[StoredEvent], kwargs: dict[str, Any],
                 pending: dict[Any, Any]) -> Any:
        """Before the save's statements, in batch order (``pending``: what the batch's
        earlier saves wrote that the store does not show yet)."""
        return None

    def _written(self, prepared: Any, pending: dict[Any, Any]) -> None:
        """After the save's statements ran in its batch (not yet committed)."""

    def _committed(self, prepared: Any) -> None:
        """After the save's batch committed."""

    def _select(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _q(self, sql: str) -> str:
        return sql.replace("?", self.placeholder)

    @property
    def extra_tables(self) -> dict[str, ExtraTable]:
        """The tables added to this recorder (`add_table`), by save keyword."""
        return self.__dict__.setdefault("_extra_tables", {})  # type: ignore[no-any-return]

    def add_table(self, table: ExtraTable) -> None:
        """Write ``table``'s rows with the saves that carry its keyword, from now on,
        having created it if missing (once per recorder: adding it again does nothing)."""
        with _ADDING:
            if table.keyword not in self.extra_tables:
                self._create(table.statements)
                self.extra_tables[table.keyword] = table

    def _create(self, statements: Sequence[str]) -> None:
        raise NotImplementedError

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of one query in portable SQL (``?`` placeholders), on its own
        consistent view: for the queries of an added table's owner."""
        return self._select(sql, params)

    def find_idempotency(self, workspace: str, key: str) -> IdempotencyRecord | None:
        rows = self._select(
            "SELECT fingerprint, response, created_at FROM closer_idempotency "
            "WHERE workspace=? AND key=?", (workspace, key))
        if not rows:
            return None
        fingerprint, response, created_at = rows[0]
        return IdempotencyRecord(workspace, key, fingerprint, orjson.loads(response),
                                 datetime.fromisoformat(created_at))

    def find_candidacy_row(self, candidacy_id: str) -> CandidacyRow | None:
        rows = self._select(f"SELECT {_COLUMNS} FROM closer_candidacies WHERE id=?",
                            (candidacy_id,))
        return _row(rows[0]) if rows else None

    def select_candidacy_rows(
        self, workspace: str, *, stage: str | None = None, text: str | None = None,
        after: str | None = None, limit: int = 50,
    ) -> list[CandidacyRow]:
        """A workspace's rows in id order, filtered, from just after ``after``."""
        sql = f"SELECT {_COLUMNS} FROM closer_candidacies WHERE workspace=?"
        params: list[Any] = [workspace]
        if stage:
            sql += " AND stage=?"
            params.append(stage)
        if text:
            sql += " AND (LOWER(candidate) LIKE ? OR LOWER(company) LIKE ? OR LOWER(role) LIKE ?)"
            pattern = f"%{text.lower()}%"
            params += [pattern, pattern, pattern]
        if after:
            sql += " AND id>?"
            params.append(after)
        sql += " ORDER BY id LIMIT ?"
        params.append(limit)
        return [_row(r) for r in self._select(sql, params)]

    def select_due(self, before: datetime, *, after: tuple[str, str] = ("", ""),
                   limit: int = 1000) -> list[tuple[str, str]]:
        """``(due_at, id)`` of candidacies with something due by ``before``, in that order,
        from just after the ``after`` cursor: a range scan of the ``(due_at, id)`` index."""
        rows = self._select(
            "SELECT due_at, id FROM closer_candidacies WHERE due_at<=? AND (due_at>? OR "
            "(due_at=? AND id>?)) ORDER BY due_at, id LIMIT ?",
            (stored_moment(before), after[0], after[0], after[1], limit))
        return [(r[0], r[1]) for r in rows]

    def select_latest_records(self, table: str,
                              ids: Sequence[UUID]) -> list[tuple[UUID, int, str, bytes]]:
        """``(id, version, topic, state)`` of the highest-version record of each of
        ``ids`` in ``table`` (their latest snapshots), the ids being the given objects."""
        if not ids:
            return []
        keys = {self._id_param(i): i for i in ids}
        marks = ", ".join("?" * len(keys))
        rows = self._select(
            f"SELECT t.originator_id, t.originator_version, t.topic, t.state FROM {table} t "
            f"JOIN (SELECT originator_id, MAX(originator_version) AS v FROM {table} "
            f"WHERE originator_id IN ({marks}) GROUP BY originator_id) m "
            "ON t.originator_id = m.originator_id AND t.originator_version = m.v",
            list(keys))
        return [(keys[r[0]], r[1], r[2], bytes(r[3])) for r in rows]

    def select_records_after(self, table: str,
                             after: dict[UUID, int]) -> list[tuple[UUID, int, str, bytes]]:
        """``(id, version, topic, state)`` of each id's records in ``table`` after its
        given version, in version order per id (one index range per id, joined from a
        VALUES list: no OR chain, so no limit on how many ids a page holds)."""
        if not after:
            return []
        keys = {self._id_param(i): i for i in after}
        params: list[Any] = []
        for key, version in zip(keys, after.values(), strict=True):
            params += [key, version]
        rows = self._select(
            f"WITH wanted (id, version) AS (VALUES {', '.join(['(?, ?)'] * len(keys))}) "
            f"SELECT e.originator_id, e.originator_version, e.topic, e.state FROM wanted "
            f"JOIN {table} e ON e.originator_id = wanted.id "
            "AND e.originator_version > wanted.version "
            "ORDER BY e.originator_id, e.originator_version", params)
        return [(keys[r[0]], r[1], r[2], bytes(r[3])) for r in rows]

    def select_for_load(self, snapshots: str | None, events: str,
                        uid: UUID) -> tuple[StoredEvent | None, list[StoredEvent]]:
        """One aggregate's latest snapshot (None without one) and its events after it, in
        version order, in one statement: one round trip, and one consistent view."""
        return self._loaded(uid, self._select(*self._for_load(snapshots, events, uid)))

    def _for_load(self, snapshots: str | None, events: str,
                  uid: UUID) -> tuple[str, tuple[Any, ...]]:
        """`select_for_load`'s statement and parameters."""
        param = self._id_param(uid)
        if snapshots is None:
            return (f"SELECT originator_version, topic, state, 0 FROM {events} "
                    "WHERE originator_id = ? ORDER BY originator_version", (param,))
        return (f"WITH s AS (SELECT originator_version, topic, state FROM {snapshots} "
                "WHERE originator_id = ? ORDER BY originator_version DESC LIMIT 1) "
                "SELECT originator_version, topic, state, 1 FROM s "
                f"UNION ALL SELECT originator_version, topic, state, 0 FROM {events} "
                "WHERE originator_id = ? AND originator_version > "
                "COALESCE((SELECT originator_version FROM s), 0) ORDER BY 4 DESC, 1",
                (param, param))

    @staticmethod
    def _loaded(uid: UUID, rows: Sequence[Sequence[Any]]
                ) -> tuple[StoredEvent | None, list[StoredEvent]]:
        """`select_for_load`'s answer from its statement's rows."""
        # The id is the one asked for: no parsing it back from each row.
        snapshot = None
        if rows and rows[0][3] == 1:
            snapshot = StoredEvent(uid, rows[0][0], rows[0][1], bytes(rows[0][2]))
            rows = rows[1:]
        return snapshot, [StoredEvent(uid, r[0], r[1], bytes(r[2])) for r in rows]

    def select_workspace_events(self, workspace: str, after: int, limit: int,
                                scan: int) -> tuple[list[Notification], int, bool]:
        """Up to ``limit`` of one workspace's candidacy events after notification id
        ``after``, in log order, looking at most ``scan`` ids ahead (other workspaces'
        events are skipped by the database, through the candidacies' rows).

        Answers the events, the id to read after next time, and whether there may be
        more.  Only ids up to the log's maximum read *first* are looked at: every lower
        id is committed or never will be (writers are serialised), so reading after the
        answered id never misses or repeats an event.
        """
        events, nid = self._notification_table()
        top = self._select(f"SELECT MAX({nid}) FROM {events}", ())[0][0]
        if top is None or top <= after:
            return [], after, False
        bound = min(after + scan, top)
        rows = self._select(
            f"SELECT e.{nid}, e.originator_id, e.originator_version, e.topic, e.state "
            f"FROM {events} e JOIN closer_candidacies c ON c.id = {self._row_id('e')} "
            f"WHERE e.{nid} > ? AND e.{nid} <= ? AND c.workspace = ? ORDER BY e.{nid} LIMIT ?",
            (after, bound, workspace, limit))
        found = [Notification(id=r[0], originator_id=UUID(str(r[1])), originator_version=r[2],
                              topic=r[3], state=bytes(r[4])) for r in rows]
        if len(found) == limit:
            return found, found[-1].id, True
        return found, bound, bound < top

    def _notification_table(self) -> tuple[str, str]:
        return self.events_table_name, "rowid"  # type: ignore[attr-defined]

    def _row_id(self, alias: str) -> str:
        """SQL turning ``alias``'s stored originator id into its row's id (a UUID string)."""
        o = f"{alias}.originator_id"  # 32 hex digits here
        return (f"substr({o}, 1, 8) || '-' || substr({o}, 9, 4) || '-' || substr({o}, 13, 4)"
                f" || '-' || substr({o}, 17, 4) || '-' || substr({o}, 21)")

    def _id_param(self, uid: UUID) -> Any:
        return uid.hex

    def latest_recorded_at(self) -> datetime | None:
        """The latest moment a candidacy (or a row of an added table with ``recorded_at``)
        was last changed at (None in an empty store): the rows keep their aggregate's last
        event time."""
        found = [r[0] for r in self._select(" UNION ALL ".join(
            f"SELECT MAX({column}) FROM {table}" for table, column in
            [("closer_candidacies", "updated_at"),
             *(t.recorded_at for t in self.extra_tables.values() if t.recorded_at)]), ())
            if r[0] is not None]
        return max((datetime.fromisoformat(t) for t in found), default=None)

    def find_notification_id(self, uid: UUID, version: int) -> int | None:
        """The log position of ``uid``'s event at ``version`` (None: no such event)."""
        events, nid = self._notification_table()
        rows = self._select(f"SELECT {nid} FROM {events} WHERE originator_id=? AND "
                            "originator_version=?", (self._id_param(uid), version))
        return int(rows[0][0]) if rows else None

    def select_records_page(self, table: str, after: tuple[Any, int] | None,
                            limit: int) -> list[tuple[UUID, int, str, bytes, Any]]:
        """Up to ``limit`` records of ``table`` (e.g. the snapshots) in (id, version)
        order after the ``after`` cursor (the last row's stored id and version), as
        ``(id, version, topic, state, stored id)``."""
        sql = f"SELECT originator_id, originator_version, topic, state FROM {table}"
        params: list[Any] = []
        if after is not None:
            sql += " WHERE originator_id>? OR (originator_id=? AND originator_version>?)"
            params = [after[0], after[0], after[1]]
        rows = self._select(sql + " ORDER BY originator_id, originator_version LIMIT ?",
                            [*params, limit])
        return [(UUID(str(r[0])), r[1], r[2], bytes(r[3]), r[0]) for r in rows]

    def select_all_rows(self, *, after: str = "", limit: int = 1000) -> list[CandidacyRow]:
        """Every candidacy's row across workspaces, in id order (for floors and audits)."""
        rows = self._select(f"SELECT {_COLUMNS} FROM closer_candidacies WHERE id>? "
                            "ORDER BY id LIMIT ?", (after, limit))
        return [_row(r) for r in rows]


# -- group commit ----------------------------------------------------------------------------

MAX_BATCH = 256
"""The most saves one write transaction of the writer takes (a bound on a batch's latency
and its script's size, not a tuning knob: under load batches are the queue's length)."""


class _Save:
    """One save waiting for its store's writer: what to write, and what came of it."""

    __slots__ = ("done", "error", "events", "ids", "kwargs", "prepared", "recorder", "wake")

    def __init__(self, recorder: _Queries, events: Sequence[StoredEvent],
                 kwargs: dict[str, Any]) -> None:
        self.recorder: Any = recorder  # a Closer SQLite or PostgreSQL recorder
        self.events = events
        self.kwargs = kwargs
        self.ids: Sequence[int] | None = None
        self.error: BaseException | None = None
        self.prepared: Any = None
        self.done = False
        self.wake = threading.Event()

    def outcome(self) -> Sequence[int] | None:
        if self.error is not None:
            raise self.error
        return self.ids


# Receipt: with it off, 16 clients commit 1.6x slower on SQLite and 1.35x on PostgreSQL
# (benchmarks/engine_bench.py, quiet run), HTTP commands 1.27x (fastpaths_bench api).
class GroupWriter:
    """The one writer of a store (a database and its events table) in this process: the
    saves that arrive while a batch is being written wait in a queue, and the next batch
    takes all of them into one transaction, one commit and one fsync (group commit).

    There is no writer thread: the first save of a batch writes it (LevelDB's writer
    queue).  A save joins the queue; if it is first it writes the batch of everything
    queued (up to `MAX_BATCH`); else it sleeps until its batch has been written or until
    it is first and so writes the next one.  Each save is written on its own inside the
    batch (a savepoint on SQLite; on PostgreSQL a batch that fails is written again save
    by save), so a conflict fails that save alone, and each is answered only once its
    batch has committed: an answered save is durable, a refused one wrote nothing.
    Notification ids follow the queue's order, batch after batch, so the log's order is
    the commit order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[_Save] = deque()
        self.batches = 0
        self.saves = 0
        """How many batches and saves this writer wrote (tests and benchmarks read them)."""

    def write(self, save: _Save) -> Sequence[int] | None:
        with self._lock:
            self._queue.append(save)
            leading = len(self._queue) == 1
        if not leading:
            save.wake.wait()
            if save.done:
                return save.outcome()
        with self._lock:  # first in the queue now: this thread writes the next batch
            batch = list(islice(self._queue, MAX_BATCH))
        try:
            save.recorder._write_batch(batch)
        except BaseException as error:
            # The batch's transaction failed as a whole (its commit, a lost connection):
            # none of it is written, and every save of it is told so.
            for each in batch:
                each.ids, each.error = None, error if each is save else _copy_error(error)
        finally:
            with self._lock:
                for _ in batch:
                    self._queue.popleft()
                following = self._queue[0] if self._queue else None
                self.batches += 1
                self.saves += len(batch)
            for each in batch:
                each.done = True
                if each is not save:
                    each.wake.set()
            if following is not None:
                following.wake.set()  # it writes the next batch
        return save.outcome()


def _copy_error(error: BaseException) -> BaseException:
    """The batch's error for another thread to raise (an exception object raised in two
    threads at once would mix their tracebacks)."""
    if not isinstance(error, Exception):
        # The writing thread was stopped (KeyboardInterrupt, SystemExit): that belongs to
        # it, not to the saves it was writing, which are told they were not written.
        return persistence.OperationalError(f"the batch was not written: the thread "
                                            f"writing it stopped ({type(error).__name__})")
    try:
        copy = type(error)(*error.args)
    except Exception:  # pragma: no cover - an error class with another constructor
        copy = persistence.OperationalError(str(error))
    copy.__cause__ = error
    return copy


_WRITERS: dict[Any, GroupWriter] = {}
_WRITERS_LOCK = threading.Lock()


def group_writer(key: Any) -> GroupWriter:
    """The writer of the store ``key`` names in this process (made on first use)."""
    with _WRITERS_LOCK:
        writer = _WRITERS.get(key)
        if writer is None:
            writer = _WRITERS[key] = GroupWriter()
        return writer


# sqlite3's errors as eventsourcing's, most specific first: the table of eventsourcing
# 9.5.6's `SQLiteTransaction.__exit__`, which translates only what escapes its transaction
# block (a save refused inside a batch is caught before that); tests/test_group_commit.py
# compares each with what the library raises.
_SQLITE_ERRORS: tuple[tuple[type[Exception], type[Exception]], ...] = (
    (sqlite3.InterfaceError, persistence.InterfaceError),
    (sqlite3.DataError, persistence.DataError),
    (sqlite3.OperationalError, persistence.OperationalError),
    (sqlite3.IntegrityError, persistence.IntegrityError),
    (sqlite3.InternalError, persistence.InternalError),
    (sqlite3.ProgrammingError, persistence.ProgrammingError),
    (sqlite3.NotSupportedError, persistence.NotSupportedError),
    (sqlite3.DatabaseError, persistence.DatabaseError),
    (sqlite3.Error, persistence.PersistenceError),
)


def as_library_error(error: Exception) -> Exception:
    """A sqlite3 error as the library would raise it (others unchanged)."""
    if isinstance(error, sqlite3.Error):
        for theirs, ours in _SQLITE_ERRORS:
            if isinstance(error, theirs):
                translated = ours(error)
                translated.__cause__ = error
                return translated
    return error


_SQLITE_TABLES = [
    "CREATE TABLE IF NOT EXISTS closer_idempotency (workspace TEXT NOT NULL, key TEXT NOT NULL, "
    "fingerprint TEXT NOT NULL, response TEXT NOT NULL, created_at TEXT NOT NULL, "
    "PRIMARY KEY (workspace, key))",
    "CREATE TABLE IF NOT EXISTS closer_candidacies (id TEXT PRIMARY KEY, workspace TEXT NOT NULL, "
    "stage TEXT NOT NULL, version INTEGER NOT NULL, round INTEGER NOT NULL, candidate TEXT, "
    "company TEXT, role TEXT, updated_at TEXT NOT NULL, due_at TEXT, summary TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS closer_candidacies_due_id ON closer_candidacies (due_at, id)",
    "CREATE INDEX IF NOT EXISTS closer_candidacies_workspace ON closer_candidacies "
    "(workspace, stage, id)",
]


class CloserSQLiteRecorder(_Queries, SQLiteProcessRecorder):
    """eventsourcing's SQLite process recorder plus Closer's tables."""

    _row_writes = ((_ROW_UPSERT_KEEPING_STAGE, _row_params),
                   (_ROW_STAGE, lambda r: (r.stage, r.id, r.version, r.stage)))

    def construct_create_table_statements(self) -> list[str]:
        return super().construct_create_table_statements() + _SQLITE_TABLES

    def _batchable(self, stored_events: Sequence[StoredEvent], kwargs: dict[str, Any]) -> bool:
        # An in-memory database's pool makes reads wait for the writer, and a batch reads
        # the chain's tips while it writes: there, each save commits alone.
        return not self.datastore.pool.is_sqlite_memory_mode

    def _store_key(self) -> Any:
        return ("sqlite", self.datastore.pool.db_name, self.events_table_name)

    def _insert_alone(self, stored_events: Sequence[StoredEvent],
                      kwargs: dict[str, Any]) -> Sequence[int] | None:
        ids: Sequence[int] | None = SQLiteProcessRecorder.insert_events(
            self, stored_events, **kwargs)
        return ids

    def _write_batch(self, batch: list[_Save]) -> None:
        """One transaction; each save inside a savepoint, so a refused one (a duplicate
        version, a reused idempotency key, a stale position) is rolled back alone and its
        batch-mates commit.

        Each save's events are inserted before its chain is read (`_prepare`): the first
        insert takes SQLite's write lock, so what the batch then reads no other writer can
        change before it commits (a read first would start a snapshot another process's
        commit could make stale, and the upgrade to writing would fail).  And the batch
        reads through its own connection (`_BATCH`): asking the pool for another while
        holding its one writer connection waited for a thread that, in the library's pool,
        holds the queue for connections while it waits for that writer (5 s, then
        `ConnectionUnavailableError`: a snapshot's write did, with two worker processes)."""
        pending: dict[Any, Any] = {}
        with self.datastore.transaction(commit=True) as c:
            _BATCH.reader = c.sqlite_cursor.connection.cursor()
            try:
                for save in batch:
                    self._write_one(c, save, pending)
            finally:
                _BATCH.reader.close()
                _BATCH.reader = None
        for save in batch:
            if save.error is None:
                save.recorder._committed(save.prepared)

    @staticmethod
    def _write_one(c: Any, save: _Save, pending: dict[Any, Any]) -> None:
        recorder = save.recorder
        c.execute("SAVEPOINT closer_save")
        try:
            save.ids = recorder._insert_stored(c, save.events, save.kwargs)
            save.prepared = recorder._prepare(save.events, save.kwargs, pending)
            recorder._insert_rows(c, save.kwargs, save.ids)
        except Exception as error:
            c.execute("ROLLBACK TO closer_save")
            save.ids, save.error = None, as_library_error(error)
        else:
            recorder._written(save.prepared, pending)
        c.execute("RELEASE closer_save")

    def _insert_events(self, c: Any, stored_events: Any, **kwargs: Any) -> Any:
        notification_ids = self._insert_stored(c, stored_events, kwargs)
        self._insert_rows(c, kwargs, notification_ids)
        return notification_ids

    def _insert_stored(self, c: Any, stored_events: Any,
                       kwargs: dict[str, Any]) -> Sequence[int] | None:
        """The library's insert of the events (and of its ``tracking``): their ids."""
        ids: Sequence[int] | None = super()._insert_events(c, stored_events, **kwargs)
        return ids

    def _insert_rows(self, c: Any, kwargs: dict[str, Any],
                     notification_ids: Sequence[int] | None) -> None:
        """The save's rows and tracking records, after its events."""
        _write_rows(Tx(c, "?"), kwargs, self._row_writes, self.extra_tables)
        if kwargs.get("position") is not None:
            self._insert_tracking(c, kwargs["position"])
        for tracking in _followed_past(kwargs, notification_ids):
            self._insert_tracking(c, tracking)

    def _create(self, statements: Sequence[str]) -> None:
        with self.datastore.transaction(commit=True) as c:
            for statement in statements:
                c.execute(statement)

    def _select(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        reader = getattr(_BATCH, "reader", None)
        if reader is not None:  # this thread is writing a batch: read in its transaction
            reader.row_factory = None
            return reader.execute(sql, tuple(params)).fetchall()  # type: ignore[no-any-return]
        with self.datastore.transaction(commit=False) as c:
            # Plain tuples: the pool's sqlite3.Row factory costs a third of a row read.
            c.sqlite_cursor.row_factory = None
            c.execute(sql, tuple(params))
            return c.fetchall()  # type: ignore[no-any-return]


_BATCH = threading.local()
"""``reader``: a cursor on the transaction of the batch this thread is writing on SQLite
(`CloserSQLiteRecorder._write_batch`), which its saves' reads go through."""


def _followed_past(kwargs: dict[str, Any], notification_ids: Sequence[int] | None
                   ) -> list[Tracking]:
    """``followed_past=(name, ...)``: those followers' positions moved past the events just
    inserted, in their transaction (an import's events are history, not work to do)."""
    names = kwargs.get("followed_past") or ()
    if not names or not notification_ids:
        return []
    return [Tracking(name, max(notification_ids)) for name in names]


def _write_rows(tx: Tx, kwargs: dict[str, Any],
               row_writes: Sequence[tuple[str, Callable[[CandidacyRow], Any]]],
               extra_tables: dict[str, ExtraTable]) -> None:
    """The save's rows, in the events' transaction: the idempotency record, the
    candidacies' rows, then each added table's (`ExtraTable.write`)."""
    record: IdempotencyRecord | None = kwargs.get("idempotency")
    if record is not None:
        tx.execute("INSERT INTO closer_idempotency (workspace, key, fingerprint, response, "
                   "created_at) VALUES (?, ?, ?, ?, ?)",
                   (record.workspace, record.key, record.fingerprint,
                    orjson.dumps(record.response).decode(), stored_moment(record.created_at)))
    # One statement per kind for the whole save (a tick's page writes hundreds of rows).
    rows = kwargs.get("rows")
    if rows:
        for sql, params in row_writes:
            tx.executemany(sql, [params(row) for row in rows])
    for keyword in kwargs.keys() - SAVE_KEYWORDS:
        table = extra_tables.get(keyword)
        if table is None:
            # Rows nobody would write must not vanish: the whole save is refused.
            raise ProgrammingError(f"no table takes the save's {keyword!r} rows: add its "
                                   "ExtraTable to the recorder first (add_table)")
        if kwargs[keyword]:
            table.write(tx, kwargs[keyword])


def _statements_of(write: Callable[[Any], Any]) -> list[tuple[Any, Any]]:
    """The ``(query, params)`` the library's cursor-level write steps execute, in order:
    ``write(cursor)`` runs them against a stand-in cursor that only collects them.

    Mirrors eventsourcing 9.5.6, whose `PostgresApplicationRecorder.insert_events` runs
    ``_insert_events`` and then ``_insert_stored_events`` (lock, NOTIFY, INSERT ...
    RETURNING) in one transaction, and whose aggregate recorder's write is
    ``_insert_stored_events`` alone; tests/test_recorder_contracts.py compares what this
    collects with what the library's own path sends."""
    calls: list[tuple[Any, Any]] = []

    class Collecting:
        def execute(self, query: Any, params: Any = None, **_: Any) -> None:
            calls.append((query, params))

        def executemany(self, query: Any, params_seq: Any, **_: Any) -> None:
            calls.extend((query, params) for params in params_seq)

    write(Collecting())
    return calls


# The library's retry of a write that lost its connection, with its parameters: those of
# eventsourcing 9.5.6's `PostgresApplicationRecorder.insert_events` (a test compares them).
_library_retry = retry((persistence.InterfaceError, persistence.OperationalError),
                       max_attempts=10, wait=0.2)

_SCHEMA_LOCK = 0x436C6F736572  # "Closer": the advisory lock taken while creating tables


class CloserPostgresRecorder(_Queries, PostgresProcessRecorder):
    """eventsourcing's PostgreSQL process recorder plus Closer's tables."""

    placeholder = "%s"
    # PostgreSQL writes a new index entry for every updated row whatever is assigned
    # (the indexed due_at changes anyway): one upsert.
    _row_writes = ((_ROW_UPSERT, _row_params),)

    def _id_param(self, uid: UUID) -> Any:
        return uid

    def _notification_table(self) -> tuple[str, str]:
        return self.events_table_name, "notification_id"

    def _row_id(self, alias: str) -> str:
        return f"{alias}.originator_id::text"

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        if datastore.enable_db_functions:
            # Its database function writes the events alone: our rows and a follower's
            # position would be dropped without a word (eventsourcing 9.5.6).
            raise InvalidInput("POSTGRES_ENABLE_DB_FUNCTIONS", "Closer writes its rows in the "
                               "events' transaction, which the library's database "
                               "functions do not: leave it unset")
        super().__init__(datastore, **kwargs)
        for statement in _SQLITE_TABLES:
            self.sql_create_statements.append(SQL(statement))  # type: ignore[arg-type]

    def create_table(self) -> None:
        # Processes opening the application together race on the library's schema
        # statements (CREATE OR REPLACE FUNCTION: "tuple concurrently updated"; on a
        # new database, the tracking migration row): one process at a time.  The lock is
        # held on a connection of its own, so that a pool of one still serves the library.
        with self._schema_locked():
            super().create_table()

    def _create(self, statements: Sequence[str]) -> None:
        with self._schema_locked() as conn:
            for statement in statements:
                conn.execute(SQL(statement))

    @contextmanager
    def _schema_locked(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection of its own holding the schema lock (which goes with it)."""
        conninfo = self.datastore.pool.conninfo  # psycopg_pool 3.3 also takes a callable
        with (as_persistence_errors(),
              psycopg.connect(conninfo() if callable(conninfo) else conninfo,
                              **_connection_kwargs(self.datastore)) as conn):
            conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
            yield conn

    def _batchable(self, stored_events: Sequence[StoredEvent], kwargs: dict[str, Any]) -> bool:
        return self._in_one_script(stored_events, kwargs)

    def _store_key(self) -> Any:
        conninfo = self.datastore.pool.conninfo
        database = id(self.datastore) if callable(conninfo) else conninfo
        return ("postgres", database, self.datastore.schema, self.events_table_name)

    def _write_batch(self, batch: list[_Save]) -> None:
        """The batch as one script (`_insert_in_one_script`'s, with every save's rows and
        one INSERT of all their events); if it is refused (one save's duplicate version
        or idempotency key fails the script, and so all of it), each save is written
        again on its own, so only the refused one fails."""
        pending: dict[Any, Any] = {}
        for save in batch:
            save.prepared = save.recorder._prepare(save.events, save.kwargs, pending)
            save.recorder._written(save.prepared, pending)
        try:
            ids = self._insert_batch_in_one_script(batch)
        except persistence.IntegrityError:
            if len(batch) == 1:
                raise
            self._write_one_by_one(batch)
            return
        start = 0
        for save in batch:
            save.ids = ids[start:start + len(save.events)]
            start += len(save.events)
        for save in batch:
            save.recorder._committed(save.prepared)

    def _write_one_by_one(self, batch: list[_Save]) -> None:
        for save in batch:
            recorder = save.recorder
            try:
                save.prepared = recorder._prepare(save.events, save.kwargs, {})
                save.ids = recorder._insert_in_one_script(save.events, save.kwargs)
            except Exception as error:
                save.ids, save.error = None, error
            else:
                recorder._committed(save.prepared)

    @_library_retry
    def _insert_batch_in_one_script(self, batch: list[_Save]) -> Sequence[int]:
        events = [event for save in batch for event in save.events]
        with (self.datastore.get_connection() as conn,
              ClientCursor(conn, row_factory=tuple_row) as curs):
            def write(cursor: Any) -> None:
                for save in batch:
                    save.recorder._insert_events(cursor, save.events, **save.kwargs)
                self._insert_stored_events(cursor, events)
            statements = _statements_of(write)
            curs.execute(b";".join([b"BEGIN", *(curs.mogrify(query, params).encode()
                                               for query, params in statements), b"COMMIT"]))
            for _ in range(len(statements)):
                curs.nextset()
            return _notification_ids(curs.fetchall(), events)

    def _insert_alone(self, stored_events: Sequence[StoredEvent],
                      kwargs: dict[str, Any]) -> Sequence[int] | None:
        """The library's write, as one query string: one round trip instead of three.

        eventsourcing runs ``conn.transaction()`` inside a pipeline (psycopg syncs the
        pipeline around it) and syncs again after the INSERT to read the notification
        ids, so the EXCLUSIVE table lock that orders the notification log is held across
        round trips and the time this thread then waits for the GIL: every other writer
        queues behind it.  Here the very statements the library and we would run (BEGIN,
        our rows, the lock, the INSERT ... RETURNING, COMMIT) are bound on the client and
        sent as one simple query, so the lock is held only while the server runs them,
        and the client spends less CPU than in pipeline mode (measured with 8 threads:
        0.67 against 0.96 ms of CPU a command, 1,460 against 1,050 commands/s).  A
        failing statement stops the rest (COMMIT included): its own error is raised (a
        duplicate version is an IntegrityError) and the pool rolls the transaction back.
        A lost connection is retried as the library retries its own write.
        """
        if not self._in_one_script(stored_events, kwargs):
            # A follower's position must be checked before COMMIT (a stale one is
            # refused): the library's own pipelined write does that.
            try:
                # (The library's retry decorator leaves its methods untyped.)
                ids: Sequence[int] | None = PostgresProcessRecorder.insert_events(
                    self, stored_events, **kwargs)
            except _RolledBack as refused:
                raise refused.error from None
            return ids
        written: Sequence[int] | None = self._insert_in_one_script(stored_events, kwargs)
        return written

    @_library_retry
    def _insert_in_one_script(self, stored_events: Sequence[StoredEvent],
                              kwargs: dict[str, Any]) -> Sequence[int]:
        with (self.datastore.get_connection() as conn,
              ClientCursor(conn, row_factory=tuple_row) as curs):
            script, returning = self._script(curs, stored_events, kwargs)
            curs.execute(script)
            for _ in range(returning):
                curs.nextset()
            return _notification_ids(curs.fetchall(), stored_events)

    def _in_one_script(self, stored_events: Sequence[StoredEvent],
                       kwargs: dict[str, Any]) -> bool:
        return not (not stored_events or kwargs.get("position") is not None
                    or kwargs.get("tracking") is not None or kwargs.get("followed_past"))

    def _script(self, curs: ClientCursor[Any],
                stored_events: Sequence[StoredEvent], kwargs: dict[str, Any]) -> tuple[bytes, int]:
        """The write as one simple query, and how many results precede the INSERT's ids."""
        def write(cursor: Any) -> None:
            self._insert_events(cursor, stored_events, **kwargs)
            self._insert_stored_events(cursor, stored_events, **kwargs)
        statements = _statements_of(write)
        script = b";".join([b"BEGIN", *(curs.mogrify(query, params).encode()
                                       for query, params in statements), b"COMMIT"])
        return script, len(statements)  # the result after BEGIN and those statements

    def _insert_events(self, curs: Any, stored_events: Any, **kwargs: Any) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        _write_rows(Tx(curs, "%s"), kwargs, self._row_writes, self.extra_tables)
        if kwargs.get("position") is not None:
            self._insert_tracking(curs, tracking=kwargs["position"])

    def _fetch_ids_after_insert_events(self, curs: Any, stored_events: Sequence[StoredEvent],
                                       **kwargs: Any) -> Sequence[int] | None:
        # The ids are known only once inserted: the followers' positions are written
        # after them, still inside the library's transaction (its table lock held).
        notification_ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        try:
            for tracking in _followed_past(kwargs, notification_ids):
                self._insert_tracking(curs, tracking=tracking)
        except persistence.IntegrityError as error:
            # A follower already past these ids (the library's check, in Python: the
            # transaction itself is sound) must undo the events too (see `_RolledBack`).
            raise _RolledBack(error) from error
        return notification_ids

    def _select(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        # Every read is one statement on an autocommit connection (its own consistent
        # snapshot): one round trip, where BEGIN ... ROLLBACK around it made three.
        with self.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as c:
            c.execute(SQL(self._q(sql)), tuple(params))
            return c.fetchall()


class _RolledBack(BaseException):
    """An error raised after the library's INSERT, carried out of its write as a
    BaseException: eventsourcing 9.5.6's `PostgresApplicationRecorder.insert_events`
    catches an Exception there, leaves its transaction block as if nothing went wrong (it
    commits) and only then raises it, so the events would be written and the write
    refused.  Going through the transaction block instead rolls it back."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


def _connection_kwargs(datastore: Any) -> dict[str, Any]:
    """How to connect to the library's database beside its pool: with its connections'
    arguments and password function, autocommit, no prepared statements, its timeout."""
    settings = datastore.pool
    options = {k: v for k, v in settings.kwargs.items() if k != "row_factory"}
    if getattr(settings, "get_password_func", None):
        options["password"] = settings.get_password_func()
    return {**options, "autocommit": True, "prepare_threshold": None,
            "connect_timeout": max(1, round(settings.timeout))}


def _notification_ids(rows: list[Any], stored_events: Sequence[StoredEvent]) -> list[int]:
    ids = [row[0] for row in rows]
    if len(ids) != len(stored_events):  # pragma: no cover - the INSERT returns each
        raise ProgrammingError(f"got {len(ids)} notification ids for "
                               f"{len(stored_events)} events")
    return ids


# psycopg's errors as eventsourcing's, most specific first: a copy of eventsourcing 9.5.6's
# `PostgresDatastore.get_connection`, which only translates on its own (sync) connections;
# tests/test_recorder_contracts.py checks each against the library's.
_ERRORS: tuple[tuple[type[Exception], type[Exception]], ...] = (
    (psycopg.InterfaceError, persistence.InterfaceError),
    (psycopg.OperationalError, persistence.OperationalError),
    (psycopg.DataError, persistence.DataError),
    (psycopg.IntegrityError, persistence.IntegrityError),
    (psycopg.InternalError, persistence.InternalError),
    (psycopg.ProgrammingError, persistence.ProgrammingError),
    (psycopg.NotSupportedError, persistence.NotSupportedError),
    (psycopg.DatabaseError, persistence.DatabaseError),
    (psycopg.Error, persistence.PersistenceError),
)


@contextmanager
def as_persistence_errors() -> Iterator[None]:
    """psycopg's errors raised inside, as eventsourcing's (see `_ERRORS`)."""
    try:
        yield
    except psycopg.Error as error:
        for theirs, ours in _ERRORS:
            if isinstance(error, theirs):
                raise ours(str(error)) from error
        raise  # pragma: no cover - psycopg.Error is the last entry


def eventsourcing_env(database_url: str) -> dict[str, str]:
    """The eventsourcing configuration for ``database_url`` (sqlite:///PATH, postgresql://...,
    or memory://[NAME]: eventsourcing's in-memory store, see `engine.memory_store`)."""
    parsed = urlparse(database_url)
    if parsed.scheme == "memory":
        return {
            "PERSISTENCE_MODULE": "engine.memory_store:CloserMemoryFactory",
            "APPLICATION_RECORDER_TOPIC": "engine.audit_store:AuditedMemoryRecorder",
            "MEMORY_STORE": (parsed.netloc + parsed.path).strip("/"),
        }
    if parsed.scheme == "sqlite":
        # sqlite:///./closer.db -> ./closer.db ; sqlite:////abs/closer.db -> /abs/closer.db
        path = unquote(parsed.path)[1:]
        if not path:
            raise InvalidInput("CLOSER_DATABASE_URL", "a sqlite URL needs a file path")
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": "30",
            "APPLICATION_RECORDER_TOPIC": "engine.audit_store:AuditedSQLiteRecorder",
        }
    if parsed.scheme in ("postgresql", "postgres"):
        if not parsed.path.strip("/"):
            raise InvalidInput("CLOSER_DATABASE_URL", "a postgresql URL needs a database name")
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": parsed.path.strip("/"),
            "POSTGRES_HOST": parsed.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parsed.port or 5432),
            "POSTGRES_USER": unquote(parsed.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parsed.password or ""),
            "POSTGRES_CONNECT_TIMEOUT": "10",
            "POSTGRES_POOL_SIZE": "5",
            "POSTGRES_MAX_OVERFLOW": "10",
            "APPLICATION_RECORDER_TOPIC": "engine.audit_store:AuditedPostgresRecorder",
        }
        return env
    raise InvalidInput(
        "CLOSER_DATABASE_URL",
        f"unsupported scheme {parsed.scheme!r}: use sqlite:///PATH, postgresql://HOST/DB "
        "or memory://NAME",
    )
