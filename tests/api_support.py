"""Helpers for the HTTP API tests (their fixtures are in `api_fixtures`).

Every client talks to the real app over the `database_url` store (SQLite and
PostgreSQL) with the fixed clock; `LiveServer` runs it under uvicorn on loopback
for what needs a real socket (the event stream, concurrent writers).
"""

from __future__ import annotations

import socket
import threading
import warnings
from typing import Any, Self

import pytest
import uvicorn
from fastapi import FastAPI

with warnings.catch_warnings():  # Starlette 1.x prefers httpx2; httpx is what we ship with
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from builders import PANEL, interview

WORKSPACE = "agency"

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
"""For tests of input validation, which never reaches the store: one store is enough."""
OTHER_WORKSPACE = "rival-agency"


def record(client: TestClient, **overrides: Any) -> str:
    """Record an interview (by PANEL unless overridden) and return the candidacy's id."""
    response = client.post("/candidacies", json=interview(interviewers=PANEL, **overrides))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


# The HTTP commands that walk a fresh candidacy (interviewed by PANEL) to each stage.
WALK: list[tuple[str, str, dict[str, Any] | None]] = [
    ("interviewed", "", None),
    ("hesitations_addressed", "no-hesitations", None),
    ("next_step_closed", "next-step", {"description": "Onsite with the CTO"}),
    ("thanked", "thank-you", {"medium": "email", "to": ["Priya Raman"]}),
    ("awaiting", "thank-you", {"medium": "card", "to": ["Tom Becker"]}),
    ("nudged", "nudges", {"override": {"reason": "walking the test to nudged"}}),
    ("advanced", "replies", {"kind": "advanced", "note": "onsite next week"}),
]


def walk_to(client: TestClient, stage: str) -> str:
    """A new candidacy walked over HTTP to ``stage`` (`stalled`: rejected after a nudge)."""
    candidacy_id = record(client)
    target = "nudged" if stage == "stalled" else stage
    for name, path, body in WALK:
        if path:
            ok(client.post(f"/candidacies/{candidacy_id}/{path}", json=body))
        if name == target:
            break
    if stage == "stalled":
        ok(client.post(f"/candidacies/{candidacy_id}/replies", json={"kind": "rejected"}))
    assert client.get(f"/candidacies/{candidacy_id}").json()["stage"] == stage
    return candidacy_id


# (path, body, the stage it starts from, the event it records, the stage after it)
COMMANDS: list[tuple[str, dict[str, Any] | None, str, str, str]] = [
    ("hesitations", {"text": "Little on-call experience"}, "interviewed", "HesitationRaised",
     "interviewed"),
    ("hesitations/r1h1/address", {"response": "I ran on-call for two years"}, "hesitation",
     "HesitationAddressed", "hesitations_addressed"),
    ("no-hesitations", None, "interviewed", "NoHesitationsRecorded", "hesitations_addressed"),
    ("next-step", {"description": "Onsite", "scheduled_for": "2026-12-02T14:00:00+00:00"},
     "hesitations_addressed", "NextStepClosed", "next_step_closed"),
    ("thank-you", {"medium": "email"}, "next_step_closed", "ThankYouSent", "awaiting"),
    ("nudges", {"override": {"reason": "the recruiter asked for a call"}}, "awaiting",
     "NudgeSent", "nudged"),
    ("stall", {"reason": "no word for weeks", "override": {"reason": "the role was frozen"}},
     "awaiting", "Stalled", "stalled"),
    ("replies", {"kind": "update", "note": "still deciding"}, "awaiting", "ReplyReceived",
     "awaiting"),
    ("offers", {"company": "Globex", "deadline": "2026-12-10T17:00:00+00:00"}, "awaiting",
     "CompetingOfferNoted", "awaiting"),
    ("pause", {"reason": "candidate travelling", "until": "2026-12-01"}, "awaiting",
     "CadencePaused", "awaiting"),
    ("resume", None, "paused", "CadenceResumed", "awaiting"),
    ("withdraw", {"reason": "took another offer"}, "awaiting", "Withdrawn", "stalled"),
    ("rounds", None, "advanced", "RoundStarted", "interviewed"),
]


def ok(response: Any) -> Any:
    assert response.status_code in (200, 201), response.text
    return response


def problem(response: Any, status: int, kind: str) -> dict[str, Any]:
    """The problem+json body of ``response``, checked for ``status`` and type ``kind``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:closer:problem:{kind}", body
    assert body["status"] == status
    return body


def history(client: TestClient, candidacy_id: str) -> list[dict[str, Any]]:
    response = ok(client.get(f"/candidacies/{candidacy_id}/events"))
    return list(response.json()["events"])


class LiveServer:
    """The app under uvicorn on a free loopback port, in a thread, with its lifespan (on
    PostgreSQL warm commands then write on the server's event loop, as in `closer serve`)."""

    def __init__(self, app: FastAPI) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False,
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run,
                                        kwargs={"sockets": [self._socket]}, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        started = threading.Event()
        for _ in range(500):
            if self._server.started:
                started.set()
                break
            started.wait(0.01)
        assert started.is_set(), "uvicorn did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()
