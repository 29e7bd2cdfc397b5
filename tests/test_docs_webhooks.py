"""docs/webhooks.md against the code: its example, headers, snippets and retry rules, each
run against a real delivery to a receiver on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from adapters_fixtures import SECRET, make_context
from builders import interview

from adapters.errors import DeliveryError
from adapters.outbox import Backoff, Dispatcher
from adapters.outbox_rows import message_rows
from adapters.webhook import WebhookAdapter, payload, sign, verify
from engine.application import Candidacies
from engine.clock import FixedClock
from engine.scheduler import tick
from engine.values import Actor

DOC = (Path(__file__).resolve().parents[1] / "docs" / "webhooks.md").read_text()
CLIENT_HEADERS = {"host", "content-length", "accept-encoding", "connection"}


def section(heading: str) -> str:
    """The text under ``heading`` down to the next heading of any level."""
    start = DOC.index(f"{heading}\n") + len(heading)
    following = re.search(r"^#{1,6} ", DOC[start:], re.MULTILINE)
    return DOC[start:start + following.start()] if following else DOC[start:]


def code_block(heading: str, language: str) -> str:
    [block] = re.findall(rf"^```{language}\n(.*?)^```$", section(heading),
                         re.MULTILINE | re.DOTALL)
    return block


def doc_verifier() -> Callable[..., bool]:
    """The Python snippet of the doc, run as a receiver would paste it."""
    namespace: dict[str, Any] = {}
    exec(code_block("### Verifying in Python", "python"), namespace)  # noqa: S102
    return namespace["verify_closer_webhook"]


class Receiver:
    """A real HTTP server that checks each request with the doc's snippet, then applies
    each Idempotency-Key once (as the doc asks a receiver to)."""

    def __init__(self, check: Callable[..., bool]) -> None:
        self.requests: list[dict[str, Any]] = []
        self.applied: dict[str, Any] = {}
        self.status_override: int | None = None
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = dict(self.headers.items())
                valid = check(SECRET.encode(), headers, body)
                state.requests.append({"headers": headers, "body": body, "valid": valid})
                if state.status_override is not None:
                    status = state.status_override
                elif not valid:
                    status = 401
                else:
                    state.applied.setdefault(headers.get("Idempotency-Key", ""), body)
                    status = 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/closer"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver(doc_verifier())
    try:
        yield running
    finally:
        running.close()


def delivered(receiver: Receiver, kind: str = "alert_stalled") -> dict[str, Any]:
    """One real delivery of the sample candidacy's ``kind`` message: the captured request."""
    adapter = WebhookAdapter(url=receiver.url, secret=SECRET)
    adapter.deliver(adapter.render(make_context(kind, channel="webhook")))
    return receiver.requests[-1]


def test_the_documented_payload_is_what_the_adapter_sends(receiver: Receiver) -> None:
    example = json.loads(code_block("### Payload", "json"))
    request = delivered(receiver)
    assert json.loads(request["body"]) == example
    # On the wire: keys sorted, no spaces, UTF-8 as it is.
    assert request["body"] == json.dumps(example, sort_keys=True, separators=(",", ":"),
                                         ensure_ascii=False).encode()
    rendered = WebhookAdapter(url=receiver.url, secret=SECRET).render(
        make_context("alert_stalled", channel="webhook"))
    assert payload(rendered) == request["body"]
    fields = re.findall(r"^\| `(\w+)` \|", section("### Payload"), re.MULTILINE)
    assert sorted(fields) == sorted(example)


def test_the_documented_headers_are_the_ones_a_real_request_carries(receiver: Receiver
                                                                    ) -> None:
    request = delivered(receiver)
    documented = dict(re.findall(r"^\| `([\w-]+)` \| (.+) \|$", section("## The request"),
                                 re.MULTILINE))
    sent = {name: value for name, value in request["headers"].items()
            if name.lower() not in CLIENT_HEADERS}
    assert set(sent) == set(documented)
    assert documented["Content-Type"] == f"`{sent['Content-Type']}`"
    assert documented["User-Agent"] == f"`{sent['User-Agent']}`"
    assert sent["Idempotency-Key"] == json.loads(request["body"])["message_id"]
    assert sent["X-Closer-Timestamp"].isdigit()
    assert re.fullmatch(r"sha256=[0-9a-f]{64}", sent["X-Closer-Signature"])


def test_the_python_snippet_verifies_a_real_delivery(receiver: Receiver) -> None:
    check = doc_verifier()
    request = delivered(receiver)
    assert request["valid"] and list(receiver.applied) == [request["headers"]["Idempotency-Key"]]
    headers, body = request["headers"], request["body"]
    assert check(SECRET.encode(), headers, body) and verify(SECRET, headers, body)
    tampered = body.replace(b"stalled", b"started")
    assert not check(SECRET.encode(), headers, tampered) and not verify(SECRET, headers, tampered)
    assert not check(b"another secret", headers, body)
    stale = str(int(time.time()) - 301)
    replayed = {**headers, "X-Closer-Timestamp": stale,
                "X-Closer-Signature": sign(SECRET, stale, body)}
    assert not check(SECRET.encode(), replayed, body) and not verify(SECRET, replayed, body)

    # A sender with the wrong secret is refused with 401: final, as the doc says.
    with pytest.raises(DeliveryError, match="HTTP 401") as refused:
        WebhookAdapter(url=receiver.url, secret="not-the-secret").deliver(
            WebhookAdapter(url=receiver.url, secret=SECRET).render(
                make_context("thank_you", channel="webhook")))
    assert not receiver.requests[-1]["valid"] and not refused.value.retryable


def run_shell(line: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", line], check=False, cwd=cwd, capture_output=True,
                          text=True, timeout=30, env={**os.environ, **env})


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_the_openssl_one_liner_verifies_a_captured_request(receiver: Receiver,
                                                            tmp_path: Path) -> None:
    line = code_block("### Verifying a captured request with openssl", "sh").strip()
    assert "\n" not in line  # a one-liner
    request = delivered(receiver, "thank_you")
    (tmp_path / "body.json").write_bytes(request["body"])
    captured = {"TS": request["headers"]["X-Closer-Timestamp"],
                "SIG": request["headers"]["X-Closer-Signature"],
                "CLOSER_WEBHOOK_SECRET": SECRET}
    assert run_shell(line, tmp_path, **captured).stdout == "valid\n"
    assert run_shell(line, tmp_path, **{**captured, "CLOSER_WEBHOOK_SECRET": "wrong"}
                     ).stdout == "INVALID\n"
    (tmp_path / "body.json").write_bytes(request["body"] + b" ")
    assert run_shell(line, tmp_path, **captured).stdout == "INVALID\n"


@pytest.mark.skipif(shutil.which("openssl") is None or shutil.which("curl") is None,
                    reason="needs the openssl and curl commands")
def test_the_curl_one_liner_sends_a_request_the_snippet_accepts(receiver: Receiver,
                                                                 tmp_path: Path) -> None:
    line = code_block("### Sending a signed test request with curl", "sh").strip()
    assert "\n" not in line
    (tmp_path / "body.json").write_text('{"kind":"test","body":"Grüße"}', encoding="utf-8")
    done = run_shell(line, tmp_path, CLOSER_WEBHOOK_SECRET=SECRET, RECEIVER_URL=receiver.url)
    assert done.returncode == 0, done.stderr
    [request] = receiver.requests
    assert request["valid"] and request["body"] == (tmp_path / "body.json").read_bytes()


def test_the_back_off_table_is_the_dispatchers_default() -> None:
    rows = re.findall(r"^\| (\d) \| (\d+) s \|$", DOC, re.MULTILINE)
    backoff = Backoff()
    assert rows and [int(n) for n, _ in rows] == list(range(1, backoff.max_attempts))
    for attempt, seconds in rows:
        assert backoff.delay(int(attempt)) == timedelta(seconds=int(seconds))
    assert re.search(rf"^\| {backoff.max_attempts} \| none: dead letter \|$", DOC, re.MULTILINE)


@pytest.mark.parametrize(("status", "retried"), [
    (408, True), (425, True), (429, True), (500, True), (503, True),
    (400, False), (401, False), (403, False), (404, False), (409, False), (422, False),
    (307, False), (308, False)])
def test_the_documented_answers_are_retried_or_dead_lettered(
        receiver: Receiver, status: int, retried: bool) -> None:
    answers = section("## Retries, idempotency and dead letters")
    row = next(r for r in answers.splitlines()
               if r.startswith("| ") and ("`5xx`" if status >= 500 else f"`{status}`") in r)
    assert ("`Failed`" in row) is retried and ("`DeadLettered`" in row) is not retried
    receiver.status_override = status
    with pytest.raises(DeliveryError, match=f"HTTP {status}") as failed:
        delivered(receiver)
    assert failed.value.retryable is retried


MAYA = Actor(user="maya@example.com", workspace="maya")


def test_every_attempt_carries_the_same_idempotency_key_and_body(
        candidacies: Candidacies, clock: FixedClock, receiver: Receiver) -> None:
    candidacy_id = candidacies.record_interview(MAYA, interview(format="video")).candidacy_id
    candidacies.record_no_hesitations(MAYA, candidacy_id)
    candidacies.close_next_step(MAYA, candidacy_id, "a systems design interview")
    tick(candidacies, datetime(2026, 11, 25, 18, 0, tzinfo=UTC))
    dispatcher = Dispatcher(candidacies, adapters={"webhook": WebhookAdapter(
        url=receiver.url, secret=SECRET)}, reroute={"maya": {"email": "webhook"}})

    receiver.status_override = 503
    assert dispatcher.run_once().failed == 1
    [row] = message_rows(candidacies, candidacy_id=candidacy_id)
    assert (row.status, row.attempts) == ("failed", 1)
    assert dispatcher.run_once().sent == 0  # not due before its back-off
    receiver.status_override = None
    clock.advance(Backoff().delay(1))
    assert dispatcher.run_once().sent == 1

    first, second = receiver.requests
    assert first["valid"] and second["valid"]
    assert first["headers"]["Idempotency-Key"] == second["headers"]["Idempotency-Key"] == row.id
    assert first["body"] == second["body"] and list(receiver.applied) == [row.id]
