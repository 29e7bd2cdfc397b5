"""Other layers' tables, written in the same transaction as a save's events: the extension
point (`ExtraTable`) by which ``adapters/`` keeps its rows beside the events while the
engine knows none of them, and `Tx`, the portable SQL both it and the read models write
with.  The recorders that run them are `engine.store`'s (SQLite, PostgreSQL) and
`engine.memory_store`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from psycopg.sql import SQL


def stored_moment(moment: datetime | None) -> str | None:
    """A moment as every store keeps it: ISO-8601 text in UTC, which sorts as text, so
    comparisons work in SQL on both stores and alike in memory (None stays None)."""
    return None if moment is None else moment.astimezone(UTC).isoformat()


def in_utc(moment: datetime | None) -> datetime | None:
    """A moment read back in UTC, as the stores give it (None stays None)."""
    return None if moment is None else moment.astimezone(UTC)


def as_stored_json(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` through JSON, as the SQL stores keep it: a moment in it comes back as text."""
    return orjson.loads(orjson.dumps(value))  # type: ignore[no-any-return]

class Tx:
    """The statements of one transaction (a read model's batch, or an `ExtraTable`'s rows
    in a save), in portable SQL (``?`` placeholders, rows as tuples), so the same code
    runs unchanged on both stores."""

    def __init__(self, cursor: Any, placeholder: str,
                 reader: Callable[[], Any] | None = None) -> None:
        self._cursor = cursor
        self._placeholder = placeholder
        self._reader = reader  # a fresh cursor for each query whose rows are read
        self.memo: dict[Any, Any] = {}
        """What handlers keep between the events of this one transaction (rows they read
        or wrote), so a candidacy's events in one batch read its row once (the pipeline
        model's rebuild on PostgreSQL did 644 notifications/s reading it per event,
        docs/performance.md, "Read models")."""

    def _q(self, sql: str) -> Any:
        if self._placeholder == "?":
            return sql
        return SQL(sql.replace("?", self._placeholder))

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement."""
        self._cursor.execute(self._q(sql), tuple(params))

    def executemany(self, sql: str, params_seq: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per parameter tuple."""
        self._cursor.executemany(self._q(sql), params_seq)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one query and answer its rows as tuples."""
        if self._reader is None:
            self._cursor.execute(self._q(sql), tuple(params))
            rows = self._cursor.fetchall()
        else:
            with self._reader() as cursor:
                cursor.execute(self._q(sql), tuple(params))
                rows = cursor.fetchall()
        return [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in rows]

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """Run one query and answer its first row (None: no row)."""
        rows = self.all(sql, params)
        return rows[0] if rows else None


class ExtraTable:
    """Another layer's table, written in the same transaction as a save's events: the
    extension point by which ``adapters/`` keeps its rows beside the events while the
    engine knows none of them.  A subclass names the save keyword carrying its rows
    (``app.save(aggregate, **{KEYWORD: rows})``), its ``CREATE ... IF NOT EXISTS``
    statements in portable SQL (``?`` placeholders, the same text on both stores) and
    how its rows are written: `write` on SQLite and PostgreSQL (inside the events'
    transaction, its library table lock held), `hold` in the in-memory store (under its
    lock, after every check): so a refused save writes none of them, and a crash never
    leaves an event without its rows.  A recorder writes it once added (`add_table`,
    which creates what is missing); a save carrying a keyword no added table takes is
    refused whole (`ProgrammingError`), never written without its rows."""

    keyword: str = ""
    statements: tuple[str, ...] = ()
    recorded_at: tuple[str, str] | None = None
    """``(table, column)`` holding its rows' last-change moments (UTC ISO text), which
    the store's `latest_recorded_at` also reads; None: it says nothing of time."""

    def write(self, tx: Tx, rows: Sequence[Any]) -> None:
        """Write ``rows`` with ``tx`` (SQLite and PostgreSQL)."""
        raise NotImplementedError

    def hold(self, held: dict[Any, Any], rows: Sequence[Any]) -> None:
        """Write ``rows`` into ``held``, this table's dict in the in-memory store."""
        raise NotImplementedError

    def latest_held(self, held: dict[Any, Any]) -> datetime | None:
        """The in-memory store's `recorded_at`: the latest moment among ``held``'s rows."""
        return None


SAVE_KEYWORDS = frozenset({"idempotency", "rows", "position", "followed_past", "tracking"})
"""The save keywords the recorders themselves take (an `ExtraTable` takes any other)."""
