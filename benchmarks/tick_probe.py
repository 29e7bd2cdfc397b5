"""Probe: the +1440 min tick in-process on fresh copies of a `tick_bench.py` store, for
comparing two trees alternated (issue 19, item 3):

    PYTHONPATH=<tree> python benchmarks/tick_probe.py PRISTINE.db [ROUNDS] [--profile]

PRISTINE.db is the `pristine-<count>-<seed>.db` that `tick_bench.py --dir DIR` leaves; a
warm tick first (calendars, imports), then ROUNDS timed ticks, each on a fresh copy."""

from __future__ import annotations

import cProfile
import glob
import os
import pstats
import shutil
import sys
import time
from datetime import timedelta

import structlog

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tick_bench import LAST  # noqa: E402

from engine.application import Candidacies  # noqa: E402
from engine.clock import FixedClock  # noqa: E402
from engine.scheduler import tick  # noqa: E402
from engine.store import eventsourcing_env  # noqa: E402

NOW = LAST + timedelta(minutes=1440)


def fresh(pristine: str, work: str) -> Candidacies:
    for path in glob.glob(work + "*"):
        os.unlink(path)
    shutil.copyfile(pristine, work)
    return Candidacies(eventsourcing_env("sqlite:///" + work), clock=FixedClock(NOW))


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    pristine = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2].isdigit() else 2
    work = os.path.join(os.path.dirname(os.path.abspath(pristine)), "probe.db")
    app = fresh(pristine, work)
    tick(app, NOW)  # warm: calendars, imports
    app.close()
    for _ in range(rounds):
        app = fresh(pristine, work)
        cpu, wall = time.process_time(), time.perf_counter()
        report = tick(app, NOW)
        print(f"tick: {time.perf_counter() - wall:.3f} s wall, "
              f"{time.process_time() - cpu:.3f} s CPU, {report.candidacies} due, "
              f"{report.recorded} recorded")
        app.close()
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
