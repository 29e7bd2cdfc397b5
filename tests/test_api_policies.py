"""Policy versions over HTTP (issue 16): a candidacy starts on a chosen published version
(`RecordInterview.policy`), one is moved with `POST /candidacies/{id}/policy`, many with
`POST /policies/{name}/{version}/migrations`; `GET /policies` lists the versions with how
many candidacies run under each, `.../diff` says what changed."""

from __future__ import annotations

from typing import Any

import pytest
from api_support import history, ok, problem, record, sqlite_only, walk_to

from api.read_models import follower
from engine.application import Candidacies
from engine.policy import default_policy

pytest_plugins = ["api_fixtures"]  # api, client and client_for

QUICK = default_policy().model_copy(update={
    "version": 2, "description": "quicker nudges",
    "nudge": default_policy().nudge.model_copy(update={"spacing_business_days": 3})})


@pytest.fixture
def published(candidacies: Candidacies) -> None:
    candidacies.policies.publish(QUICK)


def js(response: Any) -> Any:
    return ok(response).json()


def policy_of(client: Any, candidacy_id: str) -> dict[str, Any]:
    return dict(client.get(f"/candidacies/{candidacy_id}").json()["policy"])


def test_an_interview_starts_on_the_version_it_names(client: Any, published: None) -> None:
    candidacy_id = record(client, policy="playbook@2")
    assert policy_of(client, candidacy_id) == {"name": "playbook", "version": 2}
    assert history(client, candidacy_id)[0]["data"]["policy"] == {"name": "playbook",
                                                                  "version": 2}
    assert policy_of(client, record(client)) == {"name": "playbook", "version": 1}


@sqlite_only
def test_an_unknown_or_malformed_version_is_refused_by_name(client: Any) -> None:
    from builders import PANEL, interview

    unknown = client.post("/candidacies", json=interview(interviewers=PANEL,
                                                         policy="playbook@7"))
    assert problem(unknown, 422, "invalid-input")["field"] == "policy"
    assert "no policy 'playbook' version 7 has been published" in unknown.json()["detail"]
    malformed = client.post("/candidacies", json=interview(interviewers=PANEL,
                                                           policy="playbook-2"))
    assert problem(malformed, 422, "invalid-input")["field"] == "policy"
    assert client.get("/candidacies").json()["items"] == []


def test_one_candidacy_is_moved_with_its_reason(client: Any, published: None) -> None:
    candidacy_id = walk_to(client, "awaiting")
    version = client.get(f"/candidacies/{candidacy_id}").json()["version"]

    moved = client.post(f"/candidacies/{candidacy_id}/policy",
                        json={"policy": "playbook@2", "reason": "the agency's cadence"},
                        headers={"If-Match": f'"{version}"', "Idempotency-Key": "move-1"})

    body = ok(moved).json()
    assert body == {"id": candidacy_id, "version": version + 1, "stage": "awaiting"}
    assert moved.headers["ETag"] == f'"{version + 1}"'
    event = history(client, candidacy_id)[-1]
    assert event["type"] == "PolicyMigrated"
    assert event["data"] == {"policy": {"name": "playbook", "version": 2},
                             "previous": {"name": "playbook", "version": 1},
                             "reason": "the agency's cadence"}
    again = client.post(f"/candidacies/{candidacy_id}/policy",
                        json={"policy": "playbook@2", "reason": "the agency's cadence"},
                        headers={"Idempotency-Key": "move-1"})
    assert again.json() == body and again.headers["Idempotent-Replayed"] == "true"
    assert len(history(client, candidacy_id)) == version + 1


def test_moving_one_is_refused_cleanly(client: Any, client_for: Any, published: None) -> None:
    candidacy_id = walk_to(client, "awaiting")
    stalled = walk_to(client, "stalled")
    before = history(client, candidacy_id)
    cases = [
        (candidacy_id, {"policy": "playbook@9"}, 422, "invalid-input"),
        (candidacy_id, {"policy": "playbook@1"}, 422, "invalid-input"),  # already on it
        (candidacy_id, {"policy": "playbook"}, 422, "invalid-input"),
        (candidacy_id, {"policy": "playbook@2", "colour": "red"}, 422, "invalid-input"),
        (stalled, {"policy": "playbook@2"}, 409, "illegal-command"),
        ("00000000-0000-0000-0000-000000000000", {"policy": "playbook@2"}, 404, "not-found"),
    ]
    for target, body, status, kind in cases:
        problem(client.post(f"/candidacies/{target}/policy", json=body), status, kind)
    viewer = client_for("viewer")
    problem(viewer.post(f"/candidacies/{candidacy_id}/policy", json={"policy": "playbook@2"}),
            403, "forbidden")
    rival = client_for("recruiter", workspace="rival-agency")
    problem(rival.post(f"/candidacies/{candidacy_id}/policy", json={"policy": "playbook@2"}),
            404, "not-found")
    stale = client.post(f"/candidacies/{candidacy_id}/policy", json={"policy": "playbook@2"},
                        headers={"If-Match": '"1"'})
    problem(stale, 412, "version-conflict")
    assert history(client, candidacy_id) == before


def test_many_are_moved_by_ids_filter_or_all(client: Any, client_for: Any,
                                             published: None) -> None:
    awaiting = [walk_to(client, "awaiting") for _ in range(2)]
    contoso = record(client, company="Contoso")
    stalled = walk_to(client, "stalled")
    theirs = record(client_for("recruiter", workspace="rival-agency"))
    url = "/policies/playbook/2/migrations"

    dry = js(client.post(url, json={"filter": {"stage": "awaiting"}, "dry_run": True}))
    assert (dry["dry_run"], dry["moved"], sorted(dry["moved_ids"])) == (True, 2,
                                                                         sorted(awaiting))
    assert policy_of(client, awaiting[0])["version"] == 1

    by_ids = js(client.post(url, json={"candidacy_ids": [awaiting[0], stalled, theirs],
                                       "reason": "pilot"}))
    assert (by_ids["selected"], by_ids["moved"], by_ids["failed"]) == (3, 1, 2)
    assert {f["candidacy_id"]: f["problem"] for f in by_ids["failures"]} == {
        stalled: "illegal-command", theirs: "not-found"}
    assert history(client, awaiting[0])[-1]["data"]["reason"] == "pilot"

    by_company = js(client.post(url, json={"filter": {"company": "Contoso",
                                                      "current": "playbook@1"}}))
    assert by_company["moved_ids"] == [contoso]

    everything = js(client.post(url, json={"all": True}))
    assert everything["moved_ids"] == [awaiting[1]]
    assert sorted(everything["unchanged_ids"]) == sorted([awaiting[0], contoso])
    assert everything["failed"] == 0  # the stalled one is left out of "all"
    assert js(client.post(url, json={"all": True}))["moved"] == 0  # nothing left to move
    assert policy_of(client_for("recruiter", workspace="rival-agency"), theirs)["version"] == 1


def test_a_migration_by_recruiter_reads_the_read_model(candidacies: Candidacies,
                                                       client_for: Any, published: None) -> None:
    maya, lee = client_for("recruiter"), client_for("admin")
    mine, theirs = record(maya), record(lee)
    follower(candidacies).run_once()
    recruiter = history(maya, mine)[0]["actor"]

    moved = js(maya.post("/policies/playbook/2/migrations",
                         json={"filter": {"recruiter": recruiter}}))

    assert moved["moved_ids"] == [mine]
    assert policy_of(lee, theirs)["version"] == 1


@sqlite_only
def test_a_migration_request_is_checked(client: Any, client_for: Any, published: None) -> None:
    url = "/policies/playbook/2/migrations"
    for body, field in [({}, "candidacy_ids"), ({"all": True, "filter": {}}, "all"),
                        ({"candidacy_ids": []}, "candidacy_ids"),
                        ({"filter": {"stage": "limbo"}}, "filter.stage"),
                        ({"filter": {"current": "v2"}}, "filter.current"),
                        ({"all": True, "nonsense": 1}, "nonsense")]:
        assert problem(client.post(url, json=body), 422, "invalid-input")["field"] == field
    assert "no policy 'playbook' version 3" in problem(
        client.post("/policies/playbook/3/migrations", json={"all": True}), 404,
        "not-found")["detail"]
    problem(client_for("viewer").post(url, json={"all": True, "dry_run": True}), 403,
            "forbidden")


def test_published_versions_with_pinned_counts_and_a_diff(
        candidacies: Candidacies, client: Any, client_for: Any, published: None) -> None:
    record(client)
    record(client, policy="playbook@2")
    record(client, policy="playbook@2")
    record(client_for("recruiter", workspace="rival-agency"), policy="playbook@2")
    follower(candidacies).run_once()

    listed = js(client.get("/policies"))["items"]
    assert [(p["policy"], p["pinned"]) for p in listed] == [("playbook@1", 1),
                                                           ("playbook@2", 2)]
    assert listed[1]["description"] == "quicker nudges"
    detail = js(client.get("/policies/playbook/2"))
    assert detail["rules"]["nudge"]["spacing_business_days"] == 3
    assert "spacing_business_days = 3" in detail["toml"]
    assert detail["fingerprint"] == QUICK.fingerprint()
    diff = js(client.get("/policies/playbook/2/diff", params={"against": "playbook@1"}))
    assert diff == {"policy": "playbook@2", "against": "playbook@1", "changes": [
        {"field": "nudge.spacing_business_days", "before": 5, "after": 3}]}
    assert js(client_for("viewer").get("/policies"))["items"][0]["pinned"] == 1
    problem(client.get("/policies/playbook/5"), 404, "not-found")
    problem(client.get("/policies/playbook/2/diff", params={"against": "nope@1"}), 404,
            "not-found")
    problem(client.get("/policies/playbook/2/diff", params={"against": "nope"}), 422,
            "invalid-input")


def test_side_by_side_lists_every_rule_and_marks_those_that_differ() -> None:
    from api.routes.policies import side_by_side

    rows = side_by_side([default_policy(), QUICK, QUICK])
    differing = [(r.field, r.values) for r in rows if r.differs]
    assert differing == [("nudge.spacing_business_days", [5, 3, 3])]
    fields = [r.field for r in rows]
    assert "description" not in fields and "version" not in fields
    assert fields[:2] == ["thank_you.deadline_days_after_interview",
                          "thank_you.deadline_local_time"]
    assert side_by_side([]) == []


def test_new_candidacies_start_on_the_version_the_workspace_chose(
        client: Any, client_for: Any, published: None) -> None:
    assert js(client.get("/policies"))["starting"] == "playbook@1"
    problem(client_for("viewer").post("/policies/playbook/2/starting"), 403, "forbidden")
    problem(client.post("/policies/playbook/6/starting"), 404, "not-found")

    assert js(client.post("/policies/playbook/2/starting")) == {"starting": "playbook@2",
                                                               "changed": True}
    assert js(client.post("/policies/playbook/2/starting"))["changed"] is False

    assert js(client.get("/policies"))["starting"] == "playbook@2"
    assert policy_of(client, record(client))["version"] == 2
    assert policy_of(client, record(client, policy="playbook@1"))["version"] == 1
    rival = client_for("recruiter", workspace="rival-agency")
    assert js(rival.get("/policies"))["starting"] == "playbook@1"
    assert policy_of(rival, record(rival))["version"] == 1


@pytest.mark.parametrize("database_url", ["memory"], indirect=True)
def test_the_in_memory_store_keeps_no_read_models_and_says_so(client: Any) -> None:
    assert [p["pinned"] for p in js(client.get("/policies"))["items"]] == [None]
    assert js(client.get("/policies/playbook/1"))["pinned"] is None
    refused = client.post("/policies/playbook/1/migrations",
                          json={"filter": {"recruiter": "maya"}})
    assert problem(refused, 422, "invalid-input")["field"] == "filter.recruiter"
