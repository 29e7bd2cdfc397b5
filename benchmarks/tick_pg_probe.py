"""Probe: the +1440 min tick in-process on PostgreSQL, for comparing two trees alternated
(issue 19, item 3; `tick_probe.py` is its SQLite twin):

    python benchmarks/tick_pg_probe.py fill [COUNT]          # the pristine database, once
    PYTHONPATH=<tree> python benchmarks/tick_pg_probe.py tick [ROUNDS]

`fill` populates `closer_tick_pristine` as `tick_bench.py` populates its SQLite file
(COUNT candidacies, default 20,000, seed 3) and analyses it (this machine's server runs
without autovacuum); after a warm tick, each timed tick runs on a fresh copy made from
it as a template (`tick_probe.timed_ticks`)."""

from __future__ import annotations

import os
import sys

import psycopg
import structlog

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tick_bench import LAST, populate  # noqa: E402
from tick_probe import NOW, timed_ticks  # noqa: E402

from engine.application import Candidacies  # noqa: E402
from engine.clock import FixedClock  # noqa: E402
from engine.store import eventsourcing_env  # noqa: E402

ADMIN = os.environ.get("CLOSER_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
PRISTINE, WORK = "closer_tick_pristine", "closer_tick_work"


def url_of(name: str) -> str:
    return ADMIN.rsplit("/", 1)[0] + f"/{name}"


def recreate(name: str, template: str | None = None) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))


def main() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    if sys.argv[1] == "fill":
        recreate(PRISTINE)
        populate(url_of(PRISTINE), int(sys.argv[2]) if len(sys.argv) > 2 else 20_000,
                 LAST, 3)
        with psycopg.connect(url_of(PRISTINE), autocommit=True) as conn:
            conn.execute("ANALYZE")
        return
    def fresh() -> Candidacies:
        recreate(WORK, PRISTINE)
        return Candidacies(eventsourcing_env(url_of(WORK)), clock=FixedClock(NOW))

    timed_ticks(fresh, int(sys.argv[2]) if len(sys.argv) > 2 else 3)


if __name__ == "__main__":
    main()
