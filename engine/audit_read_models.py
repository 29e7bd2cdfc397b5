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
        positions = {m.name: _position(stored, m) for m in models}
        for model in models:
            for statement in model.tables:
                scratch.execute(statement)
        _rebuild(app, scratch, models, positions, candidacy)
        checked, findings = 0, list[Finding]()
        for model in models:
            for table in model.table_names:
                n, found = _compare(stored, scratch, table, candidacy, limit - len(findings))
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


@contextmanager
def _snapshot(app: Any) -> Iterator[Tx]:
    """One read transaction on the store: every stored read is of the same moment."""
    datastore = app.recorder.datastore
    if isinstance(datastore, SQLiteDatastore):
        with datastore.transaction(commit=False) as cursor:
            yield Tx(cursor, "?")
    elif isinstance(datastore, PostgresDatastore):
        with datastore.transaction(commit=False) as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            yield Tx(cursor, "%s")
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


def _columns(scratch: sqlite3.Connection, table: str) -> tuple[list[str], list[int]]:
    """The table's columns, and the indexes of its primary key's, in key order."""
    info = scratch.execute(f"PRAGMA table_info({table})").fetchall()
    columns = [row[1] for row in info]
    key = [i for _, i in sorted((row[5], i) for i, row in enumerate(info) if row[5])]
    return columns, key or list(range(len(columns)))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and \
            not isinstance(a, bool) and not isinstance(b, bool):
        return float(a) == float(b)
    return bool(a == b)


def _compare(stored: Tx, scratch: sqlite3.Connection, table: str,
             candidacy: UUID | None, limit: int) -> tuple[int, list[Finding]]:
    """The stored rows of ``table`` against the rebuilt ones, a page at a time in key
    order; each rebuilt row matched is deleted, so what is left at the end is missing."""
    columns, key = _columns(scratch, table)
    keys = [columns[i] for i in key]
    select = ", ".join(columns)
    order = ", ".join(keys)
    where_key = " AND ".join(f"{k}=?" for k in keys)
    findings: list[Finding] = []
    checked = 0
    if candidacy is not None:
        if "candidacy_id" not in columns:
            return 0, []
        pages: Iterator[list[tuple[Any, ...]]] = iter([stored.all(
            f"SELECT {select} FROM {table} WHERE candidacy_id=? ORDER BY {order}",
            (str(candidacy),))])
    else:
        pages = _pages(stored, table, select, keys, [columns.index(k) for k in keys])
    for rows in pages:
        for row in rows:
            checked += 1
            at = tuple(row[i] for i in key)
            made = scratch.execute(f"SELECT {select} FROM {table} WHERE {where_key}",
                                   at).fetchone()
            if made is None:
                detail = "stored, but no event makes it"
                found = row
            else:
                scratch.execute(f"DELETE FROM {table} WHERE {where_key}", at)
                wrong = [f"{c} {h!r} (its events: {m!r})"
                         for c, h, m in zip(columns, row, made, strict=True) if not _same(h, m)]
                if not wrong:
                    continue
                detail, found = "says " + ", ".join(wrong), made
            if len(findings) < limit:
                findings.append(_finding(table, columns, keys, at, found, detail))
    for made in scratch.execute(f"SELECT {select} FROM {table} ORDER BY {order}"):
        if len(findings) >= limit:
            break
        at = tuple(made[columns.index(k)] for k in keys)
        findings.append(_finding(table, columns, keys, at, made,
                                 "its events make it, but it is not stored"))
    return checked, findings


def _pages(stored: Tx, table: str, select: str, keys: list[str], key_at: list[int]
           ) -> Iterator[list[tuple[Any, ...]]]:
    """The stored table in key order, ``PAGE`` rows at a time (keyset paging, so a large
    table is never held whole)."""
    order = ", ".join(keys)
    after: tuple[Any, ...] | None = None
    while True:
        if after is None:
            rows = stored.all(f"SELECT {select} FROM {table} ORDER BY {order} LIMIT {PAGE}")
        else:
            marks = ", ".join("?" for _ in keys)
            rows = stored.all(f"SELECT {select} FROM {table} WHERE ({order}) > ({marks}) "
                              f"ORDER BY {order} LIMIT {PAGE}", after)
        if rows:
            yield rows
        if len(rows) < PAGE:
            return
        after = tuple(rows[-1][i] for i in key_at)


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
