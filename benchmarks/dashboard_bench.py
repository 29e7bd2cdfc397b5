"""The dashboard with 100,000 candidacies: each page's server time beside the read-model
queries it runs, run directly against the database in the same run; and how long
`closer projections rebuild` takes for the whole log (about 1.2 million events), beside
replay's read floor.

    python benchmarks/dashboard_bench.py                  # SQLite (cached store), PostgreSQL
    python benchmarks/dashboard_bench.py --no-postgres --rounds 5 --no-docs

Stores: 100,000 simulated candidacies (`engine.simulation.simulate`, seeds 2026, 2027, ...,
10,000 a seed), written once and reused: a SQLite file (``--sqlite``, default under /tmp)
and a separate PostgreSQL database (``--postgres``).  The read models are rebuilt with
``closer projections rebuild`` (a subprocess, timed) when they are not current, or with
``--rebuild`` (on PostgreSQL followed by `vacuum`).

Pages: a request through the whole FastAPI app, in process, one ASGI call from an event
loop in this thread (as a server's loop makes it; no test client), timed from the call
to its last byte (`Timed`: server time), signed in as
the workspace's recruiter, its request log written as JSON lines to a file beside the
SQLite store (as `closer serve` logs off a terminal).  The direct side runs the same
read-model query functions (`api.read_models`) with the same arguments on the same
database.  Each round runs every side ``--requests`` times, the sides' order rotating
each round (`paired.alternated`); p50 and p95 are over all requests of a side; the ratio
is per round (page p50 over direct p50) with its spread, and the same ratio of the
process's CPU time (every thread's) over each request: on a machine shared with other
work the wall time of a page also counts its thread hops' waits for a CPU, which the
direct side, one thread, does not have.  Results: docs/performance.md,
"## Dashboard (issue 16)".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from paired import alternated, load_average, ratios, spread, table, write_section

SECTION = "## Dashboard (issue 16)"
WORKSPACE = "simulated"
CLOSER = str(Path(sys.executable).with_name("closer"))
LOG: Any = None  # the request log's file (`main`)



async def asgi_get(app: Any, path: str, cookie: bytes) -> int:
    """``GET path`` signed in with ``cookie``, as one ASGI call to ``app``: its status."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
             "server": ("testserver", 80), "state": {},
             "headers": [(b"host", b"testserver"), (b"cookie", cookie)]}
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def build(url: str, candidacies: int) -> None:
    """Simulate candidacies into ``url`` until it holds ``candidacies``."""
    from engine.application import Candidacies
    from engine.simulation import simulate
    from engine.store import eventsourcing_env

    app = Candidacies(eventsourcing_env(url))
    have = len(app.recorder.select_all_rows(limit=candidacies + 1)) if hasattr(
        app.recorder, "select_all_rows") else 0
    chunk, started = have // 10_000, time.perf_counter()
    while have < candidacies:
        report = simulate(app, min(10_000, candidacies - have), 2026 + chunk, batch=500)
        have += report.candidacies
        chunk += 1
        print(f"  {have} candidacies ({time.perf_counter() - started:.0f}s)", file=sys.stderr)
    app.close()
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def rebuild(url: str) -> float:
    """``closer projections rebuild`` (every read model) on ``url``: wall seconds."""
    env = {**os.environ, "CLOSER_DATABASE_URL": url, "CLOSER_LOG_LEVEL": "error"}
    started = time.perf_counter()
    subprocess.run([CLOSER, "projections", "rebuild"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def vacuum(url: str) -> None:
    """PostgreSQL: ``VACUUM ANALYZE`` the read models' tables and the log's, as autovacuum
    does some time after a bulk load (right after a rebuild, without a visibility map, every
    index-only walk visits the heap: the Pipeline page took 3.9 s instead of 0.19 s; the
    log and its hashes never analyzed, the chain check a Candidacy page makes was planned
    for ~27,000 rows a candidacy, parallel and JIT-compiled: 35 ms instead of 0.6 ms, on
    this test server, whose autovacuum is off)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE rm_pipeline, rm_stage_intervals, rm_rounds, "
                           "rm_stay_days, rm_stay_lengths, rm_thank_yous, rm_nudges, rm_overrides, "
                           "rm_compliance_candidacies, rm_timeline, closer_candidacies, "
                           "closer_events, closer_event_hashes")


def read_floor(url: str) -> tuple[int, float]:
    """Replay's read floor on ``url``: every stored event selected in originator order
    and its payload decoded with orjson, nothing else (events, seconds)."""
    if url.startswith("sqlite"):
        from replay_bench import floor
        measured = floor(Path(url.removeprefix("sqlite:///")))
        return measured["events"], measured["seconds"]
    import orjson
    import psycopg
    started = time.perf_counter()
    count = 0
    with psycopg.connect(url) as connection, connection.cursor(name="floor") as cursor:
        cursor.itersize = 4096
        cursor.execute("SELECT originator_id, originator_version, topic, state FROM "
                       "closer_events ORDER BY originator_id, originator_version")
        for row in cursor:
            orjson.loads(bytes(row[3]))
            count += 1
    return count, time.perf_counter() - started


class Timed:
    """An ASGI app wrapped to record each request's server time (call to last byte)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.samples: list[float] = []
        self.cpu: list[float] = []  # the process's CPU time over each call (every thread)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        started, used = time.perf_counter(), time.process_time()
        await self.app(scope, receive, send)
        if scope["type"] == "http":
            self.cpu.append(time.process_time() - used)
            self.samples.append(time.perf_counter() - started)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered)) - 1))]


class Store:
    """One store's application, read models, signed-in client and sample candidacies."""

    def __init__(self, url: str) -> None:
        from api.read_models import follower
        from engine.application import Candidacies
        from engine.store import eventsourcing_env

        self.url = url
        self.app = Candidacies(eventsourcing_env(url))
        self.models = {m.name: m for m in follower(self.app).models}
        rows = self.app.recorder.select_all_rows(limit=200_000) if hasattr(
            self.app.recorder, "select_all_rows") else []
        self.ids = random.Random(16).sample([r.id for r in rows], 200)
        self.client: Any = None
        self.timed: Timed | None = None
        self.settings: Any = None

    def lag_strip(self) -> None:
        """What every page reads besides its own figures: how far each read model lags."""
        from api.read_models import follower

        follower(self.app).lags()

    def pipeline_direct(self, _: int) -> None:
        from api.read_models import funnel, rounds, stage_counts, time_in_stage

        self.lag_strip()
        view = self.models["pipeline"].view
        stage_counts(view, workspace=WORKSPACE)
        for r in range(1, rounds(view, workspace=WORKSPACE) + 1):
            funnel(view, r, workspace=WORKSPACE)
        time_in_stage(view, workspace=WORKSPACE)

    def sign_in(self) -> None:
        """A recruiter's session on the whole app, its requests timed (`Timed`)."""
        import re

        from fastapi.testclient import TestClient

        from api.app import create_app
        from api.auth import create_token
        from api.read_models import follower
        from api.settings import Settings

        token = create_token(self.app, workspace=WORKSPACE, role="recruiter",
                             user="bench@recruit.example")
        follower(self.app).run_once()  # the token's own notification: the models current
        self.settings = Settings(session_secret="b" * 40)
        self.timed = Timed(create_app(self.settings, candidacies=self.app))
        self.client = TestClient(self.timed, base_url="http://testserver")
        self.client.__enter__()
        page = self.client.get("/dashboard/sign-in")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        answer = self.client.post("/dashboard/sign-in", data={"csrf": csrf, "token": token},
                                  headers={"Origin": "http://testserver"},
                                  follow_redirects=False)
        assert answer.status_code == 303, answer.text
        self.cookie = "; ".join(f"{k}={v}" for k, v in self.client.cookies.items()).encode()
        self.loop = asyncio.new_event_loop()

    def get(self, path: str, status: int = 200) -> None:
        """``path`` as one ASGI call from an event loop in this thread, as a server's loop
        makes it: no test client between (the TestClient hands every message of a
        response across threads, ~1 ms a request here, which is not the server's time)."""
        answer = self.loop.run_until_complete(self._call(path))
        assert answer == status, (path, answer)

    async def _call(self, path: str) -> int:
        assert self.timed is not None
        return await asgi_get(self.timed, path, self.cookie)

    def frame_page(self, _: int) -> None:
        """A signed-in request with nothing to show: an unknown candidacy's 404 (the
        session, the token check, one candidacy not found, a small error page without
        navigation or lag strip).  Near what any page costs beside its reads."""
        self.get("/dashboard/candidacies/00000000-0000-4000-8000-000000000000", 404)

    def pipeline_page(self, _: int) -> None:
        self.get("/dashboard/pipeline")

    def today_page(self, _: int) -> None:
        self.get("/dashboard/today")

    def today_direct(self, _: int) -> None:
        from api.dashboard.filters import Filters
        from api.dashboard.today import the_day

        self.lag_strip()
        the_day(self.app, Filters(workspace=WORKSPACE), None)

    def candidacy_page(self, i: int) -> None:
        self.get(f"/dashboard/candidacies/{self.ids[i % len(self.ids)]}")

    def candidacy_direct(self, i: int) -> None:
        """What the Candidacy page reads and works out: the candidacy, its timeline from
        the history, its messages' cards (each body rendered and proofed, as the page
        does), the commands allowed now, the lag strip.  Not the HTML, the session nor
        the HTTP framework: those are the page's own cost, the ratio's numerator."""
        from adapters.outbox_rows import message_rows
        from api.dashboard import outbox
        from api.dashboard.candidacy import command_forms, timeline
        from api.outbox_cli import build_dispatcher

        cid = self.ids[i % len(self.ids)]
        self.lag_strip()
        candidacy = self.app.get(cid, WORKSPACE)
        timeline(self.app, candidacy)
        dispatcher = build_dispatcher(self.app, self.settings)
        for row in message_rows(self.app, candidacy_id=cid):
            outbox.card(dispatcher, row)
        command_forms(self.app, candidacy)

    def close(self) -> None:
        if getattr(self, "loop", None) is not None:
            self.loop.close()
        if self.client is not None:
            self.client.__exit__(None, None, None)
        self.app.close()


def measure(store: Store, sides: dict[str, Callable[[int], None]], rounds: int,
            requests: dict[str, int]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every side ``requests[side]`` times per round, the order rotating: per-request
    seconds by side and round, wall time and the process's CPU time."""
    cpu: dict[str, list[list[float]]] = {side: [] for side in sides}

    def run(side: str, number: int) -> list[float]:
        samples, used = [], []
        for i in range(requests[side]):
            if store.timed is not None:
                store.timed.samples.clear()
                store.timed.cpu.clear()
            started, cpu_started = time.perf_counter(), time.process_time()
            sides[side](number * requests[side] + i)
            elapsed = time.perf_counter() - started
            cpu_elapsed = time.process_time() - cpu_started
            page = store.timed if store.timed is not None and side.endswith("page") else None
            samples.append(page.samples[-1] if page and page.samples else elapsed)
            used.append(page.cpu[-1] if page and page.cpu else cpu_elapsed)
        cpu[side].append(used)
        return samples

    for side in sides:  # one warm-up call each: caches and connections
        sides[side](0)
    return alternated(rounds, list(sides), run), cpu


def report_rows(results: dict[str, list[list[float]]], pairs: list[tuple[str, str]],
                cpu: dict[str, list[list[float]]]) -> list[list[Any]]:
    rows = []
    for page, direct in pairs:
        every_page = [s for r in results[page] for s in r]
        every_direct = [s for r in results[direct] for s in r]
        per_round = ratios([percentile(r, 0.5) for r in results[page]],
                           [percentile(r, 0.5) for r in results[direct]])
        cpu_round = ratios([percentile(r, 0.5) for r in cpu[page]],
                           [percentile(r, 0.5) for r in cpu[direct]])
        rows.append([page.removesuffix(" page"),
                     f"{percentile(every_page, 0.5) * 1000:.1f}",
                     f"{percentile(every_page, 0.95) * 1000:.1f}",
                     f"{percentile(every_direct, 0.5) * 1000:.1f}",
                     f"{percentile(every_direct, 0.95) * 1000:.1f}",
                     spread(per_round), spread(cpu_round)])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidacies", type=int, default=100_000)
    parser.add_argument("--sqlite", type=Path, default=Path("/tmp/closer_dash/dash_100000.db"))
    parser.add_argument("--postgres",
                        default="postgresql://postgres@127.0.0.1:5432/closer_dash_bench")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--rebuild", action="store_true",
                        help="time `closer projections rebuild` even if the models are current")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=10, help="requests per side per round")
    parser.add_argument("--today-requests", type=int, default=None,
                        help="Today's requests per round (default: --requests)")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    args.today_requests = args.today_requests or args.requests
    # Logging as `closer serve` sets it up off a terminal (JSON lines), into a file: not
    # structlog's unconfigured default (coloured console lines on stdout), which no server
    # runs with and which cost a page ~0.1-0.4 ms a request.
    from api.logs import configure_logging

    global LOG
    LOG = args.sqlite.with_suffix(".log").open("a")  # kept open for the whole run
    configure_logging("json", stream=LOG)

    urls = ([] if args.no_sqlite else [f"sqlite:///{args.sqlite}"]) + (
        [] if args.no_postgres else [args.postgres])
    lines = []
    rebuilds = []
    frames = []
    for url in urls:
        name = "SQLite" if url.startswith("sqlite") else "PostgreSQL"
        build(url, args.candidacies)
        store = Store(url)
        never_built = any(lag.position == 0 for lag in _lags(store))
        if never_built or args.rebuild:
            print(f"{name}: closer projections rebuild", file=sys.stderr)
            seconds = rebuild(url)
            events, floor_seconds = read_floor(url)
            rebuilds.append([name, f"{events:,}", f"{seconds:.0f}", f"{events / seconds:,.0f}",
                             f"{floor_seconds:.1f}", f"{events / floor_seconds:,.0f}",
                             f"{seconds / floor_seconds:.0f}x"])
            store.close()
            if not url.startswith("sqlite"):
                vacuum(url)
            store = Store(url)
        store.sign_in()
        sides = pages(store)
        print(f"{name}: {len(sides)} sides, {args.rounds} rounds of {args.requests}",
              file=sys.stderr)
        counts = {side: args.today_requests if side.startswith("Today") else args.requests
                  for side in sides}
        results, cpu = measure(store, sides, args.rounds, counts)
        pairs = [(s, s.replace(" page", " queries")) for s in sides
                 if s.endswith(" page") and s.replace(" page", " queries") in sides]
        for row in report_rows(results, pairs, cpu):
            lines.append([name, *row])
            print(name, row, file=sys.stderr)
        frame = [s for r in results["Frame page"] for s in r]
        frame_cpu = [s for r in cpu["Frame page"] for s in r]
        frames.append([name, f"{percentile(frame, 0.5) * 1000:.1f}",
                       f"{percentile(frame, 0.95) * 1000:.1f}",
                       f"{percentile(frame_cpu, 0.5) * 1000:.2f}"])
        print(name, "frame", frames[-1], file=sys.stderr)
        store.close()

    command = "python benchmarks/dashboard_bench.py" + (" --no-postgres" if args.no_postgres
                                                        else "")
    section = [SECTION, "",
               f"`{command}` (stores cached: `--sqlite`, `--postgres`), CPython "
               f"{sys.version.split()[0]}, {load_average()} at the end. "
               f"{args.candidacies:,} simulated candidacies, one workspace. Server time of a "
               "page: the ASGI call to its last byte, in process, signed in; the queries: the "
               f"same `api.read_models` calls run directly. {args.rounds} paired rounds of "
               f"{args.requests} requests a side ({args.today_requests} for Today), order "
               "rotating.", "",
               *table(["store", "page", "page p50 ms", "page p95 ms", "queries p50 ms",
                       "queries p95 ms", "page / queries (p50, per round)",
                       "page / queries, CPU time (p50, per round)"], lines), "",
               "A signed-in request with nothing to show (an unknown candidacy's 404: "
               "session, token check, one candidacy not found, a small error page):", "",
               *table(["store", "frame p50 ms", "frame p95 ms", "frame CPU p50 ms"], frames),
               ""]
    if rebuilds:
        section += ["`closer projections rebuild` (all three read models, 2,000 notifications "
                    "a transaction) beside replay's read floor (every stored event selected "
                    "in originator order and its payload decoded by orjson, "
                    "benchmarks/replay_bench.py's `floor`):", "",
                    *table(["store", "events", "rebuild s", "rebuild events/s", "floor s",
                            "floor events/s", "rebuild / floor"], rebuilds), ""]
    print("\n".join(section))
    if not args.no_docs:
        write_section(SECTION, "\n".join(section))


def _lags(store: Store) -> list[Any]:
    from api.read_models import follower
    return follower(store.app).lags()


def pages(store: Store) -> dict[str, Callable[[int], None]]:
    """The sides: each page and the queries it runs directly."""
    return {"Pipeline page": store.pipeline_page, "Pipeline queries": store.pipeline_direct,
            "Candidacy page": store.candidacy_page,
            "Candidacy queries": store.candidacy_direct,
            "Today page": store.today_page, "Today queries": store.today_direct,
            "Frame page": store.frame_page}


if __name__ == "__main__":
    main()
