"""Our own OpenAPI document: the contract's paths and stable operation ids, and schemathesis
fuzzing every operation (no 5xx, every response conforms to the document).  SQLite only:
the store does not change what the API answers."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from api_support import TestClient, walk_to
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi import checks as openapi_checks

from api.app import create_app
from api.auth import create_token
from api.settings import Settings
from engine.application import Candidacies
from engine.clock import FixedClock
from engine.policy import default_policy
from engine.store import eventsourcing_env

OPERATIONS = {
    ("POST", "/candidacies"): "recordInterview",
    ("GET", "/candidacies"): "listCandidacies",
    ("GET", "/candidacies/{candidacy_id}"): "getCandidacy",
    ("GET", "/candidacies/{candidacy_id}/events"): "getCandidacyEvents",
    ("GET", "/audit/verify"): "verifyAudit",
    ("POST", "/audit/erasures"): "eraseCandidacy",
    ("GET", "/candidacies/{candidacy_id}/messages"): "getCandidacyMessages",
    ("POST", "/candidacies/{candidacy_id}/hesitations"): "raiseHesitation",
    ("POST", "/candidacies/{candidacy_id}/hesitations/{hesitation_id}/address"):
        "addressHesitation",
    ("POST", "/candidacies/{candidacy_id}/no-hesitations"): "recordNoHesitations",
    ("POST", "/candidacies/{candidacy_id}/next-step"): "closeNextStep",
    ("POST", "/candidacies/{candidacy_id}/thank-you"): "sendThankYou",
    ("POST", "/candidacies/{candidacy_id}/nudges"): "sendNudge",
    ("POST", "/candidacies/{candidacy_id}/stall"): "stall",
    ("POST", "/candidacies/{candidacy_id}/corrections"): "correctDetails",
    ("POST", "/candidacies/{candidacy_id}/messages/{message_id}/retry"): "retryMessage",
    ("POST", "/candidacies/{candidacy_id}/messages/{message_id}/reroute"): "rerouteMessage",
    ("POST", "/candidacies/{candidacy_id}/messages/{message_id}/confirm"): "confirmMessage",
    ("POST", "/candidacies/{candidacy_id}/messages/{message_id}/edit"): "editMessage",
    ("POST", "/candidacies/{candidacy_id}/messages/{message_id}/approve"): "approveMessage",
    ("POST", "/candidacies/{candidacy_id}/replies"): "receiveReply",
    ("POST", "/candidacies/{candidacy_id}/offers"): "noteCompetingOffer",
    ("POST", "/candidacies/{candidacy_id}/pause"): "pauseCadence",
    ("POST", "/candidacies/{candidacy_id}/resume"): "resumeCadence",
    ("POST", "/candidacies/{candidacy_id}/withdraw"): "withdraw",
    ("POST", "/candidacies/{candidacy_id}/rounds"): "startNextRound",
    ("GET", "/events"): "listEvents",
    ("GET", "/events/stream"): "streamEvents",
    ("GET", "/agenda"): "getAgenda",
    ("POST", "/candidacies/{candidacy_id}/policy"): "migratePolicy",
    ("GET", "/policies"): "listPolicies",
    ("GET", "/policies/{name}/{version}"): "getPolicy",
    ("GET", "/policies/{name}/{version}/diff"): "diffPolicies",
    ("POST", "/policies/{name}/{version}/migrations"): "migrateCandidacies",
    ("POST", "/policies/{name}/{version}/starting"): "startNewCandidaciesOn",
    ("GET", "/healthz"): "health",
}


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The app on a SQLite file with candidacies at several stages and a recruiter token."""
    path: Path = tmp_path_factory.mktemp("schemathesis") / "closer.db"
    url = f"sqlite:///{path}"
    clock = FixedClock(datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    candidacies = Candidacies(eventsourcing_env(url), clock=clock)
    app = create_app(Settings(database_url=url), candidacies=candidacies)
    token = create_token(candidacies, workspace="agency", role="recruiter")
    candidacies.policies.publish(default_policy().model_copy(update={"version": 2}))
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        ids = [walk_to(client, stage) for stage in
               ("interviewed", "next_step_closed", "awaiting", "advanced")]
    yield {"app": app, "token": token, "ids": ids}
    candidacies.close()


@pytest.fixture(scope="module")
def api_schema(fuzzed: dict[str, Any]) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed["app"])


FUZZED = sorted(op for op in OPERATIONS.values() if op != "streamEvents")  # endless response;
# tests/test_api_events.py covers the stream.


@pytest.mark.parametrize("operation_id", FUZZED)
def test_every_operation_conforms_and_never_fails_on_client_input(
        operation_id: str, api_schema: Any, fuzzed: dict[str, Any]) -> None:
    operation = api_schema.find_operation_by_id(operation_id)
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                      operation.as_strategy(GenerationMode.NEGATIVE))
    headers = {"Authorization": f"Bearer {fuzzed['token']}"}

    @given(case=cases, aim=st.sampled_from(fuzzed["ids"] + [None]))
    @settings(max_examples=30, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: Any, aim: str | None) -> None:
        excluded = [openapi_checks.positive_data_acceptance]
        replaced = {ParameterLocation.HEADER}  # the token is always sent
        if aim and "candidacy_id" in (case.path_parameters or {}):
            case.path_parameters["candidacy_id"] = aim  # real candidacies, at several stages
            replaced.add(ParameterLocation.PATH)
        invalid = {location for location, info in (case.meta.components if case.meta else {})
                   .items() if info.mode is GenerationMode.NEGATIVE}
        if invalid and invalid <= replaced:
            # What made the case invalid was replaced above: the request may now be valid
            # and rightly accepted (no 5xx and conformance are still checked).
            excluded.append(openapi_checks.negative_data_rejection)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            case.call_and_validate(headers=headers, excluded_checks=excluded)

    check()


def test_the_document_has_the_contracts_operations_with_stable_ids(
        fuzzed: dict[str, Any]) -> None:
    with TestClient(fuzzed["app"]) as client:
        document = client.get("/openapi.json").json()
        docs = client.get("/docs")

    found = {(method.upper(), path): operation["operationId"]
             for path, methods in document["paths"].items()
             for method, operation in methods.items()}
    assert found == OPERATIONS
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    for path, methods in document["paths"].items():
        for operation in methods.values():
            for status, response in operation["responses"].items():
                if status[0] in "45":
                    assert list(response["content"]) == ["application/problem+json"], (
                        path, status)
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


POSTS = sorted(op for (method, _), op in OPERATIONS.items() if method == "POST")


def _nested(depth: int) -> object:
    value: object = "deep"
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


@pytest.mark.parametrize("operation_id", POSTS)
def test_oversized_non_json_and_deep_bodies_are_answered_as_documented(
        operation_id: str, api_schema: Any, fuzzed: dict[str, Any]) -> None:
    operation = api_schema.find_operation_by_id(operation_id)
    path = {name: value for name, value in
            {"candidacy_id": fuzzed["ids"][0], "hesitation_id": "r1h1",
             "message_id": "00000000-0000-4000-8000-000000000000", "name": "playbook",
             "version": 2}.items()
            if f"{{{name}}}" in operation.path}
    headers = {"Authorization": f"Bearer {fuzzed['token']}"}
    answers = {}
    for name, body, media_type in [("huge", {"text": "x" * 70_000}, "application/json"),
                                   ("plain", "some text", "text/plain"),
                                   ("deep", _nested(40), "application/json")]:
        case = operation.Case(path_parameters=path, body=body, media_type=media_type)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Status, content type and body conform to the document (413 and 415 included).
            answers[name] = case.call_and_validate(headers=headers).status_code

    assert answers == {"huge": 413, "plain": 415, "deep": 422}
