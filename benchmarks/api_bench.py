"""HTTP API benchmark (issue 6): a command endpoint beside a bare FastAPI endpoint, same run.

For each store (SQLite file, PostgreSQL database) it seeds a pool of candidacies at
`awaiting`, starts uvicorn with the app factory (`server_app` plus two bare endpoints that
do no work) as a separate process on loopback, and drives load from another process with
httpx at a fixed concurrency: first the bare endpoints, then `POST /candidacies/{id}/offers`
on the pool (each connection owns its candidacies, so every request records exactly one
event and none conflict).  Throughput and p50/p99 latency go to `docs/performance.md`,
section `## API (issue 6)` (only that section is replaced).

    python benchmarks/api_bench.py                      # both stores, 10 s per endpoint
    python benchmarks/api_bench.py --store sqlite --seconds 5 --no-write
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.application import RECENT_CANDIDACIES  # noqa: E402 - after the path is set
DOC = ROOT / "docs" / "performance.md"
SECTION = "## API (issue 6)"
PG_ADMIN = os.environ.get("CLOSER_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DB = "closer_bench_api"


# -- the server side ------------------------------------------------------------------------------


def bench_app() -> Any:
    """`closer serve`'s app, plus two endpoints that do no work (the baseline)."""
    sys.path.insert(0, str(ROOT))
    from api.app import server_app

    app = server_app()

    @app.get("/bench/bare-async", include_in_schema=False)
    async def bare_async() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/bench/bare-sync", include_in_schema=False)
    def bare_sync() -> dict[str, bool]:
        return {"ok": True}

    return app


# -- set-up ---------------------------------------------------------------------------------------


def seed(database_url: str, pool: int) -> tuple[str, list[str]]:
    """A recruiter token and ``pool`` candidacies at `awaiting`, written in-process."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests"))
    from builders import PANEL, interview

    from api.auth import create_token
    from api.logs import configure_logging
    from api.settings import Settings
    from api.wiring import build_candidacies
    from engine.values import Actor

    configure_logging("console", "warning")
    app = build_candidacies(Settings(database_url=database_url))
    try:
        actor = Actor(user="bench@agency", workspace="bench")
        now = datetime.now(UTC).isoformat()
        ids = []
        for n in range(pool):
            cid = app.record_interview(actor, interview(interviewers=PANEL, interviewed_at=now,
                                                        company=f"Bench {n}")).candidacy_id
            app.record_no_hesitations(actor, cid)
            app.close_next_step(actor, cid, "Onsite")
            app.send_thank_you(actor, cid, "email")
            ids.append(cid)
        return create_token(app, workspace="bench", role="recruiter"), ids
    finally:
        app.close()


def fresh_postgres() -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{PG_DB}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    return f"{base}/{PG_DB}"


def drop_postgres() -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(database_url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    """`closer serve`'s server (`api.app.run_server`) with the benchmark's app factory."""
    env = {**os.environ, "CLOSER_DATABASE_URL": database_url, "CLOSER_LOG_FORMAT": "json",
           "CLOSER_LOG_LEVEL": "info", "CLOSER_HOST": "127.0.0.1", "CLOSER_PORT": str(port),
           "CLOSER_WORKERS": str(workers)}
    server = subprocess.Popen([sys.executable, __file__, "--serve"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    stop_server(server)
    raise SystemExit("the server did not start")


def server_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of the server process and its worker processes (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        own_pid, parent = int(stat.parent.name), int(fields[1])
        if own_pid == pid or parent == pid:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def stop_server(server: subprocess.Popen[bytes]) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(30)


# -- the load side (runs in its own process) -------------------------------------------------


async def _load(url: str, token: str, target: str, ids: list[str], concurrency: int,
                seconds: float, warmup: float) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    measuring = asyncio.Event()
    stop = asyncio.Event()

    async def worker(n: int, http: httpx.AsyncClient) -> None:
        mine = ids[n::concurrency]
        i = 0
        while not stop.is_set():
            if target in ("command", "command-cold"):
                # Offers from a few companies: one event each, and the state stays the same
                # size (a company's later offer replaces its earlier one).
                cid = mine[i % len(mine)]
                request = http.post(f"/candidacies/{cid}/offers", json={
                    "company": f"Rival {i % 3}", "deadline": "2099-01-01T17:00:00+00:00"})
                i += 1
            else:
                request = http.get(f"/bench/{target}")
            started = time.perf_counter()
            response = await request
            elapsed = time.perf_counter() - started
            if measuring.is_set() and not stop.is_set():
                latencies.append(elapsed)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits,
                                 timeout=30) as http:
        tasks = [asyncio.create_task(worker(n, http)) for n in range(concurrency)]
        await asyncio.sleep(warmup)
        measuring.set()
        began = time.perf_counter()
        await asyncio.sleep(seconds)
        stop.set()
        elapsed = time.perf_counter() - began
        await asyncio.gather(*tasks)
    return {"requests": len(latencies), "seconds": elapsed, "latencies": latencies,
            "statuses": statuses}


def _engine_direct(database_url: str, ids: list[str], concurrency: int, seconds: float,
                   warmup: float) -> dict[str, Any]:
    """The same command called on `Candidacies` directly from ``concurrency`` threads: what
    the engine and store allow without HTTP (diagnostic)."""
    import threading

    sys.path.insert(0, str(ROOT))
    from api.logs import configure_logging
    from api.settings import Settings
    from api.wiring import build_candidacies
    from engine.values import Actor

    configure_logging("json", "info")  # as the server logs
    app = build_candidacies(Settings(database_url=database_url))
    actor = Actor(user="bench@agency", workspace="bench")
    deadline = datetime(2099, 1, 1, 17, tzinfo=UTC)
    latencies: list[float] = []
    measuring, stop = threading.Event(), threading.Event()

    def worker(n: int) -> None:
        mine, i = ids[n::concurrency], 0
        while not stop.is_set():
            started = time.perf_counter()
            app.note_competing_offer(actor, mine[i % len(mine)], f"Rival {i % 3}", deadline)
            elapsed = time.perf_counter() - started
            i += 1
            if measuring.is_set() and not stop.is_set():
                latencies.append(elapsed)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    time.sleep(warmup)
    measuring.set()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    elapsed = time.perf_counter() - began
    for thread in threads:
        thread.join()
    app.close()
    return {"requests": len(latencies), "seconds": elapsed, "latencies": latencies,
            "statuses": {}}


def load(spec: dict[str, Any]) -> dict[str, Any]:
    """Drive load from a separate process; its JSON report."""
    done = subprocess.run([sys.executable, __file__, "--load-spec", json.dumps(spec)],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


# -- the run --------------------------------------------------------------------------------------


TARGETS = [("bare-async", "`GET /bench/bare-async` (bare `async def`, no work)"),
           ("bare-sync", "`GET /bench/bare-sync` (bare `def`, thread pool, no work)"),
           ("command", "`POST /candidacies/{id}/offers` (one event each)"),
           ("command-cold", "the same on candidacies whose copy the server no longer keeps"),
           ("engine", "the same command on `Candidacies` in-process, no HTTP (diagnostic)")]


def bench_store(store: str, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    """Interleaved rounds of every target (machine load drifts; medians over rounds)."""
    workdir = tempfile.mkdtemp(prefix="closer-bench-")
    database_url = f"sqlite:///{workdir}/closer.db" if store == "sqlite" else fresh_postgres()
    token, ids = seed(database_url, args.pool)
    # More candidacies than the server keeps copies of (`RecentCandidacies`), visited in
    # turn: each command on them reads its candidacy back from the store first.
    _token, cold_ids = seed(database_url, RECENT_CANDIDACIES + 200)
    port = free_port()
    server = start_server(database_url, port, workers)
    rounds: dict[str, list[dict[str, Any]]] = {target: [] for target, _ in TARGETS}
    try:
        for n in range(args.rounds):
            for target, _ in TARGETS:
                spec = {"concurrency": args.concurrency, "seconds": args.seconds,
                        "warmup": args.warmup,
                        "ids": cold_ids if target == "command-cold" else ids}
                if target == "engine":
                    spec |= {"engine": True, "database_url": database_url}
                else:
                    spec |= {"url": f"http://127.0.0.1:{port}", "token": token,
                             "target": target}
                cpu_before = server_cpu_seconds(server.pid)
                result = load(spec)
                cpu = server_cpu_seconds(server.pid) - cpu_before
                # Warm-up requests are not counted: an estimate, for the HTTP targets only.
                served = result["requests"] * (1 + args.warmup / args.seconds)
                result["server_cpu_ms"] = None if target == "engine" else 1000 * cpu / served
                rounds[target].append(result)
                print(f"{store:8} w{workers} round {n + 1} {target:10} "
                      f"{result['requests'] / result['seconds']:8.0f} /s  {result['statuses']}",
                      flush=True)
    finally:
        stop_server(server)
        shutil.rmtree(workdir, ignore_errors=True)
        if store == "postgres":
            drop_postgres()
    return {target: summarise(results) for target, results in rounds.items()}


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Median throughput over rounds; latency percentiles over every request."""
    latencies = sorted(x for r in results for x in r["latencies"])
    statuses: dict[str, int] = {}
    for r in results:
        for status, n in r["statuses"].items():
            statuses[status] = statuses.get(status, 0) + n
    cpu = [r["server_cpu_ms"] for r in results if r.get("server_cpu_ms") is not None]
    return {
        "server_cpu_ms": statistics.median(cpu) if cpu else None,
        "throughput": statistics.median(r["requests"] / r["seconds"] for r in results),
        "per_round": [r["requests"] / r["seconds"] for r in results],
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "statuses": statuses,
    }


def render(all_results: dict[tuple[str, int], dict[str, Any]], args: argparse.Namespace,
           notes: str = "") -> str:
    setup = (
        f"`benchmarks/api_bench.py`, {datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} CPU(s), "
        f"Python {platform.python_version()}, {platform.system()}. Server: `closer serve`'s "
        f"uvicorn set-up (`api.app.run_server`, the app factory plus the two bare "
        f"endpoints), JSON request logs on. "
        f"Load: a separate process on loopback, httpx, {args.concurrency} concurrent "
        f"connections; {args.rounds} interleaved rounds of {args.seconds:g} s per endpoint "
        f"(after {args.warmup:g} s warm-up each); req/s is the median over rounds, latencies "
        f"pool every request. Server, load generator and database share the machine. The "
        f"command authenticates (cached token), validates the body, starts from the copy "
        f"of the candidacy the previous command on it left in the server (each connection "
        f"cycles {args.pool // args.concurrency} of the {args.pool} seeded candidacies, so "
        f"every command here finds one), and commits one event with its row; the cold row "
        f"cycles {RECENT_CANDIDACIES + 200:,} candidacies, more than the server keeps, so "
        f"each command first reads its candidacy back (latest snapshot and the events after "
        f"it, one statement).")
    lines = [
        SECTION, "", setup, "",
        ("| store | workers | endpoint | req/s (rounds) | p50 ms | p99 ms | vs bare async "
         "| vs bare sync | server CPU ms/req |"),
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (store, workers), results in all_results.items():
        bare_async = results["bare-async"]["throughput"]
        bare_sync = results["bare-sync"]["throughput"]
        for target, label in TARGETS:
            r = results[target]
            errors = sum(n for status, n in r["statuses"].items() if int(status) >= 400)
            note = f" ({errors} errors)" if errors else ""
            rounds = ", ".join(f"{x:.0f}" for x in r["per_round"])
            vs = ("" if target == "engine" else
                  f"{r['throughput'] / bare_async:.2f}x | {r['throughput'] / bare_sync:.2f}x")
            cpu = "–" if r["server_cpu_ms"] is None else f"{r['server_cpu_ms']:.2f}"
            lines.append(
                f"| {store} | {workers} | {label}{note} | {r['throughput']:.0f} ({rounds}) | "
                f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {vs or '– | –'} | {cpu} |")
    verdicts = []
    for (store, workers), results in all_results.items():
        ratio = results["command"]["throughput"] / results["bare-async"]["throughput"]
        cold = results["command-cold"]["throughput"] / results["bare-async"]["throughput"]
        share = results["command"]["throughput"] / results["engine"]["throughput"]
        verdict = "met" if ratio >= 0.4 else "MISSED"
        cold_verdict = "met" if cold >= 0.4 else "missed"
        verdicts.append(f"{store} with {workers} worker(s) {ratio:.2f}x ({verdict}; cold "
                        f"{cold:.2f}x, {cold_verdict}; the HTTP command reaches {share:.2f}x "
                        "of the in-process engine)")
    target = ("Target: the command endpoint at least 0.4x the bare endpoint's throughput, "
              "against the bare `async def` endpoint: " + "; ".join(verdicts) + ".")
    command = (f"    python benchmarks/api_bench.py --rounds {args.rounds} --seconds "
               f"{args.seconds:g} --concurrency {args.concurrency} --workers "
               f"{','.join(map(str, args.workers))}")
    lines += ["", target, ""]
    if notes:
        lines += [notes, ""]
    lines += [("Reproduce (PostgreSQL on 127.0.0.1:5432, trust auth; it rewrites only this "
               "section):"), "", command, ""]
    return "\n".join(lines)


def write_section(text: str) -> None:
    """Replace (or append) only this section of docs/performance.md."""
    existing = DOC.read_text() if DOC.exists() else "# Performance\n"
    lines = existing.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == SECTION), None)
    if start is None:
        updated = existing.rstrip("\n") + "\n\n" + text
    else:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))
        updated = "\n".join(lines[:start] + text.rstrip("\n").splitlines() +
                            ([""] + lines[end:] if end < len(lines) else [])) + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(updated.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--seconds", type=float, default=5.0, help="per target and round")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=lambda text: [int(w) for w in text.split(",")],
                        default=[1, 2], help="server worker counts to measure, e.g. 1,2")
    parser.add_argument("--pool", type=int, default=64, help="candidacies the commands cycle")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--notes", default="", help="a paragraph to add under the table")
    parser.add_argument("--load-spec", help=argparse.SUPPRESS)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        sys.path.insert(0, str(ROOT))  # the workers import benchmarks.api_bench
        from api.app import run_server
        from api.settings import Settings

        run_server(Settings(), app="benchmarks.api_bench:bench_app")
        return
    if args.load_spec:
        spec = json.loads(args.load_spec)
        if spec.pop("engine", False):
            print(json.dumps(_engine_direct(**spec)))
        else:
            print(json.dumps(asyncio.run(_load(**spec))))
        return
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    results = {(store, workers): bench_store(store, workers, args)
               for workers in args.workers for store in stores}
    text = render(results, args, args.notes)
    print("\n" + text)
    if not args.no_write:
        write_section(text)
        print(f"wrote the section to {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
