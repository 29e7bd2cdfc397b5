"""The crash test: `closer dispatch` killed with SIGKILL mid-batch, many times.

500 thank-yous are due (250 by email to a real aiosmtpd server, 250 through a
workspace's webhook to a receiver that honours the Idempotency-Key).  After the
kills and one clean `closer dispatch --once`: every expected Message-ID arrived
at least once, duplicates never outnumber the kills, the history records each
message Sent exactly once (and its candidacy's `MessageDelivered` once), and the
webhook applied each message exactly once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from adapters_fixtures import SECRET, SmtpServer, http_receiver, smtp_server  # noqa: F401
from builders import interview

from adapters.message import message_id
from adapters.outbox import history
from adapters.outbox_rows import message_rows
from engine.application import Candidacies
from engine.clock import FixedClock
from engine.scheduler import tick
from engine.store import eventsourcing_env
from engine.values import Actor

PER_WORKSPACE = 250
KILLS = 12
CLOSER = str(Path(sys.executable).with_name("closer"))


def seed(app: Candidacies) -> dict[str, list[str]]:
    """500 candidacies with a closed next step, then the scheduler's thank-yous."""
    ids: dict[str, list[str]] = {"mail": [], "ats": []}
    for workspace in ids:
        actor = Actor(user="maya@example.com", workspace=workspace)
        for _ in range(PER_WORKSPACE):
            cid = app.record_interview(actor, interview(format="video")).candidacy_id
            app.record_no_hesitations(actor, cid)
            app.close_next_step(actor, cid, "a systems design interview")
            ids[workspace].append(cid)
    report = tick(app, datetime(2026, 11, 25, 18, 0, tzinfo=UTC))
    assert report.actions["thank_you"] == 2 * PER_WORKSPACE
    return ids


@pytest.mark.slow
def test_sigkill_mid_batch_never_loses_and_never_double_applies(
        tmp_path: Path, smtp_server: SmtpServer, http_receiver: object) -> None:
    url = f"sqlite:///{tmp_path}/closer.db"
    app = Candidacies(eventsourcing_env(url),
                      clock=FixedClock(datetime(2026, 11, 25, 10, 0, tzinfo=UTC)))
    ids = seed(app)
    expected = {"mail": set(), "ats": set()}
    for workspace, channel in (("mail", "email"), ("ats", "webhook")):
        for cid in ids[workspace]:
            version = next(e.version for e in app.history(cid, workspace)
                           if e.type == "ThankYouDecided")
            expected[workspace].add(message_id(cid, version, channel))
    app.close()

    env = {**os.environ, "CLOSER_DATABASE_URL": url, "CLOSER_SMTP_HOST": smtp_server.host,
           "CLOSER_SMTP_PORT": str(smtp_server.port), "CLOSER_SMTP_STARTTLS": "false",
           "CLOSER_WEBHOOK_URL": http_receiver.url, "CLOSER_WEBHOOK_SECRET": SECRET,
           "CLOSER_WEBHOOK_WORKSPACES": "ats", "CLOSER_TASKS_DIR": str(tmp_path / "tasks"),
           "CLOSER_LOG_LEVEL": "error", "CLOSER_LOG_FORMAT": "json"}

    def delivered() -> int:
        return len(smtp_server.sink.received) + len(http_receiver.requests)

    rng = random.Random(5)
    kills = 0
    for _ in range(KILLS):
        if delivered() >= 2 * PER_WORKSPACE:
            break
        before = delivered()
        target = before + rng.randint(3, 60)
        process = subprocess.Popen([CLOSER, "dispatch", "--every", "0.05"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while delivered() < target and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.002)
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        process.stderr.close()
        kills += 1
    assert kills >= 8, "the dispatcher finished before it could be killed often enough"

    clean = subprocess.run([CLOSER, "dispatch", "--once"], env=env, capture_output=True,
                           text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr[-2000:]

    mail_ids = Counter(r.message["Message-ID"].strip("<>").split("@")[0]
                       for r in smtp_server.sink.received)
    assert set(mail_ids) == expected["mail"]
    assert sum(mail_ids.values()) - len(mail_ids) <= kills
    hook_keys = Counter(r["headers"]["Idempotency-Key"] for r in http_receiver.requests)
    assert set(http_receiver.applied) == expected["ats"]  # each applied exactly once (a dict)
    assert sum(hook_keys.values()) - len(hook_keys) <= kills
    duplicates = (sum(mail_ids.values()) - len(mail_ids)
                  + sum(hook_keys.values()) - len(hook_keys))
    assert duplicates <= kills

    app = Candidacies(eventsourcing_env(url))
    try:
        rows = message_rows(app)
        assert len(rows) == 2 * PER_WORKSPACE
        assert {r.status for r in rows} == {"sent"}
        assert {r.id for r in rows} == expected["mail"] | expected["ats"]
        for row in rows:
            kinds = [k for k, _ in history(app, row.id)]
            assert kinds.count("Sent") == 1 and kinds.count("Queued") == 1, kinds
        # Each delivery is recorded once on its candidacy, in the save of its `Sent`.
        for workspace, cids in ids.items():
            for cid in cids:
                facts = [e for e in app.history(cid, workspace)
                         if e.type.startswith("Message")]
                assert [(e.type, e.data["channel"]) for e in facts] == [
                    ("MessageDelivered", "email")], facts
                assert facts[0].data["message_id"] in expected[workspace]
                assert facts[0].stage == "awaiting"
    finally:
        app.close()
    print(f"\ncrash test: {kills} kills, {duplicates} duplicate hand-offs "
          f"(email {sum(mail_ids.values()) - len(mail_ids)}, "
          f"webhook {sum(hook_keys.values()) - len(hook_keys)})")
