"""Faults injected into a real `closer serve` (uvicorn in a subprocess, SQLite): one bad
message or one dead thread never stops the rest, and /healthz tells (issue 14).

The faults come from outside the code under test: a third-party channel (`flaky`, in
tests/fault_plugin, found through the `closer.adapters` entry point on PYTHONPATH and
routed to by `CLOSER_CHANNEL_ROUTES`) and a card folder made read-only.  Waits have
generous deadlines; nothing is timed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import holidays
import httpx
from builders import interview
from test_api_serve import free_port

from adapters.outbox import history
from adapters.outbox_rows import message_rows
from engine.application import Candidacies
from engine.clock import FixedClock
from engine.scheduler import tick
from engine.store import eventsourcing_env
from engine.values import Actor

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = Path(__file__).resolve().parent / "fault_plugin"
GUARD_SECONDS = 90


def until(condition: Callable[[], Any], what: str, seconds: float = GUARD_SECONDS) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := condition()):
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.05)
    return found


def last_quiet_wednesday() -> datetime:
    """A recent Wednesday (no English holiday) at 09:00 UTC: the candidacies are thanked
    that day, and the server's own scheduler, a week or more later, finds nothing due."""
    day = datetime.now(UTC).date() - timedelta(days=7)
    while day.weekday() != 2 or day in holidays.country_holidays("GB", years=day.year):
        day -= timedelta(days=1)
    return datetime(day.year, day.month, day.day, 9, 0, tzinfo=UTC)


def seed(url: str, plan: dict[str, list[str]]) -> None:
    """``plan``: workspace → interview formats; each candidacy is thanked at noon (in
    person: a card, else an email)."""
    morning = last_quiet_wednesday()
    app = Candidacies(eventsourcing_env(url), clock=FixedClock(morning + timedelta(hours=1)))
    try:
        for workspace, formats in plan.items():
            actor = Actor(user="maya@example.com", workspace=workspace)
            for format_ in formats:
                data = interview(format=format_, interviewed_at=morning.isoformat())
                candidacy_id = app.record_interview(actor, data).candidacy_id
                app.record_no_hesitations(actor, candidacy_id)
                app.close_next_step(actor, candidacy_id, "a systems design interview")
        done = tick(app, morning + timedelta(hours=3)).actions["thank_you"]
        assert done == sum(map(len, plan.values()))
    finally:
        app.close()


@contextmanager
def serving(tmp_path: Path, url: str, *extra: str, **settings: str) -> Iterator[httpx.Client]:
    port = free_port()
    (tmp_path / "faults").mkdir(exist_ok=True)
    env = {**os.environ, "CLOSER_DATABASE_URL": url, "CLOSER_LOG_FORMAT": "json",
           "CLOSER_LOG_LEVEL": "warning", "CLOSER_TASKS_DIR": str(tmp_path / "tasks"),
           "CLOSER_SMTP_PORT": str(free_port()), "CLOSER_FAULTS_DIR": str(tmp_path / "faults"),
           "PYTHONPATH": os.pathsep.join([str(PLUGIN), os.environ.get("PYTHONPATH", "")]),
           "CLOSER_CHANNEL_ROUTES": "flaky:email=flaky", "CLOSER_DISPATCH_EVERY_SECONDS": "0.2",
           **{f"CLOSER_{k.upper()}": v for k, v in settings.items()}}
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port), *extra], cwd=ROOT,
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            def answers() -> bool:
                assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
                try:
                    return http.get("/healthz").status_code in (200, 503)
                except httpx.TransportError:
                    return False
            until(answers, "the server never answered /healthz")
            yield http
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(GUARD_SECONDS)
        log.close()


@contextmanager
def read_only(folder: Path) -> Iterator[Callable[[], None]]:
    """Make ``folder`` unwritable; yields the fix.  Root ignores modes, so as root the
    folder is made immutable (chattr), or, where that fails, replaced by a plain file."""
    folder.mkdir(parents=True)
    folder.chmod(0o555)
    if _writable(folder):
        subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
    replaced = _writable(folder)
    if replaced:
        folder.chmod(0o755)
        folder.rmdir()
        folder.write_text("a file where the card folder should be")

    def fix() -> None:
        if replaced:
            folder.unlink()
            folder.mkdir()
            return
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True, check=False)
        folder.chmod(0o755)

    try:
        yield fix
    finally:
        if folder.is_dir() and not _writable(folder):
            fix()


def _writable(folder: Path) -> bool:
    probe = folder / ".probe"
    try:
        probe.write_text("")
    except OSError:
        return False
    probe.unlink()
    return True


def test_a_flaky_adapter_and_a_read_only_card_folder_hold_back_nothing_else(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/closer.db"
    seed(url, {"cards": ["in_person"] * 3, "flaky": ["video"] * 9})
    app = Candidacies(eventsourcing_env(url))

    def rows() -> dict[str, Any]:
        # The thank-yous only: decided a week ago, those still undelivered when the
        # server's scheduler ticks are overdue, and it alerts the recruiter about them.
        return {r.id: r for r in message_rows(app) if r.kind == "thank_you"}

    try:
        with read_only(tmp_path / "tasks" / "cards") as fix_the_folder, \
                serving(tmp_path, url, OUTBOX_BACKOFF_SECONDS="0.5",
                        OUTBOX_MAX_ATTEMPTS="50") as http:
            until(lambda: len(rows()) == 12, "the dispatcher never queued the 12 messages")
            failed_file = tmp_path / "faults" / "failed"
            flaky = until(lambda: failed_file.exists()
                          and len(set(failed_file.read_text().split())) >= 3 and
                          set(failed_file.read_text().split()), "the adapter never failed")
            cards = {i for i, r in rows().items() if r.channel == "card"}
            healthy = set(rows()) - cards - flaky
            assert (len(cards), len(flaky), len(healthy)) == (3, 3, 6)

            # Every other message goes out at its first attempt, cards still failing.
            until(lambda: all(rows()[i].status == "sent" for i in healthy),
                  "a healthy message was held back")
            now = rows()
            for message_id in healthy:
                assert now[message_id].attempts == 1
                assert [k for k, _ in history(app, message_id)] == ["Queued", "Proofed", "Sent"]
            # The flaky ones were recorded failed, with the adapter's reason, then retried.
            until(lambda: all(rows()[i].status == "sent" for i in flaky),
                  "a flaky message was never retried")
            for message_id in flaky:
                kinds = [k for k, _ in history(app, message_id)]
                assert kinds == ["Queued", "Proofed", "Failed", "Proofed", "Sent"], kinds
                assert "RuntimeError" in rows()[message_id].summary["last_error"]
            # The cards fail, again and again, and /healthz says so.
            until(lambda: all(rows()[i].attempts >= 2 for i in cards), "cards not retried")
            assert {rows()[i].status for i in cards} == {"failed"}
            for message_id in cards:
                error = rows()[message_id].summary["last_error"]
                assert "card" in error and ("PermissionError" in error
                                            or "FileExistsError" in error), error
            health = http.get("/healthz")
            assert health.status_code == 200  # messages failing; every worker is up
            body = health.json()
            assert body["messages"]["failed"] == 3
            assert body["messages"]["last_failure"]["message_id"] in cards
            assert body["messages"]["last_failure"]["channel"] == "card"
            assert body["workers"]["outbox"]["state"] == "running"
            assert body["workers"]["outbox"]["restarts"] == 0

            # The folder is fixed: the retried cards go out, the server never restarted.
            fix_the_folder()
            until(lambda: all(rows()[i].status == "sent" for i in cards),
                  "the cards never went out after the folder was fixed")
            for message_id in cards:
                assert (tmp_path / "tasks" / "cards" / f"{message_id}.json").is_file()
            until(lambda: http.get("/healthz").json()["messages"]["failed"] == 0,
                  "/healthz still counts failed messages")
            assert http.get("/healthz").json()["workers"]["outbox"]["restarts"] == 0
        assert sorted(p.stem for p in (tmp_path / "faults" / "out").glob("*.eml")) == sorted(
            healthy | flaky)
    finally:
        app.close()


def test_the_outbox_thread_killed_by_a_fatal_error_is_restarted_and_healthz_shows_it_down(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/closer.db"
    app = Candidacies(eventsourcing_env(url))
    try:
        # The server's scheduler ticks once at start (an empty store), then not for an hour.
        with serving(tmp_path, url, "--workers", "2", BACKGROUND_RESTART_SECONDS="8",
                     BACKGROUND_DOWN_SECONDS="1", SCHEDULER_EVERY_SECONDS="3600") as http:
            assert http.get("/healthz").json()["workers"]["outbox"]["state"] == "running"
            (tmp_path / "faults" / "fatal").write_text("")  # the next delivery kills it
            seed(url, {"flaky": ["video"]})

            def outbox() -> tuple[int, dict[str, Any]]:
                answer = http.get("/healthz")
                return answer.status_code, answer.json()["workers"]["outbox"]

            status, down = until(lambda: (seen := outbox())[1]["state"] == "restarting"
                                 and seen, "the outbox never showed down")
            assert down["last_error"].startswith("InjectedFatalError: injected while")
            assert down["down_since"] and down["restarts"] == 0
            assert [r.status for r in message_rows(app)] == ["queued"]  # waiting, not lost

            problem = until(lambda: (r := http.get("/healthz")).status_code == 503 and r,
                            "/healthz never answered 503 while the outbox was down")
            assert problem.headers["content-type"].startswith("application/problem+json")
            assert problem.json()["type"] == "urn:closer:problem:worker-down"
            assert "outbox" in problem.json()["detail"]
            assert problem.json()["workers"]["scheduler"]["state"] == "running"

            until(lambda: [r.status for r in message_rows(app)] == ["sent"],
                  "the restarted outbox never delivered the message")
            status, up = until(lambda: (seen := outbox())[1]["down_since"] is None and seen,
                               "the outbox never came back up")
            assert status == 200
            assert (up["state"], up["restarts"]) == ("running", 1)
            assert up["last_error"].startswith("InjectedFatalError")
            assert up["last_success_at"] > down["down_since"]
    finally:
        app.close()
