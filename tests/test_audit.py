"""The tamper-evident history (issue 17) on SQLite and PostgreSQL: rows altered, deleted,
reordered and inserted directly with SQL, in the events and snapshots tables, are found
and named; an untouched store verifies."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from closer_verify.records import event_hash
from engine import audit
from engine.application import Candidacies
from engine.clock import FixedClock
from engine.store import eventsourcing_env
from engine.values import Actor
from tests.builders import candidacy_at

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key()


class Raw:
    """The store's tables, reached around Closer as a database administrator would."""

    def __init__(self, url: str, app: Candidacies) -> None:
        self.events = app.recorder.events_table_name
        self.snapshots = app.snapshots.recorder.events_table_name
        self.sqlite = url.startswith("sqlite")
        self.nid = "rowid" if self.sqlite else "notification_id"
        if self.sqlite:
            self.conn: Any = sqlite3.connect(url.removeprefix("sqlite:///"))
        else:
            self.conn = psycopg.connect(url, autocommit=True)

    def id(self, uid: str) -> Any:
        return UUID(uid).hex if self.sqlite else UUID(uid)

    def run(self, sql: str, *params: Any) -> list[Any]:
        if not self.sqlite:
            sql = sql.replace("?", "%s")
        cursor = self.conn.execute(sql, params)
        rows = cursor.fetchall() if cursor.description else []
        if self.sqlite:
            self.conn.commit()
        return rows

    def event(self, uid: str, version: int) -> tuple[int, str, bytes]:
        nid, topic, state = self.run(f"SELECT {self.nid}, topic, state FROM {self.events} "
                                     "WHERE originator_id=? AND originator_version=?",
                                     self.id(uid), version)[0]
        return nid, topic, bytes(state)

    def set_state(self, uid: str, version: int, state: bytes, topic: str | None = None) -> None:
        self.run(f"UPDATE {self.events} SET state=?, topic=COALESCE(?, topic) WHERE "
                 "originator_id=? AND originator_version=?", state, topic, self.id(uid), version)


@pytest.fixture
def store(database_url: str) -> Iterator[tuple[Candidacies, Raw, dict[str, Any]]]:
    """Three candidacies (the first with 26 events and a snapshot at 20) and a signed
    checkpoint over them."""
    from datetime import UTC, datetime

    app = Candidacies(eventsourcing_env(database_url),
                      clock=FixedClock(datetime(2026, 11, 25, 10, tzinfo=UTC)))
    actor = Actor(user="coach@agency.example", workspace="agency", on_behalf_of="maya")
    first, second, third = (candidacy_at(app, actor, "interviewed") for _ in range(3))
    for i in range(25):
        app.raise_hesitation(actor, first, f"Worried about on-call rota, point {i}")
    app.record_no_hesitations(actor, second)
    recorded, report = audit.checkpoint(app.recorder, KEY.sign, PUBLIC, 1_764_000_000_000)
    assert recorded is not None and report.intact
    raw = Raw(database_url, app)
    yield app, raw, {"first": first, "second": second, "third": third, "actor": actor}
    raw.conn.close()
    app.close()


def _first(app: Candidacies) -> audit.Finding:
    report = audit.verify(app.recorder, PUBLIC)
    assert not report.intact, "the tampering went unnoticed"
    return report.findings[0]


def test_an_untouched_store_verifies_with_every_link_and_checkpoint(store: Any) -> None:
    app, _, ids = store
    report = audit.verify(app.recorder, PUBLIC)
    assert report.intact, [f.line() for f in report.findings]
    assert report.events == 29 and report.checkpoints_checked == 1
    app.raise_hesitation(ids["actor"], ids["third"], "Later worry")
    recorded, report = audit.checkpoint(app.recorder, KEY.sign, PUBLIC, 1_764_000_100_000)
    assert recorded is not None and recorded.seq == 2 and recorded.size == 30
    assert audit.verify(app.recorder, PUBLIC).checkpoints_checked == 2
    since = audit.verify(app.recorder, PUBLIC, since=1)
    assert since.intact and since.events == 1  # only what came after checkpoint 1
    assert audit.verify_snapshots(app) == (1, [])
    assert audit.verify_chain(app.recorder, UUID(ids["first"])) == []


def test_a_page_of_chains_read_in_one_query_finds_what_each_read_alone_finds(
        store: Any) -> None:
    """`verify_chains` (the tick's, one query a page) against `verify_chain` for each:
    an altered event in one, a removed middle and a removed last event (hashes kept) in
    another, an intact one, and an id with nothing stored."""
    app, raw, ids = store
    _, _, state = raw.event(ids["first"], 3)
    raw.set_state(ids["first"], 3, state.replace(b'"hesitation_id":"r1h', b'"hesitation_id":"r9h'))
    for version in (2, 26):
        raw.run(f"DELETE FROM {raw.events} WHERE originator_id=? AND originator_version=?",
                raw.id(ids["first"]), version)
    raw.set_state(ids["second"], 1, raw.event(ids["second"], 1)[2] + b" ")
    uids = [UUID(ids[name]) for name in ("third", "first", "second")] + [UUID(int=7)]
    found = audit.verify_chains(app.recorder, uids)
    assert found == {uid: audit.verify_chain(app.recorder, uid) for uid in uids}
    assert [[(f.kind, f.version) for f in found[uid]] for uid in uids] == [
        [], [(audit.REMOVED, 2), (audit.ALTERED, 3), (audit.REMOVED, 2), (audit.REMOVED, 26)],
        [(audit.ALTERED, 1)], []]
    assert audit.verify_chains(app.recorder, []) == {}


def test_verifys_written_out_walk_is_closer_verifys_definition(store: Any) -> None:
    """verify hashes inline for speed; its root is the one the definitions give."""
    from closer_verify.merkle import MerkleTree
    from closer_verify.records import GENESIS, log_leaf

    app, raw, _ = store
    tips: dict[UUID, bytes] = {}
    leaves = []
    for nid, uid, version, topic, state, _, stored in audit.log_rows(app.recorder, 0, 7):
        chained = event_hash(tips.get(uid, GENESIS), uid, version, topic, state)
        assert chained == stored
        tips[uid] = chained
        leaves.append(log_leaf(nid, chained))
    report = audit.verify(app.recorder, PUBLIC, page=7)  # pages that cut histories
    assert report.root == MerkleTree(leaves).root() and report.size == len(leaves)
    assert report.frontier and report.intact


def test_an_altered_event_is_named(store: Any) -> None:
    app, raw, ids = store
    nid, _, state = raw.event(ids["first"], 3)
    # (The hesitation's text is sealed, engine.personal_data: its id is in the clear.)
    altered = state.replace(b'"hesitation_id":"r1h', b'"hesitation_id":"r9h')
    assert altered != state
    raw.set_state(ids["first"], 3, altered)
    found = _first(app)
    assert (found.kind, found.originator_id, found.version, found.notification_id) == \
        (audit.ALTERED, ids["first"], 3, nid)
    # A read of that candidacy says so too; the others read as intact.
    assert audit.verify_chain(app.recorder, UUID(ids["first"]))[0].version == 3
    assert audit.verify_chain(app.recorder, UUID(ids["second"])) == []
    # A later checkpoint extends the signed one: it does not certify the change either.
    app.raise_hesitation(ids["actor"], ids["third"], "Later worry")
    assert audit.checkpoint(app.recorder, KEY.sign, PUBLIC, 2)[0] is not None
    assert _first(app).version == 3


def test_an_altered_topic_is_named(store: Any) -> None:
    app, raw, ids = store
    nid, topic, state = raw.event(ids["second"], 2)
    raw.set_state(ids["second"], 2, state,
                  topic=topic.replace("NoHesitationsRecorded", "HesitationRaised"))
    found = _first(app)
    assert (found.kind, found.originator_id, found.version) == (audit.ALTERED, ids["second"], 2)


def test_a_deleted_event_is_named(store: Any) -> None:
    app, raw, ids = store
    nid, _, _ = raw.event(ids["first"], 5)
    raw.run(f"DELETE FROM {raw.events} WHERE originator_id=? AND originator_version=?",
            raw.id(ids["first"]), 5)
    found = _first(app)
    assert (found.kind, found.originator_id, found.version) == (audit.REMOVED, ids["first"], 5)


def test_a_deleted_last_event_is_named_by_its_recorded_hash(store: Any) -> None:
    app, raw, ids = store
    raw.run(f"DELETE FROM {raw.events} WHERE originator_id=? AND originator_version=?",
            raw.id(ids["second"]), 2)
    kinds = {(f.kind, f.originator_id, f.version) for f in
             audit.verify(app.recorder, PUBLIC).findings}
    assert (audit.REMOVED, ids["second"], 2) in kinds


def test_a_deleted_last_event_and_its_hash_are_found_by_the_checkpoint(store: Any) -> None:
    app, raw, ids = store
    for table in (raw.events, "closer_event_hashes"):
        raw.run(f"DELETE FROM {table} WHERE originator_id=? AND originator_version=?",
                raw.id(ids["first"]), 26)
    found = _first(app)
    assert found.kind in (audit.REMOVED, audit.CHECKPOINT)
    assert "checkpoint #1" in found.detail


def test_events_reordered_within_a_candidacy_are_named(store: Any) -> None:
    app, raw, ids = store
    _, topic2, state2 = raw.event(ids["first"], 2)
    _, topic3, state3 = raw.event(ids["first"], 3)
    raw.set_state(ids["first"], 2, state3, topic3)
    raw.set_state(ids["first"], 3, state2, topic2)
    found = _first(app)
    assert (found.kind, found.originator_id, found.version) == (audit.ALTERED, ids["first"], 2)


def test_log_positions_swapped_are_named(store: Any) -> None:
    app, raw, ids = store
    nid4, _, _ = raw.event(ids["first"], 4)
    nid5, _, _ = raw.event(ids["first"], 5)
    col = raw.nid
    raw.run(f"UPDATE {raw.events} SET {col}=? WHERE {col}=?", -1, nid4)
    raw.run(f"UPDATE {raw.events} SET {col}=? WHERE {col}=?", nid4, nid5)
    raw.run(f"UPDATE {raw.events} SET {col}=? WHERE {col}=?", nid5, -1)
    report = audit.verify(app.recorder, PUBLIC)
    found = report.findings[0]
    assert (found.kind, found.originator_id, found.version, found.notification_id) == \
        (audit.REORDERED, ids["first"], 4, nid5)
    # Named once, as moved: the versions after it are not reported missing or altered.
    assert [f.kind for f in report.findings if f.originator_id] == [audit.REORDERED]


def test_positions_swapped_between_candidacies_break_the_signed_root(store: Any) -> None:
    app, raw, ids = store
    nid_a, _, _ = raw.event(ids["second"], 2)
    nid_b, _, _ = raw.event(ids["first"], 26)
    col = raw.nid
    raw.run(f"UPDATE {raw.events} SET {col}=? WHERE {col}=?", -1, nid_a)
    raw.run(f"UPDATE {raw.events} SET {col}=? WHERE {col}=?", nid_a, nid_b)
    raw.run(f"UPDATE {raw.events} SET {col}=? WHERE {col}=?", nid_b, -1)
    found = _first(app)
    assert found.kind in (audit.CHECKPOINT, audit.REORDERED)


def test_an_inserted_event_is_named(store: Any) -> None:
    app, raw, ids = store
    _, topic, state = raw.event(ids["first"], 26)
    raw.run(f"INSERT INTO {raw.events} (originator_id, originator_version, topic, state) "
            "VALUES (?, ?, ?, ?)", raw.id(ids["first"]), 27, topic, state)
    nid, _, _ = raw.event(ids["first"], 27)
    found = _first(app)
    assert (found.kind, found.originator_id, found.version, found.notification_id) == \
        (audit.INSERTED, ids["first"], 27, nid)


def test_a_rewrite_with_its_hashes_recomputed_breaks_the_signed_root(store: Any) -> None:
    """A DBA who alters an event and rewrites its hash and every later link in the chain
    (without the signing key) is found by the checkpoint."""
    app, raw, ids = store
    uid = UUID(ids["second"])
    _, topic, state = raw.event(ids["second"], 2)
    state = state.replace(b"maya", b"mallory")
    raw.set_state(ids["second"], 2, state)
    previous = bytes(raw.run("SELECT event_hash FROM closer_event_hashes WHERE originator_id=? "
                             "AND originator_version=1", raw.id(ids["second"]))[0][0])
    raw.run("UPDATE closer_event_hashes SET event_hash=? WHERE originator_id=? AND "
            "originator_version=2", event_hash(previous, uid, 2, topic, state),
            raw.id(ids["second"]))
    assert audit.verify_chain(app.recorder, uid) == []  # the chain alone is fooled
    found = _first(app)
    assert found.kind == audit.CHECKPOINT and "checkpoint #1" in found.detail


def test_a_forged_checkpoint_signature_is_refused(store: Any) -> None:
    app, raw, _ = store
    raw.run("UPDATE closer_audit_checkpoints SET signature=? WHERE seq=1", bytes(64))
    found = _first(app)
    assert found.kind == audit.CHECKPOINT and "not signed" in found.detail


def test_a_snapshot_that_disagrees_with_its_events_is_named(store: Any) -> None:
    app, raw, ids = store
    state = bytes(raw.run(f"SELECT state FROM {raw.snapshots} WHERE originator_id=? AND "
                          "originator_version=20", raw.id(ids["first"]))[0][0])
    # (The candidate's name is sealed, engine.personal_data: the company is in the clear.)
    assert b"Maya Okafor" not in state and b"Northwind Analytics" in state
    raw.run(f"UPDATE {raw.snapshots} SET state=? WHERE originator_id=? AND "
            "originator_version=20",
            state.replace(b"Northwind Analytics", b"Southwind Analytics"),
            raw.id(ids["first"]))
    checked, findings = audit.verify_snapshots(app)
    assert checked == 1
    assert [(f.kind, f.originator_id, f.version) for f in findings] == \
        [(audit.SNAPSHOT, ids["first"], 20)]


def test_a_checkpoint_number_is_recorded_once(store: Any) -> None:
    """Two checkpointers racing: the second's insert is refused as the library's
    IntegrityError, which `checkpoint` answers with the first's."""
    from eventsourcing.persistence import IntegrityError

    app, _, _ = store
    recorded = app.recorder.select_checkpoints()[0]
    with pytest.raises(IntegrityError):
        app.recorder.insert_checkpoint(recorded)
    assert len(app.recorder.select_checkpoints()) == 1


def test_the_in_memory_store_chains_and_verifies_as_the_sql_ones() -> None:
    from datetime import UTC, datetime

    from conftest import memory_url

    app = Candidacies(eventsourcing_env(memory_url()),
                      clock=FixedClock(datetime(2026, 11, 25, 10, tzinfo=UTC)))
    actor = Actor(user="coach@agency.example", workspace="agency")
    first = candidacy_at(app, actor, "interviewed")
    for i in range(21):
        app.raise_hesitation(actor, first, f"worry {i}")
    recorded, report = audit.checkpoint(app.recorder, KEY.sign, PUBLIC, 1)
    assert recorded is not None and recorded.size == 22 and report.intact
    assert app.recorder.count_event_hashes() == 22
    assert audit.verify(app.recorder, PUBLIC).checkpoints_checked == 1
    assert audit.verify_snapshots(app) == (1, [])
    assert audit.verify_chain(app.recorder, UUID(first)) == []
    assert app.recorder.select_orphan_hashes() == []
    app.close()


def test_a_cold_write_of_many_aggregates_reads_their_predecessors_in_one_query(
        store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tick's page in a process that did not write those candidacies last (the
    scheduler's own application object): one query for all predecessors."""
    from eventsourcing.persistence import StoredEvent

    app, raw, ids = store
    recorder = app.recorder
    recorder.forget_tips()
    calls = {"batch": 0, "one": 0}
    batch, one = recorder.select_event_hashes, recorder.select_chain_tip
    monkeypatch.setattr(recorder, "select_event_hashes",
                        lambda wanted: calls.__setitem__("batch", calls["batch"] + 1)
                        or batch(wanted))
    monkeypatch.setattr(recorder, "select_chain_tip",
                        lambda *a: calls.__setitem__("one", calls["one"] + 1) or one(*a))
    events = []
    for key, version in (("second", 2), ("third", 1)):
        _, topic, state = raw.event(ids[key], version)
        events.append(StoredEvent(UUID(ids[key]), version + 1, topic, state))
    recorder.insert_events(events)
    assert calls == {"batch": 1, "one": 0}
    assert audit.verify(recorder, PUBLIC).intact


def test_a_current_row_that_disagrees_with_its_events_is_named(store: Any) -> None:
    """The candidacies table (lists, the scheduler and the dashboard read it) edited in SQL."""
    app, raw, ids = store
    assert audit.verify_rows(app) == (3, [])
    raw.run("UPDATE closer_candidacies SET stage='advanced' WHERE id=?", ids["second"])
    checked, findings = audit.verify_rows(app)
    assert checked == 3
    assert [(f.kind, f.originator_id) for f in findings] == [(audit.ROW, ids["second"])]
    assert "stage 'advanced'" in findings[0].detail
    raw.run("INSERT INTO closer_candidacies (id, workspace, stage, version, round, "
            "candidate, company, role, updated_at, due_at, summary) SELECT "
            "'00000000-0000-4000-8000-000000000000', workspace, stage, version, round, "
            "candidate, company, role, updated_at, due_at, summary FROM closer_candidacies "
            "WHERE id=?", ids["third"])
    kinds = [(f.kind, f.originator_id) for f in audit.verify_rows(app)[1]]
    assert (audit.ROW, "00000000-0000-4000-8000-000000000000") in kinds


def test_a_candidacy_stored_before_the_audit_is_chained_whole_by_its_next_command(
        store: Any) -> None:
    # Its events carry no hashes (written before issue 17): the next save hashes them in
    # its own write, from the events it reads (on SQLite, in the batch's transaction),
    # and the chain then verifies.
    app, raw, ids = store
    second = ids["second"]
    raw.run("DELETE FROM closer_event_hashes WHERE originator_id=?", raw.id(second))
    app.recorder.forget_tips()
    version = app.row(second).version
    assert audit.verify_chain(app.recorder, UUID(second)) != []
    app.raise_hesitation(ids["actor"], second, "A late worry")
    assert audit.verify_chain(app.recorder, UUID(second)) == []
    hashed = raw.run("SELECT originator_version FROM closer_event_hashes WHERE "
                     "originator_id=? ORDER BY originator_version", raw.id(second))
    assert [row[0] for row in hashed] == list(range(1, version + 2))
