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
- the baseline at its best: the same, with the library's own aggregate cache on
  (``AGGREGATE_CACHE_MAXSIZE``, ``AGGREGATE_CACHE_FASTFORWARD=n``,
  ``DEEPCOPY_FROM_AGGREGATE_CACHE=n``, eventsourcing 9.5.6), since Closer keeps copies of
  its candidacies;
- floor: the same bare aggregate without snapshots on a fresh pool each round, so its
  aggregates stay 1 to a few events long: the cheapest get + event + save there is;
- raw: one row committed per command, nothing else (SQLite: INSERT + COMMIT in WAL mode,
  synchronous=FULL; PostgreSQL: a psycopg autocommit INSERT): the store's own commit rate.

The variants run in rounds whose order rotates (`paired.alternated`), first with one
client, then with ``--clients`` threads (ours, the cached baseline and raw: issue 19's
baselines); each round's rate is commands / wall time, and every ratio is reported as
the median of the per-round ratios with their min-max.  ``CPU ms`` is this process's CPU
time per command (what the database server and the disk do is not in it), which
separates our Python overhead from the database's share.

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
    python benchmarks/engine_bench.py --quick --no-write      # about 2 minutes
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import platform
import pstats
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import structlog
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from api.logs import configure_logging
from engine import application
from engine.application import SNAPSHOT_INTERVAL, Candidacies
from engine.clock import FixedClock
from engine.store import eventsourcing_env, group_writer
from engine.values import Actor

sys.path.insert(0, str(ROOT / "benchmarks"))
from paired import alternated, load_average, ratios, spread, table, write_section

DOC = ROOT / "docs" / "performance.md"
HEADING = "## Engine (issue 2)"
ACTOR = Actor("bench@agency.example", "agency", on_behalf_of="maya")
COMPANIES = ("Contoso", "Fabrikam", "Tailspin")
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


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


class CachedBaseline(Baseline):
    """The same, with the library's own aggregate cache on (CACHE_ENV): its best
    configuration where Closer keeps copies of its candidacies."""

    name = "Cached"


class Floor(Application[UUID]):
    """A bare eventsourcing application without snapshots."""

    name = "Floor"


# -- logging --------------------------------------------------------------------------------


def logging_off() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
                        cache_logger_on_first_use=True)
    fresh_engine_logger()


def json_logging(sink: Any) -> None:
    """Info-level JSON lines into ``sink``, exactly as production configures them."""
    configure_logging("json", "info", stream=sink, cache=True)
    fresh_engine_logger()


def fresh_engine_logger() -> None:
    """The engine's logger cached on first use, as production's are (`api.logs`), under the
    configuration just made: a new lazy logger in place of the one cached under the last.
    (An uncached logger binds itself afresh at every line: 9 % of a command's CPU, which
    production does not spend.)"""
    application.log = structlog.get_logger("closer.engine")


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
    per_batch: float = 1.0


def timed(count: int, clients: int, work: Callable[[int, int], None]) -> Rate:
    """``work(client, n)`` ``count`` times in all, split over ``clients`` threads; the rate
    is commands / wall time, CPU is this process's (every thread's) per command."""
    each = count // clients
    wall, cpu = time.perf_counter(), time.process_time()
    if clients == 1:
        for n in range(each):
            work(0, n)
    else:
        def client(k: int) -> None:
            for n in range(each):
                work(k, n)

        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return Rate(each * clients / wall, cpu / (each * clients) * 1000)


def run_ours(app: Candidacies, pool: list[str], count: int, start: int,
             clients: int = 1) -> Rate:
    deadline = NOW + timedelta(days=14)

    def work(k: int, n: int) -> None:
        mine = pool[k::clients]  # each client owns its candidacies: no conflicts
        n += start // clients
        app.note_competing_offer(ACTOR, mine[n % len(mine)], COMPANIES[n // len(mine) % 3],
                                 deadline)

    return timed(count, clients, work)


def new_counters(app: Application[UUID], count: int) -> list[UUID]:
    pool = []
    for _ in range(count):
        counter = Counter()
        app.save(counter)
        pool.append(counter.id)
    return pool


def run_bare(app: Application[UUID], pool: list[UUID], count: int, clients: int = 1) -> Rate:
    def work(k: int, n: int) -> None:
        mine = pool[k::clients]
        counter = app.repository.get(mine[n % len(mine)])
        counter.increment()
        app.save(counter)

    return timed(count, clients, work)


PAYLOAD = b'{"company":"Contoso","deadline":"2026-12-09T10:00:00+00:00",' + b"x" * 200 + b"}"


class RawSQLite:
    """The disk's floor on SQLite: one row INSERT + COMMIT per command, WAL mode,
    synchronous=FULL (the store's own durability)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.local = threading.local()
        with self.connect() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS raw (id INTEGER PRIMARY KEY, body BLOB)")

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def run(self, count: int, clients: int) -> Rate:
        # SQLite has one writer at a time, and its busy handler waits by sleeping (a client
        # refused the lock sleeps up to ms at a time): the baseline's best with several
        # clients is one connection they take in turn, under a lock.
        conn, turn = self.connect(), threading.Lock()

        def work(_k: int, _n: int) -> None:
            with turn:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO raw (body) VALUES (?)", (PAYLOAD,))
                conn.execute("COMMIT")

        try:
            return timed(count, clients, work)
        finally:
            conn.close()


class RawPostgres:
    """The server's floor on PostgreSQL: one row INSERT committed per command (autocommit),
    psycopg, one connection per client."""

    def __init__(self, url: str) -> None:
        self.url = url
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS raw (id bigserial PRIMARY KEY, body bytea)")

    def run(self, count: int, clients: int) -> Rate:
        conns = [psycopg.connect(self.url, autocommit=True) for _ in range(clients)]

        def work(k: int, _: int) -> None:
            conns[k].execute("INSERT INTO raw (body) VALUES (%s)", (PAYLOAD,))

        try:
            return timed(count, clients, work)
        finally:
            for conn in conns:
                conn.close()


# Single-client variants, then the concurrent ones (issue 19's baselines).
VARIANTS = ("ours", "ours+json", "baseline", "baseline+cache", "floor", "raw")
CONCURRENT = ("ours", "ours, one commit each", "baseline+cache", "raw")
CACHE_ENV = {"AGGREGATE_CACHE_MAXSIZE": "10000", "AGGREGATE_CACHE_FASTFORWARD": "n",
             "DEEPCOPY_FROM_AGGREGATE_CACHE": "n"}


def commands(store: Store, rounds: int, per_round: int, pool_size: int, clients: int,
             sink: Any) -> dict[str, dict[str, list[Rate]]]:
    """Alternated rounds of every variant with 1 client, then with ``clients``."""
    ours = Candidacies(eventsourcing_env(store.url), clock=FixedClock(NOW))
    baseline = Baseline(env=store.bare_env("baseline"))
    cached = CachedBaseline(env={**store.bare_env("cached"), **CACHE_ENV})
    floor = Floor(env=store.bare_env("floor"))
    raw: RawSQLite | RawPostgres = (RawSQLite(store.url.removeprefix("sqlite:///") + ".raw")
                                    if store.url.startswith("sqlite") else RawPostgres(store.url))
    try:
        logging_off()
        pools: dict[str, Any] = {
            variant: [ours.record_interview(ACTOR, _interview()).candidacy_id
                      for _ in range(pool_size)]
            for variant in ("ours", "ours+json", "ours, one commit each")}
        pools["baseline"] = new_counters(baseline, pool_size)
        pools["baseline+cache"] = new_counters(cached, pool_size)
        done = dict.fromkeys((*VARIANTS, *CONCURRENT), 0)
        writer = group_writer(ours.recorder._store_key())
        results: dict[str, dict[str, list[Rate]]] = {}
        for label, n_clients, variants in (("1", 1, VARIANTS),
                                           (str(clients), clients, CONCURRENT)):
            def one(variant: str, number: int, n_clients: int = n_clients) -> Rate:
                json_logging(sink) if variant == "ours+json" else logging_off()
                if variant == "floor":  # a fresh pool each round, not timed
                    rate = run_bare(floor, new_counters(floor, pool_size), per_round)
                elif variant == "baseline":
                    rate = run_bare(baseline, pools[variant], per_round)
                elif variant == "baseline+cache":
                    rate = run_bare(cached, pools[variant], per_round, n_clients)
                elif variant == "raw":
                    rate = raw.run(per_round, n_clients)
                elif variant == "ours, one commit each":
                    # Group commit switched off (each save its own transaction): what the
                    # writer's batches are worth.
                    ours.recorder.group_commit = False
                    try:
                        rate = run_ours(ours, pools[variant], per_round, done[variant],
                                        n_clients)
                    finally:
                        ours.recorder.group_commit = True
                elif variant == "ours" and n_clients > 1:
                    batches, saves = writer.batches, writer.saves
                    rate = run_ours(ours, pools[variant], per_round, done[variant], n_clients)
                    rate.per_batch = (writer.saves - saves) / max(1, writer.batches - batches)
                else:
                    rate = run_ours(ours, pools[variant], per_round, done[variant], n_clients)
                done[variant] += per_round
                logging_off()
                return rate

            alternated(1, variants, one)  # warms every path up, not counted
            results[label] = alternated(rounds, variants, one)
            print(f"{store.label}: {label} client(s) done", file=sys.stderr, flush=True)
        return results
    finally:
        logging_off()
        ours.close()
        baseline.close()
        cached.close()
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


def loads(store: Store, repeats: int, long: int) -> dict[str, float]:
    app = Candidacies(eventsourcing_env(store.url), clock=FixedClock(NOW))
    logging_off()
    try:
        ids = {"10 events": long_candidacy(app, 10, "offers"),
               f"{long:,} events": long_candidacy(app, long, "offers"),
               f"{long:,} events (pause/resume)": long_candidacy(app, long, "pauses")}
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


NAMES = {"ours": "`Candidacies.note_competing_offer`, logging off",
         "ours+json": "the same, JSON logging (production)",
         "baseline": "bare eventsourcing, no aggregate cache",
         "baseline+cache": "bare eventsourcing, library's aggregate cache on",
         "floor": "bare eventsourcing, no snapshots, 1-3 event aggregates",
         "raw": "raw single-row commit",
         "ours, one commit each": "the same as ours, group commit off (a commit per save)"}


def report(results: dict[str, Any], args: Any, skipped: list[str], started: str,
           ended: str) -> str:
    stores = {k: v for k, v in results.items() if not k.startswith("_")}
    command = (f"python benchmarks/engine_bench.py --rounds {args.rounds} --per-round "
               f"{args.per_round} --pool {args.pool} --clients {args.clients} --loads "
               f"{args.loads} --long {args.long} --stores {args.stores}")
    lines = [
        HEADING, "",
        f"`{command}` on {os.cpu_count()} CPUs (nproc), CPython {platform.python_version()}, "
        f"{platform.machine()}, SQLite {sqlite3.sqlite_version}"
        + (f", PostgreSQL {results['_pg_version']}" if "_pg_version" in results else "")
        + f", {date.today().isoformat()}; {started} before, {ended} after (the machine was "
        "shared with other work: compare the ratios, not the rates).", "",
        (f"Every variant runs {args.per_round} commands a round, in {args.rounds} rounds whose "
        "order rotates (after one warm-up round); each ratio is the median of the per-round "
        "ratios (ours over that variant in the same round) with their min–max. CPU ms is "
        "this process's CPU per command (the database server's and the disk's work are not "
        "in it); the per-CPU-second ratio (commands per CPU-second of this process, ours "
        "over it) is the steadier figure when other work shares the disk and the cores. "
        "Target of issue 2: ours at least 0.7x the library's own path."), "",
        "One client:", ""]
    rows = []
    for label, (by_clients, _) in stores.items():
        rates = by_clients["1"]
        for variant in VARIANTS:
            r = median_rate(rates[variant])
            vs = ["–", "–", "–"] if variant.startswith("ours") else [
                *(spread(ratios([o.per_second for o in rates[mine]],
                                [b.per_second for b in rates[variant]]))
                  for mine in ("ours", "ours+json")),
                spread(ratios([b.cpu_ms for b in rates[variant]],
                              [o.cpu_ms for o in rates["ours"]]))]
            rows.append([label, NAMES[variant], f"{r.per_second:.0f}", f"{r.cpu_ms:.2f}", *vs])
    lines += table(["store", "command path", "commands/s", "CPU ms/cmd",
                    "ours (logging off) / it, per round", "ours (JSON logging) / it",
                    "ours (logging off) / it, per CPU-second"], rows)
    lines += ["", (f"{args.clients} concurrent clients (threads of one process, each on its own "
              "candidacies or aggregates; issue 19's baselines):"), ""]
    rows = []
    for label, (by_clients, _) in stores.items():
        rates = by_clients[str(args.clients)]
        for variant in CONCURRENT:
            r = median_rate(rates[variant])
            vs = ["–", "–"] if variant == "ours" else [
                spread(ratios([o.per_second for o in rates["ours"]],
                              [b.per_second for b in rates[variant]])),
                spread(ratios([b.cpu_ms for b in rates[variant]],
                              [o.cpu_ms for o in rates["ours"]]))]
            per_batch = (f"{statistics.median(x.per_batch for x in rates[variant]):.1f}"
                         if variant == "ours" else "–")
            rows.append([label, NAMES[variant], f"{r.per_second:.0f}", f"{r.cpu_ms:.2f}",
                         per_batch, *vs])
    lines += table(["store", "command path", "commands/s", "CPU ms/cmd",
                    "saves per commit (median)", "ours / it, per round",
                    "ours / it, per CPU-second"], rows)
    lines += [
        "", ("The library's paths: a bare eventsourcing aggregate with one trivial event in a "
        "bare `Application`, `repository.get` + one event + `save`, snapshotting at the same "
        f"interval ({SNAPSHOT_INTERVAL}) and fed the same number of commands per aggregate; "
        "with the cache, `AGGREGATE_CACHE_MAXSIZE=10000`, `AGGREGATE_CACHE_FASTFORWARD=n` and "
        "`DEEPCOPY_FROM_AGGREGATE_CACHE=n` (eventsourcing 9.5.6's names: its fastest setting, "
        "the same trust Closer gives its kept copies in one process). The floor: the same "
        "without snapshots on a fresh pool each round. Raw single-row commit: on SQLite "
        "`BEGIN IMMEDIATE`, an `INSERT` of a ~260-byte row and `COMMIT` in WAL mode with "
        "`synchronous=FULL` (the store's durability), on one connection that concurrent clients "
        "take in turn under a lock (SQLite has one writer; its busy handler's sleeps would "
        "only make the baseline slower); on "
        "PostgreSQL a psycopg autocommit `INSERT` of the same row, one connection per client."),
        ""]
    if args.loads:
        lines += [
            (f"Loading one candidacy with `Candidacies.get` (snapshots every "
             f"{SNAPSHOT_INTERVAL} events; median of {args.loads}; target: 10,000 events at "
             "most 3x 10 events):"), "",
            "| store | history | load ms | vs 10 events | target |", "|---|---|---|---|---|"]
        for label, (_, load) in stores.items():
            short = load["10 events"]
            for history, ms in load.items():
                verdict = "" if history == "10 events" else (
                    "met" if ms / short <= 3 else "**missed**")
                if "pause" in history:
                    verdict = "for information"
                lines.append(f"| {label} | {history} | {ms:.2f} | {ms / short:.1f}x | "
                             f"{verdict} |")
        lines += [
            "", (f"The {args.long:,}-event histories are stage-neutral commands: competing "
                 "offers (the state stays the same size: the target's line) and pause/resume "
                 "pairs, where every closed pause of the round is kept, so the snapshot itself "
                 "grows with the history.")]
    if skipped:
        lines += ["", "Not measured: " + "; ".join(skipped) + "."]
    return "\n".join(lines) + "\n"


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
    parser.add_argument("--pool", type=int, default=64, help="candidacies in our pool")
    parser.add_argument("--clients", type=int, default=16,
                        help="concurrent clients for the second table")
    parser.add_argument("--loads", type=int, default=300,
                        help="loads per candidacy (median); 0 skips the loads")
    parser.add_argument("--long", type=int, default=10_000, help="events in the long histories")
    parser.add_argument("--quick", action="store_true",
                        help="4 rounds of 64 commands, 2,000-event histories: about 2 minutes")
    parser.add_argument("--pg-admin-url",
                        default=os.environ.get("CLOSER_TEST_PG_ADMIN",
                                               "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/")
    parser.add_argument("--profile", action="store_true",
                        help="also print where our command path spends its time (cProfile)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.per_round, args.loads, args.long = 4, 64, 50, 2000
    started = load_average()
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
                rates = commands(store, args.rounds, args.per_round, args.pool, args.clients,
                                 sink)
                print(f"{store.label}: loads ...", file=sys.stderr, flush=True)
                load = loads(store, args.loads, args.long) if args.loads else {}
                results[store.label] = (rates, load)
                if args.profile:
                    profile(store)
            finally:
                store.cleanup()
    section = report(results, args, skipped, started, load_average())
    print(section)
    if not args.no_write:
        write_section(HEADING, section)
        print(f"written to {DOC.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
