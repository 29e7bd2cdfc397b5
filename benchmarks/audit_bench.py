"""The audit's costs (issue 17), in one run, on SQLite:

    python benchmarks/audit_bench.py                       # 1,000,000 events
    python benchmarks/audit_bench.py --events 200000 --reuse

1. `closer audit verify`'s walk (`engine.audit.verify`: every stored event read with its
   recorded hashes, its chain hash recomputed, the Merkle tree over the log rebuilt and
   each checkpoint compared) against replay's read floor (`replay_bench.floor`: the plain
   select of every stored row plus ``orjson.loads`` of each payload) on the same file,
   in paired rounds whose order alternates; events/s and the per-round ratio (target of
   issue 17: at least 0.5x).  The snapshot comparison (`verify_snapshots`, which decodes
   and folds every event as replay does) is timed once beside it.
2. The command path with and without chain hashes (`EventChain.chain_events`): single
   commands through `Candidacies` on two SQLite files, in paired alternating rounds;
   commands/s and the per-round ratio (target: at least 0.8x).

The store is written by `closer simulate`'s bulk path, which chains as every save does.
Results go to docs/performance.md, section "## Audit (issue 17)" (only that section).
"""

from __future__ import annotations

import argparse
import sqlite3
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
from replay_bench import build, floor

from engine import audit

SECTION = "## Audit (issue 17)"
KEY_SEED = bytes(range(32))


def _key() -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.from_private_bytes(KEY_SEED)


def _app(path: Path | str) -> Any:
    from engine.application import Candidacies
    from engine.store import eventsourcing_env

    url = path if isinstance(path, str) else f"sqlite:///{path}"
    return Candidacies(eventsourcing_env(url))


def _postgres_urls(admin: str) -> list[str]:
    """Two fresh PostgreSQL databases for the command-path pair."""
    import psycopg

    urls = []
    with psycopg.connect(admin, autocommit=True) as conn:
        for side in ("chained", "unchained"):
            name = f"closer_audit_bench_{side}"
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
            urls.append(admin.rsplit("/", 1)[0] + f"/{name}")
    return urls


def verify_run(path: Path) -> dict[str, Any]:
    app = _app(path)
    wall, cpu = time.perf_counter(), time.process_time()
    report = audit.verify(app.recorder, _key().public_key())
    elapsed, used = time.perf_counter() - wall, time.process_time() - cpu
    app.close()
    assert report.intact, [f.line() for f in report.findings[:3]]
    return {"events": report.events, "seconds": elapsed,
            "events_per_second": report.events / elapsed,
            "events_per_cpu_second": report.events / used,
            "checkpoints": report.checkpoints_checked}


def snapshots_run(path: Path) -> dict[str, Any]:
    app = _app(path)
    started = time.perf_counter()
    checked, findings = audit.verify_snapshots(app)
    elapsed = time.perf_counter() - started
    app.close()
    assert not findings
    return {"snapshots": checked, "seconds": elapsed}


def commands_run(app: Any, ids: list[str], count: int, chained: bool) -> tuple[float, float]:
    """``count`` single commands (pause, then resume, over ``ids`` in turn): commands/s,
    and commands per CPU-second of this process (the client's, on PostgreSQL)."""
    from engine.values import Actor

    app.recorder.chain_events = chained
    actor = Actor(user="bench@agency.example", workspace="agency")
    started, cpu = time.perf_counter(), time.process_time()
    for n in range(count):
        candidacy_id = ids[n % len(ids)]
        if app.get(candidacy_id, "agency").paused is None:
            app.pause_cadence(actor, candidacy_id, "candidate travelling")
        else:
            app.resume_cadence(actor, candidacy_id)
    return (count / (time.perf_counter() - started),
            count / max(1e-9, time.process_time() - cpu))


def command_cost(folder: Path, rounds: int, count: int, pool: int,
                 urls: list[str] | None = None) -> dict[str, Any]:
    from engine.clock import FixedClock

    sys.path.insert(0, str(ROOT / "tests"))
    from builders import interview

    from engine.values import Actor

    apps: dict[str, Any] = {}
    pools: dict[str, list[str]] = {}
    actor = Actor(user="bench@agency.example", workspace="agency")
    for number, side in enumerate(("chained", "unchained")):
        app = _app(urls[number] if urls else folder / f"{side}.db")
        app.clock = FixedClock(datetime(2026, 11, 25, 10, tzinfo=UTC))
        app.recorder.chain_events = side == "chained"
        pools[side] = [app.record_interview(actor, interview()).candidacy_id
                       for _ in range(pool)]
        apps[side] = app
    for side in apps:  # a warm-up round each, not counted
        commands_run(apps[side], pools[side], count // 4, side == "chained")
    results = alternated(rounds, ["chained", "unchained"],
                         lambda side, _: commands_run(apps[side], pools[side], count,
                                                      side == "chained"))
    for app in apps.values():
        app.close()
    wall = {side: [r[0] for r in results[side]] for side in results}
    cpu = {side: [r[1] for r in results[side]] for side in results}
    return {"commands_per_second": wall, "commands_per_cpu_second": cpu,
            "ratio": ratios(wall["chained"], wall["unchained"]),
            "cpu_ratio": ratios(cpu["chained"], cpu["unchained"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds of each pair")
    parser.add_argument("--commands", type=int, default=400, help="commands per side a round")
    parser.add_argument("--pool", type=int, default=50, help="candidacies per side")
    parser.add_argument("--store", type=Path, default=Path(tempfile.gettempdir())
                        / "closer-audit-bench" / "closer.db")
    parser.add_argument("--reuse", action="store_true", help="keep an existing store")
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/")
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="the command path on PostgreSQL too (two databases made here); "
                             "empty: SQLite only")
    args = parser.parse_args()
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    load_before = load_average()
    if not (args.reuse and args.store.exists()):
        print(f"building {args.events:,} events in {args.store}", file=sys.stderr)
        built = build(args.store, args.events, seed=17)
    else:
        with sqlite3.connect(args.store) as db:
            built = {"events": db.execute("SELECT COUNT(*) FROM stored_events").fetchone()[0],
                     "seconds": None}
    app = _app(args.store)
    key = _key()
    if not app.recorder.select_checkpoints():
        audit.checkpoint(app.recorder, key.sign, key.public_key(), 0)
    app.close()
    print("verify against the floor", file=sys.stderr)
    pair = alternated(args.rounds, ["verify", "floor"],
                      lambda side, _: verify_run(args.store) if side == "verify"
                      else floor(args.store))
    snaps = snapshots_run(args.store)
    print("commands with and without chain hashes", file=sys.stderr)
    with tempfile.TemporaryDirectory() as folder:
        commands = command_cost(Path(folder), args.rounds * 2, args.commands, args.pool)
    pg_commands = None
    if args.pg_admin_url:
        print("the same on PostgreSQL", file=sys.stderr)
        pg_commands = command_cost(Path("."), args.rounds * 2, args.commands, args.pool,
                                   urls=_postgres_urls(args.pg_admin_url))
    report = {"built": built, "pair": pair, "snapshots": snaps, "commands": commands,
              "pg_commands": pg_commands,
              "load_before": load_before, "load_after": load_average(), "args": vars(args)}
    text = render(report, " ".join(["python", "benchmarks/audit_bench.py", *sys.argv[1:]]))
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


def render(r: dict[str, Any], command: str) -> str:
    verify_rates = [v["events_per_second"] for v in r["pair"]["verify"]]
    floor_rates = [f["events_per_second"] for f in r["pair"]["floor"]]
    verify_cpu = [v["events_per_cpu_second"] for v in r["pair"]["verify"]]
    floor_cpu = [f["events_per_cpu_second"] for f in r["pair"]["floor"]]
    cps = r["commands"]["commands_per_second"]
    rows = [["SQLite file", f"{median(cps['chained']):,.0f}", f"{median(cps['unchained']):,.0f}",
             spread(r["commands"]["ratio"]), spread(r["commands"]["cpu_ratio"])]]
    if r.get("pg_commands"):
        pg = r["pg_commands"]["commands_per_second"]
        rows.append(["PostgreSQL", f"{median(pg['chained']):,.0f}",
                     f"{median(pg['unchained']):,.0f}", spread(r["pg_commands"]["ratio"]),
                     spread(r["pg_commands"]["cpu_ratio"])])
    events = r["pair"]["verify"][0]["events"]
    lines = [
        SECTION, "",
        f"Reproduce: `{command}` ({r['load_before']} before, {r['load_after']} after; "
        "one 2-core machine shared with other work: the ratios, paired round by round, are "
        "the figures to read).", "",
        f"`closer audit verify`'s walk over {events:,} stored events (each chain hash "
        "recomputed and compared with the recorded one, the log's Merkle tree rebuilt, the "
        "checkpoint compared) beside replay's read floor (plain select + `orjson.loads`), "
        "same file, alternating rounds:", "",
        *table(["", "events/s (median)", "events/CPU-s (median)",
                "verify / floor, per round (wall)", "verify / floor, per round (CPU)"],
               [["verify", f"{median(verify_rates):,.0f}", f"{median(verify_cpu):,.0f}",
                 spread(ratios(verify_rates, floor_rates)),
                 spread(ratios(verify_cpu, floor_cpu))],
                ["read floor", f"{median(floor_rates):,.0f}", f"{median(floor_cpu):,.0f}",
                 "", ""]]), "",
        f"Target: at least 0.5x the floor.  The snapshot comparison (`verify_snapshots`: "
        f"every event decoded and folded, as replay reads) took "
        f"{r['snapshots']['seconds']:.1f} s for {r['snapshots']['snapshots']:,} snapshots; "
        "it runs after the walk (`--no-snapshots` skips it).", "",
        "The command path (pause/resume on 50 candidacies through `Candidacies`, one "
        "command a save, one thread) with the chain hash computed and written in each save "
        "and without, each side on a store of its own, alternating rounds:", "",
        *table(["store", "with chain hashes, commands/s", "without, commands/s",
                "with / without, per round (wall)",
                "with / without, per round (this process's CPU)"], rows), "",
        "Target: at least 0.8x.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
