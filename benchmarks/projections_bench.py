"""`closer projections rebuild` throughput: notifications per second rebuilding each read
model from scratch, on a SQLite file and on PostgreSQL, with and without PostgreSQL's
pipeline mode for a batch's statements (the receipt for `PostgresReadModelRecorder.write`).

    python benchmarks/projections_bench.py --candidacies 300
    python benchmarks/projections_bench.py --candidacies 300 --postgres postgresql://postgres@127.0.0.1:5432/bench

Prints one JSON line per (store, mode, read model); the figures go to docs/performance.md,
section "## Read models (issue 16)".
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from psycopg.sql import SQL, Identifier

from api.read_models import follower
from engine.application import Candidacies
from engine.clock import FixedClock
from engine.follower import PostgresReadModelRecorder, _check_position
from engine.simulation import simulate
from engine.store import eventsourcing_env
from engine.tables import Tx


def without_pipeline(self: PostgresReadModelRecorder, tracking: Any, work: Any,
                     expected: int | None = None) -> None:
    """The write as the library's own `datastore.transaction` would run it (the same
    position check as `PostgresReadModelRecorder.write`)."""
    with self.datastore.transaction(commit=True) as curs:
        if expected is not None:
            curs.execute(SQL("SELECT notification_id FROM {0}.{1} WHERE "
                             "application_name=%s FOR UPDATE").format(
                Identifier(self.datastore.schema), Identifier(self.tracking_table_name)),
                (tracking.application_name,))
            row = curs.fetchone()
            _check_position(tracking, expected, None if row is None else row["notification_id"])
        work(Tx(curs, "%s"))
        self._insert_tracking(curs, tracking)


def measure(url: str, count: int, modes: list[str]) -> None:
    app = Candidacies(eventsourcing_env(url),
                      clock=FixedClock(datetime(2026, 11, 25, 10, tzinfo=UTC)))
    if not app.recorder.max_notification_id():
        simulate(app, count, seed=16)
    runner = follower(app, batch=2000)
    top = runner.log_max()
    original = PostgresReadModelRecorder.write
    for mode in modes:
        PostgresReadModelRecorder.write = original if mode == "pipeline" else without_pipeline
        for model in runner.models:
            started = time.perf_counter()
            runner.rebuild(model)
            seconds = time.perf_counter() - started
            print(json.dumps({"store": url.split(":")[0], "mode": mode, "read_model": model.name,
                              "notifications": top, "seconds": round(seconds, 2),
                              "per_second": round(top / seconds)}), flush=True)
    PostgresReadModelRecorder.write = original
    app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidacies", type=int, default=300)
    parser.add_argument("--postgres", default=None, help="an empty PostgreSQL database URL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        measure(f"sqlite:///{folder}/bench.db", args.candidacies, ["sqlite"])
    if args.postgres:
        measure(args.postgres, args.candidacies, ["pipeline", "no pipeline"])


if __name__ == "__main__":
    main()
