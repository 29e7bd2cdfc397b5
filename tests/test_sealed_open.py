"""Opening sealed fields on load (engine.personal_data `Keyring.open_state`): the nested
leaves of a snapshot, the stored bytes untouched, and "erased" after an erasure.

Each test runs on every store `database_url` gives (SQLite, PostgreSQL; the in-memory
one in the unit tier)."""

from __future__ import annotations

from uuid import UUID

from builders import interview

from engine.application import SNAPSHOT_INTERVAL, Candidacies
from engine.personal_data import ERASED
from engine.values import Actor

ZELDA = {"name": "Zelda Quuxbridge", "email": "zelda.quuxbridge@secret.example",
         "phone": "+44 7700 900123", "why_i_fit": "I built Quuxbase at Fjordlight"}


def _stored(app: Candidacies, cid: str) -> bytes:
    uid = UUID(cid)
    events = b"".join(e.state for e in app.events.recorder.select_events(uid))
    snapshots = b""
    if app.snapshots is not None:
        snapshots = b"".join(s.state for s in app.snapshots.recorder.select_events(uid))
    return events + snapshots


def test_a_snapshot_opens_every_hesitation_and_reads_erased_after_the_erasure(
        candidacies: Candidacies, coach: Actor) -> None:
    """A snapshot's sealed leaves are nested (``state.hesitations.[].text``, the
    candidate's dict): each opens, none is stored in plain text, and once erased each
    reads "erased" from the snapshot itself (a version before the `Erased` event, which
    clears the state it loads)."""
    app = candidacies
    cid = app.record_interview(coach, interview(candidate=ZELDA)).candidacy_id
    texts = [f"Worried about Fjordlight's on-call rota, number {n}"
             for n in range(SNAPSHOT_INTERVAL + 2)]
    for text in texts:
        app.raise_hesitation(coach, cid, text)
    assert app.snapshots is not None
    assert list(app.snapshots.recorder.select_events(UUID(cid)))  # a snapshot was taken
    app.recent.take(UUID(cid))  # read it from the store, not the kept copy

    loaded = app.get(cid, coach.workspace)
    assert [h["text"] for h in loaded.hesitations] == texts
    assert loaded.candidate["email"] == ZELDA["email"]
    stored = _stored(app, cid)
    assert not any(t.encode() in stored for t in [*texts, *ZELDA.values()])

    app.erase(coach, cid, "request 17")
    app.recent.take(UUID(cid))
    erased = app.get(cid, coach.workspace, version=SNAPSHOT_INTERVAL + 1)
    assert [h["text"] for h in erased.hesitations] == [ERASED] * SNAPSHOT_INTERVAL
    assert erased.candidate == {k: ERASED for k in ZELDA}


def test_opening_leaves_the_stored_bytes_and_a_second_load_alike(
        candidacies: Candidacies, coach: Actor) -> None:
    """Opening changes only the decoded state: the stored records are the same bytes
    after loads, and two loads read the same candidacy."""
    app = Candidacies(app_env(candidacies), clock=candidacies.clock, recent=0)
    try:
        cid = app.record_interview(coach, interview(candidate=ZELDA)).candidacy_id
        app.raise_hesitation(coach, cid, "Worried about the notice period")
        before = _stored(app, cid)
        first = app.get(cid, coach.workspace)
        second = app.get(cid, coach.workspace)
        assert _stored(app, cid) == before
        assert first.candidate == second.candidate and first.candidate["name"] == ZELDA["name"]
        assert first.hesitations == second.hesitations
    finally:
        app.close()


def app_env(app: Candidacies) -> dict[str, str]:
    """The environment ``app`` was made with (a second application on its store)."""
    return dict(app.env)
