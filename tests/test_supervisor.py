"""The supervisor of `closer serve`'s background workers, and what /healthz shows of them.

The supervisor's clock is fixed and its checks are called by the test, so restarts and
back-off are decided without any timing; only the worker threads really run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_support import TestClient, sqlite_only

from adapters.console import ConsoleAdapter
from adapters.message import Message
from adapters.outbox import Dispatcher
from api.app import create_app
from api.settings import Settings
from api.supervisor import Supervisor, down, read_state
from engine.application import Candidacies
from engine.clock import FixedClock

START = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
GUARD_SECONDS = 30


class Fatal(BaseException):
    """An injected fatal error: it ends the worker's thread."""


class Script:
    """A worker whose passes follow a script: each call of ``run`` takes the next entry,
    an exception to raise, ``"return"`` to end on its own, or ``"beat"`` to complete a pass
    and then wait for ``stop``."""

    def __init__(self, *steps: Any) -> None:
        self.steps = list(steps)
        self.calls = 0

    def __call__(self, stop: threading.Event, beat: Callable[[], None]) -> None:
        self.calls += 1
        step = self.steps.pop(0) if self.steps else "beat"
        if isinstance(step, BaseException):
            raise step
        if step == "beat":
            beat()
            stop.wait()


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GUARD_SECONDS
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@pytest.fixture
def fixed() -> FixedClock:
    """The supervisor's clock (the store's `clock` fixture stays the suite's own)."""
    return FixedClock(START)


def supervisor(tmp_path: Path, clock: FixedClock, run: Script, **options: Any) -> Supervisor:
    made = Supervisor(state_file=tmp_path / "workers.json", clock=clock, **options)
    made.add("outbox", run)
    return made


def test_a_crashed_worker_is_shown_down_then_restarted_after_its_back_off(
        tmp_path: Path, fixed: FixedClock) -> None:
    run = Script(RuntimeError("the store went away"), "beat")
    workers = supervisor(tmp_path, fixed, run, restart_seconds=10)
    workers.check()
    until(lambda: workers.snapshot()["outbox"]["state"] == "restarting", "never crashed")

    state = read_state(tmp_path / "workers.json")["outbox"]
    assert state == workers.snapshot()["outbox"]  # what every HTTP worker reads
    assert state["last_error"] == "RuntimeError: the store went away"
    assert state["down_since"] == state["last_error_at"] == START.isoformat()
    assert (state["restarts"], state["last_success_at"]) == (0, None)
    assert down(read_state(workers.state_file), fixed.now(), 5) == []

    fixed.advance(timedelta(seconds=5))
    workers.check()  # its back-off (10 s) is not over
    assert run.calls == 1
    assert down(read_state(workers.state_file), fixed.now(), 5) == ["outbox"]

    fixed.advance(timedelta(seconds=5))
    workers.check()
    until(lambda: workers.snapshot()["outbox"]["last_success_at"] is not None,
          "never completed a pass after its restart")
    state = read_state(workers.state_file)["outbox"]
    assert (state["state"], state["restarts"], state["down_since"]) == ("running", 1, None)
    assert state["last_error"] == "RuntimeError: the store went away"  # kept for the record
    assert down(read_state(workers.state_file), fixed.now(), 5) == []

    workers.close()
    assert read_state(workers.state_file)["outbox"]["state"] == "stopped"
    assert run.calls == 2


def test_the_back_off_doubles_for_crashes_in_a_row_and_resets_after_a_pass(
        tmp_path: Path, fixed: FixedClock) -> None:
    run = Script(ValueError("1"), ValueError("2"), "beat")
    workers = supervisor(tmp_path, fixed, run, restart_seconds=1)

    def crashed(times: int) -> Callable[[], bool]:
        return lambda: (run.calls == times
                        and workers.snapshot()["outbox"]["state"] == "restarting")

    workers.check()
    until(crashed(1), "first crash")
    fixed.advance(timedelta(seconds=1))
    workers.check()  # restarted after 1 s
    until(crashed(2), "second crash")
    fixed.advance(timedelta(seconds=1))
    workers.check()
    assert run.calls == 2  # the second crash in a row waits 2 s
    fixed.advance(timedelta(seconds=1))
    workers.check()
    until(lambda: workers.snapshot()["outbox"]["down_since"] is None, "never recovered")
    state = workers.snapshot()["outbox"]
    # Down from the first crash of the streak to the first completed pass.
    assert (state["restarts"], state["last_error_at"]) == (
        2, (START + timedelta(seconds=1)).isoformat())
    workers.close()


def test_a_fatal_error_that_kills_the_thread_and_a_worker_that_just_returns_are_restarted(
        tmp_path: Path, fixed: FixedClock) -> None:
    run = Script(Fatal("injected"), "return", "beat")
    workers = supervisor(tmp_path, fixed, run, restart_seconds=1)
    workers.check()
    until(lambda: workers.snapshot()["outbox"]["state"] == "restarting", "fatal not seen")
    assert workers.snapshot()["outbox"]["last_error"] == "Fatal: injected"
    fixed.advance(timedelta(seconds=1))
    workers.check()
    until(lambda: run.calls == 2 and workers.snapshot()["outbox"]["last_error"]
          == "the worker stopped on its own", "a return was not taken for a crash")
    fixed.advance(timedelta(seconds=2))
    workers.check()
    until(lambda: workers.snapshot()["outbox"]["last_success_at"] is not None, "no pass")
    assert workers.snapshot()["outbox"]["restarts"] == 2
    workers.close()


# -- /healthz -------------------------------------------------------------------------


class Broken(ConsoleAdapter):
    def deliver(self, message: Message) -> Any:
        raise OSError(28, "No space left on device")


@sqlite_only
def test_healthz_shows_the_workers_and_answers_503_once_one_is_down_too_long(
        candidacies: Candidacies, database_url: str, tmp_path: Path,
        clock: FixedClock) -> None:
    state_file = tmp_path / "workers.json"
    run = Script(RuntimeError("boom"))
    workers = Supervisor(state_file=state_file, clock=clock, restart_seconds=600)
    workers.add("scheduler", Script("beat"))
    workers.add("outbox", run)
    settings = Settings(database_url=database_url, background_state_file=str(state_file),
                        background_down_seconds=60)
    with TestClient(create_app(settings, candidacies=candidacies)) as http:
        workers.check()
        until(lambda: read_state(state_file)["outbox"]["state"] == "restarting", "no crash")
        until(lambda: read_state(state_file)["scheduler"]["last_success_at"], "no pass")

        shown = http.get("/healthz")
        assert shown.status_code == 200
        body = shown.json()
        assert body["workers"]["scheduler"]["state"] == "running"
        outbox = body["workers"]["outbox"]
        assert (outbox["state"], outbox["last_error"]) == ("restarting", "RuntimeError: boom")
        assert body["messages"] == {"failed": 0, "dead_letter": 0, "last_failure": None}

        clock.advance(timedelta(seconds=60))
        refused = http.get("/healthz")
        assert refused.status_code == 503
        assert refused.headers["content-type"].startswith("application/problem+json")
        problem = refused.json()
        assert problem["type"] == "urn:closer:problem:worker-down"
        assert "outbox" in problem["detail"] and "RuntimeError: boom" in problem["detail"]
        assert problem["workers"]["outbox"]["state"] == "restarting"
        assert "scheduler" not in problem["detail"]
    workers.close()


def test_healthz_counts_the_messages_failing_now_and_names_the_last_failure(
        candidacies: Candidacies, database_url: str, tmp_path: Path) -> None:
    from test_outbox_faults import thank_yous

    [message_id] = thank_yous(candidacies, "video")
    Dispatcher(candidacies, adapters={"email": Broken(directory=tmp_path)}).run_once()
    settings = Settings(database_url=database_url, background=False)
    with TestClient(create_app(settings, candidacies=candidacies)) as http:
        body = http.get("/healthz").json()
    assert body["workers"] == {}
    assert (body["messages"]["failed"], body["messages"]["dead_letter"]) == (1, 0)
    last = body["messages"]["last_failure"]
    assert (last["message_id"], last["channel"], last["status"], last["attempts"]) == (
        message_id, "email", "failed", 1)
    assert "OSError" in last["error"] and "No space left" in last["error"]
