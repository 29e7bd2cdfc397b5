"""Shared data and loopback servers for the adapter tests (SMTP, HTTP), 127.0.0.1 only."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller

from adapters.message import MessageContext, message_id
from adapters.webhook import verify

LONDON = ZoneInfo("Europe/London")
SECRET = "s3cret-for-tests"


def make_context(kind: str = "thank_you", channel: str = "email", **overrides: Any
                 ) -> MessageContext:
    """A realistic candidacy: two interviewers, a next step, a fit sentence."""
    data: dict[str, Any] = {
        "kind": kind,
        "message_id": message_id("candidacy-1", 3, channel),
        "candidacy_id": "candidacy-1",
        "candidate": {"name": "Maya Castellanos", "email": "maya@example.org",
                      "phone": "+44 20 7946 0958"},
        "company": "Northwind Labs",
        "role": "Senior Backend Engineer",
        "interview_format": "in_person",
        "interviewers": [
            {"name": "Sarah Whitfield", "title": "VP Engineering",
             "email": "sarah.whitfield@northwind.example", "phone": "+44 20 7946 0100"},
            {"name": "John Okafor", "title": "Director of Platform",
             "email": "john.okafor@northwind.example", "phone": "+44 20 7946 0101"},
        ],
        "timezone": "Europe/London",
        "next_step": {"description": "a systems design interview with the platform team",
                      "scheduled_for": datetime(2026, 12, 3, 14, 0, tzinfo=LONDON),
                      "location": "Northwind Labs, 5 Fleet Street"},
        "fit": "My five years building payment systems match the scaling work you described.",
        "competing_offer": {"company": "Globex", "deadline": datetime(2026, 12, 8, 17, 0,
                                                                        tzinfo=LONDON)},
        "recruiter": {"name": "Dana Reyes", "email": "dana.reyes@closer.example"},
        "note": "No reply in 12 days since the last nudge.",
        "interviewed_at": datetime(2026, 11, 25, 10, 0, tzinfo=LONDON),
        "occurred_at": datetime(2026, 11, 25, 12, 0, tzinfo=LONDON),
    }
    data.update(overrides)
    return MessageContext.model_validate(data)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class SmtpSink:
    """An aiosmtpd handler that keeps every message; can refuse recipients."""

    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        parsed = message_from_bytes(envelope.original_content or envelope.content,
                                    policy=policy.default)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


@dataclass
class SmtpServer:
    host: str
    port: int
    sink: SmtpSink


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 (plain, no auth)."""
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", controller.port, sink)
    finally:
        controller.stop()


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1 (needs the openssl tool)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl tool is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True)
    return cert, key


@dataclass
class HttpReceiver:
    """Applies each Idempotency-Key once, after checking the signature."""

    url: str
    applied: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    status_override: int | None = None


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    """A real HTTP server on 127.0.0.1 that verifies HMAC signatures."""
    state = HttpReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = dict(self.headers.items())
            valid = verify(SECRET, headers, body)
            state.requests.append({"path": self.path, "headers": headers, "body": body,
                                   "valid": valid})
            if state.status_override is not None:
                return self._reply(state.status_override, {"error": "forced"})
            if not valid:
                return self._reply(401, {"error": "bad signature"})
            key = headers.get("Idempotency-Key", "")
            duplicate = key in state.applied
            if not duplicate:
                state.applied[key] = json.loads(body)
            return self._reply(200, {"applied": not duplicate})

        def _reply(self, status: int, data: dict[str, Any]) -> None:
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/closer"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


__all__ = [
    "LONDON", "SECRET", "HttpReceiver", "SmtpServer", "SmtpSink", "free_port", "http_receiver",
    "make_context", "smtp_server", "tls_files",
]
