"""Commands over HTTP on the candidacies the application keeps copies of (`RecentCandidacies`):
a warm candidacy answers as a cold one would, on both stores (a stale copy, If-Match,
idempotency keys, refusals, snapshots, the clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from api_support import TestClient, history, ok, problem, walk_to

from engine.application import SNAPSHOT_INTERVAL, Candidacies
from engine.store import eventsourcing_env
from engine.values import Actor

pytest_plugins = ["api_fixtures"]  # api, client and client_for

ACTOR = Actor(user="recruiter@agency.example", workspace="agency")
DEADLINE = datetime(2099, 1, 1, 17, tzinfo=UTC)
OFFER = {"company": "Rival", "deadline": "2099-01-01T17:00:00+00:00"}


@pytest.fixture
def live(api: Any, client: TestClient) -> Any:
    """``client`` with the app's lifespan running."""
    with client:
        yield client


def test_warm_commands_over_http(live: Any, candidacies: Candidacies) -> None:
    candidacy_id = walk_to(live, "awaiting")
    before = len(history(live, candidacy_id))

    responses = [ok(live.post(f"/candidacies/{candidacy_id}/offers",
                              json={**OFFER, "company": f"Rival {n}"})) for n in range(3)]

    assert [r.json()["version"] for r in responses] == [before + 1, before + 2, before + 3]
    assert [r.headers["ETag"] for r in responses] == [f'"{before + n}"' for n in (1, 2, 3)]
    assert [e["data"]["company"] for e in history(live, candidacy_id)[before:]] == \
        ["Rival 0", "Rival 1", "Rival 2"]
    assert UUID(candidacy_id) in candidacies.recent  # the next command starts from its copy


def stale_copy(live: Any, database_url: str) -> tuple[str, int]:
    """A candidacy whose copy the app keeps at the version it answers, then saved once
    more by another application object (another process): its id and that version."""
    candidacy_id = walk_to(live, "awaiting")
    version = ok(live.post(f"/candidacies/{candidacy_id}/offers", json=OFFER)).json()["version"]
    other = Candidacies(eventsourcing_env(database_url))
    try:
        other.note_competing_offer(ACTOR, candidacy_id, "Elsewhere", DEADLINE)
    finally:
        other.close()
    return candidacy_id, version


def test_a_second_writer_makes_the_kept_copy_stale(
        live: Any, candidacies: Candidacies, database_url: str) -> None:
    candidacy_id, version = stale_copy(live, database_url)

    response = ok(live.post(f"/candidacies/{candidacy_id}/offers",
                            json={**OFFER, "company": "Later"}))

    assert response.json()["version"] == version + 2
    companies = [e["data"].get("company") for e in history(live, candidacy_id)[version:]]
    assert companies == ["Elsewhere", "Later"]  # decided on the store, not on the copy
    # Kept again at the stored version: the next command starts from the copy once more.
    assert candidacies.recent.take(UUID(candidacy_id)).version == version + 2  # type: ignore[union-attr]


def test_a_stale_copy_is_dropped_by_the_chain_check_before_it_is_decided_on(
        live: Any, candidacies: Candidacies, database_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The command's chain check reads the stored chain, and so its highest version: a kept
    # copy behind it is forgotten, and the command decided once, on what is stored (a
    # stale copy decided first fails at its save: on PostgreSQL its batch-mates' script
    # is then written again save by save).
    candidacy_id, version = stale_copy(live, database_url)
    assert UUID(candidacy_id) in candidacies.recent  # at ``version``: one behind the store
    decided: list[int] = []
    apply = candidacies._apply

    def counted(actor: Any, candidacy: Any, *args: Any) -> Any:
        decided.append(candidacy.version)
        return apply(actor, candidacy, *args)

    monkeypatch.setattr(candidacies, "_apply", counted)
    response = ok(live.post(f"/candidacies/{candidacy_id}/offers",
                            json={**OFFER, "company": "Later"}))
    assert response.json()["version"] == version + 2
    assert decided == [version + 1]  # never on the stale copy at ``version``
    # A copy at the stored version is kept (the next command starts from it).
    candidacies.drop_stale_copy(candidacy_id, version + 2)
    assert UUID(candidacy_id) in candidacies.recent
    candidacies.drop_stale_copy(candidacy_id, version + 3)
    assert UUID(candidacy_id) not in candidacies.recent


def test_a_stale_if_match_on_a_warm_candidacy_is_a_412(live: Any) -> None:
    candidacy_id = walk_to(live, "awaiting")
    version = len(history(live, candidacy_id))

    problem(live.post(f"/candidacies/{candidacy_id}/offers", json=OFFER,
                      headers={"If-Match": f'"{version - 1}"'}), 412, "version-conflict")
    response = ok(live.post(f"/candidacies/{candidacy_id}/offers", json=OFFER,
                            headers={"If-Match": f'"{version}"'}))

    assert response.json()["version"] == version + 1
    assert len(history(live, candidacy_id)) == version + 1


def test_an_idempotent_replay_on_a_warm_candidacy(live: Any) -> None:
    candidacy_id = walk_to(live, "awaiting")
    headers = {"Idempotency-Key": "offer-once"}
    first = ok(live.post(f"/candidacies/{candidacy_id}/offers", json=OFFER, headers=headers))
    ok(live.post(f"/candidacies/{candidacy_id}/offers", json={**OFFER, "company": "Next"}))

    again = ok(live.post(f"/candidacies/{candidacy_id}/offers", json=OFFER, headers=headers))

    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["ETag"] == first.headers["ETag"]
    assert [e["data"]["company"] for e in history(live, candidacy_id)[-2:]] == ["Rival", "Next"]


def test_an_illegal_command_on_a_warm_candidacy_is_a_409(live: Any) -> None:
    candidacy_id = walk_to(live, "awaiting")
    before = len(history(live, candidacy_id))

    body = problem(live.post(f"/candidacies/{candidacy_id}/resume"), 409, "illegal-command")

    assert body["command"] == "resume_cadence"
    assert len(history(live, candidacy_id)) == before


def test_snapshots_over_http_at_the_interval(live: Any, candidacies: Candidacies,
                                             database_url: str) -> None:
    candidacy_id = walk_to(live, "awaiting")
    while len(history(live, candidacy_id)) < SNAPSHOT_INTERVAL + 1:
        ok(live.post(f"/candidacies/{candidacy_id}/offers", json=OFFER))

    snapshots = candidacies.snapshots.recorder.select_events(  # type: ignore[union-attr]
        candidacies.get(candidacy_id, "agency").id)
    assert [s.originator_version for s in snapshots] == [SNAPSHOT_INTERVAL]
    fresh = Candidacies(eventsourcing_env(database_url))
    try:
        assert vars(fresh.get(candidacy_id, "agency")) == \
            vars(candidacies.get(candidacy_id, "agency"))
    finally:
        fresh.close()


def test_the_clock_moves_between_warm_commands(live: Any, clock: Any) -> None:
    # Decided on a kept copy, a command still takes its time from the one clock.
    candidacy_id = walk_to(live, "awaiting")
    clock.advance(timedelta(hours=2))
    ok(live.post(f"/candidacies/{candidacy_id}/offers", json=OFFER))
    assert history(live, candidacy_id)[-1]["at"].startswith("2026-11-25T12:00")
