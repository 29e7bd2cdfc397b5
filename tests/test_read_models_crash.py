"""`closer projections run` killed with SIGKILL mid-batch, again and again, on a SQLite
file and on PostgreSQL: after a clean catch-up no row is lost and none doubled (the rows
are exactly those of a rebuild from scratch, one timeline row per candidacy event)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from api.read_models import dump, follower
from engine.application import Candidacies
from engine.clock import FixedClock
from engine.follower import CANDIDACY_TOPIC
from engine.simulation import simulate
from engine.store import eventsourcing_env

CLOSER = str(Path(sys.executable).with_name("closer"))
KILLS = 6


def test_sigkill_mid_batch_loses_and_doubles_nothing(database_url: str, tmp_path: Path) -> None:
    app = Candidacies(eventsourcing_env(database_url),
                      clock=FixedClock(datetime(2026, 11, 25, 10, tzinfo=UTC)))
    simulate(app, 300, seed=7)
    runner = follower(app)
    top = runner.log_max()

    def followed() -> int:
        return sum(lag.position for lag in runner.lags())

    env = {**os.environ, "CLOSER_DATABASE_URL": database_url, "CLOSER_LOG_LEVEL": "error",
           "CLOSER_LOG_FORMAT": "json"}
    rng = random.Random(16)
    kills = 0
    for _ in range(KILLS):
        before = followed()
        if before >= 3 * top:
            break
        target = before + rng.randint(20, 250)
        process = subprocess.Popen([CLOSER, "projections", "run", "--batch", "7",
                                    "--every", "0.01"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while followed() < target and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.005)
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        process.stderr.close()
        kills += 1
        assert followed() > before  # it resumed from where the last one was killed
    assert kills >= 4, "the follower caught up before it could be killed often enough"
    assert followed() < 3 * top

    clean = subprocess.run([CLOSER, "projections", "run", "--once"], env=env,
                           capture_output=True, text=True, timeout=600, check=False)
    assert clean.returncode == 0, clean.stderr[-2000:]
    assert all(lag.behind == 0 for lag in runner.lags())

    survived = {m.name: dump(m) for m in runner.models}
    events = sum(1 for n in app.recorder.select_notifications(1, 10_000_000)
                 if n.topic.startswith(CANDIDACY_TOPIC))
    assert len(survived["timeline"]["rm_timeline"]) == events
    for model in runner.models:
        runner.rebuild(model)
    assert {m.name: dump(m) for m in runner.models} == survived
    app.close()
