"""Eight processes, twenty candidacies, ten seconds, on PostgreSQL.

Each process issues stage-neutral commands (a competing offer or a reminder, each
carrying a marker unique to that command) against random candidacies of the same
twenty, retrying on `VersionConflict` (each process's application keeps the copy its
last command saved, often stale here: the save refuses it and the command runs again).
Half of the processes send the version they read as ``expected_version``; the others
find out at save time.  Every process logs the marker of each command the
application ACCEPTED.  Afterwards each logged marker is in the histories exactly
once, on its own candidacy, and nothing else is.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psycopg
import pytest
import structlog
from builders import interview

from engine.application import Candidacies
from engine.errors import VersionConflict
from engine.store import eventsourcing_env
from engine.values import Actor
from tests.conftest import PG_ADMIN_URL, truncate_postgres

PROCESSES = 8
CANDIDACIES = 20
SECONDS = 10.0
ACTOR = Actor("scheduler@agency.example", "agency")


def issue_commands(url: str, ids: list[str], worker: int, seconds: float, log: str,
                   ready: Any) -> None:
    """One process: commands until the time is up, logging each accepted one's marker."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    app = Candidacies(eventsourcing_env(url))
    ready.wait()  # every process starts issuing at the same moment
    rng = random.Random(worker)
    expect_version = worker % 2 == 0
    deadline = datetime.now(UTC) + timedelta(days=10)
    stop = time.monotonic() + seconds
    conflicts = 0
    try:
        with open(log, "w", encoding="utf-8") as out:
            number = 0
            while time.monotonic() < stop:
                candidacy_id = rng.choice(ids)
                marker = f"w{worker}-{number}"
                number += 1
                while True:  # retry the same command until it is accepted
                    options = {}
                    if expect_version:
                        options["expected_version"] = app.get(candidacy_id, "agency").version
                    try:
                        if number % 2:
                            app.note_competing_offer(ACTOR, candidacy_id, marker, deadline,
                                                     **options)
                        else:
                            app.send_reminder(ACTOR, candidacy_id, "reminder_next_step", marker,
                                              **options)
                    except VersionConflict:
                        conflicts += 1
                        continue
                    out.write(f"accepted {candidacy_id} {marker}\n")
                    out.flush()
                    break
            out.write(f"conflicts {conflicts}\n")
    finally:
        app.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_concurrent_processes_record_each_accepted_command_exactly_once(
        postgres_url: str, tmp_path: Path) -> None:
    truncate_postgres(postgres_url)
    app = Candidacies(eventsourcing_env(postgres_url))
    try:
        ids = [app.record_interview(ACTOR, interview()).candidacy_id
               for _ in range(CANDIDACIES)]
        context = multiprocessing.get_context("spawn")
        ready = context.Barrier(PROCESSES)
        logs = [tmp_path / f"worker-{n}.log" for n in range(PROCESSES)]
        workers = [context.Process(target=issue_commands,
                                   args=(postgres_url, ids, n, SECONDS, str(logs[n]), ready))
                   for n in range(PROCESSES)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=SECONDS + 120)
        for worker in workers:
            if worker.is_alive():
                worker.kill()
        assert [w.exitcode for w in workers] == [0] * PROCESSES

        accepted: Counter[tuple[str, str]] = Counter()
        conflicts = 0
        for log in logs:
            for line in log.read_text(encoding="utf-8").splitlines():
                kind, *rest = line.split()
                if kind == "accepted":
                    accepted[(rest[0], rest[1])] += 1
                else:
                    conflicts += int(rest[0])
        assert accepted and max(accepted.values()) == 1  # markers are unique per command

        recorded: Counter[tuple[str, str]] = Counter()
        for candidacy_id in ids:
            history = app.history(candidacy_id, "agency")
            assert [e.version for e in history] == list(range(1, len(history) + 1))
            assert history[0].type == "InterviewRecorded"
            for entry in history[1:]:
                assert entry.type in ("CompetingOfferNoted", "ReminderSent"), entry.type
                marker = entry.data["company"] if entry.type == "CompetingOfferNoted" \
                    else entry.data["key"]
                recorded[(candidacy_id, marker)] += 1
            row = app.row(candidacy_id)
            assert row.version == len(history) == app.get(candidacy_id, "agency").version
        assert recorded == accepted
        # The test only means something if writers really collided.
        assert conflicts > 0, "no process ever hit a version conflict"
        print(f"\n{sum(accepted.values())} commands accepted by {PROCESSES} processes in "
              f"{SECONDS:.0f} s, {conflicts} conflicts retried")
    finally:
        app.close()


def start_application(url: str, ready: Any) -> None:
    """One process: open (and close) the application a few times, as a worker restarting."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    ready.wait()
    for _ in range(3):
        Candidacies(eventsourcing_env(url)).close()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("database", ["existing", "new"])
def test_processes_can_open_the_application_at_the_same_time(postgres_url: str,
                                                             database: str) -> None:
    # A deployment starts its API workers and the scheduler together: each opens the
    # application, which creates (or re-creates) the schema objects it needs; on a
    # database of their own, on the very first deploy, too.  None may fail.
    url = postgres_url
    if database == "existing":
        truncate_postgres(url)
        Candidacies(eventsourcing_env(url)).close()
    else:
        name = f"{urlparse(postgres_url).path.strip('/')}_fresh"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
        url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        context = multiprocessing.get_context("spawn")
        ready = context.Barrier(PROCESSES)
        workers = [context.Process(target=start_application, args=(url, ready))
                   for _ in range(PROCESSES)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=120)
        assert [w.exitcode for w in workers] == [0] * PROCESSES
    finally:
        if database == "new":
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
