"""The read models' tables under audit (issue 17): each read model rebuilt from the
events into a scratch SQLite database, up to the position it tracks, and compared row
by row with its stored tables.

A read model is derived, not chained: what proves its rows is that the verified events
make them.  The rebuild runs the read model's own handlers (`ReadModel.apply`), a batch
of events per transaction as `engine.follower.Follower` does, so the scratch rows are
exactly those an honest follower wrote.  The stored side is read in one snapshot (a
read transaction; REPEATABLE READ on PostgreSQL), positions first, so a follower moving
on meanwhile (`closer serve`'s) is not taken for tampering.

A difference names the table, the row's key and, where the row belongs to one, the
candidacy, with the event it derives from (the version in its key or its ``version``
column, and its ``notification_id`` column where it has one).  The engine knows no read
model's tables: the caller passes the models (``api/read_models.py``'s).
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore

from engine.audit import Finding
from engine.errors import CorruptHistory
from engine.follower import ReadModel
from engine.tables import Tx

READ_MODEL = "read_model"
"""A read model's row that is not what its events make (altered, missing or extra)."""

PAGE = 1000
BATCH = 500  # events per scratch transaction, as the follower's batch


def verify_read_models(app: Any, models: Sequence[ReadModel], *,
                       candidacy: UUID | None = None, limit: int = 1000
                       ) -> tuple[int, list[Finding]]:
    """Each of ``models``' stored rows against the rows its handlers make from the
    events up to its tracked position; how many stored rows were checked, and the
    findings (at most ``limit``).  With ``candidacy``, only that candidacy's rows (of the
    tables that have a ``candidacy_id``; the stays counted across candidacies are left
    out) and only its events are read."""
    if not models:
        return 0, []
    with _scratch(in_memory=candidacy is not None) as scratch, _snapshot(app) as stored:
        postgres = isinstance(app.recorder.datastore, PostgresDatastore)
        positions = {m.name: _position(stored, m) for m in models}
        for model in models:
            for statement in model.tables:
                scratch.execute(statement)
        _rebuild(app, scratch, models, positions, candidacy)
        checked, findings = 0, list[Finding]()
        for model in models:
            for table in model.table_names:
                n, found = _compare(stored, scratch, table, candidacy, limit - len(findings),
                                    postgres)
                checked += n
                findings += found
    return checked, findings


@contextmanager
def _scratch(*, in_memory: bool) -> Iterator[sqlite3.Connection]:
    """A SQLite database of our own for the rebuilt rows: in memory for one candidacy,
    a temporary file for a whole store (its rows need not fit in memory)."""
    if in_memory:
        conn = sqlite3.connect(":memory:", isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()
        return
    with tempfile.TemporaryDirectory(prefix="closer-audit-") as folder:
        conn = sqlite3.connect(Path(folder) / "scratch.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        try:
            yield conn
        finally:
            conn.close()


class _Snapshot(Tx):
    """The snapshot's statements, and (PostgreSQL) a query streamed through a
    server-side cursor of the same connection, so in the same snapshot."""

    def __init__(self, cursor: Any, placeholder: str) -> None:
        super().__init__(cursor, placeholder)
        self.cursor = cursor

    def stream(self, sql: str, params: Sequence[Any], size: int) -> Iterator[tuple[Any, ...]]:
        from psycopg.sql import SQL

        with self.cursor.connection.cursor(name="closer_audit_read_models") as named:
            named.itersize = size
            named.execute(SQL(sql.replace("?", "%s")), tuple(params))
            for row in named:
                yield tuple(row.values()) if isinstance(row, dict) else tuple(row)


@contextmanager
def _snapshot(app: Any) -> Iterator[_Snapshot]:
    """One read transaction on the store: every stored read is of the same moment."""
    datastore = app.recorder.datastore
    if isinstance(datastore, SQLiteDatastore):
        with datastore.transaction(commit=False) as cursor:
            yield _Snapshot(cursor, "?")
    elif isinstance(datastore, PostgresDatastore):
        with datastore.transaction(commit=False) as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            # The rebuild reads the log through other connections for minutes while this
            # one waits: the datastore's idle-in-transaction timeout (eventsourcing's
            # default 5 s) would end it (found on 1.2 million events).
            cursor.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
            yield _Snapshot(cursor, "%s")
    else:
        raise TypeError(f"read models need SQLite or PostgreSQL, not {type(datastore).__name__}")


def _position(stored: Tx, model: ReadModel) -> int:
    view: Any = model.view
    table = getattr(view, "tracking_table_name", "tracking")
    schema = getattr(view.datastore, "schema", None)
    if isinstance(view.datastore, PostgresDatastore) and schema:
        table = f'"{schema}"."{table}"'
    row = stored.one(f"SELECT MAX(notification_id) FROM {table} WHERE application_name=?",
                     (model.tracking_name,))
    return int(row[0]) if row and row[0] is not None else 0


def _events(app: Any, top: int, candidacy: UUID | None) -> Iterator[tuple[int, StoredEvent]]:
    """(notification id, stored event) up to ``top``, in log order."""
    if candidacy is not None:
        for nid, version, topic, state, _, _ in app.recorder.select_chain(candidacy):
            if nid <= top:
                yield nid, StoredEvent(candidacy, version, topic, state)
        return
    start = 1
    while start <= top:
        page = app.recorder.select_notifications(start, PAGE, stop=top)
        for n in page:
            yield n.id, n
        if len(page) < PAGE:
            return
        start = page[-1].id + 1


def _rebuild(app: Any, scratch: sqlite3.Connection, models: Sequence[ReadModel],
             positions: dict[str, int], candidacy: UUID | None) -> None:
    """Run each model's handlers over the events it has followed, into ``scratch``."""
    top = max(positions.values())
    decode = app.mapper.to_domain_event
    prefixes = tuple({m.topic_prefix for m in models})
    batch: list[tuple[Any, int, str]] = []

    def flush() -> None:
        cursor = scratch.cursor()
        cursor.execute("BEGIN")
        for model in models:
            tx, upto = Tx(cursor, "?"), positions[model.name]
            for event, nid, topic in batch:
                if nid <= upto and topic.startswith(model.topic_prefix):
                    model.apply(tx, event, nid)
        cursor.execute("COMMIT")
        batch.clear()

    for nid, stored in _events(app, top, candidacy):
        if not stored.topic.startswith(prefixes):
            continue
        try:
            batch.append((decode(stored), nid, stored.topic))
        except CorruptHistory:
            continue  # the follower passes over it too (closer doctor lists it)
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()


def _columns(scratch: sqlite3.Connection, table: str) -> tuple[list[str], list[int], list[bool]]:
    """The table's columns, the indexes of its primary key's (in key order), and which
    of those hold text."""
    info = scratch.execute(f"PRAGMA table_info({table})").fetchall()
    columns = [row[1] for row in info]
    key = [i for _, i in sorted((row[5], i) for i, row in enumerate(info) if row[5])]
    key = key or list(range(len(columns)))
    return columns, key, ["TEXT" in str(info[i][2]).upper() for i in key]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and \
            not isinstance(a, bool) and not isinstance(b, bool):
        return float(a) == float(b)
    return bool(a == b)


def _order(value: Any) -> tuple[int, Any]:
    """A key value's place as both stores sort it: NULL, numbers, text (by code point:
    SQLite's BINARY and PostgreSQL's "C" on UTF-8), bytes."""
    if value is None:
        return 0, 0
    if isinstance(value, int | float):
        return 1, value
    if isinstance(value, str):
        return 2, value
    return 3, bytes(value)


def _compare(stored: _Snapshot, scratch: sqlite3.Connection, table: str, candidacy: UUID | None,
             limit: int, postgres: bool) -> tuple[int, list[Finding]]:
    """The stored rows of ``table`` against the rebuilt ones: both read in key order
    (text keys compared by code point on both stores) and merged, so each side is read
    once, a page at a time, and neither is held whole."""
    columns, key, text = _columns(scratch, table)
    keys = [columns[i] for i in key]
    if candidacy is not None and "candidacy_id" not in columns:
        return 0, []
    theirs = _pages(stored, table, columns, keys, text, postgres, candidacy)
    ours = iter(scratch.execute(f"SELECT {', '.join(columns)} FROM {table} "
                                f"ORDER BY {', '.join(keys)}"))
    findings: list[Finding] = []
    checked = 0

    def place(row: Sequence[Any]) -> tuple[tuple[int, Any], ...]:
        return tuple(_order(row[i]) for i in key)

    def note(row: Sequence[Any], detail: str) -> None:
        if len(findings) < limit:
            findings.append(_finding(table, columns, keys, tuple(row[i] for i in key), row,
                                     detail))

    held, made = next(theirs, None), next(ours, None)
    while held is not None or made is not None:
        if made is None or (held is not None and place(held) < place(made)):
            checked += 1
            note(held, "stored, but no event makes it")  # type: ignore[arg-type]
            held = next(theirs, None)
        elif held is None or place(made) < place(held):
            note(made, "its events make it, but it is not stored")
            made = next(ours, None)
        else:
            checked += 1
            if held == made:
                held, made = next(theirs, None), next(ours, None)
                continue
            wrong = [f"{c} {h!r} (its events: {m!r})"
                     for c, h, m in zip(columns, held, made, strict=True) if not _same(h, m)]
            if wrong:
                note(made, "says " + ", ".join(wrong))
            held, made = next(theirs, None), next(ours, None)
    return checked, findings


def _pages(stored: _Snapshot, table: str, columns: list[str], keys: list[str], text: list[bool],
           postgres: bool, candidacy: UUID | None) -> Iterator[tuple[Any, ...]]:
    """The stored table's rows in key order, never held whole.  SQLite: keyset paging
    along the primary key's index, ``PAGE`` rows a query.  PostgreSQL: one query through
    a server-side cursor of the snapshot's own connection, text keys sorted by code
    point (``COLLATE "C"``), which the primary key's index (in the database's collation)
    cannot serve page by page: one sort per table, not one per page."""
    where, params = ("candidacy_id=?", [str(candidacy)]) if candidacy is not None else ("", [])
    select = f"SELECT {', '.join(columns)} FROM {table}"
    if postgres:
        order = ", ".join(f'{k} COLLATE "C"' if t else k for k, t in zip(keys, text, strict=True))
        sql = select + (f" WHERE {where}" if where else "") + f" ORDER BY {order}"
        yield from stored.stream(sql, params, PAGE)
        return
    order = ", ".join(keys)
    at = [columns.index(k) for k in keys]
    after: tuple[Any, ...] | None = None
    while True:
        clauses = [where] if where else []
        if after is not None:
            clauses.append(f"({order}) > ({', '.join('?' for _ in keys)})")
        sql = select + (" WHERE " + " AND ".join(clauses) if clauses else "") + \
            f" ORDER BY {order} LIMIT {PAGE}"
        rows = stored.all(sql, [*params, *(after or ())])
        yield from rows
        if len(rows) < PAGE:
            return
        after = tuple(rows[-1][i] for i in at)


def _finding(table: str, columns: list[str], keys: list[str], at: tuple[Any, ...],
             row: Sequence[Any], detail: str) -> Finding:
    values = dict(zip(columns, row, strict=True))
    cid = values.get("candidacy_id")
    version = values.get("version")
    nid = values.get("notification_id")
    where = ", ".join(f"{k}={v!r}" for k, v in zip(keys, at, strict=True))
    return Finding(READ_MODEL, None if cid is None else str(cid),
                   None if version is None else int(version),
                   None if nid is None else int(nid), f"{table} row ({where}): {detail}")
