"""What sealing personal data costs the command path (issue 17, item 4), on SQLite:

    python benchmarks/erasure_bench.py

Single commands through `Candidacies` (a load, then raise a hesitation: its text sealed,
the interview's candidate opened) on five SQLite files in paired rounds whose order
alternates: *sealed* (the shipped path: each candidacy's key kept by the keyring,
`engine.personal_data.KEYS_CACHED`), *sealed, no key cache* (every seal and open reads
the key from ``closer_subject_keys``), and *plain* (the mapper given no keyring: nothing
sealed); and issue 17's whole audit on the command path against none of it: *audited*
(sealed, the chain hashed, and the chain checked before the command as the API's
command routes do, `api.audit_service.chain_warning`) and *unaudited* (nothing sealed,
no chain hashes, no check).  Commands/s and the per-round ratios.  Results go to
docs/performance.md,
section "## Erasure (issue 17)" (only that section).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from paired import alternated, load_average, median, ratios, spread, table, write_section

SECTION = "## Erasure (issue 17)"
SIDES = ("sealed", "uncached", "plain", "audited", "unaudited")


def _app(path: Path, side: str) -> Any:
    from engine.application import Candidacies
    from engine.clock import FixedClock
    from engine.store import eventsourcing_env

    app = Candidacies(eventsourcing_env(f"sqlite:///{path}"), recent=0,
                      clock=FixedClock(datetime(2026, 11, 25, 10, tzinfo=UTC)))
    if side in ("plain", "unaudited"):
        app.mapper.keyring = None  # type: ignore[attr-defined]
    if side == "unaudited":
        app.recorder.chain_events = False
    if side == "uncached":
        app.keyring.size = 0
    return app


def run(app: Any, ids: list[str], count: int, check: bool = False) -> tuple[float, float]:
    """``count`` commands (load, then a hesitation; ``check``: the chain checked first)
    over ``ids`` in turn: commands/s, and commands per CPU-second of this process
    (steadier on a shared machine)."""
    from api.audit_service import chain_warning
    from engine.values import Actor

    actor = Actor(user="bench@agency.example", workspace="agency")
    started, cpu = time.perf_counter(), time.process_time()
    for n in range(count):
        candidacy_id = ids[n % len(ids)]
        if check:
            assert chain_warning(app, candidacy_id) is None
        app.get(candidacy_id, "agency")
        app.raise_hesitation(actor, candidacy_id, f"Worried about the on-call rota, {n}")
    return (count / (time.perf_counter() - started),
            count / max(1e-9, time.process_time() - cpu))


def main() -> None:
    from builders import interview

    from engine.values import Actor

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--commands", type=int, default=300, help="commands per side a round")
    parser.add_argument("--pool", type=int, default=300, help="candidacies per side")
    parser.add_argument("--no-write", action="store_true", help="do not touch docs/")
    args = parser.parse_args()
    from api.logs import configure_logging

    # Logged as production logs (JSON lines at info), into a sink: every side pays it.
    sink = open(os.devnull, "w")  # noqa: SIM115 - open for the whole run
    configure_logging("json", "info", stream=sink, cache=False)
    load_before = load_average()
    actor = Actor(user="bench@agency.example", workspace="agency")
    with tempfile.TemporaryDirectory() as folder:
        apps = {side: _app(Path(folder) / f"{side}.db", side) for side in SIDES}
        pools = {side: [apps[side].record_interview(actor, interview()).candidacy_id
                        for _ in range(args.pool)] for side in SIDES}
        for side in SIDES:  # a warm-up round each, not counted
            run(apps[side], pools[side], args.commands // 4, side == "audited")
        results = alternated(args.rounds, list(SIDES), lambda side, _: run(
            apps[side], pools[side], args.commands, side == "audited"))
        for app in apps.values():
            app.close()
    command = " ".join(["python", "benchmarks/erasure_bench.py", *sys.argv[1:]])
    wall = {side: [r[0] for r in results[side]] for side in SIDES}
    cpu = {side: [r[1] for r in results[side]] for side in SIDES}
    def baseline(side: str) -> str:
        return "unaudited" if side in ("audited", "unaudited") else "plain"

    rows = [[side, f"{median(wall[side]):,.0f}",
             spread(ratios(wall[side], wall[baseline(side)])), f"{median(cpu[side]):,.0f}",
             spread(ratios(cpu[side], cpu[baseline(side)]))] for side in SIDES]
    # The issue's own measure: hashing and encryption (sealed: chained and sealed, no
    # chain check) against neither (unaudited), from the same rounds.
    rows.append(["sealed / unaudited", "", spread(ratios(wall["sealed"], wall["unaudited"])),
                 "", spread(ratios(cpu["sealed"], cpu["unaudited"]))])
    text = "\n".join([
        SECTION, "",
        f"Reproduce: `{command}` ({load_before} before, {load_average()} after; one 2-core "
        "machine shared with other work: the ratios, paired round by round, are the "
        "figures to read).", "",
        "Logged as production logs (`api.logs.configure_logging`, JSON lines at info, "
        "into a sink). "
        f"A load then a hesitation raised (its text sealed with the candidacy's AES-GCM key, "
        f"the candidate's name, email and phone opened on load) on {args.pool} candidacies "
        "a side, one SQLite file each, alternating rounds:", "",
        *table(["side", "commands/s (median)", "/ its baseline, per round (wall)",
                "commands/CPU-s (median)", "/ its baseline, per round (CPU)"], rows), "",
        "*sealed* is the shipped path; *uncached* reads the key from `closer_subject_keys` "
        "at every seal and open (the receipt of the keyring's cache, "
        "`engine.personal_data.KEYS_CACHED`); *plain* seals nothing (their baseline). "
        "*audited* is everything issue 17 adds to a command over HTTP (sealed, the chain "
        "hashed, the chain checked first, as `refuse_if_chain_broken` does); *unaudited* "
        "none of it (its baseline). *sealed / unaudited* is what the issue names, \"the cost "
        "of hashing and encryption on the command path\": chained and sealed against "
        "neither, without the chain check before the command (its cost is *audited* / "
        "*sealed*). Issue 17's target: at least 0.8x.",
        ""])
    print(text)
    if not args.no_write:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
