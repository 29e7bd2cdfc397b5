"""Replay throughput on 1,000,000 stored events, beside two baselines, in one run.

    python benchmarks/replay_bench.py                 # build (or --reuse) the store, measure
    python benchmarks/replay_bench.py --reuse --events 1000000 --small 100000

Measured, each on the same SQLite file:

1. the floor: the plain SQL select replay issues (every stored row, in originator order)
   plus ``orjson.loads`` of each payload, nothing else, in 1 process and in as many
   forked processes as replay's workers (each on a contiguous range of ids); the floor and
   replay under 1 policy, with 1 process and with the workers, run in paired rounds
   (``--rounds``, 5) whose order rotates, and each round's ratio is reported (median and
   min-max), not the fastest round of each side; the floor without ORDER BY too;
2. eventsourcing's own read path: ``app.repository.get(id)`` for every candidacy
   (snapshots included), and the notification log decoded to domain events by the mapper;
3. replay under 1 policy and under 3 policies (`engine.replay.replay`), with the worker
   processes `closer replay` uses (one per core, at most 2) and with one process;
4. peak RSS of a replay child process on a small and on the big store (memory flat).

The store is written by `closer simulate`'s bulk path (`engine.simulation.simulate`).
Results go to docs/performance.md, section "## Replay (issue 4)" (only that section).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import orjson
from paired import alternated

from engine.policy import CadencePolicy, default_policy, policy_from_dict

SECTION = "## Replay (issue 4)"
TABLE = "stored_events"
EVENTS_PER_CANDIDACY = 11.3  # what the simulated histories average: a first guess only


def policies(count: int) -> list[CadencePolicy]:
    """The playbook, a patient variant and a persistent one."""
    base = default_policy().model_dump(mode="json")

    def variant(name: str, section: str, field: str, value: Any) -> CadencePolicy:
        data = json.loads(json.dumps(base))
        data["name"] = name
        data[section][field] = value
        return policy_from_dict(data)

    return [default_policy(), variant("patient", "patience",
                                      "first_nudge_after_timeline_min_business_days", 5),
            variant("brief", "pest_line", "max_nudges", 1)][:count]


def stored_events(path: Path) -> int:
    if not path.exists():
        return 0
    with sqlite3.connect(path) as connection:
        try:
            return int(connection.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def build(path: Path, events: int, seed: int) -> dict[str, Any]:
    """Simulate candidacies into ``path`` until it holds at least ``events`` events."""
    from engine.application import Candidacies
    from engine.simulation import simulate
    from engine.store import eventsourcing_env

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    app = Candidacies(eventsourcing_env(f"sqlite:///{path}"))
    started = time.perf_counter()
    written = candidacies = 0
    chunk = 0
    while written < events:
        count = max(100, min(20_000, int((events - written) / EVENTS_PER_CANDIDACY) + 50))
        report = simulate(app, count, seed + chunk)
        written += report.events
        candidacies += report.candidacies
        chunk += 1
        print(f"  simulated {candidacies} candidacies, {written} events "
              f"({time.perf_counter() - started:.0f}s)", file=sys.stderr)
    app.close()
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return {"candidacies": candidacies, "events": written,
            "seconds": time.perf_counter() - started}


def floor(path: Path, ordered: bool = True) -> dict[str, Any]:
    """The plain select plus orjson decode of every payload, nothing else."""
    sql = f"SELECT originator_id, originator_version, topic, state FROM {TABLE}"
    if ordered:
        sql += " ORDER BY originator_id, originator_version"
    loads = orjson.loads
    wall, cpu = time.perf_counter(), time.process_time()
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    cursor = connection.execute(sql)
    count = 0
    while rows := cursor.fetchmany(4096):
        for row in rows:
            loads(row[3])
        count += len(rows)
    connection.close()
    return _rates(count, time.perf_counter() - wall, time.process_time() - cpu)


def id_ranges(path: Path, parts: int) -> list[tuple[str | None, str | None]]:
    """``parts`` contiguous ranges of originator ids, about equal in candidacies."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        ids = [r[0] for r in connection.execute(
            f"SELECT DISTINCT originator_id FROM {TABLE} ORDER BY originator_id")]
    cuts = [ids[len(ids) * k // parts] for k in range(1, parts)]
    bounds: list[str | None] = [None, *cuts, None]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def _floor_part(path: Path, low: Any, high: Any) -> None:
    sql = f"SELECT originator_id, originator_version, topic, state FROM {TABLE}"
    where, params = [], []
    if low is not None:
        where.append("originator_id >= ?")
        params.append(low)
    if high is not None:
        where.append("originator_id < ?")
        params.append(high)
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY originator_id, originator_version"
    loads = orjson.loads
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    cursor = connection.execute(sql, params)
    while rows := cursor.fetchmany(4096):
        for row in rows:
            loads(row[3])
    connection.close()


def floor_processes(path: Path, ranges: list[tuple[Any, Any]], count: int) -> dict[str, Any]:
    """The floor in ``len(ranges)`` forked processes, each on its own range of ids: the
    same number of processes as replay's workers.  CPU is the children's."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    children = [context.Process(target=_floor_part, args=(path, low, high))
                for low, high in ranges]
    for child in children:
        child.start()
    for child in children:
        child.join()
    elapsed = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return _rates(count, elapsed, cpu)


def eventsourcing_paths(path: Path, sample: float) -> dict[str, Any]:
    """The library's own reading: aggregates through the repository; the notification log
    decoded to domain events."""
    from engine.application import Candidacies
    from engine.store import eventsourcing_env

    app = Candidacies(eventsourcing_env(f"sqlite:///{path}"))
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        ids = [(r[0], r[1]) for r in connection.execute(
            "SELECT id, version FROM closer_candidacies ORDER BY id")]
    ids = ids[:max(1, int(len(ids) * sample))]
    wall, cpu = time.perf_counter(), time.process_time()
    events = 0
    for candidacy_id, version in ids:
        app.repository.get(UUID(candidacy_id))
        events += version
    repository = _rates(events, time.perf_counter() - wall, time.process_time() - cpu)
    repository["candidacies"] = len(ids)

    limit = int(stored_events(path) * sample)
    wall, cpu = time.perf_counter(), time.process_time()
    start, count = 1, 0
    while count < limit:
        page = app.recorder.select_notifications(start, 1000)
        if not page:
            break
        for notification in page:
            app.mapper.to_domain_event(notification)
        count += len(page)
        start = page[-1].id + 1
    log = _rates(count, time.perf_counter() - wall, time.process_time() - cpu)
    app.close()
    return {"repository_get": repository, "notification_log": log}


def replay_run(path: Path, count: int, workers: int) -> dict[str, Any]:
    from engine.replay import SQLiteSource, replay

    source = SQLiteSource(path, TABLE)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, cpu = time.perf_counter(), time.process_time()
    result = replay(source, policies(count), workers=workers)
    elapsed = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = time.process_time() - cpu + (after.ru_utime - before.ru_utime) + (
        after.ru_stime - before.ru_stime)
    rates = _rates(result.events, elapsed, used)
    rates.update(workers=result.workers, policies=count, candidacies=result.replayed,
                 stalls=[m.stalls for m in result.metrics])
    return rates


def breakdown(path: Path, repeats: int = 3) -> dict[str, Any]:
    """Where one process's replay CPU goes: `plan` (the decision function), reading and
    decoding, and the rest (folding, applying decisions, counting).

    Not by timing each `plan` call (a CPU clock read costs a system call, a sizeable
    share of a call): replay runs once recording what each call answered, then (best of
    ``repeats``) in full, with those answers handed back instead of calling `plan`, and
    reading alone; `plan` is the full run less the one with recorded answers."""
    from engine import simulation
    from engine.replay import SQLiteSource, candidacy_histories, replay

    source = SQLiteSource(path, TABLE)
    real_plan = simulation.plan
    answers: list[Any] = []

    def recording(state: Any, policy: Any) -> Any:
        actions = real_plan(state, policy)
        answers.append(actions)
        return actions

    clock = time.process_time
    try:
        simulation.plan = recording  # type: ignore[assignment]
        replay(source, policies(1))
        calls = len(answers)
        total = canned = reading = float("inf")
        for _ in range(repeats):
            simulation.plan = real_plan  # type: ignore[assignment]
            started = clock()
            result = replay(source, policies(1))
            total = min(total, clock() - started)
            simulation.plan = _handing(answers)  # type: ignore[assignment]
            started = clock()
            replay(source, policies(1))
            canned = min(canned, clock() - started)
            started = clock()
            sum(h.events for h in candidacy_histories(source.batches(None)))
            reading = min(reading, clock() - started)
    finally:
        simulation.plan = real_plan  # type: ignore[assignment]
    events = result.events
    per = 1e6 / events
    return {"events": events, "plan_calls": calls,
            "plan_us_per_call": round((total - canned) / calls * 1e6, 1),
            "us_per_event": {"total": round(total * per, 1),
                             "plan": round((total - canned) * per, 1),
                             "read_decode_group": round(reading * per, 1),
                             "fold_decide_count": round((canned - reading) * per, 1)}}


def _handing(answers: list[Any]) -> Any:
    """A stand-in for `plan` that hands back recorded answers in order."""
    handed = iter(answers)
    return lambda state, policy: next(handed)


def child_peak_rss(path: Path, workers: int) -> dict[str, Any]:
    """Replay (1 policy) in a fresh process and report its peak RSS."""
    output = subprocess.run(
        [sys.executable, __file__, "--child", str(path), "--workers", str(workers)],
        check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def _child(path: Path, workers: int) -> None:
    from engine.replay import SQLiteSource, replay

    result = replay(SQLiteSource(path, TABLE), policies(1), workers=workers)
    own = _peak_rss_kb()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"events": result.events, "peak_rss_mb": round(own / 1024, 1),
                      "worker_peak_rss_mb": round(children / 1024, 1)}))


def _peak_rss_kb() -> int:
    """This process's peak RSS.  Not ``ru_maxrss``: Linux carries the forking parent's
    peak across exec into it, so a child of a big benchmark process reported the parent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _rates(count: int, wall: float, cpu: float) -> dict[str, Any]:
    return {"events": count, "seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
            "events_per_second": round(count / wall), "events_per_cpu_second":
            round(count / cpu) if cpu else None}


def machine() -> dict[str, Any]:
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip()
                     for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor()
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "load_average": [round(x, 2)
                                                               for x in os.getloadavg()]}


def write_section(report: dict[str, Any], command: str) -> None:
    from paired import write_section as write

    write(SECTION, render(report, command))


def render(r: dict[str, Any], command: str) -> str:
    from paired import median, spread, table

    es, memory = r.get("eventsourcing"), r["memory"]
    paired_rows = []
    verdicts = []
    for label, pair in r["paired"].items():
        floors, replays = pair["floor"], pair["replay"]
        wall = [p["events_per_second"] / f["events_per_second"]
                for f, p in zip(floors, replays, strict=True)]
        cpu = [p["events_per_cpu_second"] / f["events_per_cpu_second"]
               for f, p in zip(floors, replays, strict=True)]
        paired_rows.append([
            label, f"{median([f['events_per_second'] for f in floors]):,.0f}",
            f"{median([p['events_per_second'] for p in replays]):,.0f}", spread(wall),
            f"{median([f['events_per_cpu_second'] for f in floors]):,.0f}",
            f"{median([p['events_per_cpu_second'] for p in replays]):,.0f}", spread(cpu)])
        verdicts.append(f"{label}: {median(wall):.2f}x "
                        + ("(met)" if median(wall) >= 0.4 else "(**not met**)"))
    one_floor = median([f["events_per_second"] for f in r["paired"]["1 process"]["floor"]])

    def row(name: str, m: dict[str, Any], note: str = "") -> list[Any]:
        return [name, f"{m['events']:,}", f"{m['seconds']:.1f}", f"{m['events_per_second']:,}",
                f"{m['events_per_second'] / one_floor:.2f}x",
                f"{m['events_per_cpu_second'] or 0:,}", note]

    others = [row("floor without ORDER BY (table order), 1 process", r["unordered"],
                  "for reference")]
    if es:
        others += [row("eventsourcing `repository.get` per candidacy", es["repository_get"],
                       f"{es['repository_get']['candidacies']:,} aggregates, snapshots "
                       "every 20"),
                   row("eventsourcing notification log + mapper", es["notification_log"],
                       "decoded to domain events, no aggregates")]
    three = r["three_policies"]
    others.append(row(f"replay, 3 policies, {three['workers']} processes", three,
                      "events counted once"))
    lines = [
        SECTION, "",
        f"Reproduce: `{command}` ({r['build_note']}).", "",
        (f"Machine: {r['machine']['cpu']}, {r['machine']['cores']} cores, Python "
         f"{r['machine']['python']}, SQLite {r['machine']['sqlite']}; load average "
         f"{r['machine']['load_average']} before the run and "
         f"{r['machine_after']['load_average']} after (the machine was shared with other "
         "work: wall-clock rates move with it, the per-round ratios and CPU rates much "
         "less)."), "",
        (f"Store: {r['store']['events']:,} events of {r['store']['candidacies']:,} simulated "
         "candidacies in one SQLite file (`closer simulate`'s bulk path). Decision function: "
         + ("compiled with mypyc (`engine.COMPILED`)." if r.get("compiled") else
            "pure Python (`engine.COMPILED` false: not built, or `CLOSER_PURE_PYTHON` set; "
            "the mypyc build measured 12.95 -> 10.10 µs of CPU an event on 2026-11-26, not "
            "re-measured here).")), "",
        (f"Replay (1 policy, `engine.replay.replay`) against the floor (the plain select "
         "replay issues, every stored row in originator order, plus `orjson.loads` of each "
         "payload) with the same number of processes on both sides: the floor in N forked "
         "processes each on a contiguous range of ids, replay with N workers. Each of "
         f"{r['rounds']} rounds runs the four in an order that rotates each round; the ratio "
         "is the median of the per-round ratios with their min–max."), "",
        *table(["processes", "floor events/s", "replay events/s",
                "replay / floor, per round (wall)", "floor events/CPU-s",
                "replay events/CPU-s", "replay / floor, per round (CPU)"], paired_rows),
        "",
        "Target of issue 4: one policy at least 0.4x the floor's events/s, the same number "
        "of processes on both sides: " + "; ".join(verdicts) + ".", "",
        ("Other paths (one run each, after the rounds; `vs floor` against the 1-process "
        "floor):"), "",
        *table(["measured", "events", "wall s", "events/s (wall)", "vs floor",
                "events/CPU-s", "notes"], others), "",
        f"Three policies: {three['seconds']:.1f} s for {three['events']:,} events "
        f"(issue 4's target, 30 s for 1,000,000 events, "
        + ("is not measured at this size)." if r["store"]["events"] < 900_000 else
           ("**met**)." if three["seconds"] <= 30 else "**not met**).")), "",
        "Memory (peak RSS of a replay process, 1 policy):", "",
        *table(["store", "events", "peak RSS (MB)"], [
            ["small", f"{memory['small']['events']:,}", memory["small"]["peak_rss_mb"]],
            ["big", f"{memory['big']['events']:,}", memory["big"]["peak_rss_mb"]],
            [f"big, {r['workers']} workers (largest worker)",
             f"{memory['big_workers']['events']:,}",
             memory["big_workers"]["worker_peak_rss_mb"]]]), ""]
    b = r.get("breakdown")
    if b:
        lines += [
            ("Where one process's replay CPU goes (the small store, per stored event): "
             f"{b['us_per_event']['total']} µs in all; `plan` {b['us_per_event']['plan']} µs "
             f"({b['plan_calls']:,} calls for {b['events']:,} events, "
             f"{b['plan_us_per_call']} µs a call); reading, decoding and grouping "
             f"{b['us_per_event']['read_decode_group']} µs; folding facts, applying "
             f"decisions and counting {b['us_per_event']['fold_decide_count']} µs."), ""]
    return "\n".join(lines)


# -- model mode (issue 18) ---------------------------------------------------------------------

MODEL_SECTION = "## Replay with a modelled employer (issue 18)"


def model_store(path: Path, candidacies: int, seed: int) -> None:
    """A store whose employer follows the known response model (a nudge effect of 1)."""
    from engine.application import Candidacies
    from engine.response_model import ResponseModel
    from engine.simulation import simulate
    from engine.store import eventsourcing_env

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    app = Candidacies(eventsourcing_env(f"sqlite:///{path}"))
    simulate(app, candidacies, seed, employer=ResponseModel.truth(1.0))
    app.close()
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def model_run(path: Path, draws: int, updates: bool = False) -> dict[str, Any]:
    """One policy under ``--employer model``, ``draws`` draws, one process, the fitted
    model (its covariance: every draw samples coefficients); ``updates``: the employer's
    updates drawn too (``--updates model``)."""
    from engine.counterfactual import model_replay
    from engine.replay import SQLiteSource, candidacy_histories
    from engine.response_model import fit

    source = SQLiteSource(path, TABLE)
    model = fit(candidacy_histories(source.batches(None), keep_decisions=True))
    wall, cpu = time.perf_counter(), time.process_time()
    records = model_replay(source, policies(1), model, draws=draws, seed=1, updates=updates)
    elapsed, used = time.perf_counter() - wall, time.process_time() - cpu
    # Events per second per draw: the events read, times the draws each was run for.
    rates = _rates(records.events * draws, elapsed, used)
    rates.update(draws=draws, candidacies=records.candidacies)
    return rates


def model_main(args: argparse.Namespace) -> None:
    from paired import load_average, ratios, spread

    path = args.dir / f"model_{args.candidacies}.db"
    if not (args.reuse and path.exists()):
        print(f"building {path}", file=sys.stderr)
        model_store(path, args.candidacies, args.seed)
    floor(path)  # warm the page cache
    sides = {"floor": lambda: floor(path), "recorded": lambda: replay_run(path, 1, 1),
             "model": lambda: model_run(path, args.draws),
             "updates": lambda: model_run(path, args.draws, updates=True)}

    def one(side: str, number: int) -> dict[str, Any]:
        m = sides[side]()
        print(f"  round {number + 1} {side}: {m['events_per_second']:,} events/s",
              file=sys.stderr, flush=True)
        return m

    runs = alternated(args.rounds, list(sides), one)
    rate = {side: [m["events_per_second"] for m in runs[side]] for side in sides}
    command = (f"python benchmarks/replay_bench.py --model-mode --candidacies "
               f"{args.candidacies} --draws {args.draws} --rounds {args.rounds} [--reuse]")
    events = runs["floor"][0]["events"]
    text = "\n".join([
        f"`{command}` (1 process each; {events:,} events, {args.candidacies:,} "
        f"candidacies simulated with a nudge effect of 1; {load_average()})",
        "",
        "| side | events/s (median of rounds) | ratio to recorded, per round |",
        "|---|---|---|",
        f"| floor (select + orjson) | {spread(rate['floor'], unit='', digits=0)} | "
        f"{spread(ratios(rate['floor'], rate['recorded']))} |",
        f"| replay, employer recorded, 1 policy | {spread(rate['recorded'], unit='', digits=0)}"
        " | 1 |",
        f"| replay, employer model, 1 policy, per draw ({args.draws} draws) | "
        f"{spread(rate['model'], unit='', digits=0)} | "
        f"{spread(ratios(rate['model'], rate['recorded']))} |",
        f"| the same with the updates drawn too (`--updates model`) | "
        f"{spread(rate['updates'], unit='', digits=0)} | "
        f"{spread(ratios(rate['updates'], rate['recorded']))} |",
        "",
        "Model mode's rate counts each event once per draw it was replayed for: the "
        "store is read and decoded once for all the draws, so reading is shared between "
        "them (the fit, done once before the timer, is not counted).  Target: a draw at "
        "least 0.5x the recorded mode's rate.",
    ])
    print(text)
    if not args.no_docs:
        from paired import write_section as write

        write(MODEL_SECTION, MODEL_SECTION + "\n\n" + text)


COVERAGE_SECTION = "## Replay's intervals: coverage of the truth (issue 18)"


def _pairs() -> dict[str, CadencePolicy]:
    base = default_policy().model_dump(mode="json")

    def variant(name: str, **changes: Any) -> CadencePolicy:
        data = json.loads(json.dumps(base))
        data["name"] = name
        for key, value in changes.items():
            section, field = key.split("__")
            data[section][field] = value
        return policy_from_dict(data)

    return {"more persistent": variant("persistent", pest_line__max_nudges=6,
                                       stall__grace_business_days=10),
            "less persistent": variant("brief", pest_line__max_nudges=1,
                                       patience__window_without_timeline_weeks=2),
            "other spacing": variant("spaced", nudge__spacing_business_days=2)}


def coverage_trial(directory: Path, count: int, seed: int, effect: float,
                   draws: int) -> dict[str, dict[str, bool]]:
    """One ground-truth trial (as tests/test_counterfactual.py): simulate the playbook
    with a known nudge effect, fit, predict each pair's B; simulate B on the same seeds;
    does each 95% interval cover the truth?"""
    from datetime import UTC, datetime

    import numpy as np

    from engine.application import Candidacies
    from engine.counterfactual import _km_quantiles, model_replay, summarise
    from engine.replay import SQLiteSource, candidacy_histories
    from engine.response_model import ResponseModel, fit
    from engine.simulation import simulate, simulate_in_memory
    from engine.store import eventsourcing_env

    path = directory / f"coverage_{seed}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    truth = ResponseModel.truth(effect)
    app = Candidacies(eventsourcing_env(f"sqlite:///{path}"))
    simulate(app, count, seed, employer=truth)
    app.close()
    source = SQLiteSource(path, TABLE)
    model = fit(candidacy_histories(source.batches(None), keep_decisions=True))
    pairs = _pairs()
    outcomes = summarise(model_replay(source, list(pairs.values()), model, draws=draws,
                                      seed=seed, until=datetime(2027, 6, 1, tzinfo=UTC)),
                         replicates=300, seed=seed)
    (nudge,) = [r for r in model.report["hazard"] if r["feature"] == "nudge_recent"]
    found: dict[str, dict[str, bool]] = {"fit": {
        "nudge_effect": nudge["low"] <= effect <= nudge["high"]}}
    for (name, policy), predicted in zip(pairs.items(), outcomes, strict=True):
        days, decided, advanced = [], [], 0
        for world, candidacy in simulate_in_memory(count, seed, policy, employer=truth):
            outcome = candidacy.outcome or {}
            advanced += outcome.get("kind") == "advanced"
            done = outcome.get("kind") in ("advanced", "rejected")
            end = outcome.get("at") or candidacy.modified_on
            days.append((end - world.first_interview_at).total_seconds() / 86400)
            decided.append(1.0 if done else 0.0)
        (median,) = _km_quantiles(np.asarray(days), np.asarray(decided),
                                  np.ones(len(days)), (0.5,))
        low, high = predicted.intervals["advanced"]
        dlow, dhigh = predicted.intervals["days_median"]
        found[name] = {
            "advanced": low is not None and high is not None
            and low <= advanced / count <= high,
            "days_median": None not in (median, dlow, dhigh)
            and dlow <= median <= dhigh}  # type: ignore[operator]
    return found


def coverage_main(args: argparse.Namespace) -> None:
    """Seeds ``--first-seed`` .. ``--seeds``; each trial's result is kept in
    ``DIR/coverage_N_SEED_DRAWS.json``, so a long study runs in pieces (several processes
    on disjoint seeds) and ``--reuse`` tallies the kept ones instead of running them again."""
    args.dir.mkdir(parents=True, exist_ok=True)
    tally: dict[str, dict[str, int]] = {}
    for seed in range(args.first_seed, args.seeds + 1):
        kept = args.dir / f"coverage_{args.candidacies}_{seed}_{args.draws}.json"
        if args.reuse and kept.exists():
            trial = json.loads(kept.read_text())
        else:
            started = time.perf_counter()
            trial = coverage_trial(args.dir, args.candidacies, seed, 1.0, args.draws)
            kept.write_text(json.dumps(trial))
            print(f"  seed {seed}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
        print(f"  seed {seed}: {trial}", file=sys.stderr, flush=True)
        for name, checks in trial.items():
            for key, covered in checks.items():
                tally.setdefault(f"{name}: {key}", {"covered": 0, "trials": 0})
                tally[f"{name}: {key}"]["trials"] += 1
                tally[f"{name}: {key}"]["covered"] += int(covered)
    first = f" --first-seed {args.first_seed}" if args.first_seed != 1 else ""
    command = (f"python benchmarks/replay_bench.py --coverage{first} --seeds {args.seeds} "
               f"--candidacies {args.candidacies} --draws {args.draws}")
    lines = [COVERAGE_SECTION, "", f"`{command}`: per seed, {args.candidacies:,} candidacies "
             "simulated under the playbook with a nudge effect of 1, the model fitted, each "
             "pair's policy predicted ({args.draws} draws) and simulated directly on the "
             "same seeds.".replace("{args.draws}", str(args.draws)), "",
             "| check | 95% interval covers the truth |", "|---|---|"]
    for key, count in tally.items():
        lines.append(f"| {key} | {count['covered']} of {count['trials']} |")
    text = "\n".join(lines)
    print(text)
    if not args.no_docs:
        from paired import write_section as write

        write(COVERAGE_SECTION, text)


TUNE_SECTION = "## A tune at scale: 100 policies, one machine and a local cluster (issue 18)"


def tune_policies(count: int) -> list[CadencePolicy]:
    """``count`` policies as `closer tune --vary max_nudges=1..10 --vary spacing=1..10`
    would make them (the live playbook first), cut to ``count``."""
    base = default_policy().model_dump(mode="json")
    out = [default_policy()]
    for nudges in range(1, 11):
        for spacing in range(1, 11):
            data = json.loads(json.dumps(base))
            data["name"] = f"nudges{nudges}-spacing{spacing}"
            data["pest_line"]["max_nudges"] = nudges
            data["nudge"]["spacing_business_days"] = spacing
            out.append(policy_from_dict(data))
    return out[:count]


def tune_store(path: Path, events: int, seed: int) -> dict[str, Any]:
    """A store of at least ``events`` events whose employer follows the known response
    model (a nudge effect of 1), written in chunks."""
    from engine.application import Candidacies
    from engine.response_model import ResponseModel
    from engine.simulation import simulate
    from engine.store import eventsourcing_env

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    app = Candidacies(eventsourcing_env(f"sqlite:///{path}"))
    written = candidacies = chunk = 0
    while written < events:
        count = max(100, min(20_000, int((events - written) / 9.0) + 50))
        report = simulate(app, count, seed + chunk, employer=ResponseModel.truth(1.0))
        written, candidacies, chunk = (written + report.events,
                                       candidacies + report.candidacies, chunk + 1)
    app.close()
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return {"events": written, "candidacies": candidacies}


def tune_run(source: Any, views: list[Any], model: Any, draws: int, workers: int,
             client: Any = None) -> dict[str, Any]:
    """One model-mode tune pass (what `closer tune --employer model` runs before it
    ranks): every policy over every candidacy, ``draws`` draws, in ``workers`` local
    processes or on the Dask ``client``; then the bootstrap summary, timed apart."""
    from engine.counterfactual import model_replay, summarise

    wall = time.perf_counter()
    records = model_replay(source, views, model, draws=draws, seed=1, workers=workers,
                           cluster=client)
    replayed = time.perf_counter() - wall
    wall = time.perf_counter()
    summarise(records, replicates=400, seed=1)
    summary = time.perf_counter() - wall
    return {"seconds": replayed, "summary_seconds": summary, "events": records.events,
            "candidacies": records.candidacies,
            "policy_events_per_second": round(records.events * len(views) * draws
                                              / replayed)}


def tune_main(args: argparse.Namespace) -> None:
    """100 policies (or ``--policies``) in model mode over ``--events`` events: wall time
    with a 2-process local pool and on a 2-worker Dask `LocalCluster`, alternated."""
    from distributed import Client, LocalCluster
    from paired import load_average, ratios, spread

    from engine.replay import ReplayPolicy, SQLiteSource, candidacy_histories
    from engine.response_model import fit

    path = args.dir / f"tune_{args.events}.db"
    if not (args.reuse and stored_events(path) >= args.events):
        print(f"building {path}", file=sys.stderr, flush=True)
        tune_store(path, args.events, args.seed)
    events = stored_events(path)
    source = SQLiteSource(path, TABLE)
    model = fit(candidacy_histories(source.batches(None), keep_decisions=True))
    views = [ReplayPolicy(p) for p in tune_policies(args.policies)]
    floor(path)  # warm the page cache
    load_before = load_average()
    started = time.perf_counter()
    sides: dict[str, Callable[[], dict[str, Any]]] = {}
    if not args.cluster_only:
        sides["local pool, 2 processes"] = lambda: tune_run(source, views, model,
                                                            args.draws, 2)
    cluster = client = None
    if not args.local_only:  # (--local-only / --cluster-only: one side alone, at a size
        # where both would not fit in one session)
        cluster = LocalCluster(n_workers=2, threads_per_worker=1,  # type: ignore[no-untyped-call]
                               processes=True, dashboard_address=None)
        client = Client(cluster)  # type: ignore[no-untyped-call]
        sides["LocalCluster, 2 workers"] = lambda: tune_run(source, views, model, args.draws,
                                                            1, client)
    cluster_start = time.perf_counter() - started

    def one(side: str, number: int) -> dict[str, Any]:
        m = sides[side]()
        print(f"  round {number + 1} {side}: {m['seconds']:.1f}s "
              f"({m['policy_events_per_second']:,} policy-events/s)", file=sys.stderr,
              flush=True)
        return m

    try:
        runs = alternated(args.rounds, list(sides), one)
    finally:
        if client is not None and cluster is not None:
            client.close()  # type: ignore[no-untyped-call]
            cluster.close()
    seconds = {s: [m["seconds"] for m in runs[s]] for s in sides}
    first = runs[next(iter(sides))]
    if args.local_only or args.cluster_only:
        versus = (f"Only the {next(iter(sides))} side was run "
                  f"(`{'--local-only' if args.local_only else '--cluster-only'}`); starting "
                  f"the cluster took {cluster_start:.1f} s, not counted.")
    else:
        local = runs["local pool, 2 processes"]
        speedup = ratios([m["seconds"] for m in local],
                         [m["seconds"] for m in runs["LocalCluster, 2 workers"]])
        versus = (f"Speed-up of the 2-worker LocalCluster over the 2-process pool, per round: "
                  f"{spread(speedup)} (above 1: the cluster is faster); starting the cluster "
                  f"took {cluster_start:.1f} s, not counted.")
    command = (f"python benchmarks/replay_bench.py --tune-scale --events {args.events} "
               f"--policies {args.policies} --draws {args.draws} --rounds {args.rounds}"
               f"{' --local-only' if args.local_only else ''}"
               f"{' --cluster-only' if args.cluster_only else ''} [--reuse]")
    side_seconds = seconds[next(iter(sides))]
    per_event = statistics.median(s / events for s in side_seconds)
    text = "\n".join([
        TUNE_SECTION, "",
        f"`{command}`: {len(views)} policies (the playbook and `--vary max_nudges=1..10 "
        f"--vary spacing=1..10`), employer model (fitted on the store), {args.draws} "
        f"draw(s), over {events:,} events ({first[0]['candidacies']:,} candidacies); "
        f"{load_before} before, {load_average()} after.",
        "",
        "| side | wall time, replay (median of rounds) | policy-events/s | bootstrap "
        "summary (100 policies, 400 resamples) |",
        "|---|---|---|---|",
        *(f"| {s} | {spread(seconds[s], unit=' s', digits=1)} | "
          f"{spread([m['policy_events_per_second'] for m in runs[s]], unit='', digits=0)} | "
          f"{spread([m['summary_seconds'] for m in runs[s]], unit=' s', digits=1)} |"
          for s in sides),
        "",
        versus,
        f"Extrapolated (not measured) to 1,000,000 events at this machine's rate: about "
        f"{per_event * 1_000_000 / 60:.0f} minutes ({next(iter(sides))})."
        if events < 1_000_000 else f"Measured at {events:,} events: "
        f"{statistics.median(side_seconds) / 60:.0f} minutes ({next(iter(sides))}).",
    ])
    print(text)
    if not args.no_docs:
        from paired import write_section as write

        write(TUNE_SECTION, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coverage", action="store_true",
                        help="the ground-truth coverage study (issue 18), its own section")
    parser.add_argument("--seeds", type=int, default=20, help="--coverage: the last seed")
    parser.add_argument("--first-seed", type=int, default=1, help="--coverage: the first")
    parser.add_argument("--tune-scale", action="store_true",
                        help="a model-mode tune of --policies policies over --events events, "
                             "2 local processes against a 2-worker Dask LocalCluster")
    parser.add_argument("--policies", type=int, default=100, help="--tune-scale: policies")
    parser.add_argument("--local-only", action="store_true",
                        help="--tune-scale: the 2-process pool alone, no LocalCluster side")
    parser.add_argument("--cluster-only", action="store_true",
                        help="--tune-scale: the 2-worker LocalCluster alone")
    parser.add_argument("--model-mode", action="store_true",
                        help="measure --employer model against recorded mode and the floor "
                             "(issue 18) and write its own section")
    parser.add_argument("--candidacies", type=int, default=2000,
                        help="--model-mode: candidacies in its store")
    parser.add_argument("--draws", type=int, default=3, help="--model-mode: draws")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000,
                        help="events in the small store (the memory comparison)")
    parser.add_argument("--dir", type=Path, default=ROOT / "benchmarks" / ".data")
    parser.add_argument("--reuse", action="store_true",
                        help="keep an existing store that holds enough events")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--rounds", type=int, default=5,
                        help="paired rounds of the floor and 1-policy replay")
    parser.add_argument("--quick", action="store_true",
                        help="100,000 and 20,000 events, 3 rounds, no breakdown nor "
                             "eventsourcing paths: about 2 minutes")
    parser.add_argument("--es-sample", type=float, default=1.0,
                        help="fraction of candidacies eventsourcing reads (1.0: all)")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.workers)
        return
    if args.model_mode:
        model_main(args)
        return
    if args.coverage:
        coverage_main(args)
        return
    if args.tune_scale:
        tune_main(args)
        return
    if args.quick:
        args.events, args.small, args.rounds = 100_000, 20_000, 3

    started = time.perf_counter()
    command = ("python benchmarks/replay_bench.py" + (" --quick" if args.quick else
               f" --events {args.events} --small {args.small} --rounds {args.rounds}")
               + (f" --es-sample {args.es_sample:g}" if args.es_sample != 1 else "")
               + " [--reuse]")
    big = args.dir / f"replay_{args.events}.db"
    small = args.dir / f"replay_{args.small}.db"
    import engine

    report: dict[str, Any] = {"machine": machine(), "compiled": engine.COMPILED}
    stores = {}
    for path, count, seed in ((big, args.events, args.seed), (small, args.small, args.seed + 1000)):
        if args.reuse and stored_events(path) >= count:
            print(f"reusing {path} ({stored_events(path)} events)", file=sys.stderr)
            stores[path] = None
        else:
            print(f"building {path}", file=sys.stderr)
            stores[path] = build(path, count, seed)
    built = stores[big]
    with sqlite3.connect(f"file:{big}?mode=ro", uri=True) as connection:
        report["store"] = {
            "events": int(connection.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0]),
            "candidacies": int(connection.execute(
                "SELECT COUNT(*) FROM closer_candidacies").fetchone()[0])}

    print("floor and replay, paired rounds", file=sys.stderr)
    floor(big)  # warm the page cache: every measurement reads a warm file
    events = report["store"]["events"]
    ranges = id_ranges(big, args.workers)
    sides = {"floor 1": lambda: floor(big), "replay 1": lambda: replay_run(big, 1, 1),
             f"floor {args.workers}": lambda: floor_processes(big, ranges, events),
             f"replay {args.workers}": lambda: replay_run(big, 1, args.workers)}

    def one(side: str, number: int) -> dict[str, Any]:
        m = sides[side]()
        print(f"  round {number + 1} {side}: {m['events_per_second']:,} events/s, "
              f"{m['events_per_cpu_second']:,}/CPU-s", file=sys.stderr, flush=True)
        return m

    runs = alternated(args.rounds, list(sides), one)
    report["rounds"] = args.rounds
    report["workers"] = args.workers
    report["paired"] = {
        "1 process": {"floor": runs["floor 1"], "replay": runs["replay 1"]},
        f"{args.workers} processes": {"floor": runs[f"floor {args.workers}"],
                                      "replay": runs[f"replay {args.workers}"]}}
    report["unordered"] = floor(big, ordered=False)
    print("three policies", file=sys.stderr)
    report["three_policies"] = replay_run(big, 3, args.workers)
    if not args.quick:
        print("breakdown", file=sys.stderr)
        report["breakdown"] = breakdown(small)
        print("eventsourcing", file=sys.stderr)
        report["eventsourcing"] = eventsourcing_paths(big, args.es_sample)
    print("memory", file=sys.stderr)
    report["memory"] = {"small": child_peak_rss(small, 1), "big": child_peak_rss(big, 1),
                        "big_workers": child_peak_rss(big, args.workers)}
    report["machine_after"] = machine()
    minutes = (time.perf_counter() - started) / 60
    report["build_note"] = (f"{minutes:.1f} minutes, building the stores included" if built
                            else f"{minutes:.1f} minutes with --reuse, plus the time to build "
                                 "the stores without it (1-7 minutes for 1,000,000 events)")
    print(json.dumps(report, indent=2), file=sys.stderr)
    print(render(report, command))
    if not args.no_docs:
        write_section(report, command)


if __name__ == "__main__":
    main()
