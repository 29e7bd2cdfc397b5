"""Benchmark: commands per second through `Candidacies`, beside a bare eventsourcing baseline,
and the time to load a short and a very long candidacy.

Commands (issue 2, target: ours at least 0.7x the baseline on each store):

- ours: ``Candidacies.note_competing_offer`` on a pool of candidacies (one of three
  companies in turn, so the candidacy's state stays the same size).  One command is the
  application's whole path: validation, load (snapshot + later events), the lifecycle
  check, one event, the cadence plan for the row's ``due_at``, and one save of the event
  with the candidacy's current row (and a snapshot every SNAPSHOT_INTERVAL events).
- baseline: a bare eventsourcing `Aggregate` with one trivial event in a bare
  `Application` on the same kind of store, saved the same way: ``repository.get`` + one
  event + ``save``, with the library's snapshotting at the same interval, on a pool of the
  same size that receives the same number of commands (so both load a snapshot and a
  tail of the same length).
- floor: the same bare aggregate without snapshots on a fresh pool each round, so its
  aggregates stay 1 to a few events long: the cheapest get + event + save there is.
  Shown for information; the target is against the baseline.

The variants run in interleaved rounds (the order rotating each round) on the same
machine and the same store kind; each round's rate is commands / wall time, and the
ratio is the median over rounds of ours / baseline in the same round.  ``CPU ms`` is
this process's CPU time per command (what the database server and the disk do is not
in it), which separates our Python overhead from the database's share.

structlog is set to WARNING for the main lines ("logging off"); the "JSON logging"
lines log every recorded event at info as JSON lines into /dev/null, as production does
(processors as in `api.logs`).

Loads (target: the long one at most 3x the short one): a candidacy with 10 events and
one with 10,000 events (snapshots on), each loaded with `Candidacies.get` many times,
interleaved; the median is reported.  The long history alternates the same
stage-neutral command; a second long candidacy made of pause/resume pairs shows what a
snapshot costs when the state itself grows with the history (every closed pause is kept).

Run:

    python benchmarks/engine_bench.py                 # both stores, writes docs/performance.md
    python benchmarks/engine_bench.py --rounds 4 --no-write   # quicker look
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import platform
import pstats
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import structlog
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.application import SNAPSHOT_INTERVAL, Candidacies
from engine.clock import FixedClock
from engine.store import eventsourcing_env
from engine.values import Actor

from api.logs import configure_logging

DOC = ROOT / "docs" / "performance.md"
HEADING = "## Engine (issue 2)"
ACTOR = Actor("bench@agency.example", "agency", on_behalf_of="maya")
COMPANIES = ("Contoso", "Fabrikam", "Tailspin")
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=timezone.utc)


# -- the baseline ---------------------------------------------------------------------------


class Counter(Aggregate):
    """The bare aggregate: one trivial event."""

    def __init__(self) -> None:
        self.count = 0

    @event("Incremented")
    def increment(self) -> None:
        self.count += 1


class Baseline(Application[UUID]):
    """A bare eventsourcing application, snapshotting as often as ours."""

    name = "Baseline"
    snapshotting_intervals = {Counter: SNAPSHOT_INTERVAL}


class Floor(Application[UUID]):
    """A bare eventsourcing application without snapshots."""

    name = "Floor"


# -- logging --------------------------------------------------------------------------------


def logging_off() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
                        cache_logger_on_first_use=False)


def json_logging(sink: Any) -> None:
    """Info-level JSON lines into ``sink``, exactly as production configures them."""
    configure_logging("json", "info", stream=sink, cache=False)


# -- stores ---------------------------------------------------------------------------------


@dataclass
class Store:
    label: str
    url: str
    bare_env: Callable[[str], dict[str, str]]
    cleanup: Callable[[], None]


def sqlite_store(folder: str) -> Store:
    return Store(
        "SQLite (file, WAL)", f"sqlite:///{folder}/closer.db",
        lambda name: {"PERSISTENCE_MODULE": "eventsourcing.sqlite",
                      "SQLITE_DBNAME": f"{folder}/{name}.db", "SQLITE_LOCK_TIMEOUT": "30"},
        lambda: None)


def postgres_store(admin_url: str) -> Store:
    name = f"closer_bench_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    # The same database; the bare applications' tables are named after them.
    env = {k: v for k, v in eventsourcing_env(url).items() if k != "APPLICATION_RECORDER_TOPIC"}

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return Store("PostgreSQL", url, lambda _: env, drop)


# -- commands per second ----------------------------------------------------------------------


@dataclass
class Rate:
    per_second: float
    cpu_ms: float


def run_ours(app: Candidacies, pool: list[str], count: int, start: int) -> Rate:
    deadline = NOW + timedelta(days=14)
    wall, cpu = time.perf_counter(), time.process_time()
    for n in range(start, start + count):
        app.note_competing_offer(ACTOR, pool[n % len(pool)], COMPANIES[n // len(pool) % 3],
                                 deadline)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Rate(count / wall, cpu / count * 1000)


def new_counters(app: Application[UUID], count: int) -> list[UUID]:
    pool = []
    for _ in range(count):
        counter = Counter()
        app.save(counter)
        pool.append(counter.id)
    return pool


def run_bare(app: Application[UUID], pool: list[UUID], count: int) -> Rate:
    wall, cpu = time.perf_counter(), time.process_time()
    for n in range(count):
        counter = app.repository.get(pool[n % len(pool)])
        counter.increment()
        app.save(counter)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Rate(count / wall, cpu / count * 1000)


VARIANTS = ("ours", "ours+json", "baseline", "floor")


def commands(store: Store, rounds: int, per_round: int, pool_size: int,
             sink: Any) -> dict[str, list[Rate]]:
    ours = Candidacies(eventsourcing_env(store.url), clock=FixedClock(NOW))
    baseline = Baseline(env=store.bare_env("baseline"))
    floor = Floor(env=store.bare_env("floor"))
    try:
        logging_off()
        pools: dict[str, Any] = {
            variant: [ours.record_interview(ACTOR, _interview()).candidacy_id
                      for _ in range(pool_size)] for variant in ("ours", "ours+json")}
        pools["baseline"] = new_counters(baseline, pool_size)
        done = dict.fromkeys(VARIANTS, 0)
        rates: dict[str, list[Rate]] = {variant: [] for variant in VARIANTS}
        for number in range(-1, rounds):  # round -1 warms every path up, not counted
            for variant in VARIANTS[number % 4:] + VARIANTS[:number % 4]:
                json_logging(sink) if variant == "ours+json" else logging_off()
                if variant == "floor":  # a fresh pool each round, not timed
                    rate = run_bare(floor, new_counters(floor, pool_size), per_round)
                elif variant == "baseline":
                    rate = run_bare(baseline, pools[variant], per_round)
                else:
                    rate = run_ours(ours, pools[variant], per_round, done[variant])
                done[variant] += per_round
                logging_off()
                if number >= 0:
                    rates[variant].append(rate)
        return rates
    finally:
        logging_off()
        ours.close()
        baseline.close()
        floor.close()


def _interview() -> dict[str, Any]:
    return {
        "candidate": {"name": "Maya Okafor", "email": "maya@example.com"},
        "company": "Northwind Analytics", "role": "Senior Data Engineer", "format": "in_person",
        "interviewers": [{"name": "Priya Raman", "title": "Engineering Manager"},
                         {"name": "Tom Becker", "title": "Staff Engineer"}],
        "interviewed_at": "2026-11-25T09:00:00+00:00", "timezone": "Europe/London",
        "country": "GB", "timeline": {"min_weeks": 3, "max_weeks": 4},
    }


# -- load times -------------------------------------------------------------------------------


def long_candidacy(app: Candidacies, events: int, kind: str) -> str:
    """A candidacy of ``events`` events, made with the aggregate's own command methods and
    saved in batches as the application saves (rows, snapshots every SNAPSHOT_INTERVAL)."""
    candidacy_id = app.record_interview(ACTOR, _interview()).candidacy_id
    candidacy = app.get(candidacy_id, ACTOR.workspace)
    at = NOW
    while candidacy.version < events:
        for _ in range(min(500, events - candidacy.version)):
            at += timedelta(minutes=1)
            if kind == "offers":
                candidacy.note_competing_offer(ACTOR, at, company=COMPANIES[candidacy.version % 3],
                                               deadline=NOW + timedelta(days=14))
            elif candidacy.paused is None:
                candidacy.pause_cadence(ACTOR, at, until=None, reason="travelling")
            else:
                candidacy.resume_cadence(ACTOR, at)
        app.save(candidacy, rows=[app.current_row(candidacy)])
    assert app.get(candidacy_id, ACTOR.workspace).version == events
    return candidacy_id


def loads(store: Store, repeats: int) -> dict[str, float]:
    app = Candidacies(eventsourcing_env(store.url), clock=FixedClock(NOW))
    logging_off()
    try:
        ids = {"10 events": long_candidacy(app, 10, "offers"),
               "10,000 events": long_candidacy(app, 10_000, "offers"),
               "10,000 events (pause/resume)": long_candidacy(app, 10_000, "pauses")}
        for candidacy_id in ids.values():  # warm up
            app.get(candidacy_id, ACTOR.workspace)
        timings: dict[str, list[float]] = {label: [] for label in ids}
        for _ in range(repeats):
            for label, candidacy_id in ids.items():
                start = time.perf_counter()
                app.get(candidacy_id, ACTOR.workspace)
                timings[label].append(time.perf_counter() - start)
        return {label: statistics.median(t) * 1000 for label, t in timings.items()}
    finally:
        app.close()


# -- report -----------------------------------------------------------------------------------


def median_rate(rates: list[Rate]) -> Rate:
    return Rate(statistics.median(r.per_second for r in rates),
                statistics.median(r.cpu_ms for r in rates))


def paired_ratio(ours: list[Rate], baseline: list[Rate]) -> float:
    return statistics.median(o.per_second / b.per_second for o, b in zip(ours, baseline))


def report(results: dict[str, Any], args: Any, skipped: list[str]) -> str:
    stores = {k: v for k, v in results.items() if not k.startswith("_")}
    lines = [
        HEADING, "",
        f"`python benchmarks/engine_bench.py` ({args.rounds} interleaved rounds of "
        f"{args.per_round} commands per variant, pools of {args.pool}; loads: median of "
        f"{args.loads}) on {os.cpu_count()} CPUs (nproc), CPython {platform.python_version()}, "
        f"{platform.machine()}, SQLite {sqlite3.sqlite_version}"
        + (f", PostgreSQL {results['_pg_version']}" if "_pg_version" in results else "")
        + f", {date.today().isoformat()}. Logging off (structlog at WARNING) except on the "
        "JSON logging lines (info level, one JSON line per recorded event, into /dev/null).",
        "",
        "Commands per second (median over rounds; ratio = median of the per-round ratios; "
        "target: ours at least 0.7x the baseline):", "",
        "| store | command path | commands/s | CPU ms/cmd | baseline cmd/s | baseline CPU ms "
        "| ratio | target | floor cmd/s | vs floor |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, (rates, _) in stores.items():
        base, floor = median_rate(rates["baseline"]), median_rate(rates["floor"])
        for variant, name in (("ours", "`Candidacies`, logging off"),
                              ("ours+json", "`Candidacies`, JSON logging")):
            ours = median_rate(rates[variant])
            ratio = paired_ratio(rates[variant], rates["baseline"])
            lines.append(
                f"| {label} | {name} | {ours.per_second:.0f} | {ours.cpu_ms:.2f} | "
                f"{base.per_second:.0f} | {base.cpu_ms:.2f} | {ratio:.2f}x | "
                f"{'met' if ratio >= 0.7 else '**missed**'} | {floor.per_second:.0f} | "
                f"{paired_ratio(rates[variant], rates['floor']):.2f}x |")
    lines += [
        "", "Baseline: a bare eventsourcing aggregate with one trivial event in a bare "
        "`Application`, get + one event + save, snapshotting at the same interval "
        f"({SNAPSHOT_INTERVAL}) and fed the same number of commands per aggregate. Floor: the "
        "same without snapshots on a fresh pool each round (aggregates 1 to a few events "
        "long). CPU ms is this process's CPU per command; the rest of the wall time is the "
        "database (SQLite's fsync at each commit; PostgreSQL's round trips and commit).", "",
        f"Loading one candidacy with `Candidacies.get` (snapshots every {SNAPSHOT_INTERVAL} "
        "events; median; target: 10,000 events at most 3x 10 events):", "",
        "| store | history | load ms | vs 10 events | target |", "|---|---|---|---|---|"]
    for label, (_, load) in stores.items():
        short = load["10 events"]
        for history, ms in load.items():
            verdict = "" if history == "10 events" else (
                "met" if ms / short <= 3 else "**missed**")
            if "pause" in history:
                verdict = "for information"
            lines.append(f"| {label} | {history} | {ms:.2f} | {ms / short:.1f}x | {verdict} |")
    lines += [
        "", "The 10,000-event histories are stage-neutral commands: competing offers (the "
        "state stays the same size: the target's line) and pause/resume pairs, where every "
        "closed pause of the round is kept, so the snapshot itself grows with the history."]
    if skipped:
        lines += ["", "Not measured: " + "; ".join(skipped) + "."]
    return "\n".join(lines) + "\n"


def write_section(section: str) -> None:
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Performance\n"
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + section
    DOC.write_text(text, encoding="utf-8")


def profile(store: Store, count: int = 300) -> None:
    """cProfile of our command path on a fresh pool (logging off), to stderr."""
    app = Candidacies(eventsourcing_env(store.url), clock=FixedClock(NOW))
    try:
        logging_off()
        pool = [app.record_interview(ACTOR, _interview()).candidacy_id for _ in range(50)]
        run_ours(app, pool, 200, 0)
        profiler = cProfile.Profile()
        profiler.enable()
        run_ours(app, pool, count, 200)
        profiler.disable()
        print(f"\n{store.label}: {count} commands, by cumulative time", file=sys.stderr)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
    finally:
        app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=12, help="interleaved rounds")
    parser.add_argument("--per-round", type=int, default=150,
                        help="commands per variant per round")
    parser.add_argument("--pool", type=int, default=50, help="candidacies in our pool")
    parser.add_argument("--loads", type=int, default=300, help="loads per candidacy (median)")
    parser.add_argument("--pg-admin-url",
                        default=os.environ.get("CLOSER_TEST_PG_ADMIN",
                                               "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/")
    parser.add_argument("--profile", action="store_true",
                        help="also print where our command path spends its time (cProfile)")
    args = parser.parse_args()

    results: dict[str, Any] = {}
    skipped: list[str] = []
    with open(os.devnull, "wb") as sink, tempfile.TemporaryDirectory() as folder:
        stores: list[Store] = []
        if "sqlite" in args.stores:
            stores.append(sqlite_store(folder))
        if "postgres" in args.stores:
            try:
                stores.append(postgres_store(args.pg_admin_url))
                with psycopg.connect(args.pg_admin_url) as conn:
                    results["_pg_version"] = conn.info.server_version // 10000
            except psycopg.Error as error:
                skipped.append(f"PostgreSQL ({str(error).strip().splitlines()[0]})")
        for store in stores:
            try:
                print(f"{store.label}: commands ...", file=sys.stderr, flush=True)
                rates = commands(store, args.rounds, args.per_round, args.pool, sink)
                print(f"{store.label}: loads ...", file=sys.stderr, flush=True)
                results[store.label] = (rates, loads(store, args.loads))
                if args.profile:
                    profile(store)
            finally:
                store.cleanup()
    section = report(results, args, skipped)
    print(section)
    if not args.no_write:
        write_section(section)
        print(f"written to {DOC.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
