"""`closer policy show NAME@VERSION`, `diff`, `list` and `migrate` against a real store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from builders import candidacy_at, interview
from cli_support import configure, run

from api.read_models import follower
from engine.application import Candidacies
from engine.policy import default_policy
from engine.store import eventsourcing_env
from engine.values import Actor

ACTOR = Actor(user="maya@agency.example", workspace="agency")
QUICK = default_policy().model_copy(update={
    "version": 2, "description": "quicker nudges",
    "nudge": default_policy().nudge.model_copy(update={"spacing_business_days": 3})})

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def store(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[Candidacies]:
    configure(monkeypatch, database_url, tmp_path)
    app = Candidacies(eventsourcing_env(database_url))
    app.policies.publish(QUICK)
    yield app
    app.close()


def policy_of(app: Candidacies, candidacy_id: str) -> dict[str, object]:
    return dict(app.get(candidacy_id, ACTOR.workspace).policy)


def test_show_a_published_version_and_what_it_changes(store: Candidacies) -> None:
    shown = run("policy", "show", "playbook@2")
    assert 'description = "quicker nudges"' in shown and "spacing_business_days = 3" in shown
    assert "version = 2" in shown
    assert "version = 1" in run("policy", "show", "playbook@1")
    with_diff = run("policy", "show", "playbook@2", "--against", "playbook@1")
    assert "playbook@2 against playbook@1: 1 rule(s) changed" in with_diff
    assert "nudge.spacing_business_days" in with_diff


def test_diff_two_versions(store: Candidacies) -> None:
    output = run("policy", "diff", "playbook@1", "playbook@2")
    line = next(x for x in output.splitlines() if "nudge.spacing_business_days" in x)
    assert [cell.strip() for cell in line.split("│")[1:4]] == [
        "nudge.spacing_business_days", "5", "3"]
    assert "description" not in output.split("changed")[1]  # identity is not a rule
    assert "has the same rules" in run("policy", "diff", "playbook@2", "playbook@2")


def test_unknown_and_malformed_versions_fail_in_one_line(store: Candidacies) -> None:
    assert "no policy 'playbook' version 7 has been published" in run(
        "policy", "show", "playbook@7", code=1)
    assert "is not NAME@VERSION" in run("policy", "diff", "playbook@1", "playbook@0", code=1)
    assert "NAME@VERSION or --version, not both" in run(
        "policy", "show", "playbook@2", "--version", "1", code=1)


def test_list_counts_the_candidacies_on_each_version(store: Candidacies) -> None:
    store.record_interview(ACTOR, interview())
    store.record_interview(ACTOR, interview(), policy={"name": "playbook", "version": 2})
    store.record_interview(Actor(user="lee", workspace="rival"), interview())
    behind = run("policy", "list")
    assert "behind the event log" in behind
    follower(store).run_once()
    listed = run("policy", "list")
    rows = {line.split("│")[1].strip(): line.split("│")[3].strip()
            for line in listed.splitlines() if "playbook@" in line}
    assert rows == {"playbook@1": "2", "playbook@2": "1"}
    assert "behind" not in listed
    assert "quicker nudges" in listed
    mine = run("policy", "list", "--workspace", "agency")
    assert {line.split("│")[3].strip() for line in mine.splitlines()
            if "playbook@" in line} == {"1"}


def test_migrate_one_many_or_all_with_a_dry_run(store: Candidacies) -> None:
    one = candidacy_at(store, ACTOR, "awaiting")
    others = [candidacy_at(store, ACTOR, "interviewed") for _ in range(2)]
    stalled = candidacy_at(store, ACTOR, "stalled")

    dry = run("policy", "migrate", "--to", "playbook@2", "--candidacy", one, "--dry-run")
    assert f"would move  {one}" in dry and "(dry run: nothing recorded)" in dry
    assert policy_of(store, one)["version"] == 1

    moved = run("policy", "migrate", "--to", "playbook@2", "--candidacy", one,
                "--reason", "pilot", "--by", "ops@agency.example")
    assert "playbook@2: 1 moved, 0 already on it, 0 failed" in moved
    event = store.history(one, ACTOR.workspace)[-1]
    assert (event.type, event.actor, event.data["reason"]) == (
        "PolicyMigrated", "ops@agency.example", "pilot")

    by_stage = run("policy", "migrate", "--to", "playbook@2", "--workspace", "agency",
                   "--stage", "interviewed", "--from", "playbook@1", "--dry-run")
    assert all(f"would move  {c}" in by_stage for c in others)

    everything = run("policy", "migrate", "--to", "playbook@2", "--workspace", "agency",
                     "--all")
    assert "2 moved, 1 already on it, 0 failed" in everything
    assert all(policy_of(store, c)["version"] == 2 for c in others)
    assert policy_of(store, stalled)["version"] == 1

    refused = run("policy", "migrate", "--to", "playbook@2", "--candidacy", stalled,
                  "--candidacy", "not-an-id", code=1)
    assert f"failed  {stalled}: cannot migrate_policy at stage 'stalled'" in refused
    assert "0 moved, 0 already on it, 2 failed" in refused


def test_migrate_needs_one_selection_and_a_published_target(store: Candidacies) -> None:
    candidacy_id = store.record_interview(ACTOR, interview()).candidacy_id
    assert "give exactly one of --candidacy" in run("policy", "migrate", "--to", "playbook@2",
                                                    code=1)
    assert "(got --candidacy and --all)" in run(
        "policy", "migrate", "--to", "playbook@2", "--candidacy", candidacy_id, "--all",
        code=1)
    assert "no policy 'playbook' version 5" in run(
        "policy", "migrate", "--to", "playbook@5", "--workspace", "agency", "--all", code=1)
    assert "--workspace: say which workspace" in run(
        "policy", "migrate", "--to", "playbook@2", "--all", code=1)
    assert "'limbo' is not a stage" in run(
        "policy", "migrate", "--to", "playbook@2", "--workspace", "agency", "--stage",
        "limbo", code=1)
    assert policy_of(store, candidacy_id)["version"] == 1


def test_starting_shows_and_chooses_the_version_new_candidacies_start_on(
        store: Candidacies) -> None:
    assert "agency: new candidacies start on playbook@1 (default)" in run(
        "policy", "starting", "--workspace", "agency")
    assert "agency: new candidacies start on playbook@2" in run(
        "policy", "starting", "--workspace", "agency", "playbook@2", "--by", "ops")
    assert "(already so)" in run("policy", "starting", "--workspace", "agency", "playbook@2")
    assert "start on playbook@2\n" in run("policy", "starting", "--workspace", "agency")
    assert "no policy 'playbook' version 4" in run(
        "policy", "starting", "--workspace", "agency", "playbook@4", code=1)
    fresh = Candidacies(store.env)  # (this process's object read the store before)
    try:
        started = fresh.record_interview(ACTOR, interview()).candidacy_id
        assert fresh.get(started, ACTOR.workspace).policy == {"name": "playbook", "version": 2}
    finally:
        fresh.close()
