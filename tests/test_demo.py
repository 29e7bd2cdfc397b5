"""`closer demo` and `closer serve --demo` as a fresh user runs them: no settings at all, in
an empty folder.  Nothing is blocked or dead-lettered, thank-yous and nudges go out on the
folder (console) channel, and no stored error reads like a pydantic dump."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from test_api_serve import GUARD_SECONDS, ROOT, demo_token, free_port

from adapters.outbox_rows import MessageRow, message_rows
from api.app import seed_demo_store
from api.settings import Settings
from engine.application import Candidacies
from engine.store import eventsourcing_env

NUDGES = {"nudge_email", "nudge_voicemail", "offer_nudge"}


def no_settings() -> dict[str, str]:
    """The environment without a single Closer setting (the build switch stays)."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("CLOSER_") or k == "CLOSER_PURE_PYTHON"}


def stored_messages(url: str) -> list[MessageRow]:
    app = Candidacies(eventsourcing_env(url))
    try:
        return message_rows(app)
    finally:
        app.close()


def assert_the_happy_path(rows: list[MessageRow], folder: Path) -> None:
    assert rows, "the demo handled no message"
    troubled = [(r.kind, r.channel, r.status, r.summary) for r in rows
                if r.status in ("blocked", "dead_letter", "failed")]
    assert troubled == []
    on_folder = [r for r in rows if r.channel == "console" and r.status == "sent"]
    assert {"thank_you"} <= {r.kind for r in on_folder}
    assert NUDGES & {r.kind for r in on_folder}
    for row in on_folder:  # each one is there to read
        assert (folder / "mail" / Path(row.summary["receipt"]["detail"]["txt"]).name).is_file()
    assert len(list((folder / "mail").glob("*.txt"))) == len(on_folder)
    for row in rows:
        text = str(row.summary).lower()
        assert "pydantic" not in text and "errors.pydantic.dev" not in text


def test_closer_demo_with_no_settings_shows_thank_yous_and_nudges_going_out(
        tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "api.cli", "demo"], cwd=tmp_path,
                          env={**no_settings(), "PYTHONPATH": str(ROOT), "COLUMNS": "120"},
                          capture_output=True, text=True, timeout=GUARD_SECONDS * 3,
                          check=False)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "Messages the outbox handled" in done.stdout and "closer-tasks/mail" in done.stdout
    assert_the_happy_path(stored_messages(f"sqlite:///{tmp_path}/closer.db"),
                          tmp_path / "closer-tasks")


def test_the_demo_seeding_delivers_on_sqlite_and_postgresql(database_url: str,
                                                            tmp_path: Path) -> None:
    settings = Settings(database_url=database_url, tasks_dir=str(tmp_path / "tasks"),
                        log_level="error")
    ids = seed_demo_store(settings)

    assert len(ids) == 4
    assert_the_happy_path(stored_messages(database_url), tmp_path / "tasks")


def test_the_demo_opens_the_dashboard_on_a_thank_you_due_today(tmp_path: Path) -> None:
    from api_support import TestClient
    from dashboard_support import ORIGIN, sign_in

    from api.app import create_app
    from api.auth import create_token
    from api.demo import COACH

    settings = Settings(database_url=f"sqlite:///{tmp_path}/closer.db",
                        tasks_dir=str(tmp_path / "tasks"), log_level="error")
    seed_demo_store(settings)
    app = create_app(settings)
    with TestClient(app, base_url=ORIGIN) as client:
        assert client.get("/", follow_redirects=False).headers["location"] == "/dashboard/today"
        sign_in(client, create_token(app.state.candidacies, workspace=COACH.workspace,
                                     role="admin"))
        today = client.get("/dashboard/today").text
    thanks = today[today.index("Thank-yous due today"):today.index("Nudges due")]
    assert "Sam Lee" in thanks
    assert "waits for the next step to be closed" in thanks
    assert "overdue" not in thanks.split("Sam Lee")[1].split("</li>")[0]


def test_serve_demo_with_no_settings_delivers_on_the_folder_channel(tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--demo", "--port", str(port)],
        cwd=tmp_path, env={**no_settings(), "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + GUARD_SECONDS  # for the token and what follows
        _, token = demo_token(server)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as http:
            while True:
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the server never answered /healthz"
                time.sleep(0.1)
            listed = http.get("/candidacies").json()["items"]
            sent = [m for c in listed
                    for m in http.get(f"/candidacies/{c['id']}/messages").json()["messages"]]
        assert sent, "no message over the API"
        assert_the_happy_path(stored_messages(f"sqlite:///{tmp_path}/closer.db"),
                              tmp_path / "closer-tasks")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(GUARD_SECONDS)


def test_a_message_that_cannot_be_built_says_why_in_one_sentence(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from api.demo import seed_demo
    from api.outbox_cli import build_dispatcher
    from api.wiring import build_candidacies
    from engine.clock import FixedClock

    # No recruiter configured, and not the demo's: the overdue alert cannot be built.
    settings = Settings(database_url=f"sqlite:///{tmp_path}/closer.db",
                        tasks_dir=str(tmp_path / "tasks"))
    clock = FixedClock(datetime.now(UTC) - timedelta(days=30))
    app = build_candidacies(settings, clock=clock)
    dispatcher = build_dispatcher(app, settings)
    try:
        seed_demo(app, clock, dispatch=dispatcher.run_once, until=datetime.now(UTC))
        blocked = [m for m in message_rows(app)
                   if m.status == "blocked"]
    finally:
        dispatcher.release()
        app.close()

    assert {m.kind for m in blocked} == {"alert_overdue"}
    for message in blocked:
        [finding] = message.summary["findings"]
        assert finding["message"] == ("cannot build the console message: the alert_overdue "
                                      "message needs recruiter.")


def test_plain_error_turns_a_validation_error_into_one_sentence() -> None:
    import pytest
    from pydantic import ValidationError

    from adapters.message import MessageContext, plain_error

    with pytest.raises(ValidationError) as caught:
        MessageContext.model_validate({
            "kind": "thank_you", "message_id": "m-1", "candidate": {"name": "Maya Okafor"},
            "company": "Northwind", "role": "Data Engineer", "interview_format": "video",
            "interviewers": [{"name": "Daniel Whitfield"}], "timezone": "Mars/Olympus"})
    assert "errors.pydantic.dev" in str(caught.value)  # what it replaces

    text = plain_error(caught.value)

    assert text == ("interviewers[0].title: field required; timezone: 'Mars/Olympus' is not "
                    "an IANA time zone name (e.g. Europe/London)")
    assert "\n" not in text and "pydantic" not in text and "input_value" not in text
