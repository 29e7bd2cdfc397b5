"""Probe: the command endpoint under `wrk` run after run, to see a stall (a run that
answers few or none, or wrk's 2 s timeouts) that a benchmark's medians would hide:

    python benchmarks/workers_probe.py [--workers 2] [--runs 10] [--seconds 4] [--store sqlite]

Seeds 128 candidacies (`api_bench.seed`), starts `closer serve`'s server with that many
worker processes (`api_bench.start_server`) and drives `POST /candidacies/{id}/offers`
with 16 connections, printing each run's requests a second, p99 and socket errors (wrk
counts a request unanswered after 2 s as one).  Written for the stall two SQLite workers
had (docs/performance.md, issue 19, 2026-12-04)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import api_bench  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()
    folder = tempfile.mkdtemp()
    url = (f"sqlite:///{folder}/closer.db" if args.store == "sqlite"
           else api_bench.fresh_postgres())
    token, ids = api_bench.seed(url, 128)
    port = api_bench.free_port()
    server = api_bench.start_server(url, port, args.workers)
    script = api_bench.wrk_script(folder, "/candidacies/", token, ids)
    try:
        for run in range(1, args.runs + 1):
            out = subprocess.run(
                ["wrk", "-t", "2", "-c", "16", "-d", f"{args.seconds:g}s", "-s", script,
                 f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True).stdout
            result = json.loads(out.split("RESULT ", 1)[1].splitlines()[0])
            print(f"run {run}: {result['requests'] / args.seconds:7.1f} req/s, p99 "
                  f"{result['p99_us'] / 1000:7.1f} ms, non-2xx {result['non_2xx']}, "
                  f"socket errors {result['socket_errors']}", flush=True)
    finally:
        api_bench.stop_server(server)
        if args.store == "postgres":
            api_bench.drop_postgres()


if __name__ == "__main__":
    main()
