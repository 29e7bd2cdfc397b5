"""`closer serve --demo`: a newcomer's first run, end to end (SQLite, two workers)."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
GUARD_SECONDS = 60


def demo_token(server: subprocess.Popen[str]) -> tuple[str, str]:
    """What `closer serve --demo` printed up to its admin token, and the token."""
    printed = ""
    assert server.stdout is not None
    deadline = time.monotonic() + GUARD_SECONDS
    while "closer_" not in printed and time.monotonic() < deadline:
        line = server.stdout.readline()
        assert line, f"closer serve exited early:\n{printed}"
        printed += line
    token = re.search(r"closer_[A-Za-z0-9_-]+", printed)
    assert token, printed
    return printed, token.group(0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_demo_seeds_an_empty_store_and_prints_a_working_admin_token(
        tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "CLOSER_DATABASE_URL": f"sqlite:///{tmp_path}/closer.db",
           "CLOSER_LOG_FORMAT": "json", "CLOSER_LOG_LEVEL": "warning",
           "CLOSER_TASKS_DIR": str(tmp_path / "tasks"), "CLOSER_SCHEDULER_EVERY_SECONDS": "0.5",
           "CLOSER_SMTP_PORT": str(free_port())}
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--demo", "--port", str(port),
         "--workers", "2"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + GUARD_SECONDS  # for the token and what follows
        printed, token = demo_token(server)
        assert f"http://127.0.0.1:{port}" in printed
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
            assert {c["candidate"]["name"] for c in listed} == {
                "Maya Okafor", "Luis Ortega", "Anika Sharma", "Sam Lee"}
            assert http.get("/events").json()["events"][0]["type"] == "InterviewRecorded"
            # The scheduler runs inside `closer serve`: the demo's due steps get recorded
            # (the second round's overdue thank-you alert, the panel's follow-up nudge).
            while not [e for e in http.get("/events", params={"limit": 500}).json()["events"]
                       if e["actor"] == "closer-scheduler"]:
                assert time.monotonic() < deadline, "the scheduler never ran inside serve"
                time.sleep(0.2)
            # So do the dashboard's read models, a supervised worker of their own.
            while http.get("/healthz").json()["workers"].get(
                    "projections", {}).get("last_success_at") is None:
                assert time.monotonic() < deadline, "the read models never ran inside serve"
                time.sleep(0.2)
            with sqlite3.connect(tmp_path / "closer.db") as db:
                followed = db.execute("SELECT notification_id FROM tracking WHERE "
                                      "application_name='read_model.timeline'").fetchone()
                assert followed is not None and followed[0] > 0
                assert db.execute("SELECT COUNT(*) FROM rm_pipeline").fetchone() == (3,)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(GUARD_SECONDS)
