"""Benchmark: `closer tick` over 100,000 candidacies on SQLite, beside the floor.

The floor is the time to merely read the same candidacies' current rows (every row of
``closer_candidacies``, decoded), measured in the same run on the same file.  The tick
is measured in-process (`engine.scheduler.tick(app, now)`, then again at the same
moment, which must record nothing) and as the real CLI (`closer tick --now ...`, a
subprocess) on identical fresh copies of the store.

Population (not timed): each candidacy is built as an aggregate in memory with the
aggregate's own command methods (the facts a person records: interview, hesitations,
closing the next step, replies, offers, pauses, the odd nudge by hand) while a
punctual scheduler applies the policy's decisions exactly as `Candidacies.apply_policy`
does (`engine.application.apply_action` with the action's ``decided_by``) up to the
scheduler's last run, LAST.  They are saved in batches with
``save(*aggregates, rows=[current_row(c) ...])``, so events, rows and ``due_at`` are
written exactly as the application writes them.  Interviews are spread over the 6
weeks before LAST in six countries and time zones.  Each tick runs at LAST + a gap
(``--gaps``, minutes): what fell due in the gap is what it finds.

Run (population takes ~10 minutes for 100,000 on a small VM; --reuse skips it):

    /work/venv/bin/python benchmarks/tick_bench.py --dir /tmp/tick-bench --write-docs
    /work/venv/bin/python benchmarks/tick_bench.py --dir /tmp/tick-bench --reuse --profile
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import platform
import pstats
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time as timer
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import orjson
import structlog
from paired import alternated, load_average, median, ratios, spread, table, write_section

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from engine.application import SCHEDULER, Candidacies, apply_action  # noqa: E402
from engine.candidacy import Candidacy  # noqa: E402
from engine.clock import FixedClock  # noqa: E402
from engine.decisions import plan  # noqa: E402
from engine.errors import CloserError  # noqa: E402
from engine.policy import CadencePolicy, policy_from_dict  # noqa: E402
from engine.scheduler import tick  # noqa: E402
from engine.store import eventsourcing_env  # noqa: E402
from engine.values import Actor  # noqa: E402

LAST = datetime(2026, 12, 9, 14, 0, tzinfo=UTC)  # the scheduler's last run: a Wednesday
PLACES = [("Europe/London", "GB"), ("America/New_York", "US"), ("Asia/Kolkata", "IN"),
          ("Australia/Sydney", "AU"), ("America/Sao_Paulo", "BR"), ("Europe/Berlin", "DE")]
AGENCY = {"name": "agency", "version": 1}
AGENCY_POLICY = {"name": "agency", "version": 1,
                 "nudge": {"spacing_business_days": 3}, "pest_line": {"max_nudges": 4},
                 "follow_up": {"first_nudge_after_business_days": 1}}
INTERVIEWERS = [{"name": "Priya Raman", "title": "Engineering Manager"},
                {"name": "Tom Becker", "title": "Staff Engineer"}]
SECTION = "## Scheduler tick (issue 3)"
ROUND_SIDES = ("tick", "floor A", "floor B", "floor C")
# What `--profile` showed, and what changed; kept here so that --write-docs rewrites it
# with the section.
ANALYSIS = [
    "Not re-measured since 2026-11-26 (100,000 candidacies, best-of-3 ticks against a",
    "best-of-7 floor, not paired rounds): the design notes below and their figures.",
    "",
    "What the tick does per due candidacy, and what changed (a first busy +60 min tick",
    "took 5.5 s, 17.8x floor B; before this second pass +60 min took 0.96 s, 4.7x, and",
    "+1440 min 10.8 s, 53x):",
    "",
    "- due rows are found by a range scan of a `(due_at, id)` index;",
    "- a page of 200 due candidacies is loaded with two queries (their latest snapshots,",
    "  then the events after them, joined from a `VALUES` list) through the application's",
    "  own mapper and projector (the cyclic garbage collector was paused while a page was",
    "  decided until issue 15: measured against its absence it saved 1.08x of the CPU,",
    "  within the noise, and was process-wide in `closer serve`; removed);",
    "- `plan` runs once per recorded action plus once, and the row's `due_at` reuses it;",
    "  a due action held by its send window moves its row's `due_at` to when the window",
    "  opens, so later ticks do not read it again;",
    "- a page's events and rows, held rows included, are one transaction (rows in one",
    "  statement); a conflict falls back to one save each and leaves the changed",
    "  candidacy to the next tick; a row never goes back to an older version;",
    "- pages are decided and written in turn (a writer thread that committed a page while",
    "  the next was decided measured 1.00x the wall time and 0.91x the CPU without it,",
    "  issue 15: removed);",
    "- on SQLite a row upsert assigns the stage only where it changed (SQLite rewrites an",
    "  index entry whenever one of its columns is assigned): 3.6 WAL pages written per due",
    "  candidacy instead of 4.2. Durability is unchanged (`synchronous=FULL` in WAL mode):",
    "  `synchronous=NORMAL` measured no faster here, because the WAL checkpoints",
    "  (every ~1,000 pages) sync the database file anyway.",
    "",
    "+60 min sits close to the line on this shared 2-core machine: across the runs made",
    "for this change it measured 2.4x to 3.5x floor B depending on the neighbours' load",
    "(its CPU time alone is about 2x); +1440 min measured 30x to 38x. With the cheaper",
    "decision function and calendar of the replay work, on a quiet machine: 2.6x and 28x-30x.",
    "",
    "Why 3x of floor B is out of reach once thousands are due: every due candidacy is an",
    "event-sourced write, so the tick reads and decodes its events (about 6-7 each,",
    "~0.1 ms), plans its policy (twice when it acts) and durably commits a new event and",
    "row (3.6 pages through the WAL, fsync and checkpoint), where the floor reads one row",
    "in about a microsecond; at 12,618 due that is seconds against a 0.1-0.2 s floor.",
    "Floor A is several times floor B because it pages in id order through the primary-key",
    "index (a B-tree seek per row) and builds typed rows; the tick does not use it (it",
    "reads `(due_at, id)` from its index), and those row reads no longer convert",
    "`sqlite3.Row` objects.",
]


# ---------------------------------------------------------------- population


def _working_moment(rng: random.Random, zone: ZoneInfo, days_ago: float) -> datetime:
    """A weekday, 09:00-16:59 local, about ``days_ago`` days before LAST."""
    day = (LAST - timedelta(days=days_ago)).astimezone(zone).date()
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    at = datetime.combine(day, time(rng.randint(9, 16), rng.choice((0, 15, 30, 45))), zone)
    return min(at.astimezone(UTC), LAST - timedelta(minutes=5))


def _facts(rng: random.Random, t0: datetime, zone: ZoneInfo) -> list[tuple[datetime, str, dict]]:
    """What people record after the interview at ``t0`` (times relative to it)."""
    def after(low_days: float, high_days: float) -> datetime:
        return t0 + timedelta(days=rng.uniform(low_days, high_days))

    facts: list[tuple[datetime, str, dict]] = []
    if rng.random() < 0.25:
        facts.append((t0 + timedelta(minutes=30), "raise_hesitation", {}))
        facts.append((t0 + timedelta(minutes=35), "address_hesitation", {}))
    else:
        facts.append((t0 + timedelta(minutes=30), "record_no_hesitations", {}))
    if rng.random() < 0.92:
        scheduled = None
        if rng.random() < 0.3:
            day = (t0 + timedelta(days=rng.randint(7, 14))).astimezone(zone).date()
            scheduled = datetime.combine(day, time(10), zone).astimezone(UTC)
        facts.append((t0 + timedelta(minutes=40), "close_next_step", {"scheduled_for": scheduled}))
    if rng.random() < 0.15:
        facts.append((t0 + timedelta(minutes=rng.randint(50, 300)), "thank_by_hand", {}))
    if rng.random() < 0.15:
        facts.append((after(5, 25), "update", {}))
    if rng.random() < 0.08:
        at = after(10, 30)
        facts.append((at, "out_of_office",
                      {"back_on": at.astimezone(zone).date() + timedelta(days=rng.randint(2, 10))}))
    if rng.random() < 0.08:
        at = after(3, 20)
        deadline_day = (at + timedelta(days=rng.randint(3, 12))).astimezone(zone).date()
        facts.append((at, "offer", {"company": rng.choice(["Contoso", "Fabrikam", "Initech"]),
                                    "deadline": datetime.combine(deadline_day, time(17),
                                                                 zone).astimezone(UTC)}))
    if rng.random() < 0.03:
        at = after(3, 20)
        facts.append((at, "pause", {"until": at.date() + timedelta(days=rng.randint(1, 7))}))
    if rng.random() < 0.05:
        facts.append((after(5, 20), "nudge_by_hand", {}))
    if rng.random() < 0.08:
        facts.append((after(5, 30), "advanced", {}))
    elif rng.random() < 0.06:
        facts.append((after(5, 30), "rejected", {}))
    return sorted((f for f in facts if f[0] <= LAST), key=lambda f: f[0])


def _record(c: Candidacy, actor: Actor, at: datetime, what: str, args: dict) -> None:
    if what == "raise_hesitation":
        c.raise_hesitation(actor, at, hesitation_id="r1h1", text="on-call experience")
    elif what == "address_hesitation":
        c.address_hesitation(actor, at, hesitation_id="r1h1", answer="ran on-call for 2 years")
    elif what == "record_no_hesitations":
        c.record_no_hesitations(actor, at)
    elif what == "close_next_step":
        c.close_next_step(actor, at, description="Onsite with the CTO", **args)
    elif what == "thank_by_hand":
        c.send_thank_you(actor, at, medium="email", to=[], covers_panel=True)
    elif what == "update":
        c.receive_reply(actor, at, kind="update", note="still interviewing")
    elif what == "out_of_office":
        c.receive_reply(actor, at, kind="out_of_office", back_on=args["back_on"])
    elif what == "offer":
        c.note_competing_offer(actor, at, **args)
    elif what == "pause":
        c.pause_cadence(actor, at, reason="candidate travelling", **args)
    elif what == "nudge_by_hand":
        c.send_nudge(actor, at, channels=["voicemail", "email"], reason="called the recruiter")
    else:
        c.receive_reply(actor, at, kind=what, note="decided")


def _schedule(c: Candidacy, policy: CadencePolicy, until: datetime) -> None:
    """A punctual scheduler: apply each decision the moment it falls due (as apply_policy)."""
    actor = Actor(user=SCHEDULER, workspace=c.workspace)
    for _ in range(30):
        actions = plan(c, policy)
        if not actions or actions[0].due_at > until:
            return
        action = actions[0]  # decide(c, policy, action.due_at)[0], without planning twice
        apply_action(c, actor, action.due_at, action, action.decided_by(policy))


def build(rng: random.Random, policies: dict[str, CadencePolicy], last_tick: datetime) -> Candidacy:
    zone_name, country = rng.choice(PLACES)
    zone = ZoneInfo(zone_name)
    t0 = _working_moment(rng, zone, rng.uniform(0, 42))
    workspace = f"agency-{rng.randrange(20)}"
    actor = Actor(user="coach@agency.example", workspace=workspace, on_behalf_of="candidate")
    policy_ref = AGENCY if rng.random() < 0.15 else {"name": "playbook", "version": 1}
    policy = policies[policy_ref["name"]]
    minimum = rng.choice((1, 2, 3))
    timeline = {"min_weeks": minimum, "max_weeks": minimum + 1} if rng.random() < 0.7 else None
    c = Candidacy.record_interview(
        id=UUID(int=rng.getrandbits(128), version=4), actor=actor, at=t0 + timedelta(minutes=20),
        candidate={"name": f"Candidate {rng.randrange(10**6)}", "email": "c@example.com"},
        company=rng.choice(["Northwind", "Contoso", "Fabrikam", "Tailspin", "Litware"]),
        role="Senior Data Engineer", timezone=zone_name, country=country, subdivision=None,
        interview={"format": rng.choice(["in_person", "video", "video", "phone"]),
                   "interviewers": INTERVIEWERS, "interviewed_at": t0, "timeline": timeline,
                   "asked_to_follow_up": rng.random() < 0.2},
        policy=policy_ref)
    for at, what, args in _facts(rng, t0, zone):
        if at <= last_tick:
            _schedule(c, policy, at)
        # Not allowed at this stage (e.g. a reply before the thank-you): skipped.
        with contextlib.suppress(CloserError):
            _record(c, actor, at, what, args)
    _schedule(c, policy, last_tick)
    return c


def populate(url: str, count: int, last_tick: datetime, seed: int, batch: int = 1000) -> float:
    app = Candidacies(eventsourcing_env(url), clock=FixedClock(LAST))
    app.policies.publish(policy_from_dict(AGENCY_POLICY))
    policies = {"playbook": app.policies.get("playbook", 1),
                "agency": app.policies.get("agency", 1)}
    rng = random.Random(seed)
    started = timer.perf_counter()
    pending: list[Candidacy] = []
    for i in range(count):
        pending.append(build(rng, policies, last_tick))
        if len(pending) == batch or i == count - 1:
            app.save(*pending, rows=[app.current_row(c) for c in pending])
            pending = []
            if (i + 1) % 10000 == 0:
                print(f"  populated {i + 1:,} ({timer.perf_counter() - started:.0f} s)",
                      flush=True)
    app.close()
    return timer.perf_counter() - started


# ---------------------------------------------------------------- measurements


def floor_rows(url: str) -> tuple[float, int]:
    """Every current row through the recorder's own paged query, decoded to CandidacyRow."""
    app = Candidacies(eventsourcing_env(url), clock=FixedClock(LAST))
    try:
        started = timer.perf_counter()
        global LAST_CPU
        cpu = timer.process_time()
        seen, after = 0, ""
        while True:
            rows = app.recorder.select_all_rows(  # type: ignore[attr-defined]
                after=after, limit=1000)
            seen += len(rows)
            if len(rows) < 1000:
                break
            after = rows[-1].id
        LAST_CPU = timer.process_time() - cpu
        return timer.perf_counter() - started, seen
    finally:
        app.close()


def floor_plain(path: Path) -> tuple[float, int]:
    """A plain SELECT of the whole table, each summary JSON-decoded."""
    global LAST_CPU
    started, cpu = timer.perf_counter(), timer.process_time()
    with sqlite3.connect(path) as db:
        seen = 0
        for row in db.execute("SELECT id, stage, version, due_at, summary FROM closer_candidacies"):
            orjson.loads(row[4])
            seen += 1
    LAST_CPU = timer.process_time() - cpu
    return timer.perf_counter() - started, seen


def floor_due_events(path: Path, now: datetime, page: int = 200) -> tuple[float, int]:
    """Issue 19's floor: the due candidacies' events read, each payload JSON-decoded (a
    plain SELECT of the due ids from their index, then of their events, a page of ids at
    a time): what any tick must at least read."""
    global LAST_CPU
    started, cpu = timer.perf_counter(), timer.process_time()
    seen = 0
    with sqlite3.connect(path) as db:
        due = [row[0].replace("-", "") for row in db.execute(
            "SELECT id FROM closer_candidacies WHERE due_at<=? ORDER BY due_at, id",
            (now.astimezone(UTC).isoformat(),))]
        for start in range(0, len(due), page):
            ids = due[start:start + page]
            for row in db.execute(
                    "SELECT originator_id, originator_version, topic, state FROM stored_events "
                    f"WHERE originator_id IN ({', '.join('?' * len(ids))}) "
                    "ORDER BY originator_id, originator_version", ids):
                orjson.loads(row[3])
                seen += 1
    LAST_CPU = timer.process_time() - cpu
    return timer.perf_counter() - started, seen


LAST_CPU = 0.0  # the CPU seconds of the last floor measured (set by the floors)


def queued() -> float:
    """Seconds this thread has spent runnable but waiting for a CPU (Linux schedstat; 0
    elsewhere): on a shared machine, time the neighbours took, not the tick."""
    try:
        path = Path(f"/proc/self/task/{threading.get_native_id()}/schedstat")
        return int(path.read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def tick_in_process(url: str, now: datetime,
                    profile: bool = False) -> tuple[float, float, float, Any, str]:
    """One tick on the store at ``url``: wall seconds, this process's CPU seconds (the
    tick's writer thread included), seconds the calling thread waited for a CPU, its
    report, and its profile when asked."""
    app = Candidacies(eventsourcing_env(url), clock=FixedClock(now))
    try:
        profiler = cProfile.Profile() if profile else None
        started, cpu, waited = timer.perf_counter(), timer.process_time(), queued()
        if profiler:
            profiler.enable()
        report = tick(app, now)
        if profiler:
            profiler.disable()
        elapsed, cpu = timer.perf_counter() - started, timer.process_time() - cpu
        waited = queued() - waited
        text = ""
        if profiler:
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out).strip_dirs()
            stats.sort_stats("tottime").print_stats(15)
            stats.sort_stats("cumulative").print_stats(25)
            text = out.getvalue()
        return elapsed, cpu, waited, report, text
    finally:
        app.close()


def tick_cli(url: str, now: datetime) -> tuple[float, str]:
    """`closer tick --now NOW --on-copy FILE` as a subprocess: the live store refuses a
    --now after its clock, so the CLI ticks on a copy it makes (the copy is in the time)."""
    closer = Path(sys.executable).with_name("closer")
    command = [str(closer)] if closer.exists() else [sys.executable, "-m", "api.cli"]
    env = {**os.environ, "CLOSER_DATABASE_URL": url}
    with tempfile.TemporaryDirectory() as folder:
        started = timer.perf_counter()
        done = subprocess.run([*command, "tick", "--now", now.isoformat(), "--on-copy",
                               f"{folder}/copy.db"], env=env, cwd=ROOT,
                              capture_output=True, text=True, check=False)
        elapsed = timer.perf_counter() - started
    if done.returncode != 0:
        return elapsed, f"FAILED ({done.returncode}): {' '.join(done.stderr.split())[-300:]}"
    return elapsed, " ".join(done.stdout.split())[-300:]


def cli_startup() -> float:
    closer = Path(sys.executable).with_name("closer")
    command = [str(closer)] if closer.exists() else [sys.executable, "-m", "api.cli"]
    started = timer.perf_counter()
    subprocess.run([*command, "--help"], cwd=ROOT, capture_output=True, check=True)
    return timer.perf_counter() - started


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    from importlib.metadata import version
    return (f"{cpu}, {os.cpu_count()} CPUs{memory}; Linux {platform.release()}; "
            f"Python {platform.python_version()}; SQLite {sqlite3.sqlite_version}; "
            f"eventsourcing {version('eventsourcing')}")


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--gaps", default="1,60,1440",
                        help="minutes since the scheduler last ran, one tick each "
                             "(default 1,60,1440: the scheduler loop, an hourly and a daily cron)")
    parser.add_argument("--cli-gap", type=int, default=60,
                        help="the gap at which the real CLI is timed (default 60)")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to build the stores")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the populated store left in --dir by an earlier run")
    parser.add_argument("--rounds", type=int, default=5,
                        help="paired rounds of the tick and the floors, each on a fresh copy")
    parser.add_argument("--quick", action="store_true",
                        help="5,000 candidacies, gaps 60 and 1440, 3 rounds: about 2 minutes")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile each in-process tick (its first run)")
    parser.add_argument("--skip-cli", action="store_true")
    parser.add_argument("--write-docs", action="store_true",
                        help=f"write the '{SECTION}' section of docs/performance.md")
    args = parser.parse_args()
    if args.quick:
        args.count, args.gaps, args.rounds = 5000, "60,1440", 3
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    gaps = [int(g) for g in args.gaps.split(",")]
    started = load_average()

    workdir = args.dir or Path(tempfile.mkdtemp(prefix="tick-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    pristine = workdir / f"pristine-{args.count}-{args.seed}.db"
    work = workdir / "bench.db"
    populate_s = 0.0
    if not (args.reuse and pristine.exists()):
        pristine.unlink(missing_ok=True)
        print(f"populating {args.count:,} candidacies in {pristine} "
              f"(the scheduler last ran {LAST.isoformat()}) ...", flush=True)
        populate_s = populate(f"sqlite:///{pristine}", args.count, LAST, args.seed)
    size_mb = pristine.stat().st_size / 2**20

    def fresh() -> str:
        for path in workdir.glob("bench.db*"):
            path.unlink()
        shutil.copyfile(pristine, work)
        return f"sqlite:///{work}"

    url = fresh()
    with sqlite3.connect(work) as db:
        stages = Counter(dict(db.execute(
            "SELECT stage, count(*) FROM closer_candidacies GROUP BY stage").fetchall()))
        events = db.execute("SELECT count(*) FROM stored_events").fetchone()[0]
    lines = [
        f"candidacies: {args.count:,} ({events:,} events, {size_mb:,.0f} MiB file); "
        + (f"populated in {populate_s:,.0f} s" if populate_s else "populated earlier (--reuse)"),
        "stages: " + ", ".join(f"{k} {v:,}" for k, v in sorted(stages.items())),
    ]
    results = []
    profiles = []
    for gap in gaps:
        now = LAST + timedelta(minutes=gap)
        copy: dict[str, str] = {}

        def one(side: str, number: int, now: datetime = now, gap: int = gap,
                copy: dict[str, str] = copy) -> dict[str, Any]:
            # Each round's three sides share one fresh copy of the store, warmed first.
            if side == ROUND_SIDES[number % len(ROUND_SIDES)]:
                copy["url"] = fresh()
                floor_rows(copy["url"])
            if side == "floor C":
                # The pristine store: the round's tick may have run already on the copy.
                wall, seen = floor_due_events(pristine, now)
                return {"wall": wall, "cpu": LAST_CPU, "load": os.getloadavg()[0],
                        "events": seen}
            if side == "floor B":
                wall, seen = floor_plain(work)
                assert seen == args.count, seen
                return {"wall": wall, "cpu": LAST_CPU, "load": os.getloadavg()[0]}
            if side == "floor A":
                wall, seen = floor_rows(copy["url"])
                assert seen == args.count, seen
                return {"wall": wall, "cpu": LAST_CPU, "load": os.getloadavg()[0]}
            wall, cpu, waited, report, text = tick_in_process(
                copy["url"], now, profile=args.profile and number == 0)
            if text:
                profiles.append(f"--- profile, tick at +{gap} min\n{text}")
            return {"wall": wall, "cpu": cpu, "waited": waited, "report": report,
                    "load": os.getloadavg()[0]}

        runs = alternated(args.rounds, ROUND_SIDES, one)
        again_s, _, _, again, _ = tick_in_process(copy["url"], now)
        if again.recorded:
            raise SystemExit(f"a second tick at the same moment recorded {again.recorded}")
        ticks, floor_a, floor_b = runs["tick"], runs["floor A"], runs["floor B"]
        floor_c = runs["floor C"]
        vs_c = ratios([t["wall"] for t in ticks], [f["wall"] for f in floor_c])
        cpu_c = ratios([t["cpu"] for t in ticks], [f["cpu"] for f in floor_c])
        report = ticks[0]["report"]
        vs_b = ratios([t["wall"] for t in ticks], [f["wall"] for f in floor_b])
        vs_a = ratios([t["wall"] for t in ticks], [f["wall"] for f in floor_a])
        cpu_b = ratios([t["cpu"] for t in ticks], [f["cpu"] for f in floor_b])
        results.append({"gap": gap, "due": report.candidacies, "vs_b": vs_b, "vs_a": vs_a,
                        "cpu_b": cpu_b, "ticks": ticks, "floor_b": floor_b,
                        "vs_c": vs_c, "cpu_c": cpu_c, "floor_c": floor_c,
                        "loads": [t["load"] for t in ticks]})
        per = (f"{1000 * median([t['wall'] for t in ticks]) / report.candidacies:.2f} ms "
               "per due candidacy" if report.candidacies else "nothing due")
        lines += [
            (f"tick at +{gap} min ({now.isoformat()}): {report.candidacies:,} due "
            f"({100 * report.candidacies / args.count:.2f} %); "
            f"recorded {report.recorded:,} "
            f"({', '.join(f'{k} {v:,}' for k, v in sorted(report.actions.items())) or 'nothing'})"),
            (f"  {args.rounds} rounds (tick, floor A, floor B, order rotating): tick "
            f"{_list(ticks, 'wall')} s (CPU {_list(ticks, 'cpu')}; queued behind other "
            f"processes {_list(ticks, 'waited')}); floor A {_list(floor_a, 'wall')} s; "
            f"floor B {_list(floor_b, 'wall')} s; 1-min load average "
            f"{_list(ticks, 'load', 1)}"),
            (f"  floor C (the due candidacies' {floor_c[0]['events']:,} events read): "
             f"{_list(floor_c, 'wall')} s; tick / floor C, per round: {spread(vs_c)}; per "
             f"CPU second: {spread(cpu_c)}"),
            (f"  tick / floor B, per round: {spread(vs_b)}; per CPU second: {spread(cpu_b)}; "
            f"tick / floor A: {spread(vs_a)}; again at the same moment {again_s:.3f} s, "
            f"records nothing; {per}"),
        ]
    if not args.skip_cli:
        now = LAST + timedelta(minutes=args.cli_gap)
        url = fresh()
        floor_rows(url)
        cli_s, cli_summary = tick_cli(url, now)
        startup_s = cli_startup()
        lines.append(f"closer tick --now {now.isoformat()} --on-copy FILE (subprocess, the copy "
                     f"included): {cli_s:.3f} s, of which "
                     f"~{startup_s:.2f} s start-up (closer --help); it said: {cli_summary}")
    lines.append(f"machine: {machine()}")
    print("\n".join(lines))
    for text in profiles:
        print(text)
    if args.write_docs:
        write_docs(args, lines, results, started, load_average())


def _list(runs: list[dict[str, Any]], key: str, digits: int = 3) -> str:
    return ", ".join(f"{r[key]:.{digits}f}" for r in runs)


def write_docs(args: argparse.Namespace, lines: list[str], results: list[dict[str, Any]],
               started: str, ended: str) -> None:
    rows = []
    for r in results:
        met = median(r["vs_b"]) <= 3
        rows.append([
            f"+{r['gap']} min", f"{r['due']:,}",
            f"{median([t['wall'] for t in r['ticks']]):.3f}",
            f"{median([f['wall'] for f in r['floor_b']]):.3f}", spread(r["vs_b"], digits=1),
            spread(r["cpu_b"], digits=1), spread(r["vs_a"], digits=1),
            f"{min(r['loads']):.1f}–{max(r['loads']):.1f}",
            ("met" if met else "**missed**") + ("" if r["due"] else ", nothing due")])
    command = (f"python benchmarks/tick_bench.py --count {args.count} --gaps {args.gaps} "
               f"--seed {args.seed} --rounds {args.rounds} --write-docs")
    body = "\n".join([
        SECTION,
        "",
        (f"`closer tick` over {args.count:,} candidacies on SQLite (`engine.scheduler.tick` "
        "in-process), beside the floor: the time to merely read the same candidacies' "
        "current rows (floor B: a plain `SELECT` of `closer_candidacies` with each summary "
        "JSON-decoded; floor A: the recorder's own paged read decoded to `CandidacyRow`). "
        "Target of issue 3: the tick at most 3x floor B. Each round takes a fresh copy of "
        "the store, reads its pages once, then runs the tick and the two floors in an order "
        "that rotates each round; the ratios are per round (median, min–max). "
        f"{started} before the run, {ended} after: the machine was shared with other work."),
        "",
        *table(["gap", "due", "tick s", "floor B s", "tick / floor B, per round",
                "the same in CPU seconds", "tick / floor A, per round",
                "1-min load average in the rounds", "target (median)"], rows),
        "",
        ("Busy against quiet: the wall-clock ratio moves with the neighbours' load (the "
         "tick's time queued behind other processes is in the run below), so the load "
         "average of each row's rounds is shown beside it, and the CPU-second ratio with it. "
         "Measured independently for issue 15, +60 min was 1.8x floor B on a busy machine "
         "and 3.8x on a quiet one: the target held only when the machine was busy. A run on "
         "a quiet machine is the one that decides it (`--rounds 5` or more, load average "
         "below 1)."),
        "",
        ("Reproduce (builds the store in a temporary directory; add `--dir DIR` to keep it and "
        "`--reuse` to skip population next time; `--quick` for a 2-minute look):"),
        "",
        f"    {command}",
        "",
        "Latest run:",
        "",
        "```",
        *lines,
        "```",
        "",
        ("How it is measured: the candidacies are built with the aggregate's own command "
        "methods while a punctual scheduler applies the policy's decisions (as "
        "`apply_policy` does) up to the last tick, then saved with the application's rows, "
        "so `due_at` is what the application writes. Interviews are spread over the 6 weeks "
        "before the last tick, in GB, US, IN, AU, BR and DE time zones; 15 % run under a "
        "published agency policy. After the rounds the tick runs again at the same moment "
        "on the last copy (idempotency: it must record nothing)."),
        "",
        *ANALYSIS,
    ])
    write_section(SECTION, body)
    print(f"wrote the '{SECTION}' section of docs/performance.md")


if __name__ == "__main__":
    main()
