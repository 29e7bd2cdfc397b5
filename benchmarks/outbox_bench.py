"""Outbox benchmark: messages rendered, proofed and handed to a local aiosmtpd per second,
beside the same count of bare `smtplib` sends, in paired rounds whose order rotates.

    python benchmarks/outbox_bench.py [--count 100] [--rounds 5] [--quick] [--write-docs]

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
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import structlog  # noqa: E402

structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))

from builders import interview  # noqa: E402
from paired import alternated, load_average, median, ratios, spread, table, write_section  # noqa: E402

from adapters.email import EmailAdapter  # noqa: E402
from adapters.message import MessageContext  # noqa: E402
from adapters.outbox import Dispatcher, OutboxMessage  # noqa: E402
from adapters.outbox_rows import message_rows  # noqa: E402
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100, help="messages per side and round")
    parser.add_argument("--rounds", type=int, default=5, help="paired rounds")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 50: under a minute")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.count, args.rounds = 50, 3
    n = args.count
    started_load = load_average()

    sink = Counting()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    mime = EmailMessage()
    mime["From"], mime["To"], mime["Subject"] = ("maya@example.com",
                                                 "daniel@northwind.example", "Thank you")
    mime.set_content("Thank you for your time today. " * 8)
    day = [datetime(2026, 11, 25, 10, tzinfo=UTC)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            app = Candidacies(eventsourcing_env(f"sqlite:///{tmp}/bench.db"),
                              clock=FixedClock(day[0]))
            adapter = EmailAdapter(host="127.0.0.1", port=port, starttls=False)
            dispatcher = Dispatcher(app, adapters={"email": adapter})
            actor = Actor(user="maya@example.com", workspace="bench")

            def queue() -> None:
                """``n`` thank-yous queued by a tick on fresh candidacies (not timed)."""
                for _ in range(n):
                    cid = app.record_interview(actor, interview(format="video")).candidacy_id
                    app.record_no_hesitations(actor, cid)
                    app.close_next_step(actor, cid, "a systems design interview")
                tick(app, day[0].replace(hour=18))

            queue()  # the warm-up round: dispatched, and its contexts kept for the adapter
            assert dispatcher.run_once().sent == n
            contexts = []
            for row in message_rows(app, limit=n):
                message: OutboxMessage = app.repository.get(uuid.UUID(row.id))
                contexts.append(MessageContext.model_validate(message.context))

            def one(side: str, number: int) -> float:
                if side == "dispatcher":
                    queue()
                    started = time.perf_counter()
                    report = dispatcher.run_once()
                    elapsed = time.perf_counter() - started
                    assert report.sent == n, report
                elif side == "adapter":
                    started = time.perf_counter()
                    for context in contexts:
                        rendered, proof = prepare(adapter, context)
                        assert rendered is not None and proof.passed
                        adapter.deliver(rendered)
                    elapsed = time.perf_counter() - started
                else:
                    started = time.perf_counter()
                    for _ in range(n):
                        with smtplib.SMTP("127.0.0.1", port) as client:
                            client.send_message(mime)
                    elapsed = time.perf_counter() - started
                print(f"round {number + 1} {side:10} {n / elapsed:6.0f} messages/s",
                      file=sys.stderr, flush=True)
                return n / elapsed

            runs = alternated(args.rounds, SIDES, one)
            app.close()
        assert sink.count == n * (1 + 3 * args.rounds), sink.count
    finally:
        controller.stop()

    text = render(args, runs, started_load, load_average())
    print(text)
    if args.write_docs:
        write_section(SECTION, text)


SIDES = ("dispatcher", "adapter", "bare")
SECTION = "## Outbox (issue 5)"
NAMES = {"dispatcher": "dispatcher end to end (follow + render + proof + SMTP + record)",
         "adapter": "render + proof + SMTP hand-off (`EmailAdapter`, no store)",
         "bare": "bare `smtplib` `send_message` (one connection each)"}


def render(args: argparse.Namespace, runs: dict[str, list[float]], started: str,
           ended: str) -> str:
    rows = [[NAMES[side], f"{median(runs[side]):.0f}",
             "–" if side == "bare" else spread(ratios(runs[side], runs["bare"])),
             f"{1000 / median(runs[side]):.1f}"] for side in SIDES]
    over_bare = 1000 / median(runs["adapter"]) - 1000 / median(runs["bare"])
    store = 1000 / median(runs["dispatcher"]) - 1000 / median(runs["adapter"])
    return "\n".join([
        SECTION, "",
        (f"`python benchmarks/outbox_bench.py --count {args.count} --rounds {args.rounds} "
        f"--write-docs` on {platform.python_implementation()} {platform.python_version()}, "
        f"{platform.machine()}, SQLite file store, aiosmtpd on 127.0.0.1 (plain, no TLS); "
        f"{started} before, {ended} after (shared machine: compare the ratios). Each of "
        f"{args.rounds} rounds runs the three sides ({args.count} messages each) in an order "
        "that rotates each round; the dispatcher's messages are queued by a tick on fresh "
        "candidacies before it is timed. Ratios are per round (median, min–max)."), "",
        *table(["measurement", "messages/s (median)", "vs bare smtplib, per round",
                "ms per message"], rows), "",
        (f"Per message: rendering + proofing cost about {over_bare:.1f} ms over a bare send, "
        f"and the store (following the log, recording what happened, the aggregate load) "
        f"about {store:.1f} ms more (medians)."), ""])


if __name__ == "__main__":
    main()
