"""The workspace's global event log: `GET /events` pages and `GET /events/stream` (SSE) deliver
every event of the workspace once, in order, and resume after a disconnect."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC
from typing import Any

import httpx
import pytest
from api_support import (
    OTHER_WORKSPACE,
    LiveServer,
    ok,
    problem,
    record,
    sqlite_only,
    walk_to,
)
from builders import interview

from api.app import create_app
from api.auth import create_token
from api.settings import Settings
from engine.application import Candidacies
from engine.clock import FixedClock
from engine.store import eventsourcing_env

GUARD_SECONDS = 60  # a hung stream fails the test instead of hanging the suite

pytest_plugins = ["api_fixtures"]  # api, client and client_for


def all_events(client: Any, limit: int = 1000) -> list[dict[str, Any]]:
    """The whole log, page by page."""
    events: list[dict[str, Any]] = []
    after = 0
    while True:
        page = ok(client.get("/events", params={"after": after, "limit": limit})).json()
        events += page["events"]
        after = page["next_after"]
        if not page["has_more"]:
            return events


def some_history(client: Any) -> list[str]:
    """Two candidacies with a few events each; their ids."""
    first = walk_to(client, "awaiting")
    second = record(client, company="Globex")
    ok(client.post(f"/candidacies/{second}/hesitations", json={"text": "Salary?"}))
    ok(client.post(f"/candidacies/{first}/nudges",
                   json={"override": {"reason": "the recruiter asked for a call"}}))
    return [first, second]


def test_the_log_holds_the_workspaces_events_in_order(client_for: Any) -> None:
    ours, theirs = client_for("recruiter"), client_for("recruiter", workspace=OTHER_WORKSPACE)
    first, second = some_history(ours)
    record(theirs, company="Initech")  # another workspace's event, between ours
    ok(ours.post(f"/candidacies/{second}/hesitations/r1h1/address", json={"response": "Fair"}))

    events = all_events(ours)

    ids = [e["id"] for e in events]
    assert ids == sorted(set(ids)), "strictly increasing, no duplicates"
    assert [(e["candidacy_id"], e["version"]) for e in events] == [
        (first, 1), (first, 2), (first, 3), (first, 4), (first, 5), (second, 1), (second, 2),
        (first, 6), (second, 3)]
    assert [e["type"] for e in events][-2:] == ["NudgeSent", "HesitationAddressed"]
    last = events[-1]
    assert last["actor"] == "recruiter@agency" and last["at"] == "2026-11-25T10:00:00Z"
    assert last["data"]["answer"] == "Fair" and last["stage"] == "hesitations_addressed"
    assert all(e["type"] != "Issued" for e in events), "token events are not in the log"
    assert [e["data"]["company"] for e in all_events(theirs)] == ["Initech"]


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_paging_with_the_last_id_reads_each_event_once(client: Any, limit: int) -> None:
    some_history(client)
    whole = all_events(client)

    paged = all_events(client, limit=limit)

    assert paged == whole and len(whole) == 8


def test_a_quiet_workspace_pages_past_a_busy_one_in_bounded_steps(
        client_for: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ours, theirs = client_for("recruiter"), client_for("recruiter", workspace=OTHER_WORKSPACE)
    mine = record(ours, company="Globex")
    for n in range(4):  # a busy neighbour: its events lie between ours
        record(theirs, company=f"Initech {n}")
    ok(ours.post(f"/candidacies/{mine}/hesitations", json={"text": "Salary?"}))
    monkeypatch.setattr("api.routes.events.MAX_SCAN", 2)  # each request looks 2 ids ahead

    pages = []
    after = 0
    while True:
        page = ok(ours.get("/events", params={"after": after})).json()
        pages.append(page)
        assert page["next_after"] > after or not page["has_more"]
        after = page["next_after"]
        if not page["has_more"]:
            break

    events = [e for page in pages for e in page["events"]]
    assert [(e["candidacy_id"], e["version"]) for e in events] == [(mine, 1), (mine, 2)]
    assert len(pages) >= 3, "the other workspace's events were skipped a window at a time"
    assert any(page["events"] == [] and page["has_more"] for page in pages)


def test_after_the_end_there_is_nothing_more(client: Any) -> None:
    some_history(client)
    end = all_events(client)[-1]["id"]
    page = ok(client.get("/events", params={"after": end})).json()
    assert page == {"events": [], "next_after": end, "has_more": False}


def test_scheduled_events_in_the_log_name_the_policy_and_rule(
        client: Any, candidacies: Candidacies, clock: FixedClock) -> None:
    candidacy_id = walk_to(client, "next_step_closed")
    candidacies.apply_policy(candidacy_id, clock.now())

    scheduled = all_events(client)[-1]

    assert scheduled["type"] == "ThankYouDecided" and scheduled["policy"]["name"] == "playbook"
    assert scheduled["rule"] and scheduled["decided_by"]["rule"] == scheduled["rule"]


@sqlite_only
@pytest.mark.parametrize("params", [{"after": -1}, {"limit": 0}, {"limit": 1001},
                                    {"after": "latest"}])
def test_bad_log_parameters_are_a_422(client: Any, params: dict[str, Any]) -> None:
    problem(client.get("/events", params=params), 422, "invalid-input")


# -- the stream --------------------------------------------------------------------------------


def read_stream(url: str, token: str, count: int, *, last_event_id: int | None = None,
                after: int | None = None,
                on_event: Callable[[int], None] | None = None) -> list[tuple[int, dict[str, Any]]]:
    """Read ``count`` events from the stream, then disconnect."""
    import json

    headers = {"Authorization": f"Bearer {token}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    params = {"after": after} if after is not None else {}
    events: list[tuple[int, dict[str, Any]]] = []
    deadline = time.monotonic() + GUARD_SECONDS
    with httpx.stream("GET", f"{url}/events/stream", headers=headers, params=params,
                      timeout=GUARD_SECONDS) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            assert time.monotonic() < deadline, f"only {len(events)} of {count} events came"
            if line.startswith(":"):
                continue  # a keep-alive comment
            if line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
                continue
            if "id" in fields:
                event_id = int(fields["id"])
                events.append((event_id, json.loads(fields["data"])))
                if on_event:
                    on_event(len(events))
                if len(events) == count:
                    break
            fields = {}
    return events


def test_the_stream_delivers_in_order_and_resumes_without_gaps_or_duplicates(
        api: Any, client: Any) -> None:
    some_history(client)  # 8 events before anyone listens
    with LiveServer(api) as server:
        first = read_stream(server.url, client.token, 3)
        candidacy_id = record(client, company="Umbrella")  # while disconnected
        ok(client.post(f"/candidacies/{candidacy_id}/no-hesitations"))

        caught_up = threading.Event()
        rest: list[tuple[int, dict[str, Any]]] = []
        reader = threading.Thread(target=lambda: rest.extend(read_stream(
            server.url, client.token, 8, last_event_id=first[-1][0],
            on_event=lambda n: caught_up.set() if n == 7 else None)))
        reader.start()
        assert caught_up.wait(GUARD_SECONDS), "the resumed stream did not catch up"
        ok(client.post(f"/candidacies/{candidacy_id}/next-step",
                       json={"description": "Panel"}))  # live, while connected
        reader.join(GUARD_SECONDS)

    streamed = first + rest
    logged = all_events(client)
    assert [event_id for event_id, _ in streamed] == [e["id"] for e in logged]
    assert [data for _, data in streamed] == logged
    assert logged[-1]["type"] == "NextStepClosed" and len(logged) == 11


def test_the_stream_starts_after_a_given_position_and_keeps_to_the_workspace(
        api: Any, client_for: Any) -> None:
    ours, theirs = client_for("viewer"), client_for("recruiter", workspace=OTHER_WORKSPACE)
    writer = client_for("recruiter")
    some_history(writer)
    record(theirs)
    start = all_events(ours)[3]["id"]

    with LiveServer(api) as server:
        streamed = read_stream(server.url, ours.token, 4, after=start)

    assert [event_id for event_id, _ in streamed] == [e["id"] for e in all_events(ours)[4:]]


@sqlite_only
def test_the_stream_refuses_a_bad_resume_position(client: Any) -> None:
    response = client.get("/events/stream", headers={"Last-Event-ID": "yesterday"})
    problem(response, 422, "invalid-input")
    problem(client.get("/events/stream", params={"after": -5}), 422, "invalid-input")


# -- eight writers on PostgreSQL ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_reader_tailing_eight_concurrent_writers_gets_exactly_the_committed_events(
        database_url: str) -> None:
    """Two app instances (like two workers) on one PostgreSQL; eight writers commit at once,
    some on one shared candidacy; a reader tails the stream, reconnecting now and then."""
    clock = FixedClock(time_now())
    apps = [Candidacies(eventsourcing_env(database_url), clock=clock) for _ in range(2)]
    servers = [LiveServer(create_app(Settings(database_url=database_url,
                                              sse_poll_seconds=0.01), candidacies=app))
               for app in apps]
    token = create_token(apps[0], workspace="agency", role="recruiter")
    headers = {"Authorization": f"Bearer {token}"}
    committed: set[tuple[str, int]] = set()
    refused: list[int] = []
    lock = threading.Lock()

    def commit(http: httpx.Client, method: str, path: str, body: Any = None) -> Any:
        response = http.request(method, path, json=body)
        assert response.status_code < 500, response.text
        if response.status_code in (200, 201):
            result = response.json()
            with lock:
                committed.add((result["id"], result["version"]))
            return result
        with lock:
            refused.append(response.status_code)
        return None

    try:
        for server in servers:
            server.__enter__()
        with httpx.Client(base_url=servers[0].url, headers=headers, timeout=60) as setup:
            shared = commit(setup, "POST", "/candidacies", interview())["id"]
            commit(setup, "POST", f"/candidacies/{shared}/no-hesitations")

        def writer(n: int) -> None:
            with httpx.Client(base_url=servers[n % 2].url, headers=headers, timeout=60) as http:
                for round_ in range(3):
                    own = commit(http, "POST", "/candidacies",
                                 interview(company=f"Writer {n} round {round_}"))["id"]
                    for path, body in [("hesitations", {"text": "On-call?"}),
                                       ("hesitations/r1h1/address", {"response": "Yes"}),
                                       ("next-step", {"description": "Onsite"}),
                                       ("thank-you", {"medium": "email"}),
                                       ("nudges", None)]:
                        commit(http, "POST", f"/candidacies/{own}/{path}", body)
                    commit(http, "POST", f"/candidacies/{shared}/offers",
                           {"company": f"Offer {n}.{round_}",
                            "deadline": "2026-12-20T17:00:00+00:00"})

        streamed: list[tuple[int, dict[str, Any]]] = []
        writers_done = threading.Event()

        def reader() -> None:
            # Reconnect every 25 events, resuming from the last id seen, until the writers
            # are done and every committed event has arrived.
            # (Only events whose commit has answered are waited for: those are in the log.)
            deadline = time.monotonic() + 5 * GUARD_SECONDS
            while time.monotonic() < deadline:
                done = writers_done.is_set()
                with lock:
                    missing = len(committed) - len(streamed)
                if missing <= 0:
                    if done:
                        return
                    writers_done.wait(0.05)
                    continue
                last = streamed[-1][0] if streamed else None
                streamed.extend(read_stream(servers[len(streamed) % 2].url, token,
                                            min(25, missing), last_event_id=last))

        tail = threading.Thread(target=reader)
        tail.start()
        threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5 * GUARD_SECONDS)
        writers_done.set()
        tail.join(5 * GUARD_SECONDS)
        assert not tail.is_alive(), "the reader never caught up"

        with httpx.Client(base_url=servers[1].url, headers=headers, timeout=60) as check:
            logged = all_events(check)
    finally:
        for server in servers:
            server.__exit__(None, None, None)
        for app in apps:
            app.close()

    ids = [event_id for event_id, _ in streamed]
    assert ids == sorted(set(ids)), "in order, no duplicates"
    assert [data for _, data in streamed] == logged, "exactly the log, nothing skipped"
    assert {(e["candidacy_id"], e["version"]) for e in logged} == committed
    assert len(logged) == len(committed) == 2 + 8 * 3 * 7 - len(refused)
    assert set(refused) <= {409}


def time_now() -> Any:
    from datetime import datetime

    return datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
