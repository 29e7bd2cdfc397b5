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
3. The same walk on PostgreSQL (``--pg-admin-url``): the SQLite store's events and hashes
   copied in log order into a database of their own, checkpointed there, then verify
   against PostgreSQL's read floor (a server-side cursor over the events in notification
   order plus ``orjson.loads``), in paired alternating rounds.
4. The chain check every API command makes first (`api.dependencies.refuse_if_chain_broken`):
   the command path with it and without, same store, paired alternating rounds, on
   SQLite and PostgreSQL.
5. The read models under verify (`api.audit_service.verify_read_model_tables`): the four
   read models followed to the end of the SQLite store's log, then rebuilt into a scratch
   store and compared row by row, timed once (``--no-read-models`` skips it).

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


def verify_run(path: Path | str) -> dict[str, Any]:
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


def pg_database(admin: str, name: str) -> str:
    """A fresh PostgreSQL database ``name``; its URL."""
    import psycopg

    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin.rsplit("/", 1)[0] + f"/{name}"


def pg_copy(path: Path, url: str) -> str:
    """The SQLite store's events and recorded hashes, in log order, into ``url`` (its
    tables made by the application), then a checkpoint there; the events table's name."""
    from uuid import UUID

    import psycopg

    app = _app(url)
    events = app.recorder.events_table_name
    app.close()
    count = 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as source, \
            psycopg.connect(url) as target:
        with target.cursor() as cursor, cursor.copy(
                f"COPY {events} (originator_id, originator_version, topic, state) FROM STDIN"
        ) as copy:
            for uid, version, topic, state in source.execute(
                    "SELECT originator_id, originator_version, topic, state FROM "
                    "stored_events ORDER BY rowid"):
                copy.write_row((UUID(hex=uid), version, topic, state))
                count += 1
        with target.cursor() as cursor, cursor.copy(
                "COPY closer_event_hashes (originator_id, originator_version, prev_hash, "
                "event_hash) FROM STDIN") as copy:
            for uid, version, prev, digest in source.execute(
                    "SELECT originator_id, originator_version, prev_hash, event_hash FROM "
                    "closer_event_hashes"):
                copy.write_row((UUID(hex=uid), version, prev, digest))
        target.commit()
        target.execute(f"ANALYZE {events}")
        target.execute("ANALYZE closer_event_hashes")
        target.commit()
    app = _app(url)
    key = _key()
    audit.checkpoint(app.recorder, key.sign, key.public_key(), 0)
    app.close()
    print(f"  copied {count:,} events", file=sys.stderr)
    return events


def pg_floor(url: str, events: str) -> dict[str, Any]:
    """PostgreSQL's read floor: every event in notification order through a server-side
    cursor, plus ``orjson.loads`` of each payload, nothing else."""
    import orjson
    import psycopg

    loads = orjson.loads
    wall, cpu = time.perf_counter(), time.process_time()
    count = 0
    with psycopg.connect(url) as conn, conn.cursor(name="floor") as cursor:
        cursor.itersize = 5000
        cursor.execute(f"SELECT originator_id, originator_version, topic, state FROM "
                       f"{events} ORDER BY notification_id")
        while rows := cursor.fetchmany(5000):
            for row in rows:
                loads(row[3])
            count += len(rows)
    elapsed, used = time.perf_counter() - wall, time.process_time() - cpu
    return {"events": count, "seconds": elapsed, "events_per_second": count / elapsed,
            "events_per_cpu_second": count / max(1e-9, used)}


def check_cost(url: Path | str, rounds: int, count: int, pool: int, grown: int) -> dict[str, Any]:
    """The chain check's cost on one store: ``pool`` candidacies of ``grown`` events
    (pause/resume pairs), commands with the check and without in alternating rounds."""
    sys.path.insert(0, str(ROOT / "tests"))
    from builders import interview

    from engine.clock import FixedClock
    from engine.values import Actor

    app = _app(url)
    app.clock = FixedClock(datetime(2026, 11, 25, 10, tzinfo=UTC))
    actor = Actor(user="bench@agency.example", workspace="agency")
    ids = [app.record_interview(actor, interview()).candidacy_id for _ in range(pool)]
    commands_run(app, ids, pool * (grown - 1))  # grows each to ``grown`` events
    commands_run(app, ids, count // 4, checked=True)  # warm-up
    first = app.recorder.max_notification_id() / pool
    results = alternated(rounds, ["checked", "unchecked"],
                         lambda side, _: commands_run(app, ids, count,
                                                      checked=side == "checked"))
    events = app.recorder.max_notification_id() / pool
    app.close()
    wall = {side: [r[0] for r in results[side]] for side in results}
    cpu = {side: [r[1] for r in results[side]] for side in results}
    return {"commands_per_second": wall, "commands_per_cpu_second": cpu,
            "ratio": ratios(wall["checked"], wall["unchecked"]),
            "cpu_ratio": ratios(cpu["checked"], cpu["unchecked"]),
            "events_per_candidacy": events, "events_first": first}


def read_models_run(path: Path | str) -> dict[str, Any]:
    """Follow the four read models to the end of the log, then verify their tables."""
    from api.audit_service import verify_read_model_tables
    from api.read_models import follower

    app = _app(path)
    started = time.perf_counter()
    runner = follower(app)
    runner.run_once()
    followed = time.perf_counter() - started
    started, cpu = time.perf_counter(), time.process_time()
    checked, findings = verify_read_model_tables(app)
    elapsed, used = time.perf_counter() - started, time.process_time() - cpu
    [(candidacies,)] = runner.models[0].view.read("SELECT COUNT(*) FROM rm_pipeline")
    events = app.recorder.max_notification_id()
    app.close()
    assert not findings, [f.line() for f in findings[:3]]
    return {"rows": checked, "seconds": elapsed, "cpu_seconds": used, "follow_seconds": followed,
            "candidacies": candidacies, "events": events}


def check_table(checks: dict[str, Any]) -> list[str]:
    rows = []
    for store, c in checks.items():
        cps = c["commands_per_second"]
        rows.append([store, f"{c['events_first']:.0f}–{c['events_per_candidacy']:.0f}",
                     f"{median(cps['checked']):,.0f}", f"{median(cps['unchecked']):,.0f}",
                     spread(c["ratio"]), spread(c["cpu_ratio"])])
    return [
        "The chain check every API and dashboard command makes first "
        "(`refuse_if_chain_broken`: the candidacy's events read with their recorded hashes "
        "and orphaned hashes in one query, each link recomputed): the command path "
        "(pause/resume through `Candidacies`) with it and without, same store, alternating "
        "rounds; its cost grows with the candidacy's events:", "",
        *table(["store", "events per candidacy (first–last round)",
                "with the check, commands/s", "without, commands/s",
                "with / without, per round (wall)", "with / without, per round (CPU)"], rows)]


def commands_run(app: Any, ids: list[str], count: int, chained: bool = True,
                 checked: bool = False) -> tuple[float, float]:
    """``count`` single commands (pause, then resume, over ``ids`` in turn), the chain
    hashed in each save (``chained``) and checked first as the API does (``checked``):
    commands/s, and commands per CPU-second of this process (the client's, on
    PostgreSQL)."""
    from api.dependencies import refuse_if_chain_broken
    from engine.values import Actor

    app.recorder.chain_events = chained
    actor = Actor(user="bench@agency.example", workspace="agency")
    started, cpu = time.perf_counter(), time.process_time()
    for n in range(count):
        candidacy_id = ids[n % len(ids)]
        if checked:
            refuse_if_chain_broken(app, candidacy_id, "agency")
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
    parser.add_argument("--no-read-models", action="store_true",
                        help="skip timing the read models' comparison")
    parser.add_argument("--grown", type=int, default=20,
                        help="events per candidacy for the chain check's cost")
    parser.add_argument("--read-models-only", metavar="URL",
                        help="only follow and verify the read models of the store at URL "
                             "(item 5), printed, not written")
    parser.add_argument("--check-only", action="store_true",
                        help="only the chain check's cost (item 4), printed, not written")
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/")
    parser.add_argument("--pg-admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="the command path on PostgreSQL too (two databases made here); "
                             "empty: SQLite only")
    args = parser.parse_args()
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    load_before = load_average()
    if args.read_models_only:
        m = read_models_run(args.read_models_only)
        print(f"load {load_before} before, {load_average()} after: {m}")
        return
    if args.check_only:
        checks = {}
        with tempfile.TemporaryDirectory() as folder:
            checks["SQLite file"] = check_cost(Path(folder) / "check.db", args.rounds * 2,
                                               args.commands, args.pool, args.grown)
        if args.pg_admin_url:
            checks["PostgreSQL"] = check_cost(
                pg_database(args.pg_admin_url, "closer_audit_bench_check"), args.rounds * 2,
                args.commands, args.pool, args.grown)
        print(f"load {load_before} before, {load_average()} after")
        print("\n".join(check_table(checks)))
        return
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
    print("the chain check on the command path", file=sys.stderr)
    with tempfile.TemporaryDirectory() as folder:
        checks = {"SQLite file": check_cost(Path(folder) / "check.db", args.rounds * 2,
                                            args.commands, args.pool, args.grown)}
    pg_commands = pg_pair = None
    if args.pg_admin_url:
        print("the same on PostgreSQL", file=sys.stderr)
        pg_commands = command_cost(Path("."), args.rounds * 2, args.commands, args.pool,
                                   urls=_postgres_urls(args.pg_admin_url))
        checks["PostgreSQL"] = check_cost(
            pg_database(args.pg_admin_url, "closer_audit_bench_check"), args.rounds * 2,
            args.commands, args.pool, args.grown)
        print("verify on PostgreSQL against its floor", file=sys.stderr)
        pg_url = pg_database(args.pg_admin_url, "closer_audit_bench_verify")
        table_name = pg_copy(args.store, pg_url)
        pg_pair = alternated(args.rounds, ["verify", "floor"],
                             lambda side, _: verify_run(pg_url) if side == "verify"
                             else pg_floor(pg_url, table_name))
    read_models = None if args.no_read_models else read_models_run(args.store)
    report = {"built": built, "pair": pair, "snapshots": snaps, "commands": commands,
              "pg_commands": pg_commands, "pg_pair": pg_pair, "checks": checks,
              "read_models": read_models,
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
    if r.get("pg_pair"):
        pv = [v["events_per_second"] for v in r["pg_pair"]["verify"]]
        pf = [f["events_per_second"] for f in r["pg_pair"]["floor"]]
        pvc = [v["events_per_cpu_second"] for v in r["pg_pair"]["verify"]]
        pfc = [f["events_per_cpu_second"] for f in r["pg_pair"]["floor"]]
        lines += [
            "", "The same walk on PostgreSQL, over the same "
            f"{r['pg_pair']['verify'][0]['events']:,} events (and hashes) copied in log "
            "order into a database of their own and "
            "checkpointed there, beside PostgreSQL's read floor (a server-side cursor over "
            "the events in notification order + `orjson.loads`), alternating rounds "
            "(CPU: this process's; the server's is not in it):", "",
            *table(["", "events/s (median)", "events/CPU-s (median)",
                    "verify / floor, per round (wall)", "verify / floor, per round (CPU)"],
                   [["verify", f"{median(pv):,.0f}", f"{median(pvc):,.0f}",
                     spread(ratios(pv, pf)), spread(ratios(pvc, pfc))],
                    ["read floor", f"{median(pf):,.0f}", f"{median(pfc):,.0f}", "", ""]])]
    if r.get("checks"):
        lines += ["", *check_table(r["checks"])]
    if r.get("read_models"):
        m = r["read_models"]
        lines += [
            "", f"The read models under verify: {m['rows']:,} stored rows of the four read "
            f"models ({m['candidacies']:,} candidacies, {m['events']:,} events; following "
            f"them there took {m['follow_seconds']:.1f} s) rebuilt into a scratch SQLite "
            f"file and compared row by row in {m['seconds']:.1f} s ({m['cpu_seconds']:.1f} "
            f"CPU-s): {m['events'] / m['seconds']:,.0f} events/s, timed once."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
