"""`GET /audit/verify` for admins, and a candidacy read that says its chain is broken."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from api_support import OTHER_WORKSPACE, TestClient, record, walk_to
from fastapi import FastAPI

from api.app import create_app
from api.audit_service import record_checkpoint
from api.auth import create_token
from api.settings import Settings
from engine.application import Candidacies

sqlite_store = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, audit_key_file=str(tmp_path / "audit.key"))


@pytest.fixture
def app(candidacies: Candidacies, settings: Settings) -> FastAPI:
    return create_app(settings, candidacies=candidacies)


def _client(app: FastAPI, candidacies: Candidacies, role: str,
            workspace: str = "agency") -> TestClient:
    token = create_token(candidacies, workspace=workspace, role=role)
    return TestClient(app, headers={"Authorization": f"Bearer {token}"})


@sqlite_store
def test_only_admins_verify_and_an_intact_store_says_so(app: FastAPI, candidacies: Candidacies,
                                                        settings: Settings) -> None:
    recruiter = _client(app, candidacies, "recruiter")
    walk_to(recruiter, "thanked")
    record_checkpoint(candidacies, settings)
    assert recruiter.get("/audit/verify").status_code == 403
    assert _client(app, candidacies, "viewer").get("/audit/verify").status_code == 403
    assert TestClient(app).get("/audit/verify").status_code == 401
    answer = _client(app, candidacies, "admin").get("/audit/verify").json()
    assert answer["intact"] is True and answer["checkpoints_checked"] == 1
    assert answer["findings"] == []


@sqlite_store
def test_a_tampered_event_is_named_to_its_workspace_admin_and_flagged_on_read(
        app: FastAPI, candidacies: Candidacies, settings: Settings, database_url: str) -> None:
    recruiter = _client(app, candidacies, "recruiter")
    candidacy_id = walk_to(recruiter, "next_step_closed")
    other = record(_client(app, candidacies, "recruiter", OTHER_WORKSPACE))
    record_checkpoint(candidacies, settings)
    assert "chain_broken" not in recruiter.get(f"/candidacies/{candidacy_id}").json() or \
        recruiter.get(f"/candidacies/{candidacy_id}").json()["chain_broken"] is None
    db = sqlite3.connect(database_url.removeprefix("sqlite:///"))
    for target in (candidacy_id, other):
        state, = db.execute("SELECT state FROM stored_events WHERE originator_id=? AND "
                            "originator_version=1", (target.replace("-", ""),)).fetchone()
        db.execute("UPDATE stored_events SET state=? WHERE originator_id=? AND "
                   "originator_version=1", (state.replace(b"Northwind", b"Southwind"),
                                            target.replace("-", "")))
    db.commit()
    db.close()
    answer: dict[str, Any] = _client(app, candidacies, "admin").get("/audit/verify").json()
    assert answer["intact"] is False
    mine = [f for f in answer["findings"] if f["candidacy_id"]]
    # The altered event, and the row that now disagrees with what the events say.
    assert [(f["kind"], f["candidacy_id"]) for f in mine] == \
        [("altered", candidacy_id), ("row", candidacy_id)]
    assert mine[0]["version"] == 1 and "company 'Northwind" in mine[1]["detail"]
    assert answer["findings_elsewhere"] >= 1  # the other workspace's: counted, not named
    view = recruiter.get(f"/candidacies/{candidacy_id}").json()
    assert view["chain_broken"]["kind"] == "altered" and view["chain_broken"]["version"] == 1


@sqlite_store
def test_a_tampered_read_model_row_is_named_over_http(
        app: FastAPI, candidacies: Candidacies, settings: Settings, database_url: str) -> None:
    from api.read_models import follower

    recruiter = _client(app, candidacies, "recruiter")
    candidacy_id = walk_to(recruiter, "next_step_closed")
    record_checkpoint(candidacies, settings)
    follower(candidacies).run_once()
    admin = _client(app, candidacies, "admin")
    answer = admin.get("/audit/verify").json()
    assert answer["intact"] is True and answer["read_model_rows_checked"] > 0
    db = sqlite3.connect(database_url.removeprefix("sqlite:///"))
    db.execute("UPDATE rm_timeline SET actor='someone-else' WHERE candidacy_id=? AND "
               "version=2", (candidacy_id,))
    db.commit()
    db.close()
    answer = admin.get("/audit/verify").json()
    assert answer["intact"] is False
    assert [(f["kind"], f["candidacy_id"], f["version"]) for f in answer["findings"]] == \
        [("read_model", candidacy_id, 2)]
    assert "rm_timeline" in answer["findings"][0]["detail"]
