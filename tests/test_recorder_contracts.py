"""eventsourcing's own contracts, held against Closer's recorders on both stores.

The library ships its recorder and application test cases (`eventsourcing.tests`):
here they run against `CloserSQLiteRecorder` and `CloserPostgresRecorder` as Closer's
configuration (`eventsourcing_env`) builds them, so that taking a new eventsourcing
release is a matter of running this file.  The last sections pin the few steps that go
around the library (the one-script write, the error table, the retry) to
what the library itself does, so that they fail when it changes underneath them.

These are unittest classes: pytest runs them, with autouse fixtures for the store.  The
PostgreSQL ones use a database of their own (dropping tables, as the library's tests do,
must not touch the session's other tests), and follow conftest's rule: skipped locally
when PostgreSQL is unreachable, failed in CI.
"""

from __future__ import annotations

import gc
import inspect
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import psycopg
import psycopg.errors
import pytest
from eventsourcing import persistence
from eventsourcing.persistence import InfrastructureFactory, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.tests import application as application_contract
from eventsourcing.tests import persistence as contract
from eventsourcing.utils import Environment
from psycopg import ClientCursor
from psycopg_pool import PoolTimeout

from conftest import PG_ADMIN_URL
from engine.audit_store import AuditedPostgresRecorder, AuditedSQLiteRecorder
from engine.errors import InvalidInput
from engine.store import (
    CandidacyRow,
    CloserPostgresRecorder,
    IdempotencyRecord,
    as_persistence_errors,
    eventsourcing_env,
)
from engine.tables import ExtraTable


@pytest.fixture(scope="session")
def contracts_database(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL database for this file alone, beside the session's (whose fixture
    gives the reachability rule), dropped at the end."""
    name = postgres_url.rsplit("/", 1)[1] + "_contracts"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{postgres_url.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drop_tables(url: str) -> None:
    """Every table, and the library's stored-event type and insert function: what
    `eventsourcing.tests.postgres_utils.drop_tables` drops (not importable from the
    wheel: it imports the library's examples), on our database."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()]
        for table in tables:
            conn.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')
        conn.execute("DROP TYPE IF EXISTS stored_event_uuid CASCADE")
        conn.execute("DROP FUNCTION IF EXISTS es_insert_events_uuid CASCADE")


def terminate_connections(url: str) -> None:
    """Close every other connection to ``url``'s database, on the server's side."""
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")


class OnAStore:
    """The recorders Closer's configuration (``self.env``) makes, closed after the test."""

    env: dict[str, str]
    recorder_class: type

    def _factories(self) -> Iterator[None]:
        self.factories: list[InfrastructureFactory[Any]] = []
        before = set(threading.enumerate())
        yield
        # The library's concurrency cases stop their reader threads without joining them:
        # closing a SQLite connection another thread is still reading from crashes the
        # process (a segfault in sqlite3), so wait for the test's own threads first.
        for thread in set(threading.enumerate()) - before:
            if not thread.daemon:  # the readers; a pool's own workers are daemons
                thread.join(timeout=30)
        for factory in self.factories:
            factory.close()

    def create_recorder(self) -> Any:
        """The application recorder Closer's configuration makes (a process recorder)."""
        factory = InfrastructureFactory.construct(Environment(env=self.env))
        self.factories.append(factory)
        recorder = factory.application_recorder()
        assert type(recorder) is self.recorder_class
        return recorder


class OnSQLite(OnAStore):
    """A fresh SQLite file per test, configured as Closer configures it."""

    expected_factory_topic = "eventsourcing.sqlite:SQLiteFactory"
    # The store's default: Closer's recorder with each write chained (engine.audit_store).
    recorder_class = AuditedSQLiteRecorder

    @pytest.fixture(autouse=True)
    def _store(self, tmp_path: Any) -> Iterator[None]:
        self.env = eventsourcing_env(f"sqlite:///{tmp_path}/closer.db")
        yield from self._factories()


@pytest.mark.postgres
class OnPostgres(OnAStore):
    """A PostgreSQL database emptied before each test, configured as Closer configures it."""

    expected_factory_topic = "eventsourcing.postgres:PostgresFactory"
    recorder_class = AuditedPostgresRecorder

    @pytest.fixture(autouse=True)
    def _store(self, contracts_database: str) -> Iterator[None]:
        drop_tables(contracts_database)
        self.url = contracts_database
        self.env = eventsourcing_env(contracts_database)
        yield from self._factories()


# -- the library's recorder test cases -------------------------------------------------------


class TestSQLiteApplicationRecorder(OnSQLite, contract.ApplicationRecorderTestCase):
    pass


class TestSQLiteTrackingRecorder(OnSQLite, contract.TrackingRecorderTestCase):
    pass


class TestSQLiteProcessRecorder(OnSQLite, contract.ProcessRecorderTestCase):
    pass


class TestSQLiteNonInterleavingNotificationIDs(
        OnSQLite, contract.NonInterleavingNotificationIDsBaseCase):
    pass


class TestPostgresApplicationRecorder(OnPostgres, contract.ApplicationRecorderTestCase):
    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()  # PostgreSQL's recorder can subscribe


class TestPostgresTrackingRecorder(OnPostgres, contract.TrackingRecorderTestCase):
    pass


class TestPostgresProcessRecorder(OnPostgres, contract.ProcessRecorderTestCase):
    pass


class TestPostgresNonInterleavingNotificationIDs(
        OnPostgres, contract.NonInterleavingNotificationIDsBaseCase):
    insert_num = 100  # as the library's own PostgreSQL run


# -- the library's application test cases, on Closer's recorders ----------------------------


class WithClosersRecorder:
    """The library's applications, configured from the environment as its own
    application tests are, on Closer's recorder."""

    env: dict[str, str]

    @pytest.fixture(autouse=True)
    def _environment(self, _store: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        for key, value in self.env.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("CREATE_TABLE", "y")
        # The library's tests leave their applications open: one connection each at
        # rest (and up to the overflow under load), then collected.
        monkeypatch.setenv("POSTGRES_POOL_SIZE", "1")
        yield
        gc.collect()

    recorder_class: type

    def test_the_application_runs_on_closers_recorder(self) -> None:
        app = application_contract.BankAccounts()
        try:
            assert type(app.recorder) is self.recorder_class
        finally:
            app.close()


class TestSQLiteApplication(WithClosersRecorder, OnSQLite,
                            application_contract.ApplicationTestCase):
    pass


class TestSQLiteExampleApplication(WithClosersRecorder, OnSQLite,
                                   application_contract.ExampleApplicationTestCase):
    pass


class TestPostgresApplication(WithClosersRecorder, OnPostgres,
                              application_contract.ApplicationTestCase):
    pass


class TestPostgresExampleApplication(WithClosersRecorder, OnPostgres,
                                     application_contract.ExampleApplicationTestCase):
    pass


# -- the steps around the library, pinned to what it does -----------------------------------


def _events(n: int = 2) -> list[StoredEvent]:
    uid = uuid4()
    return [StoredEvent(uid, version, f"topic{version}", b"state") for version in range(1, n + 1)]


class Notes(ExtraTable):
    """Another layer's table, as `ExtraTable` lets the outbox add its own."""

    keyword = "notes"
    statements = ("CREATE TABLE IF NOT EXISTS contract_notes (id TEXT PRIMARY KEY, "
                  "text TEXT NOT NULL)",)

    def write(self, tx: Any, rows: Any) -> None:
        tx.executemany("INSERT INTO contract_notes (id, text) VALUES (?, ?)", rows)


def _extras(recorder: Any) -> dict[str, Any]:
    """Closer's rows, as a command's save writes them with its events, and an added
    table's."""
    recorder.add_table(Notes())
    moment = datetime(2026, 12, 2, 9, tzinfo=UTC)
    row = CandidacyRow(str(uuid4()), "agency", "interviewed", 2, 1, "Ada", "Acme", "CTO",
                       moment, moment, {"n": 1})
    return {"rows": [row], "notes": [(str(uuid4()), "a note")],
            "idempotency": IdempotencyRecord("agency", str(uuid4()), "f", {"ok": 1}, moment)}


@contextmanager
def _sent_by_the_library(recorder: Any) -> Iterator[list[bytes]]:
    """The statements the library's own code sends through ``recorder``'s connection
    while inside (a pool of one), bound as a client-side cursor binds them."""
    sent: list[tuple[Any, Any]] = []

    class Recording(psycopg.Cursor):  # type: ignore[type-arg]
        def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
            sent.append((query, params))
            return super().execute(query, params, **kwargs)

        def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:
            params_seq = list(params_seq)
            sent.extend((query, params) for params in params_seq)
            super().executemany(query, params_seq, **kwargs)

    bound: list[bytes] = []
    with recorder.datastore.get_connection() as conn:
        conn.cursor_factory = Recording
    try:
        yield bound
    finally:
        with recorder.datastore.get_connection() as same:
            assert same is conn
            same.cursor_factory = psycopg.Cursor
            bound.extend(ClientCursor(same).mogrify(q, p).encode() for q, p in sent)


@contextmanager
def _sent_by_ours(monkeypatch: pytest.MonkeyPatch, cursor: type) -> Iterator[list[bytes]]:
    """The queries Closer's code sends through ``cursor`` (a client-side cursor class)."""
    sent: list[bytes] = []
    execute = cursor.execute

    def recording(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(query)
        return execute(self, query, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(cursor, "execute", recording)
        yield sent


def _emptied(url: str, *tables: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE " + ", ".join(tables))


class TestTheWritesAroundTheLibrary(OnPostgres):
    """What Closer sends in one script is what the library's own writes send
    (eventsourcing 9.5.6): the events' write (`PostgresApplicationRecorder.insert_events`,
    running our `_insert_events` hook) between BEGIN and COMMIT."""

    @pytest.fixture(autouse=True)
    def _one_connection(self, _store: None, monkeypatch: pytest.MonkeyPatch) -> None:
        self.env = {**self.env, "POSTGRES_POOL_SIZE": "1", "POSTGRES_MAX_OVERFLOW": "0"}
        self.monkeypatch = monkeypatch

    def test_a_pool_of_one_creates_the_tables_and_writes(self) -> None:
        # The schema lock is held beside the pool: on one connection it waited for itself.
        self.env = {**self.env, "POSTGRES_CONNECT_TIMEOUT": "2"}
        recorder = self.create_recorder()
        assert recorder.insert_events(_events(), **_extras(recorder)) is not None

    def test_the_events_script_is_the_librarys_write(self) -> None:
        recorder = self.create_recorder()
        events, extras = _events(), _extras(recorder)
        with _sent_by_ours(self.monkeypatch, ClientCursor) as ours:
            recorder.insert_events(events, **extras)
        _emptied(self.url, "stored_events", "closer_candidacies", "contract_notes",
                 "closer_idempotency", "closer_event_hashes")
        recorder.forget_tips()
        recorder._chained(events, extras)  # the chain hashes our write adds to a save

        with _sent_by_the_library(recorder) as theirs:
            PostgresApplicationRecorder.insert_events(recorder, events, **extras)

        assert ours == [b";".join([b"BEGIN", *theirs, b"COMMIT"])]


def _retrying(function: Any) -> dict[str, Any]:
    """What the library's `retry` decorator was given for ``function``."""
    given = inspect.getclosurevars(function).nonlocals
    return {name: given[name] for name in ("exc", "max_attempts", "wait", "stall")}


def test_our_write_is_retried_as_the_librarys_write() -> None:
    assert _retrying(CloserPostgresRecorder._insert_in_one_script) == \
        _retrying(PostgresApplicationRecorder.insert_events)


def _psycopg_errors() -> list[type[Exception]]:
    return [PoolTimeout, *(c for c in vars(psycopg.errors).values()
                           if isinstance(c, type) and issubclass(c, psycopg.Error))]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestTheErrorsAndRetriesAroundTheLibrary(OnPostgres):
    def test_the_librarys_database_functions_are_refused(self) -> None:
        # Their insert function writes the events alone: Closer's rows would be lost.
        self.env = {**self.env, "POSTGRES_ENABLE_DB_FUNCTIONS": "y"}
        with pytest.raises(InvalidInput, match="POSTGRES_ENABLE_DB_FUNCTIONS"):
            self.create_recorder()

    def test_each_psycopg_error_becomes_the_librarys_as_on_its_own_connections(self) -> None:
        recorder = self.create_recorder()
        for error in _psycopg_errors():
            with (pytest.raises(persistence.PersistenceError) as theirs,
                  recorder.datastore.get_connection()):
                raise error("lost")
            with pytest.raises(persistence.PersistenceError) as ours, as_persistence_errors():
                raise error("lost")
            assert type(ours.value) is type(theirs.value), error
            assert str(ours.value) == str(theirs.value)

    def test_a_write_after_the_connections_were_lost_is_retried(self) -> None:
        recorder = self.create_recorder()
        recorder.insert_events(_events(1))
        terminate_connections(self.url)

        ids = recorder.insert_events(_events(), **_extras(recorder))

        assert ids is not None and len(ids) == 2
