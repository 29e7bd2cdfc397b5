"""Group commit (issue 19): concurrent saves written by the store's one writer in batches.

Each test holds the writer in a first batch until the saves under test have queued
behind it, so that they are written together in the next batch: then a conflict in that
batch fails only its own command, a reused idempotency key answers the first response,
two saves of one candidacy in one batch keep its audit chain linked, and the log's order
is the commit order.  On SQLite and PostgreSQL.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from builders import interview
from eventsourcing import persistence

from engine import store
from engine.application import Candidacies
from engine.audit import verify_chain
from engine.clock import FixedClock
from engine.errors import VersionConflict
from engine.store import eventsourcing_env, group_writer
from engine.values import Actor

ACTOR = Actor("maya@agency.example", "agency")
DEADLINE = datetime(2026, 12, 20, 17, 0, tzinfo=UTC)


class HeldWriter:
    """The store's writer, held in its first batch (once armed) until ``behind`` more
    saves have queued; every batch's saves are recorded as written."""

    def __init__(self, app: Candidacies, monkeypatch: pytest.MonkeyPatch) -> None:
        self.writer = group_writer(app.recorder._store_key())
        self.batches: list[list[Any]] = []
        self.behind: int | None = None
        cls = type(app.recorder)
        real = cls._write_batch

        def write_batch(recorder: Any, batch: list[Any]) -> None:
            if self.behind is not None:
                behind, self.behind = self.behind, None
                deadline = time.monotonic() + 30
                while self.queued() < 1 + behind and time.monotonic() < deadline:
                    time.sleep(0.001)
                assert self.queued() >= 1 + behind, "the saves never queued"
            real(recorder, batch)
            self.batches.append(list(batch))

        monkeypatch.setattr(cls, "_write_batch", write_batch)

    def hold_with(self, app: Candidacies) -> None:
        """The holder: a command of ``app`` on a candidacy of its own."""
        self.holder = (app, app.record_interview(ACTOR, interview()).candidacy_id)

    def start_holder(self, behind: int) -> threading.Thread:
        """Start the holder's command and wait until it is the batch being written."""
        app, cid = self.holder
        self.batches.clear()
        self.behind = behind
        thread = threading.Thread(target=app.send_reminder,
                                  args=(ACTOR, cid, "reminder_next_step", "hold"))
        thread.start()
        self.wait_queued(1)
        return thread

    def queued(self) -> int:
        return len(self.writer._queue)

    def wait_queued(self, count: int) -> None:
        deadline = time.monotonic() + 30
        while self.queued() < count and time.monotonic() < deadline:
            time.sleep(0.001)
        assert self.queued() >= count

    def sizes(self) -> list[int]:
        return [len(batch) for batch in self.batches]


@pytest.fixture
def held(candidacies: Candidacies, monkeypatch: pytest.MonkeyPatch) -> HeldWriter:
    return HeldWriter(candidacies, monkeypatch)


@pytest.fixture
def second_app(database_url: str, clock: FixedClock) -> Iterator[Candidacies]:
    """Another application object on the same store (another worker of the process)."""
    app = Candidacies(eventsourcing_env(database_url), clock=clock)
    yield app
    app.close()


def run_all(calls: list[Callable[[], Any]], held: HeldWriter) -> list[Any]:
    """The holder's save first (its batch held), then ``calls`` each in its own thread,
    queued behind it: their results (or errors), in order."""
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            results[index] = call()
        except Exception as error:  # noqa: BLE001 - the test reads it
            results[index] = error

    holder = held.start_holder(len(calls))
    threads = [threading.Thread(target=run, args=(n, call)) for n, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in [holder, *threads]:
        thread.join(60)
    return results


def test_a_conflict_in_a_batch_fails_that_command_alone(
        candidacies: Candidacies, second_app: Candidacies, held: HeldWriter) -> None:
    own = [candidacies.record_interview(ACTOR, interview()).candidacy_id for _ in range(3)]
    shared = candidacies.record_interview(ACTOR, interview()).candidacy_id
    second_app.get(shared, "agency")
    held.hold_with(candidacies)
    calls: list[Callable[[], Any]] = [
        *(lambda cid=cid: candidacies.note_competing_offer(ACTOR, cid, "Acme", DEADLINE)
          for cid in own),
        # Both decided on version 1 of the shared candidacy: one must lose.
        lambda: candidacies.note_competing_offer(ACTOR, shared, "Initech", DEADLINE,
                                                 expected_version=1),
        lambda: second_app.note_competing_offer(ACTOR, shared, "Globex", DEADLINE,
                                                expected_version=1),
    ]
    results = run_all(calls, held)

    assert held.sizes()[:2] == [1, 5]
    assert [s.error is None for s in held.batches[1]].count(False) == 1
    assert [r.version for r in results[:3]] == [2, 2, 2]
    shared_results = results[3:]
    assert sorted(type(r).__name__ for r in shared_results) == ["Outcome", "VersionConflict"]
    assert any(isinstance(r, VersionConflict) for r in shared_results)
    winner = next(r for r in shared_results if not isinstance(r, Exception))
    history = candidacies.history(shared, "agency")
    assert [e.version for e in history] == [1, 2] and winner.version == 2
    for cid in [*own, shared]:
        assert candidacies.row(cid).version == len(candidacies.history(cid, "agency"))
        assert verify_chain(candidacies.recorder, UUID(cid)) == []


def test_the_same_idempotency_key_twice_in_one_batch_records_once(
        candidacies: Candidacies, held: HeldWriter) -> None:
    cid = candidacies.record_interview(ACTOR, interview()).candidacy_id
    held.hold_with(candidacies)

    def offer() -> Any:
        return candidacies.note_competing_offer(ACTOR, cid, "Acme", DEADLINE,
                                                idempotency_key="offer-1")

    first, second = run_all([offer, offer], held)

    assert held.sizes()[:2] == [1, 2]
    assert (first.version, second.version) == (2, 2)
    assert sorted([first.replayed, second.replayed]) == [False, True]
    assert [e.type for e in candidacies.history(cid, "agency")] == [
        "InterviewRecorded", "CompetingOfferNoted"]


def test_two_saves_of_one_candidacy_in_one_batch_keep_its_chain_linked(
        candidacies: Candidacies, held: HeldWriter, clock: FixedClock) -> None:
    cid = candidacies.record_interview(ACTOR, interview()).candidacy_id
    candidacy = candidacies.get(cid, "agency")
    candidacy.note_competing_offer(ACTOR, clock.now(), company="Acme", deadline=DEADLINE)
    candidacy.note_competing_offer(ACTOR, clock.now(), company="Globex", deadline=DEADLINE)
    second, third = (candidacies.mapper.to_stored_event(e)
                     for e in candidacy.collect_events())
    recorder = candidacies.recorder
    held.hold_with(candidacies)
    threads = [held.start_holder(2)]
    for number, stored in enumerate([second, third], start=2):
        # Queued in version order: the third event's link is the second's hash, which
        # only the batch knows (it is not committed when the third is chained).
        threads.append(threading.Thread(target=recorder.insert_events, args=([stored],)))
        threads[-1].start()
        held.wait_queued(number)
    for thread in threads:
        thread.join(60)

    assert held.sizes()[:2] == [1, 2]
    assert all(s.error is None for s in held.batches[1])
    assert [e.version for e in candidacies.history(cid, "agency")] == [1, 2, 3]
    candidacies.recorder.forget_tips()
    assert verify_chain(recorder, UUID(cid)) == []


def test_the_log_order_is_the_commit_order(candidacies: Candidacies, held: HeldWriter) -> None:
    ids = [candidacies.record_interview(ACTOR, interview()).candidacy_id for _ in range(8)]
    held.batches.clear()

    def commands(cid: str) -> None:
        for n in range(6):
            candidacies.send_reminder(ACTOR, cid, "reminder_next_step", f"k{n}")

    threads = [threading.Thread(target=commands, args=(cid,)) for cid in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    written = [i for batch in held.batches for save in batch for i in save.ids or ()]
    assert len(written) == 8 * 6
    assert written == sorted(written) and len(set(written)) == len(written)
    log = candidacies.recorder.select_notifications(written[0], len(written))
    assert [n.id for n in log] == written
    for cid in ids:
        assert [e.version for e in candidacies.history(cid, "agency")] == list(range(1, 8))
    assert sum(held.sizes()) == 8 * 6


def test_a_save_answers_only_after_its_batch_committed(
        candidacies: Candidacies, database_url: str, held: HeldWriter) -> None:
    # What the writer acknowledged, another connection reads: it is committed.
    cid = candidacies.record_interview(ACTOR, interview()).candidacy_id
    held.hold_with(candidacies)
    seen: list[int] = []
    observer = Candidacies(eventsourcing_env(database_url))
    try:
        def offer() -> Any:
            outcome = candidacies.note_competing_offer(ACTOR, cid, "Acme", DEADLINE)
            seen.append(observer.get(cid, "agency").version)
            return outcome
        (outcome,) = run_all([offer], held)
    finally:
        observer.close()
    assert outcome.version == 2 and seen == [2]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_errors_are_translated_as_the_library_translates_them(
        candidacies: Candidacies) -> None:
    # eventsourcing 9.5.6's `SQLiteTransaction.__exit__` table, which the writer mirrors
    # for a save refused inside its batch (`engine.store.as_library_error`).
    datastore = candidacies.recorder.datastore
    for error_type, _ in store._SQLITE_ERRORS:
        with (pytest.raises(persistence.PersistenceError) as raised,
              datastore.transaction(commit=True)):
            raise error_type("refused")
        assert type(store.as_library_error(error_type("refused"))) is type(raised.value)
    assert store.as_library_error(ValueError("x")).__class__ is ValueError
    assert isinstance(store.as_library_error(sqlite3.IntegrityError("x")),
                      persistence.IntegrityError)


def test_a_batch_takes_no_more_than_its_bound(
        candidacies: Candidacies, held: HeldWriter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "MAX_BATCH", 3)
    ids = [candidacies.record_interview(ACTOR, interview()).candidacy_id for _ in range(5)]
    held.hold_with(candidacies)
    results = run_all([lambda cid=cid: candidacies.note_competing_offer(
        ACTOR, cid, "Acme", DEADLINE) for cid in ids], held)
    assert [r.version for r in results] == [2] * 5
    assert held.sizes()[:3] == [1, 3, 2]


def test_a_batch_whose_transaction_fails_fails_every_save_of_it_and_writes_none(
        candidacies: Candidacies, held: HeldWriter, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [candidacies.record_interview(ACTOR, interview()).candidacy_id for _ in range(3)]
    held.hold_with(candidacies)
    real = type(candidacies.recorder)._write_batch

    def failing_second_batch(recorder: Any, batch: list[Any]) -> None:
        if len(batch) == 3:  # the saves under test, after the holder's batch
            raise persistence.OperationalError("disk I/O error")
        real(recorder, batch)

    holder = held.start_holder(3)
    monkeypatch.setattr(type(candidacies.recorder), "_write_batch", failing_second_batch)
    results: list[Any] = []

    def offer(cid: str) -> None:
        try:
            results.append(candidacies.note_competing_offer(ACTOR, cid, "Acme", DEADLINE))
        except Exception as error:  # noqa: BLE001 - the test reads it
            results.append(error)

    threads = [threading.Thread(target=offer, args=(cid,)) for cid in ids]
    for thread in threads:
        thread.start()
    for thread in [holder, *threads]:
        thread.join(60)
    assert len(results) == 3
    assert all(isinstance(r, persistence.OperationalError) for r in results), results
    for cid in ids:
        assert [e.version for e in candidacies.history(cid, "agency")] == [1]
        assert candidacies.row(cid).version == 1


def test_an_added_table_is_written_and_rolled_back_with_its_own_save_in_a_batch(
        candidacies: Candidacies, held: HeldWriter) -> None:
    # The personal-data keys (an ExtraTable, written with a candidacy's first event): two
    # interviews under one idempotency key and one other, in one batch.
    held.hold_with(candidacies)

    def intake(key: str, company: str) -> Any:
        return candidacies.record_interview(ACTOR, interview(company=company),
                                            idempotency_key=key)

    first, second, other = run_all([lambda: intake("intake-1", "Acme"),
                                    lambda: intake("intake-1", "Acme"),
                                    lambda: intake("intake-2", "Globex")], held)

    assert held.sizes()[:2] == [1, 3]
    assert first.candidacy_id == second.candidacy_id != other.candidacy_id
    assert sorted([first.replayed, second.replayed]) == [False, True]
    keyed = {row[0] for row in candidacies.recorder.read(
        "SELECT candidacy_id FROM closer_subject_keys")}
    assert {first.candidacy_id, other.candidacy_id} <= keyed
    assert len(keyed & {first.candidacy_id, other.candidacy_id, held.holder[1]}) == 3
    for cid in (first.candidacy_id, other.candidacy_id):
        assert candidacies.get(cid, "agency").candidate["name"]  # its key decrypts it
        assert verify_chain(candidacies.recorder, UUID(cid)) == []
    assert len(candidacies.rows("agency")) == 3  # the holder's, and the two recorded


def _until_queue_held(pool: Any) -> None:
    """Until another thread holds eventsourcing 9.5.6's pool's queue for connections
    (`ConnectionPool._get_semaphore`: a thread waiting for the writer connection holds it
    while it waits)."""
    deadline = time.monotonic() + 10
    while pool._get_semaphore.acquire(blocking=False):
        pool._get_semaphore.release()
        assert time.monotonic() < deadline, "the writer never queued"
        time.sleep(0.001)


def test_a_sqlite_batch_reads_its_chain_in_its_own_transaction_while_a_writer_waits(
        tmp_path: Any, clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> None:
    # The batch must read the predecessor's hash (another application object, or another
    # process, wrote it: forget_tips) while another thread of the process waits for the
    # pool's one writer connection, which the batch holds (a snapshot's write did, with
    # two worker processes).  Read through a second connection, the batch waited for that
    # thread and that thread for the batch: 5 s, then ConnectionUnavailableError, every
    # save of the batch refused.
    app = Candidacies(eventsourcing_env(f"sqlite:///{tmp_path}/closer.db"), clock=clock)
    try:
        cid = app.record_interview(ACTOR, interview()).candidacy_id
        recorder = app.recorder
        recorder.forget_tips()
        real = type(recorder).select_event_hashes
        writer_got: list[bool] = []

        def writer() -> None:
            with recorder.datastore.get_connection(commit=True):
                writer_got.append(True)

        waiting = threading.Thread(target=writer)

        def select_event_hashes(self: Any, wanted: dict[UUID, int]) -> Any:
            waiting.start()
            _until_queue_held(recorder.datastore.pool)
            return real(self, wanted)

        monkeypatch.setattr(type(recorder), "select_event_hashes", select_event_hashes)
        outcome = app.note_competing_offer(ACTOR, cid, "Rival", DEADLINE)
        waiting.join(30)
        assert waiting.is_alive() is False and writer_got == [True]
        assert outcome.version == 2
        assert verify_chain(recorder, UUID(cid)) == []
    finally:
        app.close()


def test_a_sqlite_batch_takes_the_write_lock_before_it_reads_so_another_writer_waits(
        tmp_path: Any, clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two application objects on one file, each with its own pool: as two processes.
    # The batch reads its chain in its transaction after its events' insert took SQLite's
    # write lock, so the other's write waits for its commit; had it read first, the other
    # would commit in between and the batch's upgrade to writing fail (SQLITE_BUSY).
    url = f"sqlite:///{tmp_path}/closer.db"
    first, other = (Candidacies(eventsourcing_env(url), clock=clock) for _ in range(2))
    try:
        other.recorder.group_commit = False  # not this process's writer: its own commits
        cid = first.record_interview(ACTOR, interview()).candidacy_id
        recorder = first.recorder
        recorder.forget_tips()
        real = type(recorder).select_event_hashes
        wrote = threading.Event()
        results: list[Any] = []

        def write_other() -> None:
            results.append(other.record_interview(ACTOR, interview()))
            wrote.set()

        writing = threading.Thread(target=write_other)

        def select_event_hashes(self: Any, wanted: dict[UUID, int]) -> Any:
            found = real(self, wanted)  # the batch's first read, if it has not written yet
            if self is recorder and not writing.is_alive() and not wrote.is_set():
                writing.start()
                wrote.wait(1)  # it commits here only if this batch holds no write lock
            return found

        monkeypatch.setattr(type(recorder), "select_event_hashes", select_event_hashes)
        outcome = first.note_competing_offer(ACTOR, cid, "Rival", DEADLINE)
        writing.join(30)
        assert outcome.version == 2
        assert len(results) == 1 and results[0].version == 1
        for uid in (cid, results[0].candidacy_id):
            assert verify_chain(recorder, UUID(str(uid))) == []
    finally:
        first.close()
        other.close()
