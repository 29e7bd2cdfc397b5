"""Poison events contained: one stored event (or snapshot) whose bytes are corrupted in the
database itself quarantines its candidacy, and nothing else.

The bytes are overwritten with raw SQL (sqlite3 on the file, psycopg on PostgreSQL), then
everything is driven as users drive it: the HTTP API, the scheduler's tick, the outbox's
dispatcher against a real SMTP server, and `closer doctor`.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx
import psycopg
import pytest
from adapters_fixtures import SmtpServer, free_port, smtp_server  # noqa: F401
from api_support import WORKSPACE, LiveServer, TestClient, ok, problem
from builders import interview
from typer.testing import CliRunner

from adapters.email import EmailAdapter
from adapters.outbox import Dispatcher
from adapters.outbox_rows import message_rows, passed_over
from api.app import create_app
from api.auth import create_token
from api.cli import app as cli
from api.settings import Settings, get_settings
from engine.application import Candidacies
from engine.candidacy import Candidacy
from engine.doctor import diagnose
from engine.errors import CorruptHistory
from engine.policy import policy_from_dict
from engine.policy_book import PublishedPolicy
from engine.scheduler import tick
from engine.store import eventsourcing_env
from engine.values import Actor

pytest_plugins = ["api_fixtures"]  # api, client and client_for

AGENCY = Actor(user="coach@agency.example", workspace=WORKSPACE)
LATER = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)  # the thank-yous are due
GARBAGE = b"\x00\xffnot json at all{"
GUARD_SECONDS = 30


def closed(app: Candidacies, company: str) -> str:
    """A video interview whose next step is closed: the scheduler's thank-you is due."""
    candidacy_id = app.record_interview(AGENCY, interview(format="video",
                                                          company=company)).candidacy_id
    app.record_no_hesitations(AGENCY, candidacy_id)
    app.close_next_step(AGENCY, candidacy_id, "a systems design interview")
    return candidacy_id


def corrupt(app: Candidacies, database_url: str, candidacy_id: str, version: int, *,
            snapshot: bool = False, state: bytes = GARBAGE) -> None:
    """Overwrite the stored bytes of one event (or snapshot) behind the application's back."""
    recorder: Any = app.snapshots.recorder if snapshot else app.recorder  # type: ignore[union-attr]
    table = recorder.events_table_name
    uid = UUID(candidacy_id)
    if database_url.startswith("sqlite"):
        with closing(sqlite3.connect(eventsourcing_env(database_url)["SQLITE_DBNAME"])) as conn:
            changed = conn.execute(
                f"UPDATE {table} SET state=? WHERE originator_id=? AND originator_version=?",
                (state, uid.hex, version)).rowcount
            conn.commit()
    else:
        with psycopg.connect(database_url, autocommit=True) as conn:
            changed = conn.execute(
                f"UPDATE {table} SET state=%s WHERE originator_id=%s AND "
                "originator_version=%s", (state, uid, version)).rowcount
    assert changed == 1, f"no stored record {candidacy_id} v{version} in {table}"


def notification_of(app: Candidacies, candidacy_id: str, version: int) -> int:
    found = app.recorder.find_notification_id(UUID(candidacy_id), version)  # type: ignore[attr-defined]
    assert found is not None
    return int(found)


def closer(database_url: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    """``closer ARGS`` run in-process on the test's store."""
    monkeypatch.setenv("CLOSER_DATABASE_URL", database_url)
    monkeypatch.setenv("CLOSER_LOG_LEVEL", "error")
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(cli, list(args))
    finally:
        get_settings.cache_clear()


def doctor(database_url: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    return closer(database_url, monkeypatch, "doctor", *args)


def test_a_corrupt_event_quarantines_its_candidacy_and_nothing_else(
        candidacies: Candidacies, client: Any, database_url: str,
        smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    healthy = closed(candidacies, "Northwind Analytics")
    poisoned = closed(candidacies, "Globex")
    corrupt(candidacies, database_url, poisoned, 2)  # its NoHesitationsRecorded
    position = notification_of(candidacies, poisoned, 2)

    # The corrupt one answers a clear problem naming it; never a traceback.
    body = problem(client.get(f"/candidacies/{poisoned}"), 500, "corrupt-history")
    assert (body["candidacy_id"], body["version"], body["notification_id"]) == (
        poisoned, 2, position)
    assert poisoned in body["detail"] and "closer doctor" in body["detail"]
    assert "Traceback" not in json.dumps(body)
    problem(client.get(f"/candidacies/{poisoned}/events"), 500, "corrupt-history")
    candidacies.recent.take(UUID(poisoned))  # as after a restart: no copy kept in memory
    # A command is refused before it loads anything: the stored bytes are not what Closer
    # wrote, so the audit chain names the same event (docs/audit.md).
    command = client.post(f"/candidacies/{poisoned}/thank-you", json={"medium": "email"})
    refused = problem(command, 409, "chain-broken")
    assert (refused["candidacy_id"], refused["version"], refused["notification_id"]) == (
        poisoned, 2, position)

    # Every other candidacy, the list, the feed and the agenda keep working.
    assert ok(client.get(f"/candidacies/{healthy}")).json()["stage"] == "next_step_closed"
    page = ok(client.get("/candidacies")).json()
    assert [item["id"] for item in page["items"]] == [healthy]
    [unreadable] = page["unreadable"]
    assert (unreadable["candidacy_id"], unreadable["version"], unreadable["company"]) == (
        poisoned, 2, "Globex")

    feed = ok(client.get("/events")).json()["events"]
    assert [e["id"] for e in feed] == sorted(e["id"] for e in feed)
    [marked] = [e for e in feed if e["type"] == "UndecodableEvent"]
    assert (marked["id"], marked["candidacy_id"], marked["version"]) == (
        position, poisoned, 2)
    assert f"undecodable event at notification {position}, candidacy {poisoned}" in \
        marked["detail"]
    assert [e["type"] for e in feed if e["candidacy_id"] == healthy] == [
        "InterviewRecorded", "NoHesitationsRecorded", "NextStepClosed"]

    agenda = ok(client.get("/agenda", params={"on": "2026-11-25"})).json()
    assert {item["candidacy_id"] for item in agenda["items"]} == {healthy}
    assert [u["candidacy_id"] for u in agenda["unreadable"]] == [poisoned]

    # The scheduler decides for the others and passes over the corrupt one. As with the
    # command above, its chain check comes first: the altered bytes break the chain, so it
    # is counted there (and never loaded).
    report = tick(candidacies, LATER)
    assert (report.actions["thank_you"], report.skipped_broken, report.corrupt) == (1, 1, 0)

    # The dispatcher follows past the poison event, records that it did, and delivers.
    dispatcher = Dispatcher(candidacies, adapters={
        "email": EmailAdapter(host=smtp_server.host, port=smtp_server.port, starttls=False)})
    dispatched = dispatcher.run_once()
    # Passed over: the corrupt event, and the next step closed after it (whose message
    # depends on the candidacy as of then, which cannot be read).
    assert (dispatched.queued, dispatched.sent, dispatched.passed_over) == (1, 1, 2)
    assert [row.candidacy_id for row in message_rows(candidacies)] == [healthy]
    assert len(smtp_server.sink.received) == 1
    passed = passed_over(candidacies)
    assert [(p.reader, p.notification_id, p.originator_id, p.originator_version)
            for p in passed] == [("Outbox", position, poisoned, 2),
                                 ("Outbox", notification_of(candidacies, poisoned, 3),
                                  poisoned, 3)]
    assert all("version 2" in p.error for p in passed)
    again = dispatcher.run_once()  # past it for good: not passed over twice, nothing stuck
    assert (again.queued, again.sent, again.passed_over) == (0, 0, 0)
    assert len(passed_over(candidacies)) == 2

    # `closer doctor` names it, and exits 1.
    result = doctor(database_url, monkeypatch)
    assert result.exit_code == 1, result.output
    assert f"undecodable event: {poisoned} version 2, notification {position}" in result.output
    assert f"passed over by the outbox: notification {position}" in result.output
    found = json.loads(doctor(database_url, monkeypatch, "--json").output)
    [bad] = found["undecodable"]
    assert (bad["record"], bad["originator_id"], bad["version"], bad["notification_id"]) == (
        "event", poisoned, 2, position)
    assert bad["error"] and "\n" not in bad["error"]
    assert found["healthy"] is False and found["events_scanned"] >= 6
    assert [p["notification_id"] for p in found["passed_over"]] == [
        position, notification_of(candidacies, poisoned, 3)]

    # Its history on the command line: one clear line, no traceback.
    shown = closer(database_url, monkeypatch, "history", poisoned)
    assert shown.exit_code == 1
    assert f"the history of {poisoned} cannot be read" in shown.output
    assert "Traceback" not in shown.output


def test_the_event_stream_marks_the_position_it_cannot_decode(
        api: Any, candidacies: Candidacies, client: Any, database_url: str) -> None:
    first = closed(candidacies, "Northwind Analytics")
    poisoned = closed(candidacies, "Globex")
    corrupt(candidacies, database_url, poisoned, 3)
    position = notification_of(candidacies, poisoned, 3)

    streamed: list[tuple[int, dict[str, Any]]] = []
    with LiveServer(api) as server, httpx.stream(
            "GET", f"{server.url}/events/stream", timeout=GUARD_SECONDS,
            headers={"Authorization": f"Bearer {client.token}"}) as response:
        assert response.status_code == 200
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line.startswith(":"):
                continue
            if line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
                continue
            if "id" in fields:
                streamed.append((int(fields["id"]), json.loads(fields["data"])))
                if len(streamed) == 6:
                    break
            fields = {}

    assert [event_id for event_id, _ in streamed] == sorted(i for i, _ in streamed)
    marked = [(i, e) for i, e in streamed if e["type"] == "UndecodableEvent"]
    assert [(i, e["candidacy_id"], e["version"]) for i, e in marked] == [
        (position, poisoned, 3)]
    assert sum(1 for _, e in streamed if e["candidacy_id"] == first) == 3


def test_a_corrupt_snapshot_falls_back_to_the_events_and_doctor_lists_it(
        candidacies: Candidacies, client: Any, database_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    candidacy_id = candidacies.record_interview(AGENCY, interview()).candidacy_id
    for n in range(19):  # version 20: a snapshot is taken
        candidacies.raise_hesitation(AGENCY, candidacy_id, f"Concern number {n + 1}")
    corrupt(candidacies, database_url, candidacy_id, 20, snapshot=True)
    fresh = Candidacies(candidacies.env, clock=candidacies.clock)  # nothing kept in memory
    try:
        view = ok(client.get(f"/candidacies/{candidacy_id}")).json()
        assert (view["version"], len(view["hesitations"])) == (20, 19)
        assert fresh.get(candidacy_id, WORKSPACE, version=20).version == 20
        [loaded] = fresh._load_many([candidacy_id])
        assert loaded.version == 20
        # A command still records (the next snapshot is written from the events).
        fresh.raise_hesitation(AGENCY, candidacy_id, "One more")
        assert fresh.get(candidacy_id, WORKSPACE).version == 21
    finally:
        fresh.close()

    result = doctor(database_url, monkeypatch, "--json")
    assert result.exit_code == 1, result.output
    [bad] = json.loads(result.output)["undecodable"]
    assert (bad["record"], bad["originator_id"], bad["version"]) == (
        "snapshot", candidacy_id, 20)


def test_data_that_decodes_but_does_not_fit_is_quarantined_too(
        candidacies: Candidacies, client: Any, database_url: str) -> None:
    healthy = closed(candidacies, "Northwind Analytics")
    poisoned = closed(candidacies, "Globex")
    corrupt(candidacies, database_url, poisoned, 2, state=b"{}")  # valid JSON, no fields

    problem(client.get(f"/candidacies/{poisoned}"), 500, "corrupt-history")
    problem(client.get(f"/candidacies/{poisoned}/events"), 500, "corrupt-history")
    assert [i["id"] for i in ok(client.get("/candidacies")).json()["items"]] == [healthy]
    feed = ok(client.get("/events")).json()["events"]
    assert [(e["candidacy_id"], e["version"]) for e in feed
            if e["type"] == "UndecodableEvent"] == [(poisoned, 2)]
    with pytest.raises(CorruptHistory) as raised:
        candidacies.get(poisoned, WORKSPACE)
    assert raised.value.version == 2
    # A command read from the store (no copy kept in memory) is refused the same way.
    fresh = Candidacies(candidacies.env, clock=candidacies.clock)
    try:
        with pytest.raises(CorruptHistory):
            fresh.send_thank_you(AGENCY, poisoned, "email")
    finally:
        fresh.close()


def test_another_workspace_still_finds_no_such_candidacy(
        candidacies: Candidacies, client_for: Any, database_url: str) -> None:
    poisoned = closed(candidacies, "Globex")
    corrupt(candidacies, database_url, poisoned, 2)
    candidacies.recent.take(UUID(poisoned))
    rival = client_for("recruiter", workspace="rival-agency")
    problem(rival.get(f"/candidacies/{poisoned}"), 404, "not-found")
    problem(rival.get(f"/candidacies/{poisoned}/events"), 404, "not-found")
    problem(rival.post(f"/candidacies/{poisoned}/nudges"), 404, "not-found")
    assert ok(rival.get("/candidacies")).json() == {"items": [], "unreadable": [],
                                                    "next_cursor": None}


def test_a_command_over_a_live_server_answers_the_same_problem(
        api: Any, candidacies: Candidacies, client_for: Any, database_url: str) -> None:
    """Over a live server (uvicorn's event loop, FastAPI's worker threads) a corrupt
    candidacy is told apart just as in process: its command refused as a broken chain."""
    poisoned = closed(candidacies, "Globex")
    corrupt(candidacies, database_url, poisoned, 2)
    candidacies.recent.take(UUID(poisoned))
    client, rival = client_for("recruiter"), client_for("recruiter", workspace="rival-agency")
    with LiveServer(api) as server:
        for who, status, kind in ((client, 409, "chain-broken"), (rival, 404, "not-found")):
            answer = httpx.post(f"{server.url}/candidacies/{poisoned}/nudges",
                                headers={"Authorization": f"Bearer {who.token}"},
                                timeout=GUARD_SECONDS)
            problem(answer, status, kind)


def test_a_corrupt_policy_quarantines_the_candidacies_on_it_and_says_it_is_the_policy(
        candidacies: Candidacies, database_url: str) -> None:
    candidacies.policies.publish(policy_from_dict({"name": "gentle", "version": 1}))
    on_gentle = candidacies.record_interview(
        AGENCY, interview(), policy={"name": "gentle", "version": 1}).candidacy_id
    healthy = candidacies.record_interview(AGENCY, interview(company="Globex")).candidacy_id
    policy_id = str(PublishedPolicy.id_for("gentle", 1))
    corrupt(candidacies, database_url, policy_id, 1)
    fresh = Candidacies(candidacies.env, clock=candidacies.clock)  # no policy cached
    api = create_app(Settings(database_url=database_url), candidacies=fresh)
    token = create_token(fresh, workspace=WORKSPACE, role="recruiter")
    try:
        with TestClient(api, headers={"Authorization": f"Bearer {token}"}) as client:
            body = problem(client.get(f"/candidacies/{on_gentle}"), 500, "corrupt-history")
            assert (body["originator_id"], body.get("candidacy_id")) == (policy_id, None)
            assert "a stored record this needs" in body["detail"]
            page = ok(client.get("/candidacies")).json()
            assert [item["id"] for item in page["items"]] == [healthy]
            assert [u["candidacy_id"] for u in page["unreadable"]] == [on_gentle]
            agenda = ok(client.get("/agenda", params={"on": "2026-11-25"})).json()
            assert [u["candidacy_id"] for u in agenda["unreadable"]] == [on_gentle]
    finally:
        fresh.close()


def test_doctor_reads_every_page_of_events_and_snapshots(
        candidacies: Candidacies, database_url: str) -> None:
    ids = [candidacies.record_interview(AGENCY, interview()).candidacy_id for _ in range(3)]
    for candidacy_id in ids:
        for n in range(19):
            candidacies.raise_hesitation(AGENCY, candidacy_id, f"Concern {n + 1}")
    corrupt(candidacies, database_url, ids[1], 20, snapshot=True)
    corrupt(candidacies, database_url, ids[2], 7)

    whole, paged = diagnose(candidacies), diagnose(candidacies, page=2)
    assert (paged.events, paged.snapshots) == (whole.events, whole.snapshots)
    assert whole.snapshots == 3 and whole.events >= 60
    assert paged.undecodable == whole.undecodable
    assert sorted((u.record, u.originator_id, u.version) for u in whole.undecodable) == sorted(
        [("snapshot", ids[1], 20), ("event", ids[2], 7)])


def test_the_tick_says_how_many_it_passed_over(
        candidacies: Candidacies, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    closed(candidacies, "Northwind Analytics")
    corrupt(candidacies, database_url, closed(candidacies, "Globex"), 2)
    result = closer(database_url, monkeypatch, "tick", "--now", LATER.isoformat())
    assert result.exit_code == 0, result.output
    assert "recorded 1 thank_you" in result.output
    # The altered event breaks the chain, checked before anything is loaded.
    assert "1 passed over, their chain is broken (see closer audit verify)" in result.output


def test_the_tick_passes_over_a_history_this_release_cannot_apply(
        candidacies: Candidacies, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stored bytes intact (the chain verifies) but this code cannot apply one event, as
    after a release that broke an event's ``assign``: the tick counts it as unreadable,
    decides for the others, and points at closer doctor."""
    closed(candidacies, "Northwind Analytics")
    closed(candidacies, "Globex")

    def broken_release(self: Any, candidacy: Any) -> None:
        if candidacy.company == "Globex":
            raise KeyError("no_hesitations")

    monkeypatch.setattr(Candidacy.NoHesitationsRecorded, "assign", broken_release)
    result = closer(database_url, monkeypatch, "tick", "--now", LATER.isoformat())
    assert result.exit_code == 0, result.output
    assert "recorded 1 thank_you" in result.output
    assert "1 passed over, their history cannot be read (see closer doctor)" in result.output
    assert "chain is broken" not in result.output


def test_doctor_on_a_healthy_store_exits_0(
        candidacies: Candidacies, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    closed(candidacies, "Northwind Analytics")
    result = doctor(database_url, monkeypatch)
    assert result.exit_code == 0, result.output
    assert "all readable" in result.output
    assert diagnose(candidacies).healthy


def test_an_event_that_decodes_without_its_fields_is_passed_over_by_the_outbox(
        candidacies: Candidacies, database_url: str) -> None:
    """A message-triggering event (here the next step with a date, which asks for an
    invite) whose stored payload is valid JSON with none of its fields: the outbox
    cannot work out its messages; it records that it passed over it and goes on."""
    scheduled = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)
    ids = []
    for company in ("Northwind Analytics", "Globex"):
        candidacy_id = candidacies.record_interview(
            AGENCY, interview(format="video", company=company)).candidacy_id
        candidacies.record_no_hesitations(AGENCY, candidacy_id)
        candidacies.close_next_step(AGENCY, candidacy_id, "an onsite", scheduled_for=scheduled)
        ids.append(candidacy_id)
    healthy, poisoned = ids
    corrupt(candidacies, database_url, poisoned, 3, state=b"{}")

    outbox = Dispatcher(candidacies)
    while outbox.follow():
        pass

    queued = message_rows(candidacies)
    assert [(m.candidacy_id, m.kind) for m in queued] == [(healthy, "next_step_invite")]
    [passed] = passed_over(candidacies)
    assert (passed.originator_id, passed.originator_version) == (poisoned, 3)
    assert "its messages cannot be worked out" in passed.error
