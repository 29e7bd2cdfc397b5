"""HTTP API benchmark: the command endpoint beside a bare endpoint that parses the same body,
driven by `wrk`, in paired, alternated rounds.

For each store (SQLite file, PostgreSQL database) it seeds a pool of candidacies at
`next_step_closed`, starts `closer serve`'s uvicorn set-up (`api.app.run_server`, the app
factory plus one bare route) as a separate process group on loopback, and drives it with
`wrk` (C, epoll, 2 threads) and a Lua script that POSTs the JSON body:

- ours: ``POST /candidacies/{id}/offers`` (authenticated; one `CompetingOfferNoted` event
  and the candidacy's row committed per request; each wrk thread cycles its own half of
  the pool, and the offers rotate among three companies so the state stays the same size);
- the baseline: ``POST /bench/bare/{id}/offers``, an ``async def`` route in the same app
  that parses the same body into the same pydantic model (`api.routes.commands.NoteOffer`)
  and answers a small JSON object: what FastAPI costs for this request with no work.

Each round runs the two back to back, the order alternating; a round's ratio is ours over
the baseline in that round.  The server's CPU time (user + system of the server process
and its workers, from /proc) and wrk's own CPU time (rusage of the child) are taken over
each run: the bare endpoint's server CPU near one core per worker shows that the load
generator is not what limits it.  Results go to docs/performance.md, section
"## API (issue 6)" (only that section is replaced).

    apt-get install -y wrk                                # Debian/Ubuntu
    python benchmarks/api_bench.py                        # both stores, 1 and 2 workers
    python benchmarks/api_bench.py --quick --no-write     # about 2 minutes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from paired import alternated, load_average, median, ratios, spread, table, write_section

from api.routes.commands import NoteOffer

SECTION = "## API (issue 6)"
PG_ADMIN = os.environ.get("CLOSER_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DB = "closer_bench_api"
WRK_THREADS = 2


# -- the server side ------------------------------------------------------------------------------


def bench_app() -> Any:
    """`closer serve`'s app, plus the baseline: a route that parses the command's body."""
    sys.path.insert(0, str(ROOT))
    from api.app import server_app

    app = server_app()

    @app.post("/bench/bare/{candidacy_id}/offers", include_in_schema=False)
    async def bare(candidacy_id: str, body: NoteOffer) -> dict[str, Any]:
        return {"id": candidacy_id, "company": body.company}

    return app


# -- set-up ---------------------------------------------------------------------------------------


def seed(database_url: str, pool: int) -> tuple[str, list[str]]:
    """A recruiter token and ``pool`` candidacies at `next_step_closed`, written in-process
    through the application's public commands."""
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
            ids.append(str(cid))
        return create_token(app, workspace="bench", role="recruiter"), ids
    finally:
        app.close()


def fresh_postgres() -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{PG_DB}"')
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{PG_DB}"


def drop_postgres() -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(database_url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    """`closer serve`'s server (`api.app.run_server`) with the benchmark's app factory,
    JSON request logs at info as in production (into /dev/null)."""
    env = {**os.environ, "CLOSER_DATABASE_URL": database_url, "CLOSER_LOG_FORMAT": "json",
           "CLOSER_LOG_LEVEL": "info", "CLOSER_HOST": "127.0.0.1", "CLOSER_PORT": str(port),
           "CLOSER_WORKERS": str(workers)}
    server = subprocess.Popen([sys.executable, __file__, "--serve"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    import httpx

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                time.sleep(1.0 if workers > 1 else 0.2)  # let every worker come up
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    stop_server(server)
    raise SystemExit("the server did not start")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)


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


# -- the load side: wrk -------------------------------------------------------------------------

LUA = """
local ids = {%(ids)s}
local prefix = "%(prefix)s"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(token)s"
local next_id = 0
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end
function init(args)
  n = 0
  mine = {}
  for i = tid + 1, #ids, %(threads)d do mine[#mine + 1] = ids[i] end
end
function request()
  n = n + 1
  local cid = mine[(n %% #mine) + 1]
  local body = '{"company":"Rival ' .. (math.floor(n / #mine) %% 3) ..
               '","deadline":"2099-01-01T17:00:00+00:00"}'
  return wrk.format(nil, prefix .. cid .. "/offers", nil, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%%d,"duration_us":%%d,"non_2xx":%%d,"socket_errors":%%d,' ..
    '"p50_us":%%d,"p99_us":%%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_script(folder: str, prefix: str, token: str, ids: list[str]) -> str:
    path = Path(folder) / f"{prefix.strip('/').replace('/', '_')}.lua"
    path.write_text(LUA % {"ids": ", ".join(f'"{i}"' for i in ids), "prefix": prefix,
                           "token": token, "threads": WRK_THREADS})
    return str(path)


def run_wrk(url: str, script: str, connections: int, seconds: float,
            server_pid: int) -> dict[str, Any]:
    """One wrk run; its report, with the server's and wrk's CPU time over it."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = server_cpu_seconds(server_pid)
    began = time.perf_counter()
    done = subprocess.run(
        ["wrk", "-t", str(WRK_THREADS), "-c", str(connections), "-d", f"{seconds:g}s",
         "--timeout", "10s", "-s", script, url],
        capture_output=True, text=True, check=True)
    wall = time.perf_counter() - began
    server_cpu = server_cpu_seconds(server_pid) - server_before
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    r = json.loads(line[len("RESULT "):])
    duration = r["duration_us"] / 1e6
    return {"rate": r["requests"] / duration, "requests": r["requests"],
            "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
            "errors": r["non_2xx"] + r["socket_errors"],
            "server_cores": server_cpu / wall,
            "server_cpu_ms": 1000 * server_cpu / max(r["requests"], 1),
            "wrk_cores": ((after.ru_utime - before.ru_utime)
                          + (after.ru_stime - before.ru_stime)) / wall}


# -- the run --------------------------------------------------------------------------------------

SIDES = ("bare", "command")


def bench_store(store: str, args: argparse.Namespace) -> dict[tuple[int, int], Any]:
    """Every worker count and connection count on one store: alternated rounds."""
    workdir = tempfile.mkdtemp(prefix="closer-bench-")
    database_url = f"sqlite:///{workdir}/closer.db" if store == "sqlite" else fresh_postgres()
    results: dict[tuple[int, int], Any] = {}
    try:
        token, ids = seed(database_url, args.pool)
        scripts = {"bare": wrk_script(workdir, "/bench/bare/", token, ids),
                   "command": wrk_script(workdir, "/candidacies/", token, ids)}
        for workers in args.workers:
            port = free_port()
            server = start_server(database_url, port, workers)
            url = f"http://127.0.0.1:{port}"
            try:
                for connections in args.connections:
                    for side in SIDES:  # warm-up, not counted
                        run_wrk(url, scripts[side], connections, args.warmup, server.pid)

                    def one(side: str, number: int, connections: int = connections,
                            workers: int = workers, url: str = url,
                            server: Any = server) -> dict[str, Any]:
                        r = run_wrk(url, scripts[side], connections, args.seconds, server.pid)
                        print(f"{store:8} w{workers} c{connections:<3} round {number + 1} "
                              f"{side:8} {r['rate']:7.0f}/s p50 {r['p50_ms']:6.2f} ms "
                              f"p99 {r['p99_ms']:6.2f} ms server {r['server_cores']:.2f} "
                              f"cores wrk {r['wrk_cores']:.2f} errors {r['errors']}",
                              file=sys.stderr, flush=True)
                        return r

                    results[(workers, connections)] = alternated(args.rounds, SIDES, one)
            finally:
                stop_server(server)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if store == "postgres":
            drop_postgres()
    return results


def render(all_results: dict[str, dict[tuple[int, int], Any]], args: argparse.Namespace,
           started: str, ended: str) -> str:
    rows = []
    verdicts = []
    for store, by_config in all_results.items():
        for (workers, connections), sides in by_config.items():
            bare, command = sides["bare"], sides["command"]
            per_round = ratios([r["rate"] for r in command], [r["rate"] for r in bare])
            cpu_ratio = ratios([r["server_cpu_ms"] for r in bare],
                               [r["server_cpu_ms"] for r in command])

            def cell(runs: list[dict[str, Any]], key: str, digits: int = 0) -> str:
                return f"{median([r[key] for r in runs]):.{digits}f}"

            errors = sum(r["errors"] for r in bare + command)
            rows.append([
                store, workers, connections,
                (f"{cell(bare, 'rate')} (p50 {cell(bare, 'p50_ms', 1)}, p99 "
                f"{cell(bare, 'p99_ms', 1)})"),
                (f"{cell(command, 'rate')} (p50 {cell(command, 'p50_ms', 1)}, p99 "
                f"{cell(command, 'p99_ms', 1)})"),
                spread(per_round),
                f"{cell(bare, 'server_cpu_ms', 2)} / {cell(command, 'server_cpu_ms', 2)}",
                spread(cpu_ratio),
                f"{cell(bare, 'server_cores', 2)} / {cell(command, 'server_cores', 2)}",
                f"{cell(bare, 'wrk_cores', 2)} / {cell(command, 'wrk_cores', 2)}",
                errors])
            if connections == 16:
                p99 = median([r["p99_ms"] for r in command])
                verdicts.append(f"{store}, {workers} worker(s): {median(per_round):.2f}x, "
                                f"p99 {p99:.0f} ms")
    def cores(workers_wanted: bool) -> list[float]:
        return [median([r["server_cores"] for r in sides["bare"]]) / workers
                for by_config in all_results.values()
                for (workers, _), sides in by_config.items() if (workers == 1) == workers_wanted]

    one, several = cores(True), cores(False)
    wrk_cores = [median([r["wrk_cores"] for r in sides["bare"]])
                 for by_config in all_results.values() for sides in by_config.values()]
    saturated = (
        "Is the load generator the bottleneck? wrk used "
        f"{min(wrk_cores):.2f}–{max(wrk_cores):.2f} cores (medians) on the bare endpoint"
        + (f"; with 1 worker the bare endpoint's server used {min(one):.2f}–{max(one):.2f} "
           "of a core" if one else "")
        + (f"; with several, {min(several):.2f}–{max(several):.2f} of a core per worker "
           "(the workers, wrk and the database share the machine's cores)" if several else "")
        + ". " + ("With 1 worker the server was near saturation: it, not wrk, limits the "
                  "bare endpoint." if one and min(one) >= 0.8 else
                  "Where the server is well below a core, other processes held the CPUs (see "
                  "the load average): the per-server-CPU-second ratio is then the figure that "
                  "does not depend on how much CPU the server got."))
    command = ("python benchmarks/api_bench.py" + (" --quick" if args.quick else "")
               + f" --rounds {args.rounds} --seconds {args.seconds:g} --workers "
               + ",".join(map(str, args.workers)) + " --connections "
               + ",".join(map(str, args.connections)) + f" --store {args.store}")
    lines = [
        SECTION, "",
        (f"`{command}`, {datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, {platform.system()}; {started} before, {ended} after "
        "(the machine was shared with other work during the run: compare the ratios, not "
        "the rates)."), "",
        ("Load: `wrk` (2 threads, keep-alive) with a Lua script POSTing the JSON body, "
        f"{args.rounds} rounds of {args.seconds:g} s per side, bare and command back to back "
        "in an order that alternates each round, after a warm-up of each. The command is "
        "`POST /candidacies/{id}/offers` (token auth, body validation, one event and the "
        "candidacy's row committed); the bare endpoint is an `async def` route in the same "
        "app, behind the same middleware, that parses the same body into the same pydantic "
        "model (`NoteOffer`) and does nothing else. Server: `closer serve`'s uvicorn set-up "
        "(`api.app.run_server`), JSON request logs on (into /dev/null). req/s and latencies "
        "(wrk's, ms) are medians over rounds; the ratio is the median of the per-round ratios "
        "(command / bare in the same round) with their min–max. Server CPU ms/req is the "
        "server processes' CPU time (/proc) over the requests wrk completed; cores = CPU "
        "seconds per wall second (server's and wrk's own): the bare endpoint's server at "
        "about one core per worker means the server, not wrk, is what limits it."), "",
        *table(["store", "workers", "connections", "bare req/s (ms)", "command req/s (ms)",
                "command / bare, per round", "server CPU ms/req, bare / command",
                "command / bare, per server CPU-s", "server cores, bare / command",
                "wrk cores, bare / command", "errors"], rows), "",
        saturated, "",
        "Issue 19's target (16 connections: the command at least 0.4x the bare endpoint, p99 "
        "under 50 ms, both stores): " + ("; ".join(verdicts) or "not measured at 16") + ".",
        "",
        ("Reproduce (`apt-get install -y wrk`; PostgreSQL on 127.0.0.1:5432, trust auth; it "
        "rewrites only this section):"), "", f"    {command}", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=4, help="paired rounds")
    parser.add_argument("--seconds", type=float, default=5.0, help="per side and round")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=lambda t: [int(c) for c in t.split(",")],
                        default=[8, 16])
    parser.add_argument("--workers", type=lambda t: [int(w) for w in t.split(",")],
                        default=[1, 2], help="server worker counts to measure, e.g. 1,2")
    parser.add_argument("--pool", type=int, default=128, help="candidacies the commands cycle")
    parser.add_argument("--quick", action="store_true",
                        help="2 rounds of 2 s, SQLite only, 1 worker: about a minute")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        from api.app import run_server
        from api.settings import Settings

        run_server(Settings(), app="benchmarks.api_bench:bench_app")
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian/Ubuntu: apt-get install -y wrk)")
    if args.quick:
        args.rounds, args.seconds, args.workers = 2, 2.0, [1]
        args.store = "sqlite" if args.store == "both" else args.store
    started = load_average()
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    results = {store: bench_store(store, args) for store in stores}
    text = render(results, args, started, load_average())
    print("\n" + text)
    if not args.no_write:
        write_section(SECTION, text)
        print("wrote the section to docs/performance.md", file=sys.stderr)


if __name__ == "__main__":
    main()
