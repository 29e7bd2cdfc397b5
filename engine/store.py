"""Where candidacies are stored: eventsourcing's own SQLite and PostgreSQL recorders,
extended with two small tables written in the *same transaction* as the events.

- ``closer_idempotency``: the first response to each idempotency key, so a retried
  command records nothing new and answers the same.
- ``closer_candidacies``: one current row per candidacy (stage, version, when it is
  next due, and a JSON summary), so lists and the scheduler's tick read one row per
  candidacy instead of loading every aggregate.

Both are written from ``Application.save(..., idempotency=..., rows=...)``: the
keyword arguments travel with the events down to the recorder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote, urlparse

import orjson
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL

from engine.errors import InvalidInput


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
    candidate: str
    company: str
    role: str
    updated_at: datetime
    due_at: datetime | None
    summary: dict[str, Any]


def _row_params(row: CandidacyRow) -> tuple[Any, ...]:
    return (
        row.id, row.workspace, row.stage, row.version, row.round, row.candidate, row.company,
        row.role, _ts(row.updated_at), _ts(row.due_at), orjson.dumps(row.summary).decode(),
    )


def _ts(moment: datetime | None) -> str | None:
    # ISO-8601 in UTC sorts as text, so due_at comparisons work in SQL on both stores.
    return None if moment is None else moment.astimezone(timezone.utc).isoformat()

_COLUMNS = ("id, workspace, stage, version, round, candidate, company, role, updated_at, "
            "due_at, summary")
_UPSERT_SET = ("stage=excluded.stage, version=excluded.version, round=excluded.round, "
               "candidate=excluded.candidate, company=excluded.company, role=excluded.role, "
               "updated_at=excluded.updated_at, due_at=excluded.due_at, "
               "summary=excluded.summary")


def _row(values: Sequence[Any]) -> CandidacyRow:
    (id_, workspace, stage, version, round_, candidate, company, role, updated_at, due_at,
     summary) = values
    return CandidacyRow(
        id=id_, workspace=workspace, stage=stage, version=version, round=round_,
        candidate=candidate, company=company, role=role,
        updated_at=datetime.fromisoformat(updated_at),
        due_at=datetime.fromisoformat(due_at) if due_at else None,
        summary=orjson.loads(summary),
    )


class _Queries:
    """The read queries both recorders share (the SQL is portable; only the
    placeholder differs)."""

    placeholder = "?"

    def _select(self, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        raise NotImplementedError

    def _q(self, sql: str) -> str:
        return sql.replace("?", self.placeholder)

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

    def select_due_ids(self, before: datetime, *, after: str = "", limit: int = 1000) -> list[str]:
        """Ids of candidacies with something due at or before ``before``, in id order."""
        rows = self._select(
            "SELECT id FROM closer_candidacies WHERE due_at IS NOT NULL AND due_at<=? "
            "AND id>? ORDER BY id LIMIT ?", (_ts(before), after, limit))
        return [r[0] for r in rows]

    def select_all_rows(self, *, after: str = "", limit: int = 1000) -> list[CandidacyRow]:
        """Every candidacy's row across workspaces, in id order (for floors and audits)."""
        rows = self._select(f"SELECT {_COLUMNS} FROM closer_candidacies WHERE id>? "
                            "ORDER BY id LIMIT ?", (after, limit))
        return [_row(r) for r in rows]


_SQLITE_TABLES = [
    "CREATE TABLE IF NOT EXISTS closer_idempotency (workspace TEXT NOT NULL, key TEXT NOT NULL, "
    "fingerprint TEXT NOT NULL, response TEXT NOT NULL, created_at TEXT NOT NULL, "
    "PRIMARY KEY (workspace, key))",
    "CREATE TABLE IF NOT EXISTS closer_candidacies (id TEXT PRIMARY KEY, workspace TEXT NOT NULL, "
    "stage TEXT NOT NULL, version INTEGER NOT NULL, round INTEGER NOT NULL, candidate TEXT, "
    "company TEXT, role TEXT, updated_at TEXT NOT NULL, due_at TEXT, summary TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS closer_candidacies_due ON closer_candidacies (due_at)",
    "CREATE INDEX IF NOT EXISTS closer_candidacies_workspace ON closer_candidacies "
    "(workspace, stage, id)",
]


class CloserSQLiteRecorder(_Queries, SQLiteApplicationRecorder):
    """eventsourcing's SQLite recorder plus the idempotency and candidacy tables."""

    def construct_create_table_statements(self) -> list[str]:
        return super().construct_create_table_statements() + _SQLITE_TABLES

    def _insert_events(self, c: Any, stored_events: Any, **kwargs: Any) -> Any:
        notification_ids = super()._insert_events(c, stored_events, **kwargs)
        _write_extras(c.execute, self._q, kwargs)
        return notification_ids

    def _select(self, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(sql, tuple(params))
            return [tuple(r) for r in c.fetchall()]


def _write_extras(execute: Any, q: Any, kwargs: dict[str, Any]) -> None:
    record: IdempotencyRecord | None = kwargs.get("idempotency")
    if record is not None:
        execute(q("INSERT INTO closer_idempotency (workspace, key, fingerprint, response, "
                  "created_at) VALUES (?, ?, ?, ?, ?)"),
                (record.workspace, record.key, record.fingerprint,
                 orjson.dumps(record.response).decode(), _ts(record.created_at)))
    for row in kwargs.get("rows") or ():
        execute(q(f"INSERT INTO closer_candidacies ({_COLUMNS}) VALUES "
                  f"(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                  f"{_UPSERT_SET}"), _row_params(row))


class CloserPostgresRecorder(_Queries, PostgresApplicationRecorder):
    """eventsourcing's PostgreSQL recorder plus the idempotency and candidacy tables."""

    placeholder = "%s"

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        for statement in _SQLITE_TABLES:
            self.sql_create_statements.append(SQL(statement))  # type: ignore[arg-type]

    def _insert_events(self, curs: Any, stored_events: Any, **kwargs: Any) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        _write_extras(lambda sql, params: curs.execute(SQL(sql), params), self._q, kwargs)

    def _select(self, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(SQL(self._q(sql)), tuple(params))
            return [tuple(r.values()) for r in curs.fetchall()]


def eventsourcing_env(database_url: str) -> dict[str, str]:
    """The eventsourcing configuration for ``database_url`` (sqlite:///PATH or postgresql://...)."""
    parsed = urlparse(database_url)
    if parsed.scheme == "sqlite":
        # sqlite:///./closer.db -> ./closer.db ; sqlite:////abs/closer.db -> /abs/closer.db
        path = unquote(parsed.path)[1:]
        if not path:
            raise InvalidInput("CLOSER_DATABASE_URL", "a sqlite URL needs a file path")
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": "30",
            "APPLICATION_RECORDER_TOPIC": "engine.store:CloserSQLiteRecorder",
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
            "APPLICATION_RECORDER_TOPIC": "engine.store:CloserPostgresRecorder",
        }
        return env
    raise InvalidInput(
        "CLOSER_DATABASE_URL",
        f"unsupported scheme {parsed.scheme!r}: use sqlite:///PATH or postgresql://HOST/DB",
    )
