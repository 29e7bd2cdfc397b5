"""`engine.store.ExtraTable`: another layer's rows, written in a save's transaction.

The outbox keeps its tables this way (`adapters.outbox_rows`); here a table of the test's
own, so that what the engine promises any owner is pinned on the three stores: the rows
commit with the events or not at all (a refused save, a failing write, a keyword no
table takes), and adding a table is idempotent and creates it where it is missing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError, ProgrammingError, StoredEvent

from conftest import MEMORY, STORES
from engine.application import Candidacies
from engine.clock import FixedClock
from engine.store import eventsourcing_env
from engine.tables import ExtraTable, Tx

T0 = datetime(2026, 12, 2, 9, tzinfo=UTC)
pytestmark = pytest.mark.parametrize("database_url", [MEMORY, *STORES], indirect=True)


class Notes(ExtraTable):
    """A note per id, last write wins; its moments tell the store's clock."""

    keyword = "notes"
    statements = ("CREATE TABLE IF NOT EXISTS test_notes (id TEXT PRIMARY KEY, "
                  "text TEXT NOT NULL, at TEXT NOT NULL)",)
    recorded_at = ("test_notes", "at")

    def write(self, tx: Tx, rows: Any) -> None:
        tx.executemany("INSERT INTO test_notes (id, text, at) VALUES (?, ?, ?) ON CONFLICT "
                       "(id) DO UPDATE SET text=excluded.text, at=excluded.at",
                       [(i, text, at.isoformat()) for i, text, at in rows])

    def hold(self, held: dict[Any, Any], rows: Any) -> None:
        for i, text, at in rows:
            held[i] = (i, text, at)

    def latest_held(self, held: dict[Any, Any]) -> datetime | None:
        return max((at for _, _, at in held.values()), default=None)


class Failing(Notes):
    """Notes whose write fails half-way, as a full disk would."""

    keyword = "failing_notes"

    def write(self, tx: Tx, rows: Any) -> None:
        super().write(tx, rows[:1])
        raise OSError("disk full")

    def hold(self, held: dict[Any, Any], rows: Any) -> None:
        super().hold(held, rows[:1])
        raise OSError("disk full")


def _notes(app: Candidacies) -> list[tuple[str, str]]:
    recorder: Any = app.recorder
    if hasattr(recorder, "held"):
        return sorted((i, text) for i, text, _ in recorder.held(Notes()))
    return [(r[0], r[1]) for r in recorder.read("SELECT id, text FROM test_notes ORDER BY id")]


def _event(version: int, uid: Any) -> StoredEvent:
    return StoredEvent(uid, version, "tests.test_extra_tables:Event", b"{}")


@pytest.fixture
def app(database_url: str) -> Any:
    app = Candidacies(eventsourcing_env(database_url), clock=FixedClock(T0))
    app.recorder.add_table(Notes())  # type: ignore[attr-defined]
    yield app
    app.close()


def test_the_rows_commit_with_the_events(app: Any) -> None:
    uid = uuid4()
    app.recorder.insert_events([_event(1, uid)], notes=[("a", "first", T0)])
    app.recorder.insert_events([_event(2, uid)], notes=[("a", "again", T0), ("b", "b", T0)])
    assert _notes(app) == [("a", "again"), ("b", "b")]
    assert len(app.recorder.select_events(uid)) == 2


def test_a_refused_save_writes_none_of_its_rows(app: Any) -> None:
    uid = uuid4()
    app.recorder.insert_events([_event(1, uid)], notes=[("a", "first", T0)])
    with pytest.raises(IntegrityError):  # the version is taken
        app.recorder.insert_events([_event(1, uid)], notes=[("a", "lost", T0), ("c", "c", T0)])
    assert _notes(app) == [("a", "first")]


def test_a_failing_write_leaves_no_event_without_its_rows(app: Any) -> None:
    app.recorder.add_table(Failing())
    uid = uuid4()
    with pytest.raises(OSError, match="disk full"):
        app.recorder.insert_events([_event(1, uid)], failing_notes=[("x", "x", T0)])
    assert app.recorder.select_events(uid) == []
    assert _notes(app) == []


def test_rows_no_added_table_takes_refuse_the_whole_save(app: Any) -> None:
    uid = uuid4()
    with pytest.raises(ProgrammingError, match="'unheard'"):
        app.recorder.insert_events([_event(1, uid)], unheard=[("x", "x", T0)])
    assert app.recorder.select_events(uid) == []


def test_adding_a_table_again_or_from_another_application_keeps_its_rows(
        app: Any, database_url: str) -> None:
    app.recorder.insert_events([_event(1, uuid4())], notes=[("a", "first", T0)])
    app.recorder.add_table(Notes())
    other = Candidacies(eventsourcing_env(database_url))
    try:
        other.recorder.add_table(Notes())  # type: ignore[attr-defined]
        assert _notes(other) == [("a", "first")]
    finally:
        other.close()


def test_the_stores_clock_reads_an_added_tables_moments(app: Any) -> None:
    later = T0 + timedelta(days=3)
    assert app.recorder.latest_recorded_at() is None
    app.recorder.insert_events([], notes=[("a", "late", later)])
    assert app.recorder.latest_recorded_at() == later
