"""Bearer tokens, roles and workspaces over HTTP; tokens kept hashed; request logs clean."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import structlog
import structlog.testing
from api_support import (
    COMMANDS,
    OTHER_WORKSPACE,
    TestClient,
    history,
    ok,
    problem,
    record,
    sqlite_only,
    walk_to,
)
from builders import interview

from api.auth import (
    ApiToken,
    TokenVerifier,
    create_token,
    hash_token,
    revoke_token,
    token_id,
)
from engine.application import Candidacies

ROOT = Path(__file__).resolve().parents[1]
READS = ["/candidacies", "/candidacies/{id}", "/candidacies/{id}/events", "/events",
         "/agenda"]

pytest_plugins = ["api_fixtures"]  # api, client and client_for


@sqlite_only
@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer closer_not-a-real-token",
    "Bearer someone-elses-token", "bearer " + "x" * 500,
])
def test_no_or_a_bad_token_is_a_401(api: Any, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    with TestClient(api, headers=headers) as anonymous:
        for path in ["/candidacies", "/events", "/agenda"]:
            response = anonymous.get(path)
            problem(response, 401, "unauthorized")
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        problem(anonymous.post("/candidacies", json=interview()), 401, "unauthorized")


@sqlite_only
def test_health_and_the_documents_need_no_token(api: Any) -> None:
    with TestClient(api) as anonymous:
        health = anonymous.get("/healthz")
        assert (health.status_code, health.json()["status"]) == (200, "ok")
        assert anonymous.get("/openapi.json").status_code == 200
        assert anonymous.get("/docs").status_code == 200


def test_viewers_read_but_every_write_is_a_403(client_for: Any) -> None:
    recruiter, viewer = client_for("recruiter"), client_for("viewer")
    candidacy_id = walk_to(recruiter, "awaiting")

    for path in READS:
        ok(viewer.get(path.format(id=candidacy_id)))
    problem(viewer.post("/candidacies", json=interview()), 403, "forbidden")
    for path, body, *_ in COMMANDS:
        response = viewer.post(f"/candidacies/{candidacy_id}/{path}", json=body)
        problem(response, 403, "forbidden")
    assert len(history(recruiter, candidacy_id)) == 5
    assert len(ok(recruiter.get("/candidacies")).json()["items"]) == 1


def test_admins_write_too(client_for: Any) -> None:
    admin = client_for("admin")
    candidacy_id = record(admin)
    ok(admin.post(f"/candidacies/{candidacy_id}/no-hesitations"))


def test_another_workspaces_candidacy_is_not_found_for_reads_and_writes(
        client_for: Any) -> None:
    ours, theirs = client_for("recruiter"), client_for("admin", workspace=OTHER_WORKSPACE)
    candidacy_id = walk_to(ours, "awaiting")
    unknown = "00000000-0000-4000-8000-000000000000"

    for path in ["/candidacies/{id}", "/candidacies/{id}/events"]:
        hidden = problem(theirs.get(path.format(id=candidacy_id)), 404, "not-found")
        absent = problem(theirs.get(path.format(id=unknown)), 404, "not-found")
        assert hidden.keys() == absent.keys() and hidden["title"] == absent["title"]
    for path, body, *_ in COMMANDS:
        problem(theirs.post(f"/candidacies/{candidacy_id}/{path}", json=body), 404,
                "not-found")
    assert ok(theirs.get("/candidacies")).json()["items"] == []
    assert ok(theirs.get("/events")).json()["events"] == []
    assert ok(theirs.get("/agenda")).json()["items"] == []
    assert len(history(ours, candidacy_id)) == 5


def test_a_token_aggregate_id_is_not_a_candidacy(client: Any, candidacies: Candidacies) -> None:
    token_uuid = token_id(hash_token(client.token))
    problem(client.get(f"/candidacies/{token_uuid}"), 404, "not-found")
    problem(client.get(f"/candidacies/{token_uuid}/events"), 404, "not-found")
    problem(client.post(f"/candidacies/{token_uuid}/nudges"), 404, "not-found")


def test_tokens_are_stored_only_as_hashes(client: Any, candidacies: Candidacies) -> None:
    record(client)
    stored = candidacies.recorder.select_notifications(start=1, limit=100)

    assert all(client.token.encode() not in n.state for n in stored)
    issued = [n for n in stored if n.topic.startswith("api.auth:ApiToken")]
    assert [n.originator_id for n in issued] == [token_id(hash_token(client.token))]
    token = candidacies.repository.get(issued[0].originator_id)
    assert isinstance(token, ApiToken)
    assert (token.workspace, token.role, token.user) == ("agency", "recruiter",
                                                          "recruiter@agency")


def test_token_create_prints_a_working_token_once(api: Any, database_url: str) -> None:
    env = {**os.environ, "CLOSER_DATABASE_URL": database_url, "CLOSER_LOG_FORMAT": "json"}
    created = subprocess.run(
        [sys.executable, "-m", "api.cli", "token", "create", "--workspace", "agency",
         "--role", "viewer"], check=False, cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60)

    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("closer_") and "\n" not in token
    assert token not in created.stderr
    with TestClient(api, headers={"Authorization": f"Bearer {token}"}) as viewer:
        ok(viewer.get("/candidacies"))
        problem(viewer.post("/candidacies", json=interview()), 403, "forbidden")


@sqlite_only
def test_token_create_refuses_an_unknown_role(database_url: str) -> None:
    env = {**os.environ, "CLOSER_DATABASE_URL": database_url}
    refused = subprocess.run(
        [sys.executable, "-m", "api.cli", "token", "create", "--workspace", "agency",
         "--role", "owner"], check=False, cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60)
    assert refused.returncode != 0 and "closer_" not in refused.stdout


def test_request_logs_name_the_request_but_never_tokens_or_bodies(client: Any) -> None:
    secret_words = "confidential-salary-concern"
    previous = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    try:
        with structlog.testing.capture_logs() as logs:
            candidacy_id = record(client, on_behalf_of="maya-private")
            ok(client.post(f"/candidacies/{candidacy_id}/hesitations",
                           json={"text": secret_words}))
            problem(client.post(f"/candidacies/{candidacy_id}/nudges"), 409, "illegal-command")
    finally:
        structlog.configure(**previous)

    requests = [entry for entry in logs if entry["event"] == "request"]
    assert [(r["method"], r["status"]) for r in requests] == [
        ("POST", 201), ("POST", 201), ("POST", 409)]
    assert requests[1]["path"] == f"/candidacies/{candidacy_id}/hesitations"
    assert all(r["workspace"] == "agency" and r["duration_ms"] >= 0 for r in requests)
    everything = repr(logs)
    assert client.token not in everything
    assert secret_words not in everything and "Maya Okafor" not in everything


def test_a_revoked_token_is_refused_and_its_history_says_why(
        api: Any, client: Any, candidacies: Candidacies) -> None:
    ok(client.get("/candidacies"))  # verified, so cached by the server

    revoked = revoke_token(candidacies, client.token, reason="laptop stolen")
    api.state.tokens.forget(client.token)  # what the revoking process does for itself

    assert (revoked.workspace, revoked.active) == ("agency", False)
    problem(client.get("/candidacies"), 401, "unauthorized")
    problem(client.post("/candidacies", json=interview()), 401, "unauthorized")
    token = candidacies.repository.get(token_id(hash_token(client.token)))
    assert isinstance(token, ApiToken) and not token.active
    assert [type(e).__name__ for e in candidacies.events.get(token.id)] == ["Issued", "Revoked"]
    assert list(candidacies.events.get(token.id))[-1].reason == "laptop stolen"
    revoke_token(candidacies, client.token)  # again: nothing more to record
    assert len(list(candidacies.events.get(token.id))) == 2
    with pytest.raises(ValueError, match="never issued"):
        revoke_token(candidacies, "closer_not-a-real-token")


def test_a_revoked_token_stays_accepted_only_for_the_cache_window(
        candidacies: Candidacies) -> None:
    token = create_token(candidacies, workspace="agency", role="viewer")
    patient, strict = TokenVerifier(candidacies, ttl=60), TokenVerifier(candidacies, ttl=0)
    assert patient.verify(token) is not None and strict.verify(token) is not None

    revoke_token(candidacies, token)

    assert strict.verify(token) is None  # another process, nothing cached: refused at once
    assert patient.verify(token) is not None  # verified a moment ago: trusted for its ttl
    patient.forget(token)
    assert patient.verify(token) is None


@sqlite_only
def test_token_revoke_on_the_command_line(api: Any, database_url: str) -> None:
    env = {**os.environ, "CLOSER_DATABASE_URL": database_url}

    def closer(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "api.cli", "token", *args], check=False,
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
                              input=stdin)

    token = closer("create", "--workspace", "agency", "--role", "viewer").stdout.strip()
    revoked = closer("revoke", "--reason", "left the agency", stdin=token + "\n")  # prompted
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked the viewer token" in revoked.stdout and token not in revoked.stdout
    with TestClient(api, headers={"Authorization": f"Bearer {token}"}) as viewer:
        problem(viewer.get("/candidacies"), 401, "unauthorized")
    unknown = closer("revoke", "--token", "closer_not-a-real-token")
    assert unknown.returncode == 1 and "never issued" in unknown.stdout + unknown.stderr
