"""Commands and reads of a candidacy whose chain is broken (issue 17): an event altered
in SQL makes every command on that candidacy a 409 `chain-broken` problem naming the
first break, with nothing recorded (over the API and from the dashboard's forms); its
history read carries the break; the dashboard's Candidacy page shows a banner and no
forms.  Other candidacies go on as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from adapters_fixtures import SmtpServer, smtp_server  # noqa: F401
from api_support import WORKSPACE, TestClient
from builders import interview
from dashboard_support import ORIGIN, form_fields, sign_in

from api.app import create_app
from api.auth import create_token
from api.settings import Settings
from engine.application import Candidacies
from engine.values import Actor
from tests.test_audit import Raw

COACH = Actor(user="coach@agency", workspace=WORKSPACE)


@pytest.fixture
def app(candidacies: Candidacies, database_url: str, tmp_path: Path) -> Any:
    settings = Settings(database_url=database_url, tasks_dir=str(tmp_path / "tasks"),
                        audit_key_file=str(tmp_path / "audit.key"), session_secret="s" * 40)
    return create_app(settings, candidacies=candidacies)


def _api(app: Any, candidacies: Candidacies, workspace: str = WORKSPACE) -> TestClient:
    token = create_token(candidacies, workspace=workspace, role="recruiter")
    return TestClient(app, headers={"Authorization": f"Bearer {token}"})


def _tamper(database_url: str, candidacies: Candidacies, cid: str) -> None:
    """The interview (version 1) rewritten in SQL: another company."""
    raw = Raw(database_url, candidacies)
    _, _, state = raw.event(cid, 1)
    assert b"Northwind" in state
    raw.set_state(cid, 1, state.replace(b"Northwind", b"Southwind"))


def test_a_command_on_a_broken_chain_is_refused_naming_the_break(
        app: Any, candidacies: Candidacies, database_url: str) -> None:
    broken = candidacies.record_interview(COACH, interview(company="Northwind")).candidacy_id
    intact = candidacies.record_interview(COACH, interview(company="Northwind")).candidacy_id
    client = _api(app, candidacies)
    _tamper(database_url, candidacies, broken)
    answer = client.post(f"/candidacies/{broken}/no-hesitations")
    assert answer.status_code == 409, answer.text
    problem = answer.json()
    assert problem["type"] == "urn:closer:problem:chain-broken"
    assert (problem["candidacy_id"], problem["version"], problem["finding"]) == \
        (broken, 1, "altered")
    assert "closer audit verify" in problem["detail"]
    assert candidacies.get(broken, WORKSPACE).version == 1  # nothing recorded
    assert client.post(f"/candidacies/{intact}/no-hesitations").status_code == 200
    # The history read says so too; the intact one's does not.
    events = client.get(f"/candidacies/{broken}/events").json()
    assert events["chain_broken"]["kind"] == "altered" and events["chain_broken"]["version"] == 1
    assert client.get(f"/candidacies/{intact}/events").json()["chain_broken"] is None


def test_another_workspaces_broken_candidacy_is_not_found_not_named(
        app: Any, candidacies: Candidacies, database_url: str) -> None:
    broken = candidacies.record_interview(COACH, interview(company="Northwind")).candidacy_id
    _tamper(database_url, candidacies, broken)
    answer = _api(app, candidacies, "elsewhere").post(
        f"/candidacies/{broken}/no-hesitations")
    assert answer.status_code == 404


def test_the_dashboard_flags_a_broken_chain_and_refuses_its_forms(
        app: Any, candidacies: Candidacies, database_url: str) -> None:
    cid = candidacies.record_interview(COACH, interview(company="Northwind")).candidacy_id
    client = TestClient(app, base_url=ORIGIN)
    sign_in(client, create_token(candidacies, workspace=WORKSPACE, role="recruiter"))
    page = client.get(f"/dashboard/candidacies/{cid}").text
    assert 'data-role="chain-broken"' not in page
    action = f"/dashboard/candidacies/{cid}/record_no_hesitations"
    fields = form_fields(page, action)
    _tamper(database_url, candidacies, cid)
    page = client.get(f"/dashboard/candidacies/{cid}").text
    assert 'data-role="chain-broken"' in page and "altered at version 1" in page
    assert action not in page  # no forms on a broken chain
    refused = client.post(action, data=fields, headers={"Origin": ORIGIN},
                          follow_redirects=False)
    assert refused.status_code == 409
    assert "Not applied" in refused.text and "not what was recorded" in refused.text
    assert candidacies.get(cid, WORKSPACE).version == 1


def test_a_deleted_last_event_refuses_commands_too(
        app: Any, candidacies: Candidacies, database_url: str) -> None:
    """Removed with SQL, its recorded hash stays: the check's one query finds it."""
    cid = candidacies.record_interview(COACH, interview(company="Northwind")).candidacy_id
    candidacies.record_no_hesitations(COACH, cid)
    raw = Raw(database_url, candidacies)
    raw.run(f"DELETE FROM {raw.events} WHERE originator_id=? AND originator_version=2",
            raw.id(cid))
    answer = _api(app, candidacies).post(f"/candidacies/{cid}/next-step",
                                         json={"description": "onsite"})
    assert answer.status_code == 409, answer.text
    assert (answer.json()["finding"], answer.json()["version"]) == ("removed", 2)


def _long(candidacies: Candidacies) -> str:
    """A candidacy of 26 events, snapshotted at 20 (Closer snapshots every 20)."""
    cid = candidacies.record_interview(COACH, interview(company="Northwind")).candidacy_id
    for i in range(25):
        candidacies.raise_hesitation(COACH, cid, f"Worried about the rota, point {i}")
    assert candidacies.get(cid, WORKSPACE).version == 26
    return str(cid)


@pytest.mark.parametrize("version", [21, 26])
def test_a_break_after_the_latest_snapshot_refuses_commands(
        app: Any, candidacies: Candidacies, database_url: str, version: int) -> None:
    """The first event after the snapshot and the last one."""
    cid = _long(candidacies)
    raw = Raw(database_url, candidacies)
    _, _, state = raw.event(cid, version)
    raw.set_state(cid, version, state + b" ")  # still valid JSON, not what was written
    answer = _api(app, candidacies).post(f"/candidacies/{cid}/no-hesitations")
    assert answer.status_code == 409, answer.text
    problem = answer.json()
    assert (problem.get("finding"), problem.get("version")) == ("altered", version), problem
    assert candidacies.get(cid, WORKSPACE).version == 26


def test_a_removed_event_after_the_snapshot_refuses_commands(
        app: Any, candidacies: Candidacies, database_url: str) -> None:
    cid = _long(candidacies)
    raw = Raw(database_url, candidacies)
    raw.run(f"DELETE FROM {raw.events} WHERE originator_id=? AND originator_version=23",
            raw.id(cid))
    answer = _api(app, candidacies).post(f"/candidacies/{cid}/no-hesitations")
    assert answer.status_code == 409, answer.text
    assert (answer.json()["finding"], answer.json()["version"]) == ("removed", 23)


def test_a_break_below_the_latest_snapshot_refuses_commands_too(
        app: Any, candidacies: Candidacies, database_url: str) -> None:
    """A command is judged on the snapshot, not on the events below it, but the issue's
    promise is that commands on a broken chain say so: the whole chain is checked."""
    cid = _long(candidacies)
    _tamper(database_url, candidacies, cid)
    client = _api(app, candidacies)
    answer = client.post(f"/candidacies/{cid}/no-hesitations")
    assert answer.status_code == 409, answer.text
    assert (answer.json()["finding"], answer.json()["version"]) == ("altered", 1)
    events = client.get(f"/candidacies/{cid}/events").json()
    assert events["chain_broken"]["kind"] == "altered" and events["chain_broken"]["version"] == 1


def test_the_tick_passes_over_a_broken_chain_and_decides_the_others(
        candidacies: Candidacies, database_url: str) -> None:
    from datetime import UTC, datetime

    from builders import candidacy_at

    from engine.scheduler import tick

    broken, intact = (candidacy_at(candidacies, COACH, "next_step_closed") for _ in range(2))
    _tamper(database_url, candidacies, broken)
    before, others = (candidacies.get(c, WORKSPACE).version for c in (broken, intact))
    report = tick(candidacies, datetime(2026, 11, 25, 18, 0, tzinfo=UTC))  # thank-yous due
    assert (report.candidacies, report.skipped_broken, report.actions["thank_you"]) == \
        (2, 1, 1)
    assert candidacies.get(broken, WORKSPACE).version == before  # nothing recorded on it
    assert candidacies.get(intact, WORKSPACE).version > others  # its thank-you decided


def test_a_command_line_correction_on_a_broken_chain_is_refused(
        candidacies: Candidacies, database_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from cli_support import configure, runner

    from api.cli import app as cli

    cid = candidacies.record_interview(COACH, interview(company="Northwind", interviewers=[
        {"name": "Daniel Whitfield", "title": "VP Engineering"}])).candidacy_id
    _tamper(database_url, candidacies, cid)
    configure(monkeypatch, database_url, tmp_path)
    refused = runner.invoke(cli, ["correct", cid, "--person", "Daniel Whitfield", "--field",
                                  "email", "--value", "daniel@northwind.example", "--by", "maya"])
    assert refused.exit_code == 1, refused.output
    assert "not applied" in refused.output and "altered" in refused.output
    assert "closer audit verify" in refused.output
    assert candidacies.get(cid, WORKSPACE).version == 1  # nothing recorded


def test_a_page_with_two_broken_chains_skips_exactly_those(
        candidacies: Candidacies, database_url: str) -> None:
    """The tick reads a page's chains in one query: of six due candidacies in one page,
    the one with an altered event and the one whose last event was deleted (its hash
    stays) are passed over, each logged with its own first break; the four around them
    are decided."""
    import logging
    from datetime import UTC, datetime

    import structlog
    from builders import candidacy_at

    from engine.scheduler import tick

    ids = [candidacy_at(candidacies, COACH, "next_step_closed") for _ in range(6)]
    altered, removed = ids[1], ids[4]
    before = {cid: candidacies.get(cid, WORKSPACE).version for cid in ids}
    _tamper(database_url, candidacies, altered)
    raw = Raw(database_url, candidacies)
    raw.run(f"DELETE FROM {raw.events} WHERE originator_id=? AND originator_version=?",
            raw.id(removed), before[removed])
    previous = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
                        cache_logger_on_first_use=False)
    try:
        with structlog.testing.capture_logs() as logs:
            report = tick(candidacies, datetime(2026, 11, 25, 18, 0, tzinfo=UTC))
    finally:
        structlog.configure(**previous)
    assert (report.candidacies, report.skipped_broken, report.actions["thank_you"]) == \
        (6, 2, 4)
    warned = {(entry["candidacy_id"], entry["finding"].split(":")[0]) for entry in logs
              if entry["event"] == "chain broken: not decided"}
    assert warned == {(altered, "altered"), (removed, "removed")}
    assert f"version {before[removed]}" in next(
        entry["finding"] for entry in logs if entry.get("candidacy_id") == removed)
    stored = {cid: raw.run(f"SELECT MAX(originator_version) FROM {raw.events} WHERE "
                           "originator_id=?", raw.id(cid))[0][0] for cid in ids}
    assert stored[altered] == before[altered]  # nothing recorded on either
    assert stored[removed] == before[removed] - 1
    assert all(stored[cid] > before[cid] for cid in ids if cid not in (altered, removed))


def test_a_policy_migration_passes_over_a_broken_chain_and_moves_the_others(
        candidacies: Candidacies, database_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`closer policy migrate` (and the API's migration, the same `engine.migration`)
    records no `PolicyMigrated` on altered events: that one fails naming its break, the
    others move, exit 1."""
    from cli_support import configure, runner

    from api.cli import app as cli
    from engine.policy import default_policy

    candidacies.policies.publish(default_policy().model_copy(update={"version": 2}))
    broken, intact = (candidacies.record_interview(COACH, interview(company="Northwind"))
                      .candidacy_id for _ in range(2))
    _tamper(database_url, candidacies, broken)
    configure(monkeypatch, database_url, tmp_path)
    result = runner.invoke(cli, ["policy", "migrate", "--to", "playbook@2", "--all",
                                 "--workspace", WORKSPACE, "--by", "ops"])
    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())
    assert f"moved {intact}" in output
    assert f"failed {broken}: not migrated" in output and "altered" in output
    assert "closer audit verify" in output
    assert "playbook@2: 1 moved, 0 already on it, 1 failed" in output
    assert candidacies.get(broken, WORKSPACE).version == 1  # nothing recorded on it
    assert candidacies.get(intact, WORKSPACE).policy["version"] == 2


def test_the_outbox_sends_nothing_for_a_broken_chain_and_records_nothing_on_it(
        candidacies: Candidacies, database_url: str,
        smtp_server: SmtpServer) -> None:  # noqa: F811
    """A thank-you queued for a candidacy whose stored history was then altered is
    blocked with a `chain-broken` finding naming the break (a person retries it once the
    history is restored): no email goes, no delivery fact is recorded on it; the other
    candidacy's thank-you is delivered."""
    from adapters.email import EmailAdapter
    from adapters.outbox import Dispatcher
    from adapters.outbox_rows import message_rows

    ids = []
    for _ in range(2):
        cid = candidacies.record_interview(COACH, interview(company="Northwind")).candidacy_id
        candidacies.record_no_hesitations(COACH, cid)
        candidacies.close_next_step(COACH, cid, "a systems design interview")
        candidacies.send_thank_you(COACH, cid, "email", mode="send_for_me")
        ids.append(cid)
    broken, intact = ids

    def stored_versions(cid: str) -> int:  # read around the chain check, as SQL would
        return len(Raw(database_url, candidacies).run(
            f"SELECT originator_version FROM {candidacies.recorder.events_table_name} "
            "WHERE originator_id=?", Raw(database_url, candidacies).id(cid)))

    dispatcher = Dispatcher(candidacies, adapters={"email": EmailAdapter(
        host=smtp_server.host, port=smtp_server.port, starttls=False)})
    while dispatcher.follow():  # both thank-yous queued
        pass
    _tamper(database_url, candidacies, broken)
    versions = candidacies.get(intact, WORKSPACE).version, stored_versions(broken)

    report = dispatcher.run_once()

    assert (report.sent, report.blocked) == (1, 1)
    assert len(smtp_server.sink.received) == 1
    rows = {row.candidacy_id: row for row in message_rows(candidacies)}
    assert (rows[intact].status, rows[broken].status) == ("sent", "blocked")
    [finding] = candidacies.repository.get(UUID(rows[broken].id)).findings
    assert finding["code"] == "chain-broken" and "altered" in finding["message"]
    assert "closer audit verify" in finding["message"]
    # Nothing recorded on the broken one; the intact one's delivery is.
    assert stored_versions(broken) == versions[1]
    assert candidacies.get(intact, WORKSPACE).version > versions[0]
