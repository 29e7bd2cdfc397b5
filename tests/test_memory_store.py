"""The in-memory store (`engine.memory_store`) answers as the SQL stores do.

The unit tier runs the service layer on it, so it must not be a kinder store: the same
writes give the same answers to every query (ordering, filters, limits, pagination)
as SQLite and PostgreSQL, a refused write leaves nothing behind, and ``memory://NAME``
is shared by the application objects that open it, as a database is.  And it still
keeps the contracts of the library recorder it extends (eventsourcing's own test cases).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest
from builders import interview
from eventsourcing.persistence import AggregateRecorder, IntegrityError, StoredEvent, Tracking
from eventsourcing.postgres import PostgresProcessRecorder
from eventsourcing.sqlite import SQLiteProcessRecorder
from eventsourcing.tests import persistence as persistence_tests

from adapters import outbox_rows
from adapters.outbox_rows import MessageRow, PassedOver
from conftest import STORES, memory_url
from engine.application import Candidacies
from engine.clock import FixedClock
from engine.errors import InvalidInput
from engine.memory_store import CloserMemoryRecorder
from engine.replay import source_for
from engine.store import (
    CandidacyRow,
    CloserPostgresRecorder,
    CloserSQLiteRecorder,
    IdempotencyRecord,
    eventsourcing_env,
)
from engine.values import Actor

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
# Recorder methods one SQL store has for its own reasons, not queries the application
# needs of every store: an added table's SQL, read by its owner (who reads the in-memory
# store's ``held`` rows instead).
STORE_SPECIFIC = {"read"}


def _added(recorder: type, library: type) -> set[str]:
    return {name for name in dir(recorder) if not name.startswith("_")
            and callable(getattr(recorder, name))} - set(dir(library))


@pytest.mark.parametrize("sql, library", [(CloserSQLiteRecorder, SQLiteProcessRecorder),
                                          (CloserPostgresRecorder, PostgresProcessRecorder)])
def test_the_memory_recorder_answers_every_query_the_sql_ones_add(sql: type,
                                                                 library: type) -> None:
    missing = _added(sql, library) - STORE_SPECIFIC - set(dir(CloserMemoryRecorder))
    assert not missing, f"add these to engine.memory_store too: {sorted(missing)}"


def test_memory_urls_name_a_store_shared_while_an_application_holds_it(
        clock: FixedClock, coach: Actor) -> None:
    url = memory_url()
    first = Candidacies(eventsourcing_env(url), clock=clock)
    cid = first.record_interview(coach, interview()).candidacy_id
    second = Candidacies(eventsourcing_env(url), clock=clock)
    assert second.get(cid, coach.workspace).version == 1  # one store, as one database
    assert second.recorder is first.recorder
    assert second.snapshots.recorder is first.snapshots.recorder  # type: ignore[union-attr]
    private = Candidacies(eventsourcing_env("memory://"), clock=clock)
    assert private.row(cid) is None  # no name: a store of its own
    for app in (first, second, private):
        app.close()
    del first, second, private, app
    gc.collect()
    again = Candidacies(eventsourcing_env(url), clock=clock)
    assert again.row(cid) is None  # nobody held it: gone, as a process's memory goes
    again.close()


def test_a_memory_store_is_configured_by_its_url() -> None:
    assert eventsourcing_env("memory://shared") == {
        "PERSISTENCE_MODULE": "engine.memory_store:CloserMemoryFactory",
        "APPLICATION_RECORDER_TOPIC": "engine.audit_store:AuditedMemoryRecorder",
        "MEMORY_STORE": "shared",
    }
    assert eventsourcing_env("memory://")["MEMORY_STORE"] == ""
    with pytest.raises(InvalidInput, match="memory://NAME"):
        eventsourcing_env("redis://localhost")
    with pytest.raises(InvalidInput, match="not an in-memory one"):  # it reads SQL tables
        source_for("memory://shared", "closer_events")


def test_a_refused_write_writes_none_of_its_rows(database_url: str, clock: FixedClock) -> None:
    # On every store (the unit tier's memory too): the same refusals, the same nothing.
    app = Candidacies(eventsourcing_env(database_url), clock=clock)
    recorder: Any = outbox_rows.use(app)
    uid = uuid4()
    recorder.insert_events([_event(uid, 1)], rows=[_candidacy_row(uid, 1)],
                           position=Tracking("Outbox", 5))
    refusals: list[dict[str, Any]] = [
        {"stored": [_event(uid, 1)]},  # a version taken
        {"idempotency": _key("k")},  # a key spent
        {"position": Tracking("Outbox", 5)},  # a position not past the last one
        {"position": Tracking("Outbox", 4)},
        # The new event's id (2) is not past the outbox's position: nor is it moved there,
        # nor is the fresh follower listed before it.
        {"followed_past": ("Fresh", "Outbox")},
        {"position": Tracking("Outbox", 6), "followed_past": ("Outbox",)},
    ]
    recorder.insert_events([], idempotency=_key("k"))
    for refusal in refusals:
        stored = refusal.pop("stored", [_event(uid, 2)])
        with pytest.raises(IntegrityError):
            recorder.insert_events(stored, rows=[_candidacy_row(uid, 2)],
                                   message_rows=[_message(uid, "m1", "queued", T0)],
                                   idempotency=refusal.get("idempotency", _key("k2")),
                                   passed_over=[_passed("Outbox", 1, uid)],
                                   position=refusal.get("position"),
                                   followed_past=refusal.get("followed_past", ()))
        assert [e.originator_version for e in recorder.select_events(uid)] == [1]
        assert recorder.find_candidacy_row(str(uid)).version == 1
        assert outbox_rows.message_rows(app) == []
        assert recorder.find_idempotency("agency", "k2") is None
        assert outbox_rows.passed_over(app) == []
        assert recorder.max_tracking_id("Outbox") == 5
        assert recorder.max_tracking_id("Fresh") is None
        assert recorder.find_notification_id(uid, 2) is None
    app.close()


def test_what_a_query_answers_is_the_callers_to_change(clock: FixedClock) -> None:
    app = Candidacies(eventsourcing_env(memory_url()), clock=clock)
    recorder: Any = outbox_rows.use(app)
    uid = uuid4()
    recorder.insert_events([_event(uid, 1)], rows=[_candidacy_row(uid, 1)],
                           message_rows=[_message(uid, "m", "queued", T0)],
                           idempotency=_key("k"))
    recorder.find_candidacy_row(str(uid)).summary["changed"] = True
    recorder.select_all_rows()[0].summary["changed"] = True
    outbox_rows.message_rows(app)[0].summary["changed"] = True
    recorder.find_idempotency("agency", "k").response["changed"] = True
    assert "changed" not in recorder.find_candidacy_row(str(uid)).summary  # as a SQL read
    assert "changed" not in outbox_rows.message_rows(app)[0].summary
    assert "changed" not in recorder.find_idempotency("agency", "k").response
    app.close()


# -- the same writes, the same answers -------------------------------------------------------


@pytest.fixture
def both(database_url: str, clock: FixedClock) -> Iterator[tuple[Any, Any]]:
    """A SQL store's application and an in-memory one, both empty."""
    sql = Candidacies(eventsourcing_env(database_url), clock=clock)
    memory = Candidacies(eventsourcing_env(memory_url()), clock=clock)
    for app in (sql, memory):
        outbox_rows.use(app)  # the outbox's tables, written by the same saves
    yield sql, memory
    sql.close()
    memory.close()


@pytest.mark.parametrize("database_url", STORES, indirect=True)
def test_memory_answers_every_query_as_the_sql_store_does(both: tuple[Any, Any]) -> None:
    uids = sorted(uuid4() for _ in range(8))
    sql, memory = (app.recorder for app in both)
    assert memory.latest_recorded_at() == sql.latest_recorded_at()  # empty stores
    for outbox_query in (outbox_rows.message_failures, outbox_rows.passed_over):
        assert outbox_query(both[1]) == outbox_query(both[0]), outbox_query
    for app in both:
        _write_the_same(app, uids)
    snapshots = both[0].snapshots.recorder.events_table_name
    memory_snapshots = both[1].snapshots.recorder.events_table_name
    events, memory_events = sql.events_table_name, memory.events_table_name

    def same(query: str, *args: Any, **kwargs: Any) -> None:
        assert getattr(memory, query)(*args, **kwargs) == getattr(sql, query)(*args, **kwargs), \
            (query, args, kwargs)

    def same_rows(query: Any, *args: Any, **kwargs: Any) -> None:
        """The same answer from an `adapters.outbox_rows` query on both."""
        assert query(both[1], *args, **kwargs) == query(both[0], *args, **kwargs), \
            (query, args, kwargs)

    for workspace in ("agency", "other", "nobody"):
        for stage in (None, "interviewed", "awaiting"):
            for text in (None, "ACME", "a_b", "100%", "o", "zzz"):
                for after in (None, str(uids[2])):
                    for limit in (1, 3, 50):
                        same("select_candidacy_rows", workspace, stage=stage, text=text,
                             after=after, limit=limit)
    for before in (T0, T0 + timedelta(hours=1), T0 + timedelta(days=9)):
        same("select_due", before)
        page: list[tuple[str, str]] = []
        cursor = ("", "")
        while True:  # walked two at a time: the same pages
            sql_page = sql.select_due(before, after=cursor, limit=2)
            assert memory.select_due(before, after=cursor, limit=2) == sql_page
            page += sql_page
            if len(sql_page) < 2:
                break
            cursor = sql_page[-1]
        assert page == sql.select_due(before)
    for now in (T0, T0 + timedelta(minutes=30), T0 + timedelta(days=2)):
        for limit in (1, 100):
            same_rows(outbox_rows.deliverable_messages, now, limit=limit)
    for candidacy_id in (None, str(uids[0]), str(uids[1])):
        for status in (None, "queued", "sent", "failed"):
            same_rows(outbox_rows.message_rows, candidacy_id=candidacy_id, status=status)
    same_rows(outbox_rows.message_rows, limit=2)
    for after in ("", str(uids[3])):
        for limit in (2, 1000):
            same("select_all_rows", after=after, limit=limit)
    for uid in (*uids, uuid4()):
        same("find_candidacy_row", str(uid))
        assert memory.select_for_load(memory_snapshots, memory_events, uid) == \
            sql.select_for_load(snapshots, events, uid)
        assert memory.select_for_load(None, memory_events, uid) == \
            sql.select_for_load(None, events, uid)
    for key in ("k1", "k2", "nope"):
        same("find_idempotency", "agency", key)
    same("find_idempotency", "other", "k1")
    assert sorted(memory.select_latest_records(memory_snapshots, [*uids, uids[0]])) == \
        sorted(sql.select_latest_records(snapshots, [*uids, uids[0]]))
    # Asked in another order than the ids': answered in id order, as SQL orders them.
    # One id fewer than uids: the last is asked for by no one.
    after = dict(reversed(list(zip(uids, [0, 1, 2, 0, 3, 9, 0], strict=False))))
    assert memory.select_records_after(memory_events, after) == \
        sql.select_records_after(events, after)
    top = sql.max_notification_id()
    assert memory.max_notification_id() == top
    for workspace in ("agency", "other"):
        for after_id in (0, 3, top):
            for limit, scan in ((1, 100), (2, 3), (100, 5), (100, 1000)):
                same("select_workspace_events", workspace, after_id, limit, scan)
    same("select_notifications", start=2, limit=5)
    for uid in (*uids, uuid4()):
        for version in range(10):
            same("find_notification_id", uid, version)
    same("latest_recorded_at")
    same_rows(outbox_rows.message_failures)
    for limit in (1, 2, 10_000):
        same_rows(outbox_rows.passed_over, limit=limit)
    for name in ("Outbox", "Replica", "Other", "Nobody"):
        same("max_tracking_id", name)
    assert sql.max_tracking_id("Replica") == sql.max_notification_id()  # moved past the import
    for tables in ((snapshots, memory_snapshots), (events, memory_events)):
        for limit in (1, 3, 1000):
            assert _pages(memory, tables[1], limit) == _pages(sql, tables[0], limit)


def _pages(recorder: Any, table: str, limit: int) -> list[list[tuple[UUID, int, str, bytes]]]:
    """``select_records_page`` walked as the doctor walks it, with the store's own cursor."""
    after, pages = None, []
    for _ in range(100):  # more pages than records
        rows = recorder.select_records_page(table, after, limit)
        pages.append([row[:4] for row in rows])
        if len(rows) < limit:
            return pages
        after = (rows[-1][4], rows[-1][1])
    raise AssertionError(f"{table}: the page after {after} does not move on")


def _write_the_same(app: Candidacies, uids: list[UUID]) -> None:
    recorder: Any = app.recorder
    imported, uids = uids[-1], uids[:-1]
    ws = ["agency", "agency", "other", "agency", "agency", "other", "agency"]
    stages = ["interviewed", "awaiting", "awaiting", "interviewed", "awaiting", "stalled",
              "interviewed"]
    texts = [("Ada Lin", "ACME", "Data"), ("Bo", "a_b Ltd", "Eng"), ("Cy", "axb", "100%"),
             ("Dee", "Acme Corp", None), ("Eve", "Globex", "Role o"), ("Fay", "x", "y"),
             ("Gus", "ACME", "Ops")]
    due = [T0, T0, T0 + timedelta(minutes=30), None, T0 + timedelta(microseconds=500),
           T0 + timedelta(days=1), T0 - timedelta(days=1)]
    for n, uid in enumerate(uids):
        events = [_event(uid, v) for v in range(1, n + 2)]
        candidate, company, role = texts[n]
        row = CandidacyRow(str(uid), ws[n], stages[n], n + 1, 1, candidate, company, role,
                           T0 + timedelta(seconds=n), due[n],
                           {"at": (T0 + timedelta(hours=n)).isoformat(), "n": n})
        messages = [_message(uid, f"m{n}", ["queued", "failed", "sent"][n % 3],
                             T0 + timedelta(minutes=10 * (n % 4)), workspace=ws[n])]
        recorder.insert_events(events[:1], rows=[row], message_rows=messages,
                               idempotency=_key(f"k{n}", ws[n]) if n < 3 else None)
        if events[1:]:
            recorder.insert_events(events[1:], rows=[row])
        if n % 2:
            app.snapshots.recorder.insert_events(  # type: ignore[union-attr]
                [_event(uid, v) for v in range(1, n + 2, 2)])
    # A message sent after its retry; an older row that must not win over a newer one.
    recorder.insert_events([], message_rows=[
        _message(uids[1], "m1", "sent", None, updated=T0 + timedelta(hours=2))],
        rows=[CandidacyRow(str(uids[4]), "agency", "interviewed", 1, 1, "Old", "Old", "Old",
                           T0, T0, {})])
    # Failures: the latest two at the same moment (the lower id is the latest one), given in
    # another zone than UTC; an older dead letter.
    later = (T0 + timedelta(hours=3)).astimezone(timezone(timedelta(hours=-5)))
    recorder.insert_events([], message_rows=[
        _message(uids[5], "f", "failed", T0, updated=later),
        _message(uids[2], "f", "dead_letter", None, updated=later),
        _message(uids[3], "d", "dead_letter", None, updated=T0 + timedelta(hours=1))])
    # What the outbox passed over, with its position: one notification recorded twice (the
    # first record stays), another reader's, a moment in another zone.
    recorder.insert_events([], passed_over=[
        _passed("Outbox", 7, uids[2]), _passed("Outbox", 3, uids[1]),
        _passed("Other", 3, uids[1], at=later)], position=Tracking("Outbox", 7))
    recorder.insert_events([], passed_over=[
        replace(_passed("Outbox", 3, uids[1]), error="again"), _passed("Outbox", 9, uids[3])],
        position=Tracking("Outbox", 9))
    # An import: two followers moved past its events in their write; none without events.
    recorder.insert_events([_event(imported, 1), _event(imported, 2)],
                           rows=[_candidacy_row(imported, 2)],
                           followed_past=("Outbox", "Replica"))
    recorder.insert_events([], followed_past=("Nobody",))


def _event(uid: UUID, version: int) -> StoredEvent:
    return StoredEvent(originator_id=uid, originator_version=version,
                       topic="tests.test_memory_store:Event", state=b'{"v":%d}' % version)


def _candidacy_row(uid: UUID, version: int) -> CandidacyRow:
    return CandidacyRow(str(uid), "agency", "interviewed", version, 1, "Ada", "ACME", "Data",
                        T0, T0, {})


def _message(uid: UUID, message_id: str, status: str, next_at: datetime | None, *,
             workspace: str = "agency", updated: datetime = T0) -> MessageRow:
    return MessageRow(f"{uid}-{message_id}", str(uid), workspace, "thank_you", "email",
                      status, 1, next_at, updated, {"to": "hiring@acme.example"})


def _passed(reader: str, notification_id: int, uid: UUID, *,
            at: datetime = T0) -> PassedOver:
    return PassedOver(reader, notification_id, str(uid), 1, "CorruptHistory: bad state", at)


def _key(key: str, workspace: str = "agency") -> IdempotencyRecord:
    return IdempotencyRecord(workspace, key, "fingerprint", {"version": 1,
                                                             "at": T0.isoformat()}, T0)


# -- the library's own contracts on the in-memory recorder -----------------------------------


class TestTheLibrarysAggregateRecorderContract(persistence_tests.AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        return CloserMemoryRecorder().table("snapshots")  # the store's other table


class TestTheLibrarysApplicationRecorderContract(
        persistence_tests.ApplicationRecorderTestCase[CloserMemoryRecorder]):
    def create_recorder(self) -> CloserMemoryRecorder:
        return CloserMemoryRecorder()


class TestTheLibrarysTrackingRecorderContract(persistence_tests.TrackingRecorderTestCase):
    def create_recorder(self) -> CloserMemoryRecorder:
        return CloserMemoryRecorder()


class TestTheLibrarysProcessRecorderContract(persistence_tests.ProcessRecorderTestCase):
    def create_recorder(self) -> CloserMemoryRecorder:
        return CloserMemoryRecorder()
