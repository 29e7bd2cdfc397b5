"""Fixtures shared by every test tier.

Every store-backed test runs twice: on a SQLite file and on PostgreSQL
(127.0.0.1:5432, a database of its own per test session).  When PostgreSQL is
unreachable the PostgreSQL runs are skipped locally but FAIL in CI (CI=true).
Slow stress tests run only in CI or with CLOSER_RUN_SLOW=1.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime, timezone

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if RUN_SLOW:
        return
    skip = pytest.mark.skip(reason="slow stress test: runs in CI or with CLOSER_RUN_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


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


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """A fresh, empty store: a SQLite file, or the session's PostgreSQL database emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/closer.db"
    url = request.getfixturevalue("postgres_url")
    truncate_postgres(url)
    return url


@pytest.fixture
def clock() -> FixedClock:
    """Wednesday 25 November 2026, 10:00 UTC; moves only when a test moves it."""
    return FixedClock(datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc))


@pytest.fixture
def candidacies(database_url: str, clock: FixedClock) -> Iterator[Candidacies]:
    """The application on a fresh store with the fixed clock."""
    app = Candidacies(eventsourcing_env(database_url), clock=clock)
    yield app
    app.close()


@pytest.fixture
def coach() -> Actor:
    return Actor(user="coach@agency.example", workspace="agency", on_behalf_of="maya")
