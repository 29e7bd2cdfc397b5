"""Commands decided on the kept copy and written on the event loop (`execute_async`).

On PostgreSQL a command whose candidacy this application object saved last needs no
read: it is decided on the event loop and its one write awaited on an async
connection.  Everything else (no copy, an idempotency key, a refusal or a stale copy)
answers None and goes the usual way.  On SQLite `execute_async` always answers None:
both stores must give the same answers either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from builders import PANEL, interview
from eventsourcing.persistence import OperationalError

from engine.application import SNAPSHOT_INTERVAL, Candidacies, Outcome
from engine.errors import IllegalCommand
from engine.store import eventsourcing_env
from engine.values import Actor

pytest_plugins = ["api_fixtures"]  # api, client and client_for

ACTOR = Actor(user="recruiter@agency.example", workspace="agency")
DEADLINE = datetime(2099, 1, 1, 17, tzinfo=UTC)
OFFER = {"company": "Rival", "deadline": "2099-01-01T17:00:00+00:00"}


postgres_only = pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
"""For what only PostgreSQL does (SQLite answers None throughout, tested above)."""


def on_postgres(database_url: str) -> bool:
    return database_url.startswith("postgresql")


def writing(app: Candidacies, body: Callable[[], Coroutine[Any, Any, Any]], *,
            connections: int = 4) -> Any:
    """``body()`` on a fresh event loop with ``app``'s async writes open."""
    async def main() -> Any:
        async with app.writing_async(connections):
            return await body()
    return asyncio.run(main())


def offer(app: Candidacies, candidacy_id: str, company: str = "Rival",
          **options: Any) -> Coroutine[Any, Any, Outcome | None]:
    return app.execute_async(app.note_competing_offer, ACTOR, candidacy_id, company,
                             DEADLINE, **options)


def versions(app: Candidacies, candidacy_id: str) -> list[int]:
    return [entry.version for entry in app.history(candidacy_id, ACTOR.workspace)]


@pytest.fixture
def recorded(candidacies: Candidacies) -> str:
    """A candidacy at version 1, whose copy ``candidacies`` keeps."""
    return candidacies.record_interview(ACTOR, interview(interviewers=PANEL)).candidacy_id


# -- the engine ------------------------------------------------------------------------------


def test_a_warm_command_is_written_on_the_event_loop(
        candidacies: Candidacies, recorded: str, database_url: str) -> None:
    outcome = writing(candidacies, lambda: offer(candidacies, recorded))

    if not on_postgres(database_url):
        assert outcome is None and versions(candidacies, recorded) == [1]
        return
    assert outcome == Outcome(recorded, 2, "interviewed", {})
    entry = candidacies.history(recorded, ACTOR.workspace)[-1]
    assert entry.version == 2 and entry.type == "CompetingOfferNoted"
    assert entry.data["company"] == "Rival" and entry.actor == ACTOR.user
    row = candidacies.row(recorded)
    assert row is not None and row.version == 2
    # The copy is kept at its new version: the next command starts from it too.
    assert writing(candidacies, lambda: offer(candidacies, recorded, "Other")).version == 3
    fresh = Candidacies(eventsourcing_env(database_url))
    try:
        assert fresh.get(recorded, ACTOR.workspace).offers == \
            candidacies.get(recorded, ACTOR.workspace).offers
    finally:
        fresh.close()


def test_outside_writing_async_it_answers_none(candidacies: Candidacies,
                                                 recorded: str) -> None:
    assert asyncio.run(offer(candidacies, recorded)) is None
    assert versions(candidacies, recorded) == [1]
    # The copy was not touched: the usual path still starts from it.
    assert candidacies.note_competing_offer(ACTOR, recorded, "Rival", DEADLINE).version == 2


@postgres_only
def test_opened_twice_the_first_opening_keeps_writing(candidacies: Candidacies,
                                                       recorded: str) -> None:
    async def body() -> tuple[Outcome | None, Outcome | None]:
        async with candidacies.writing_async():  # a second app over the same object
            inside = await offer(candidacies, recorded, "Inside")
        return inside, await offer(candidacies, recorded, "After")

    inside, after = writing(candidacies, body)

    assert inside is not None and after is not None and after.version == 3


@postgres_only
def test_with_a_key_it_answers_none(candidacies: Candidacies, recorded: str) -> None:
    assert writing(candidacies, lambda: offer(candidacies, recorded,
                                              idempotency_key="k1")) is None
    assert versions(candidacies, recorded) == [1]


@postgres_only
def test_without_a_kept_copy_it_reads_the_candidacy_on_the_event_loop(
        candidacies: Candidacies, recorded: str, database_url: str) -> None:
    other = Candidacies(eventsourcing_env(database_url))  # keeps no copy of it
    try:
        first = writing(other, lambda: offer(other, recorded))
        second = writing(other, lambda: offer(other, recorded, "Second"))  # now kept
    finally:
        other.close()

    assert first == Outcome(recorded, 2, "interviewed", {})
    assert second is not None and second.version == 3
    assert versions(candidacies, recorded) == [1, 2, 3]


@postgres_only
def test_without_a_kept_copy_the_unknown_and_the_others_answer_none(
        candidacies: Candidacies, recorded: str, database_url: str) -> None:
    other = Candidacies(eventsourcing_env(database_url))
    stranger = Actor(user="someone@elsewhere.example", workspace="elsewhere")
    try:
        unknown = "00000000-0000-4000-8000-000000000000"
        assert writing(other, lambda: offer(other, unknown)) is None
        assert writing(other, lambda: other.execute_async(
            other.note_competing_offer, stranger, recorded, "Rival", DEADLINE)) is None
    finally:
        other.close()
    assert versions(candidacies, recorded) == [1]


@postgres_only
def test_with_no_copies_kept_it_answers_none(recorded: str, database_url: str,
                                            candidacies: Candidacies) -> None:
    keeping_none = Candidacies(eventsourcing_env(database_url), recent=0)
    try:
        assert writing(keeping_none, lambda: offer(keeping_none, recorded)) is None
    finally:
        keeping_none.close()
    assert versions(candidacies, recorded) == [1]


@postgres_only
def test_a_stale_copy_answers_none_and_records_nothing(
        candidacies: Candidacies, recorded: str, database_url: str) -> None:
    other = Candidacies(eventsourcing_env(database_url))
    try:
        other.note_competing_offer(ACTOR, recorded, "First", DEADLINE)
    finally:
        other.close()

    assert writing(candidacies, lambda: offer(candidacies, recorded, "Second")) is None

    assert versions(candidacies, recorded) == [1, 2]
    # Decided again on the stored state, the usual way.
    assert candidacies.note_competing_offer(ACTOR, recorded, "Second", DEADLINE).version == 3


@postgres_only
def test_a_refusal_on_the_copy_answers_none(candidacies: Candidacies, recorded: str) -> None:
    refused = writing(candidacies, lambda: candidacies.execute_async(
        candidacies.resume_cadence, ACTOR, recorded))  # nothing is paused

    assert refused is None and versions(candidacies, recorded) == [1]
    with pytest.raises(IllegalCommand):
        candidacies.resume_cadence(ACTOR, recorded)


@postgres_only
def test_an_expected_version_must_be_the_copys(candidacies: Candidacies, recorded: str) -> None:
    assert writing(candidacies, lambda: offer(candidacies, recorded,
                                              expected_version=7)) is None
    # The usual path dropped nothing it needed: it reads the candidacy back.
    assert candidacies.note_competing_offer(ACTOR, recorded, "Rival", DEADLINE,
                                            expected_version=1).version == 2
    assert writing(candidacies, lambda: offer(candidacies, recorded, "Other",
                                              expected_version=2)).version == 3


@postgres_only
def test_snapshots_are_taken_at_the_interval(candidacies: Candidacies, recorded: str,
                                              database_url: str) -> None:
    async def offers() -> list[Outcome | None]:
        return [await offer(candidacies, recorded, f"Rival {n}")
                for n in range(SNAPSHOT_INTERVAL + 2)]

    outcomes = writing(candidacies, offers)

    assert [o.version for o in outcomes if o] == list(range(2, SNAPSHOT_INTERVAL + 4))
    snapshots = candidacies.snapshots.recorder.select_events(  # type: ignore[union-attr]
        candidacies.get(recorded, ACTOR.workspace).id)
    assert [s.originator_version for s in snapshots] == [SNAPSHOT_INTERVAL]
    fresh = Candidacies(eventsourcing_env(database_url))
    try:
        assert vars(fresh.get(recorded, ACTOR.workspace)) == \
            vars(candidacies.get(recorded, ACTOR.workspace))
    finally:
        fresh.close()


@postgres_only
def test_concurrent_writes_wait_for_a_free_connection(candidacies: Candidacies) -> None:
    ids = [candidacies.record_interview(ACTOR, interview()).candidacy_id for _ in range(6)]

    async def all_at_once() -> list[Outcome | None]:
        return list(await asyncio.gather(*(offer(candidacies, i) for i in ids)))

    outcomes = writing(candidacies, all_at_once, connections=1)

    assert [o.version for o in outcomes if o] == [2] * len(ids)
    assert all(versions(candidacies, i) == [1, 2] for i in ids)


@postgres_only
def test_a_broken_connection_fails_one_write_and_is_replaced(
        candidacies: Candidacies, database_url: str) -> None:
    first, second = (candidacies.record_interview(ACTOR, interview()).candidacy_id
                     for _ in range(2))

    async def body() -> tuple[Outcome | None, Outcome | None]:
        before = await offer(candidacies, first, "Before")
        with psycopg.connect(database_url, autocommit=True) as admin:  # every connection
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        with pytest.raises(OperationalError):
            await offer(candidacies, second, "Lost")
        return before, await offer(candidacies, first, "After")

    before, after = writing(candidacies, body)

    assert before is not None and before.version == 2
    assert after is not None and after.version == 3  # on a new connection
    fresh = Candidacies(eventsourcing_env(database_url))
    try:
        assert [e.data["company"] for e in fresh.history(first, "agency")[1:]] == \
            ["Before", "After"]
        assert len(fresh.history(second, "agency")) == 1
    finally:
        fresh.close()
