"""Fixtures shared by every test tier.

Every store-backed test runs on a SQLite file and on PostgreSQL (127.0.0.1:5432, a
database of its own per test session).  When PostgreSQL is unreachable the PostgreSQL
runs are skipped locally but FAIL in CI (CI=true).  Slow stress tests run only in CI
or with CLOSER_RUN_SLOW=1.

The unit tier (``pytest -m unit``) needs no database and no network: the tests of
`UNIT_MODULES` that take no store, and their store tests run a third time on the
in-memory store (`engine.memory_store`).  A unit test that opens SQLite or
PostgreSQL fails (see `_unit_tests_open_no_database`).
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
import structlog

import api.logs
from engine.application import Candidacies
from engine.clock import FixedClock
from engine.store import eventsourcing_env
from engine.values import Actor

PG_ADMIN_URL = os.environ.get("CLOSER_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
RUN_SLOW = IN_CI or os.environ.get("CLOSER_RUN_SLOW") == "1"

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
api.logs.CACHE_LOGGERS = False  # see there: no test may pin another's log configuration


@pytest.fixture(autouse=True)
def _structlog_restored() -> Iterator[None]:
    """Commands run in-process (the CLI) configure logging: undo it after each test."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


UNIT_MODULES = frozenset({
    "test_lifecycle", "test_decision_rules", "test_decision_properties", "test_policy",
    "test_work_calendar", "test_candidacy_store", "test_properties", "test_memory_store",
    "test_api_commands", "test_api_candidacies", "test_api_events", "test_outbox",
    "test_kept_copies_http", "test_api_agenda", "test_api_messages", "test_policy_migration",
    "test_audit_proofs",
})
"""The modules of the unit tier: the domain (lifecycle, cadence rules and properties,
policy, calendar) and the service layer, whose store tests also run in memory."""

MEMORY = pytest.param("memory", marks=pytest.mark.unit, id="memory")
"""The in-memory store as a store parameter: a test taking it is in the unit tier."""
STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _in_unit_module(node: pytest.Item | pytest.Metafunc) -> bool:
    module = getattr(node, "module", None)
    return module is not None and module.__name__.rsplit(".", 1)[-1] in UNIT_MODULES


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`database_url` for every store-backed test, in memory too in a unit module
    (unless the test chose its stores itself)."""
    if "database_url" not in metafunc.fixturenames:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        if "database_url" in (names.replace(" ", "").split(",")
                              if isinstance(names, str) else names):
            return
    stores = [MEMORY, *STORES] if _in_unit_module(metafunc) else STORES
    metafunc.parametrize("database_url", stores, indirect=True)


def _store_param(item: pytest.Item) -> bool:
    """Whether the test runs on SQLite or PostgreSQL through a store parameter."""
    params = getattr(item, "callspec", None)
    return params is not None and any(
        value in ("sqlite", "postgres") for value in params.params.values())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unit = pytest.mark.unit
    for item in items:
        if (_in_unit_module(item) and "unit" not in item.keywords and not _store_param(item)
                and "database_url" not in item.fixturenames
                and "postgres_url" not in item.fixturenames
                and "file_store" not in item.keywords):
            item.add_marker(unit)
    if RUN_SLOW:
        return
    skip = pytest.mark.skip(reason="slow stress test: runs in CI or with CLOSER_RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def _no_database(*_: object, **__: object) -> None:
    raise AssertionError("a unit test opened a database: give it the in-memory store "
                         "(the memory parameter), or mark it file_store")


@pytest.fixture(autouse=True)
def _unit_tests_open_no_database(request: pytest.FixtureRequest,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """In the unit tier, SQLite and PostgreSQL cannot be opened: it runs without them."""
    if request.node.get_closest_marker("unit") is None:
        return
    assert "postgres_url" not in request.fixturenames, "a unit test asked for postgres_url"
    if "database_url" in request.fixturenames:
        store = request.node.callspec.params.get("database_url")
        assert store == "memory", f"a unit test asked for a {store} database_url"
    monkeypatch.setattr(sqlite3, "connect", _no_database)
    for target in (psycopg, psycopg.Connection, psycopg.AsyncConnection):
        monkeypatch.setattr(target, "connect", _no_database)


def _pg_reachable() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as error:
        return str(error).strip()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database of this session's own, dropped at the end."""
    problem = _pg_reachable()
    if problem:
        if IN_CI:
            pytest.fail(f"PostgreSQL must be reachable in CI: {problem}")
        pytest.skip(f"PostgreSQL not reachable: {problem}")
    name = f"closer_test_{os.getpid()}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def truncate_postgres(url: str) -> None:
    """Empty every table of the test database (cheaper than a new database per test)."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname='public'").fetchall()]
        # eventsourcing keeps a migration marker row in its tracking table: keep it,
        # or the next application start tries to migrate the table again.
        tracking = [t for t in tables if t.endswith("_tracking")]
        others = [t for t in tables if t not in tracking]
        if others:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in others) + " RESTART IDENTITY")
        for table in tracking:
            conn.execute(f"DELETE FROM \"{table}\" WHERE application_name <> '__migration__'")


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """A fresh, empty store: a SQLite file, the session's PostgreSQL database emptied, or
    (unit tier) an in-memory store of this test's own (parametrised by
    `pytest_generate_tests`)."""
    if request.param == "memory":
        return memory_url()
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/closer.db"
    url = request.getfixturevalue("postgres_url")
    truncate_postgres(url)
    return url


def memory_url() -> str:
    """A new in-memory store's URL: every application object opening it shares it."""
    return f"memory://{uuid.uuid4()}"


@pytest.fixture
def clock() -> FixedClock:
    """Wednesday 25 November 2026, 10:00 UTC; moves only when a test moves it."""
    return FixedClock(datetime(2026, 11, 25, 10, 0, tzinfo=UTC))


@pytest.fixture
def candidacies(database_url: str, clock: FixedClock) -> Iterator[Candidacies]:
    """The application on a fresh store with the fixed clock."""
    app = Candidacies(eventsourcing_env(database_url), clock=clock)
    yield app
    app.close()


@pytest.fixture
def coach() -> Actor:
    return Actor(user="coach@agency.example", workspace="agency", on_behalf_of="maya")
