"""The read models' tables under audit (issue 17) on SQLite and PostgreSQL: rows altered,
deleted and inserted directly with SQL are named (table, key, candidacy, event); an
untouched store verifies, also while the read models stand behind the log."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest

from api.audit_service import verify_read_model_tables
from api.read_models import follower
from engine.application import Candidacies
from engine.audit_read_models import READ_MODEL
from engine.clock import FixedClock
from tests.builders import interview
from tests.test_audit import Raw
from tests.test_read_models import MAYA, hand_worked


@pytest.fixture
def store(database_url: str, candidacies: Candidacies, clock: FixedClock
          ) -> Iterator[tuple[Candidacies, Raw, dict[str, str]]]:
    """The read models' hand-worked history (three candidacies, thank-yous, nudges, a
    stall), followed by the dashboard's read models in small batches."""
    ids = hand_worked(candidacies, clock)
    follower(candidacies, batch=4).run_once()
    yield candidacies, Raw(database_url, candidacies), ids


def _found(app: Candidacies, candidacy: str | None = None) -> list[Any]:
    checked, findings = verify_read_model_tables(
        app, None if candidacy is None else UUID(candidacy))
    assert checked > 0
    return findings


def test_untouched_read_models_verify(store: Any) -> None:
    app, _, ids = store
    assert _found(app) == []
    assert _found(app, ids["A"]) == []


def test_read_models_behind_the_log_verify_up_to_their_position(store: Any) -> None:
    """Events the follower has not read yet are not expected in its tables."""
    app, _, ids = store
    app.record_interview(MAYA, interview(company="Later Ltd"))
    app.receive_reply(MAYA, ids["C"], "advanced")
    assert _found(app) == []
    follower(app).run_once()
    assert _found(app) == []


def test_an_altered_timeline_row_is_named_with_its_event(store: Any) -> None:
    app, raw, ids = store
    nid, version = raw.run("SELECT notification_id, version FROM rm_timeline WHERE "
                           "candidacy_id=? AND type='NextStepClosed'", ids["A"])[0]
    raw.run("UPDATE rm_timeline SET summary='next step closed: nothing' WHERE "
            "candidacy_id=? AND version=?", ids["A"], version)
    findings = _found(app)
    assert [(f.kind, f.originator_id, f.version, f.notification_id) for f in findings] == \
        [(READ_MODEL, ids["A"], version, nid)]
    assert "rm_timeline row" in findings[0].detail and "summary" in findings[0].detail
    assert f"version={version}" in findings[0].detail
    # One candidacy's check sees it too; another's does not.
    assert [f.originator_id for f in _found(app, ids["A"])] == [ids["A"]]
    assert _found(app, ids["C"]) == []


def test_a_deleted_nudge_row_is_named(store: Any) -> None:
    app, raw, ids = store
    version = raw.run("SELECT MIN(version) FROM rm_nudges WHERE candidacy_id=?", ids["A"])[0][0]
    raw.run("DELETE FROM rm_nudges WHERE candidacy_id=? AND version=?", ids["A"], version)
    findings = _found(app)
    assert [(f.kind, f.originator_id, f.version) for f in findings] == \
        [(READ_MODEL, ids["A"], version)]
    assert "rm_nudges row" in findings[0].detail and "not stored" in findings[0].detail


def test_an_inserted_pipeline_row_is_named(store: Any) -> None:
    app, raw, ids = store
    fake = "00000000-0000-4000-8000-000000000000"
    raw.run("INSERT INTO rm_pipeline SELECT ?, workspace, company, role, candidate, "
            "recruiter, actor, stage, round, entered_stage_at, updated_at, version, "
            "intervals, opened_at, nudges, reason, rule, policy FROM rm_pipeline WHERE "
            "candidacy_id=?", fake, ids["C"])
    findings = _found(app)
    assert [(f.kind, f.originator_id) for f in findings] == [(READ_MODEL, fake)]
    assert "rm_pipeline row" in findings[0].detail and "no event makes it" in findings[0].detail


def test_an_altered_stage_and_stay_count_are_named(store: Any) -> None:
    """A candidacy's current stage (the pipeline's counts read it) and a count of stays
    kept across candidacies (time in stage reads it)."""
    app, raw, ids = store
    raw.run("UPDATE rm_pipeline SET stage='advanced' WHERE candidacy_id=?", ids["B"])
    raw.run("UPDATE rm_stay_days SET n=n+5 WHERE day=(SELECT MIN(day) FROM rm_stay_days)")
    findings = _found(app)
    assert {(f.originator_id, f.detail.split(" row ")[0]) for f in findings} == \
        {(ids["B"], "rm_pipeline"), (None, "rm_stay_days")}
    pipeline = next(f for f in findings if f.originator_id == ids["B"])
    assert "stage 'advanced'" in pipeline.detail and "its events: 'stalled'" in pipeline.detail
    assert pipeline.version == app.get(ids["B"], "w").version
    # One candidacy's check leaves the counts across candidacies out.
    assert [f.originator_id for f in _found(app, ids["B"])] == [ids["B"]]


def test_a_moved_tracking_position_is_found(store: Any) -> None:
    """Rolling a read model's position back, without its rows, leaves rows no event
    (up to that position) makes."""
    app, raw, _ = store
    table = "tracking" if raw.sqlite else "closer_read_model_tracking"
    raw.run(f"UPDATE {table} SET notification_id=3 WHERE application_name='read_model.timeline'")
    assert any("rm_timeline" in f.detail and "no event makes it" in f.detail
               for f in _found(app))


def test_tables_read_a_page_at_a_time_compare_alike(store: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of two rows: the keyset paging and the merge in key order (text keys by
    code point on both stores, names with capitals and spaces among them)."""
    import engine.audit_read_models as module

    app, raw, ids = store
    monkeypatch.setattr(module, "PAGE", 2)
    assert _found(app) == []
    raw.run("DELETE FROM rm_stay_lengths WHERE seconds=(SELECT MAX(seconds) FROM "
            "rm_stay_lengths)")
    raw.run("UPDATE rm_thank_yous SET same_day=1-same_day WHERE candidacy_id=?", ids["B"])
    found = _found(app)
    assert sorted(f.detail.split(" row ")[0] for f in found) == \
        ["rm_stay_lengths", "rm_thank_yous"]
    assert next(f for f in found if "rm_thank_yous" in f.detail).originator_id == ids["B"]


def test_an_edited_schema_fingerprint_is_named_and_nothing_is_dropped(store: Any) -> None:
    """Verify never renews a read model's tables (which would empty them): a fingerprint
    changed in SQL is a finding, and the rows stay for the rest of the comparison."""
    app, raw, ids = store
    raw.run("UPDATE closer_read_model_schemas SET fingerprint='0000' WHERE name='timeline'")
    raw.run("UPDATE rm_timeline SET summary='forged' WHERE candidacy_id=?", ids["A"])
    raw.run("UPDATE rm_pipeline SET stage='advanced' WHERE candidacy_id=?", ids["B"])
    found = _found(app)
    assert [f.detail.split(":")[0] for f in found if f.originator_id is None] == \
        ["read model timeline"]
    assert [f.originator_id for f in found if f.originator_id is not None] == [ids["B"]]
    assert raw.run("SELECT COUNT(*) FROM rm_timeline WHERE summary='forged'")[0][0] > 0


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_long_rebuild_outlasts_the_idle_in_transaction_timeout(
        database_url: str, clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: the stored side's snapshot waits while the rebuild reads the log;
    the datastore's idle-in-transaction timeout (here 1 s) must not end it."""
    import time

    import engine.audit_read_models as module
    from engine.store import eventsourcing_env

    env = {**eventsourcing_env(database_url), "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "1"}
    app = Candidacies(env, clock=clock)
    try:
        hand_worked(app, clock)
        follower(app).run_once()
        rebuild = module._rebuild
        monkeypatch.setattr(module, "_rebuild",
                            lambda *a: (rebuild(*a), time.sleep(2.5))[0])
        assert _found(app) == []
    finally:
        app.close()
