"""Benchmark: each speed device of the engine against its own absence (issue 15, item 3).

Every side runs the product as built ("as built") or with one device switched off *by
this script* (the product has no switch for it), in paired rounds whose order rotates
(`paired.alternated`); the figure is the per-round ratio of the device's absence over the
build as is (above 1: the device saves that much), with its spread.  Which figure each
device was added for decides the bench:

    python benchmarks/fastpaths_bench.py tick --count 100000 --dir /tmp/fp-tick --reuse
    python benchmarks/fastpaths_bench.py replay --candidacies 3000 --dir /tmp/fp-replay
    python benchmarks/fastpaths_bench.py engine --rounds 6

- tick (`engine.scheduler.tick`, the store of `tick_bench.py`, a fresh copy each side):
  ``gc`` the cyclic garbage collector paused while a page is decided;
  ``writer`` pages committed by a writer thread while the next are decided (without it,
  each page is decided and then committed in turn);
- replay (`engine.replay.replay`, one process, CPU per event):
  ``gc`` replay's raised collector thresholds; ``zone-days`` the calendar's per-zone day
  tables (`ZoneDays`: every local day worked out by the tzinfo instead);
- engine (`Candidacies.note_competing_offer` on SQLite, one client, as engine_bench's):
  ``copies`` the kept copies of the candidacies last saved (`RecentCandidacies`), beside
  the library's own path with its aggregate cache on (issue 2's baseline at its best).
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

    from engine.calendar import ZoneDays

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
                                     "writer": ("without writer thread", without_tick_writer)})
    sides = list(switches)
    lines = [f"tick, {args.count:,} candidacies, {load_average()} before"]
    for gap in args.gaps:
        now = tick_bench.LAST + timedelta(minutes=gap)

        def one(side: str, _number: int, now: Any = now) -> dict[str, float]:
            url = fresh()
            with switches[side]():
                wall, cpu, _waited, report, _ = tick_bench.tick_in_process(url, now)
            return {"wall": wall, "cpu": cpu, "due": report.candidacies}

        runs = alternated(args.rounds, sides, one)
        built = runs["as built"]
        lines.append(f"+{gap} min, {int(built[0]['due']):,} due: as built "
                     f"{median([r['wall'] for r in built]):.3f} s wall, "
                     f"{median([r['cpu'] for r in built]):.3f} s CPU (medians)")
        for side in sides[1:]:
            lines.append(f"  {side} / as built: wall {_ratio(runs[side], built, 'wall')}; "
                         f"CPU {_ratio(runs[side], built, 'cpu')}")
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
    engine = sub.add_parser("engine")
    engine.add_argument("--per-round", type=int, default=150)
    engine.add_argument("--pool", type=int, default=64)
    for each in (tick, replay, engine):
        each.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    args.devices = getattr(args, "devices", "").split(",")
    lines = {"tick": bench_tick, "replay": bench_replay, "engine": bench_engine}[args.bench](args)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
