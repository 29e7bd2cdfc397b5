"""Benchmark: each speed device of the engine against its own absence (issue 15, item 3).

Every side runs the product as built ("as built") or with one device switched off *by
this script* (the product has no switch for it), in paired rounds whose order rotates
(`paired.alternated`); the figure is the per-round ratio of the device's absence over the
build as is (above 1: the device saves that much), with its spread.  Which figure each
device was added for decides the bench:

    python benchmarks/fastpaths_bench.py tick --count 100000 --dir /tmp/fp-tick --reuse
    python benchmarks/fastpaths_bench.py tick --count 20000 --gaps 1440 \
        --devices chain-check,chain-batch
    python benchmarks/fastpaths_bench.py replay --candidacies 3000 --dir /tmp/fp-replay
    python benchmarks/fastpaths_bench.py engine --rounds 6

- tick (`engine.scheduler.tick`, the store of `tick_bench.py`, a fresh copy each side):
  ``gc`` the cyclic garbage collector paused while a page is decided;
  ``writer`` pages committed by a writer thread while the next are decided (without it,
  each page is decided and then committed in turn); ``chain-check`` each due candidacy's
  audit chain verified before it is decided (`engine.scheduler._unbroken`; without it,
  not verified); ``chain-batch`` those chains read in one query a page
  (`verify_chains`; without it, one query a candidacy, `verify_chain`);
- replay (`engine.replay.replay`, one process, CPU per event):
  ``gc`` replay's raised collector thresholds; ``zone-days`` the calendar's per-zone day
  tables (`ZoneDays`: every local day worked out by the tzinfo instead);
- engine (`Candidacies.note_competing_offer` on SQLite, one client, as engine_bench's):
  ``copies`` the kept copies of the candidacies last saved (`RecentCandidacies`), beside
  the library's own path with its aggregate cache on (issue 2's baseline at its best);
- projections (`closer projections rebuild`'s path, projections_bench's, PostgreSQL, each
  read model rebuilt in turn): ``memo`` a candidacy's row kept for the rest of its
  transaction (`Tx.memo`); ``pipeline`` a batch's statements in psycopg's pipeline mode
  (`PostgresReadModelRecorder.write`);
- api (api_bench's command endpoint driven by `wrk`, two servers side by side, each on a
  store of its own seeded alike, one as built, one without the device, runs alternated):
  ``inline`` SQLite commands on the event loop (`commands_inline`); ``threads`` the
  command threads (`CommandThreads`, instead of FastAPI's own pool, `run_in_threadpool`);
  ``async`` PostgreSQL commands written from the event loop (`execute_async`); ``copies``
  kept copies (``CLOSER_RECENT_CANDIDACIES=0``); ``tcp`` the TCP listener of `TcpConfig`
  (several workers only); ``group-commit`` the store's writer batching saves (issue 19:
  without it every save commits alone); ``chain-check`` the candidacy's audit chain
  verified before each command (`refuse_if_chain_broken`; without it, not verified);
  ``concurrent-commands`` the cap on commands running at once (`Settings.concurrent_commands`;
  without it 40, as many as anyio's default thread pool).

    python benchmarks/fastpaths_bench.py projections --candidacies 300
    python benchmarks/fastpaths_bench.py api --store sqlite --devices inline,copies
    python benchmarks/fastpaths_bench.py api --store postgres --devices async,threads,copies
    python benchmarks/fastpaths_bench.py api --store sqlite --workers 2 --devices tcp,threads
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from paired import alternated, load_average, median, ratios, spread  # noqa: E402

# -- the devices, switched off -----------------------------------------------------------------


@contextlib.contextmanager
def _patched(target: Any, name: str, value: Any) -> Iterator[None]:
    saved = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, saved)


def without_tick_gc_pause() -> contextlib.AbstractContextManager[None]:
    import engine.application as application
    if not hasattr(application, "_cyclic_gc_paused"):  # already gone from the build
        return contextlib.nullcontext()
    return _patched(application, "_cyclic_gc_paused", contextlib.nullcontext)


def without_tick_writer() -> contextlib.AbstractContextManager[None]:
    """The tick with each page decided, then committed, in turn (no writer thread)."""
    import engine.scheduler as scheduler
    if not hasattr(scheduler, "ThreadPoolExecutor"):  # already gone from the build
        return contextlib.nullcontext()

    class Inline:
        def __init__(self, *args: Any, **kwargs: Any) -> None: ...
        def __enter__(self) -> Inline:
            return self
        def __exit__(self, *exc: object) -> None: ...
        def submit(self, function: Callable[..., Any], *args: Any) -> Any:
            from concurrent.futures import Future
            future: Future[Any] = Future()
            future.set_result(function(*args))
            return future

    return _patched(scheduler, "ThreadPoolExecutor", Inline)


def without_tick_chain_check() -> contextlib.AbstractContextManager[None]:
    """The tick deciding every due candidacy without verifying its chain first."""
    import engine.scheduler as scheduler
    return _patched(scheduler, "_unbroken", lambda _app, candidacy_ids: list(candidacy_ids))


def without_tick_chain_batch() -> contextlib.AbstractContextManager[None]:
    """The tick's chain check read one query a due candidacy (`verify_chain` each, as
    before issue 19's page query), not one a page."""
    from uuid import UUID

    import engine.scheduler as scheduler
    from engine.audit import verify_chain

    def per_candidacy(app: Any, candidacy_ids: list[str]) -> list[str]:
        return [cid for cid in candidacy_ids
                if not verify_chain(app.recorder, UUID(str(cid)))]

    return _patched(scheduler, "_unbroken", per_candidacy)


def without_replay_gc_thresholds() -> contextlib.AbstractContextManager[None]:
    import types

    import engine.replay as replay_module
    if not hasattr(replay_module, "gc"):  # already gone from the build
        return contextlib.nullcontext()
    keep = types.SimpleNamespace(get_threshold=gc.get_threshold,
                                 set_threshold=lambda *args: None)
    return _patched(replay_module, "gc", keep)


@contextlib.contextmanager
def without_zone_days() -> Iterator[None]:
    """Every UTC day's offset unknown to the tables: each local day, wall time and business
    day is worked out through the tzinfo (the calendar's datetime paths)."""
    from datetime import UTC, date, datetime

    from engine.work_calendar import ZoneDays

    def wall_time(self: ZoneDays, day: int, at: Any) -> datetime:
        return datetime.combine(date.fromordinal(day), at, self.zone).astimezone(UTC)

    with _patched(ZoneDays, "utc_day", lambda self, ordinal: None), \
            _patched(ZoneDays, "wall_time", wall_time):
        yield


def _sides(devices: list[str], known: dict[str, tuple[str, Callable[[], Any]]]
           ) -> dict[str, Callable[[], Any]]:
    """"as built" and one side per device asked for, each with its switch."""
    sides: dict[str, Callable[[], Any]] = {"as built": contextlib.nullcontext}
    for device in devices:
        label, switch = known[device]
        sides[label] = switch
    return sides


def _ratio(side: list[dict[str, float]], built: list[dict[str, float]], key: str) -> str:
    """The side's figure over the build's, per round, with its spread."""
    return spread(ratios([r[key] for r in side], [r[key] for r in built]))


def _above(side: list[dict[str, float]], built: list[dict[str, float]], key: str) -> str:
    """In how many rounds the side's figure was above the build's (a sign test's count)."""
    return f"{sum(s[key] > b[key] for s, b in zip(side, built, strict=True))} of {len(built)}"


# -- tick ---------------------------------------------------------------------------------------


def bench_tick(args: argparse.Namespace) -> list[str]:
    import structlog
    import tick_bench
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    workdir: Path = args.dir
    workdir.mkdir(parents=True, exist_ok=True)
    pristine = workdir / f"pristine-{args.count}-{args.seed}.db"
    if not (args.reuse and pristine.exists()):
        pristine.unlink(missing_ok=True)
        tick_bench.populate(f"sqlite:///{pristine}", args.count, tick_bench.LAST, args.seed)
    work = workdir / "fastpaths.db"

    def fresh() -> str:
        for path in workdir.glob("fastpaths.db*"):
            path.unlink()
        shutil.copyfile(pristine, work)
        tick_bench.floor_rows(f"sqlite:///{work}")  # read once: the page cache warm
        return f"sqlite:///{work}"

    switches = _sides(args.devices, {"gc": ("without gc pause", without_tick_gc_pause),
                                     "writer": ("without writer thread", without_tick_writer),
                                     "chain-check": ("without chain check",
                                                     without_tick_chain_check),
                                     "chain-batch": ("chain check per candidacy",
                                                     without_tick_chain_batch)})
    sides = list(switches)
    lines = [f"tick, {args.count:,} candidacies, {load_average()} before"]
    for gap in args.gaps:
        now = tick_bench.LAST + timedelta(minutes=gap)

        def one(side: str, _number: int, now: Any = now) -> dict[str, float]:
            url = fresh()
            with switches[side]():
                wall, cpu, _waited, report, _ = tick_bench.tick_in_process(url, now)
            return {"wall": wall, "cpu": cpu, "due": report.candidacies}

        tick_bench.tick_in_process(fresh(), now)  # warm (calendars, imports): not timed
        runs = alternated(args.rounds, sides, one)
        built = runs["as built"]
        lines.append(f"+{gap} min, {int(built[0]['due']):,} due: as built "
                     f"{median([r['wall'] for r in built]):.3f} s wall, "
                     f"{median([r['cpu'] for r in built]):.3f} s CPU (medians)")
        for side in sides[1:]:
            lines.append(f"  {side}: {median([r['wall'] for r in runs[side]]):.3f} s wall, "
                         f"{median([r['cpu'] for r in runs[side]]):.3f} s CPU; / as built: "
                         f"wall {_ratio(runs[side], built, 'wall')}; "
                         f"CPU {_ratio(runs[side], built, 'cpu')}, above 1 in "
                         f"{_above(runs[side], built, 'cpu')} rounds")
    lines.append(f"{load_average()} after")
    return lines


# -- replay -------------------------------------------------------------------------------------


def bench_replay(args: argparse.Namespace) -> list[str]:
    from engine.policy import default_policy
    from engine.replay import SQLiteSource, replay
    store = args.dir / f"replay-{args.candidacies}.db"
    if not store.exists():
        args.dir.mkdir(parents=True, exist_ok=True)
        closer = Path(sys.executable).with_name("closer")
        command = [str(closer)] if closer.exists() else [sys.executable, "-m", "api.cli"]
        subprocess.run([*command, "simulate", "--candidacies", str(args.candidacies),
                        "--seed", "7"], check=True, cwd=ROOT,
                       env={**os.environ, "CLOSER_DATABASE_URL": f"sqlite:///{store}"})
    source = SQLiteSource(str(store))
    switches = _sides(args.devices, {"gc": ("without gc thresholds", without_replay_gc_thresholds),
                                     "zone-days": ("without zone-days", without_zone_days)})
    sides = list(switches)
    replay(source, [default_policy()], workers=1)  # warm-up: imports and caches

    def one(side: str, _number: int) -> dict[str, float]:
        policy = default_policy().model_copy()  # nothing remembered from another side
        with switches[side]():
            wall, cpu = time.perf_counter(), time.process_time()
            result = replay(source, [policy], workers=1)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return {"wall": wall, "cpu": cpu, "events": result.events}

    runs = alternated(args.rounds, sides, one)
    built = runs["as built"]
    events = built[0]["events"]
    lines = [f"replay, {int(events):,} events, 1 process, {load_average()}: as built "
             f"{median([r['cpu'] for r in built]) / events * 1e6:.2f} µs CPU an event"]
    for side in sides[1:]:
        lines.append(f"  {side} / as built: CPU {_ratio(runs[side], built, 'cpu')}; "
                     f"wall {_ratio(runs[side], built, 'wall')}")
    return lines


# -- engine -------------------------------------------------------------------------------------


def bench_engine(args: argparse.Namespace) -> list[str]:
    import engine_bench as eb

    from engine.application import Candidacies
    from engine.clock import FixedClock
    from engine.store import eventsourcing_env
    eb.logging_off()
    with tempfile.TemporaryDirectory() as folder:
        store = eb.sqlite_store(folder)
        kept = Candidacies(eventsourcing_env(store.url), clock=FixedClock(eb.NOW))
        none = Candidacies(eventsourcing_env(store.url), clock=FixedClock(eb.NOW), recent=0)
        cached = eb.CachedBaseline(env={**store.bare_env("cached"), **eb.CACHE_ENV})
        try:
            pools = {app: [kept.record_interview(eb.ACTOR, eb._interview()).candidacy_id
                           for _ in range(args.pool)] for app in ("kept", "none")}
            counters = eb.new_counters(cached, args.pool)
            done = {"kept": 0, "none": 0}

            def one(side: str, _number: int) -> Any:
                if side == "library, its cache on":
                    return eb.run_bare(cached, counters, args.per_round)
                app = kept if side == "as built" else none
                key = "kept" if side == "as built" else "none"
                rate = eb.run_ours(app, pools[key], args.per_round, done[key])
                done[key] += args.per_round
                return rate

            sides = ["as built", "without kept copies", "library, its cache on"]
            alternated(1, sides, one)  # warm-up
            runs = alternated(args.rounds, sides, one)
        finally:
            kept.close()
            none.close()
            cached.close()
    built = [r.per_second for r in runs["as built"]]
    bare = [r.per_second for r in runs["library, its cache on"]]
    without = [r.per_second for r in runs["without kept copies"]]
    cpu = [r.cpu_ms for r in runs["as built"]]
    cpu_without = [r.cpu_ms for r in runs["without kept copies"]]
    return [
        f"engine, SQLite, 1 client, {args.per_round} commands a side a round, {load_average()}",
        f"  as built {median(built):.0f}/s ({median(cpu):.2f} ms CPU); without kept copies "
        f"{median(without):.0f}/s ({median(cpu_without):.2f} ms CPU)",
        f"  without kept copies, time a command (as built / it, per round): "
        f"{spread(ratios(built, without))}; CPU a command: {spread(ratios(cpu_without, cpu))}",
        f"  ours / library with its cache: as built {spread(ratios(built, bare))}; "
        f"without kept copies {spread(ratios(without, bare))}",
    ]


# -- projections --------------------------------------------------------------------------------


class _Forgetful(dict):  # type: ignore[type-arg]
    """A memo that keeps nothing: every handler reads its row again."""

    def __setitem__(self, key: Any, value: Any) -> None:
        pass


@contextlib.contextmanager
def without_memo() -> Iterator[None]:
    from engine.tables import Tx
    built = Tx.__init__

    def forgetting(self: Tx, *args: Any) -> None:
        built(self, *args)
        self.memo = _Forgetful()

    with _patched(Tx, "__init__", forgetting):
        yield


def without_pipeline() -> contextlib.AbstractContextManager[None]:
    import projections_bench

    from engine.follower import PostgresReadModelRecorder
    return _patched(PostgresReadModelRecorder, "write", projections_bench.without_pipeline)


def bench_projections(args: argparse.Namespace) -> list[str]:
    from datetime import UTC, datetime

    from api.read_models import follower
    from engine.application import Candidacies
    from engine.clock import FixedClock
    from engine.simulation import simulate
    from engine.store import eventsourcing_env
    url = _api_store("postgres", "", "projections")
    switches = _sides(args.devices, {"memo": ("without memo", without_memo),
                                     "pipeline": ("without pipeline", without_pipeline)})
    app = Candidacies(eventsourcing_env(url),
                      clock=FixedClock(datetime(2026, 11, 25, 10, tzinfo=UTC)))
    try:
        simulate(app, args.candidacies, seed=16)
        runner = follower(app, batch=2000)
        top = runner.log_max()

        def one(side: str, _number: int) -> dict[str, float]:
            with switches[side]():
                started = time.perf_counter()
                for model in runner.models:
                    runner.rebuild(model)
                return {"wall": time.perf_counter() - started}

        sides = list(switches)
        one("as built", 0)  # warm-up
        runs = alternated(args.rounds, sides, one)
    finally:
        app.close()
        _drop_api_stores("postgres", ["projections"])
    built = runs["as built"]
    rate = top * len(runner.models) / median([r["wall"] for r in built])
    lines = [f"projections rebuild (every read model), PostgreSQL, {top:,} notifications, "
             f"{load_average()}: as built {rate:,.0f} notifications/s"]
    for side in sides[1:]:
        lines.append(f"  {side} / as built, time: {_ratio(runs[side], built, 'wall')}")
    return lines


# -- api ----------------------------------------------------------------------------------------

WITHOUT = "CLOSER_BENCH_WITHOUT"
"""Which device the server started by `serve` goes without (the benchmark's switch)."""


def api_app() -> Any:
    """api_bench's app (closer serve's, plus the bare route), less the device named in
    ``CLOSER_BENCH_WITHOUT``."""
    import api_bench
    device = os.environ.get(WITHOUT, "")
    if device == "group-commit":
        from engine.store import _Queries
        _Queries.group_commit = False  # every save commits alone
    elif device == "chain-check":
        import api.dependencies

        def unchecked(*_args: Any) -> None:
            return None  # no chain verified before the command

        api.dependencies.refuse_if_chain_broken = unchecked  # type: ignore[assignment]
    app = api_bench.bench_app()
    if device == "inline":
        app.state.commands_inline = False
    elif device == "threads":
        from starlette.concurrency import run_in_threadpool

        import api.dependencies
        api.dependencies._in_worker = run_in_threadpool
    elif device == "async":
        from engine.application import Candidacies

        async def never(self: Any, *args: Any, **kwargs: Any) -> None:
            return None  # "not here": the command takes the thread path

        Candidacies.execute_async = never  # type: ignore[method-assign]
    return app


def serve() -> None:
    import uvicorn

    import api.app
    from api.settings import Settings
    if os.environ.get(WITHOUT) == "tcp":
        api.app.TcpConfig = uvicorn.Config  # type: ignore[misc]
    api.app.run_server(Settings(), app="benchmarks.fastpaths_bench:api_app")


def start_api(database_url: str, port: int, workers: int, device: str) -> Any:
    import api_bench
    import httpx
    env = {**os.environ, "CLOSER_DATABASE_URL": database_url, "CLOSER_LOG_FORMAT": "json",
           "CLOSER_LOG_LEVEL": "info", "CLOSER_HOST": "127.0.0.1", "CLOSER_PORT": str(port),
           "CLOSER_WORKERS": str(workers), WITHOUT: device}
    if device == "copies":
        env["CLOSER_RECENT_CANDIDACIES"] = "0"
    elif device == "concurrent-commands":
        env["CLOSER_CONCURRENT_COMMANDS"] = "40"  # as many as anyio's thread pool, as before
    server = subprocess.Popen([sys.executable, __file__, "serve"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                time.sleep(1.0 if workers > 1 else 0.2)
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    api_bench.stop_server(server)
    raise SystemExit(f"the server without {device or 'nothing'} did not start")


def _api_store(kind: str, workdir: str, name: str) -> str:
    """A fresh store of its own for one server (a neighbour's background writers, its
    read models and scheduler, must not hold the other's SQLite lock or its tables)."""
    if kind == "sqlite":
        return f"sqlite:///{workdir}/{name}.db"
    import api_bench
    import psycopg
    with psycopg.connect(api_bench.PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "closer_fastpaths_{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "closer_fastpaths_{name}"')
    return api_bench.PG_ADMIN.rsplit("/", 1)[0] + f"/closer_fastpaths_{name}"


def _drop_api_stores(kind: str, names: list[str]) -> None:
    if kind != "postgres":
        return
    import api_bench
    import psycopg
    with psycopg.connect(api_bench.PG_ADMIN, autocommit=True) as admin:
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "closer_fastpaths_{name}" WITH (FORCE)')


def bench_api(args: argparse.Namespace) -> list[str]:
    import api_bench
    workdir = tempfile.mkdtemp(prefix="fastpaths-api-")
    lines = [f"api, {args.store}, {args.workers} worker(s), {args.connections} connections, "
             f"{args.rounds} rounds of {args.seconds:g} s a side, {load_average()} before"]
    names: list[str] = []
    try:
        for device in args.devices:
            sides = ["as built", device]
            servers: dict[str, tuple[Any, int, str]] = {}
            try:
                for n, side in enumerate(sides):
                    name = f"{device}_{n}"
                    names.append(name)
                    url = _api_store(args.store, workdir, name)
                    token, ids = api_bench.seed(url, args.pool)
                    folder = Path(workdir) / name  # one script each, same route
                    folder.mkdir()
                    script = api_bench.wrk_script(str(folder), "/candidacies/", token, ids)
                    port = api_bench.free_port()
                    servers[side] = (start_api(url, port, args.workers,
                                               "" if side == "as built" else side), port, script)

                def one(side: str, _number: int, servers: Any = servers) -> dict[str, Any]:
                    server, port, script = servers[side]
                    return api_bench.run_wrk(f"http://127.0.0.1:{port}", script,
                                             args.connections, args.seconds, server.pid)

                for side in sides:
                    one(side, 0)  # warm-up
                runs = alternated(args.rounds, sides, one)
            finally:
                for server, _port, _script in servers.values():
                    api_bench.stop_server(server)
            built, without = runs["as built"], runs[device]
            lines.append(
                f"  without {device}: {median([r['rate'] for r in without]):.0f} req/s against "
                f"{median([r['rate'] for r in built]):.0f}; as built / without, req/s per round "
                f"{_ratio(built, without, 'rate')}; server CPU ms a request, without / as "
                f"built {_ratio(without, built, 'server_cpu_ms')}; p99 ms "
                f"{median([r['p99_ms'] for r in without]):.1f} against "
                f"{median([r['p99_ms'] for r in built]):.1f}; errors "
                f"{sum(r['errors'] for r in without)} / {sum(r['errors'] for r in built)}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        _drop_api_stores(args.store, names)
    lines.append(f"{load_average()} after")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="bench", required=True)
    tick = sub.add_parser("tick")
    tick.add_argument("--count", type=int, default=100_000)
    tick.add_argument("--seed", type=int, default=3)
    tick.add_argument("--gaps", type=lambda t: [int(g) for g in t.split(",")], default=[60, 1440])
    tick.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "fp-tick")
    tick.add_argument("--reuse", action="store_true")
    tick.add_argument("--devices", default="gc,writer")
    replay = sub.add_parser("replay")
    replay.add_argument("--candidacies", type=int, default=3000)
    replay.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "fp-replay")
    replay.add_argument("--devices", default="gc,zone-days")
    projections = sub.add_parser("projections")
    projections.add_argument("--candidacies", type=int, default=300)
    projections.add_argument("--devices", default="memo,pipeline")
    api = sub.add_parser("api")
    api.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    api.add_argument("--workers", type=int, default=1)
    api.add_argument("--connections", type=int, default=8)
    api.add_argument("--seconds", type=float, default=3.0)
    api.add_argument("--pool", type=int, default=64, help="candidacies a server cycles")
    api.add_argument("--devices", default="inline,copies")
    sub.add_parser("serve", help=argparse.SUPPRESS)
    engine = sub.add_parser("engine")
    engine.add_argument("--per-round", type=int, default=150)
    engine.add_argument("--pool", type=int, default=64)
    for each in (tick, replay, engine, api, projections):
        each.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.bench == "serve":
        serve()
        return
    args.devices = getattr(args, "devices", "").split(",")
    lines = {"tick": bench_tick, "replay": bench_replay, "engine": bench_engine,
             "api": bench_api, "projections": bench_projections}[args.bench](args)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
