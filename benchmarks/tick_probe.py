"""Probe: the +1440 min tick in-process on fresh copies of a `tick_bench.py` store, for
comparing two trees alternated (issue 19, item 3):

    PYTHONPATH=<tree> python benchmarks/tick_probe.py PRISTINE.db [ROUNDS] [--profile]

PRISTINE.db is the `pristine-<count>-<seed>.db` that `tick_bench.py --dir DIR` leaves; a
warm tick first (calendars, imports), then ROUNDS timed ticks, each on a fresh copy.

    python benchmarks/tick_probe.py PRISTINE.db [ROUNDS] --chains

times the tick's chain check alone instead, on PRISTINE.db as it is (read only; or on a
database URL, a PostgreSQL store that `tick_bench.populate` filled alike): the due
candidacies' chains read one query a candidacy (`verify_chain`) against one a page of
200 (`verify_chains`, what the tick does), alternated, ROUNDS of each.

    python benchmarks/tick_probe.py PRISTINE.db [ROUNDS] --loads

times what the tick must do before it decides anything, on PRISTINE.db as it is (read
only): the due candidacies loaded as the tick loads them (`Candidacies._load_many`, pages
of 200: their snapshots and later events decoded into domain events and projected),
against issue 19's floor C (`tick_bench.floor_due_events`: the same events read and
their JSON decoded), alternated, ROUNDS of each."""

from __future__ import annotations

import cProfile
import glob
import os
import pstats
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import structlog

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tick_bench import LAST  # noqa: E402

from engine.application import Candidacies  # noqa: E402
from engine.audit import verify_chain, verify_chains  # noqa: E402
from engine.clock import FixedClock  # noqa: E402
from engine.scheduler import tick  # noqa: E402
from engine.store import eventsourcing_env  # noqa: E402

NOW = LAST + timedelta(minutes=1440)


def fresh(pristine: str, work: str) -> Candidacies:
    for path in glob.glob(work + "*"):
        os.unlink(path)
    shutil.copyfile(pristine, work)
    return Candidacies(eventsourcing_env("sqlite:///" + work), clock=FixedClock(NOW))


def timed_ticks(open_fresh: Callable[[], Candidacies], rounds: int) -> None:
    """A warm tick (calendars, imports), then ``rounds`` timed ones, each on the fresh
    store ``open_fresh`` opens, printed."""
    app = open_fresh()
    tick(app, NOW)
    app.close()
    for _ in range(rounds):
        app = open_fresh()
        cpu, wall = time.process_time(), time.perf_counter()
        report = tick(app, NOW)
        print(f"tick: {time.perf_counter() - wall:.3f} s wall, "
              f"{time.process_time() - cpu:.3f} s CPU, {report.candidacies} due, "
              f"{report.recorded} recorded")
        app.close()


def alternated(sides: dict[str, Callable[[], object]], rounds: int
               ) -> dict[str, list[tuple[float, float]]]:
    """Each of two ``sides`` run ``rounds`` times, their order alternating (after a round
    that warms both): each side's ``(wall, CPU)`` seconds, round by round."""
    times: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
    for number in range(rounds + 1):  # round 0 warms both
        for side in list(sides)[number % 2:] + list(sides)[:number % 2]:
            cpu, wall = time.process_time(), time.perf_counter()
            sides[side]()
            if number:
                times[side].append((time.perf_counter() - wall, time.process_time() - cpu))
    return times


def chains(pristine: str, rounds: int) -> None:
    url = pristine if "://" in pristine else "sqlite:///" + pristine  # or a PostgreSQL one
    app = Candidacies(eventsourcing_env(url), clock=FixedClock(NOW))
    due = [UUID(str(cid)) for cid in app.due_ids(NOW)]
    pages = [due[start:start + 200] for start in range(0, len(due), 200)]

    def one_each() -> int:
        return sum(bool(verify_chain(app.recorder, uid)) for uid in due)

    def a_page() -> int:
        return sum(bool(f) for page in pages for f in verify_chains(app.recorder, page).values())

    times = alternated({"a query each": one_each, "a query a page": a_page}, rounds)
    broken = a_page()
    app.close()
    for side, runs in times.items():
        print(f"{side}: {len(due)} chains ({broken} broken), median "
              f"{statistics.median(w for w, _ in runs):.4f} s wall, "
              f"{statistics.median(c for _, c in runs):.4f} s CPU")
    per = [e[1] / p[1] for e, p in zip(times["a query each"], times["a query a page"],
                                       strict=True)]
    print(f"CPU, a query each / a query a page, per round: {statistics.median(per):.2f}x "
          f"({min(per):.2f}-{max(per):.2f}, {len(per)} rounds)")


def loads(pristine: str, rounds: int) -> None:
    from tick_bench import floor_due_events

    app = Candidacies(eventsourcing_env("sqlite:///" + pristine), clock=FixedClock(NOW))
    due = list(app.due_ids(NOW))
    pages = [due[start:start + 200] for start in range(0, len(due), 200)]

    def load() -> None:
        for page in pages:
            app._load_many(page)

    def floor_c() -> None:
        floor_due_events(Path(pristine), NOW)

    times = alternated({"load": load, "floor C": floor_c}, rounds)
    app.close()
    for side, runs in times.items():
        print(f"{side}: {len(due)} due candidacies, median "
              f"{statistics.median(w for w, _ in runs):.4f} s wall, "
              f"{statistics.median(c for _, c in runs):.4f} s CPU")
    for what, index in (("wall", 0), ("CPU", 1)):
        per = [lo[index] / fl[index] for lo, fl in zip(times["load"], times["floor C"],
                                                        strict=True)]
        print(f"{what}, load / floor C, per round: {statistics.median(per):.2f}x "
              f"({min(per):.2f}-{max(per):.2f}, {len(per)} rounds)")


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    pristine = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 2
    if "--chains" in sys.argv:
        chains(pristine, rounds)
        return
    if "--loads" in sys.argv:
        loads(pristine, rounds)
        return
    work = os.path.join(os.path.dirname(os.path.abspath(pristine)), "probe.db")
    timed_ticks(lambda: fresh(pristine, work), rounds)
    if "--profile" in sys.argv:
        app = fresh(pristine, work)
        profiler = cProfile.Profile()
        profiler.enable()
        tick(app, NOW)
        profiler.disable()
        app.close()
        pstats.Stats(profiler).strip_dirs().sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
