"""Outbox benchmark: messages rendered, proofed and handed to a local aiosmtpd per second,
beside the same count of bare `smtplib` sends in the same run.

    /work/venv/bin/python benchmarks/outbox_bench.py [--count 300] [--write-docs]

Three measurements on one loopback SMTP server (aiosmtpd on 127.0.0.1):
- dispatcher: `Dispatcher.run_once` end to end on a SQLite file (follow the log into
  Queued messages, render, proof, SMTP hand-off, record Proofed+Sent with the row);
- adapter: render + proof + `EmailAdapter.deliver` only (no store);
- bare smtplib: `smtplib.SMTP(...).send_message` of a small prepared message, one
  connection per message like the adapter.
"""

from __future__ import annotations

import argparse
import platform
import smtplib
import socket
import uuid
import sys
import tempfile
import time
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import structlog  # noqa: E402

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))

from builders import interview  # noqa: E402

from adapters.email import EmailAdapter  # noqa: E402
from adapters.message import MessageContext  # noqa: E402
from adapters.outbox import Dispatcher, OutboxMessage  # noqa: E402
from adapters.proofing import prepare  # noqa: E402
from engine.application import Candidacies  # noqa: E402
from engine.clock import FixedClock  # noqa: E402
from engine.scheduler import tick  # noqa: E402
from engine.store import eventsourcing_env  # noqa: E402
from engine.values import Actor  # noqa: E402


class Counting:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.count += 1
        return "250 OK"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    n = args.count

    sink = Counting()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            app = Candidacies(eventsourcing_env(f"sqlite:///{tmp}/bench.db"),
                              clock=FixedClock(datetime(2026, 11, 25, 10, tzinfo=timezone.utc)))
            actor = Actor(user="maya@example.com", workspace="bench")
            for _ in range(n):
                cid = app.record_interview(actor, interview(format="video")).candidacy_id
                app.record_no_hesitations(actor, cid)
                app.close_next_step(actor, cid, "a systems design interview")
            tick(app, datetime(2026, 11, 25, 18, tzinfo=timezone.utc))
            adapter = EmailAdapter(host="127.0.0.1", port=port, starttls=False)
            dispatcher = Dispatcher(app, adapters={"email": adapter})

            started = time.perf_counter()
            report = dispatcher.run_once()
            dispatch_s = time.perf_counter() - started
            assert report.sent == n, report

            contexts = []
            for row in app.recorder.select_message_rows(limit=n):
                message: OutboxMessage = app.repository.get(uuid.UUID(row.id))
                contexts.append(MessageContext.model_validate(message.context))
            app.close()

        started = time.perf_counter()
        for context in contexts:
            rendered, proof = prepare(adapter, context)
            assert rendered is not None and proof.passed
            adapter.deliver(rendered)
        adapter_s = time.perf_counter() - started

        mime = EmailMessage()
        mime["From"], mime["To"], mime["Subject"] = ("maya@example.com",
                                                     "daniel@northwind.example", "Thank you")
        mime.set_content("Thank you for your time today. " * 8)
        started = time.perf_counter()
        for _ in range(n):
            with smtplib.SMTP("127.0.0.1", port) as client:
                client.send_message(mime)
        bare_s = time.perf_counter() - started
        assert sink.count == 3 * n, sink.count
    finally:
        controller.stop()

    rows = [("dispatcher end to end (follow + render + proof + SMTP + record)", dispatch_s),
            ("render + proof + SMTP hand-off (EmailAdapter, no store)", adapter_s),
            ("bare smtplib send_message (one connection each)", bare_s)]
    lines = [f"| {name} | {n} | {seconds:.2f} s | {n / seconds:,.0f} |" for name, seconds in rows]
    table = "\n".join(["| measurement | messages | time | messages/s |", "|---|---|---|---|", *lines])
    print(table)
    if args.write_docs:
        write_docs(table, n, dispatch_s, adapter_s, bare_s)


def per(seconds: float, n: int) -> str:
    return f"{seconds * 1000 / n:.0f}"


def write_docs(table: str, n: int, dispatch_s: float, adapter_s: float, bare_s: float
               ) -> None:
    path = ROOT / "docs" / "performance.md"
    text = path.read_text() if path.exists() else "# Performance\n"
    section = (
        "## Outbox (issue 5)\n\n"
        f"`python benchmarks/outbox_bench.py --count {n}` on {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}, SQLite file store, aiosmtpd on "
        "127.0.0.1 (plain, no TLS), all in one run:\n\n"
        f"{table}\n\n"
        f"Per message: rendering + proofing cost about {per(adapter_s - bare_s, n)} ms over "
        f"a bare send, and the store (the Queued page save, then one Proofed + Sent save "
        f"with the message row per message, plus the aggregate load) about "
        f"{per(dispatch_s - adapter_s, n)} ms more.\n"
    )
    marker = "## Outbox (issue 5)"
    if marker in text:
        before, _, rest = text.partition(marker)
        nxt = rest.find("\n## ")
        after = rest[nxt + 1:] if nxt != -1 else ""
        text = before + section + ("\n" + after if after else "")
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text)


if __name__ == "__main__":
    main()
