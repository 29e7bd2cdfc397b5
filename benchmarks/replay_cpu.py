"""CPU per stored event of one-process replay under the playbook, in whichever build of
`engine` this interpreter imports (issue 15: is compiling replay.py worth its build time?).

    python benchmarks/replay_cpu.py STORE.db [ROUNDS]

Run it alternately against trees with different compiled groups (PYTHONPATH), on the
same SQLite store (`closer simulate` writes one); prints one JSON line: which modules
are compiled and the best round's CPU microseconds per event (CPU time, not wall time,
as the machine is shared).
"""

from __future__ import annotations

import json
import sys
import time

import engine
from engine.policy import default_policy
from engine.replay import SQLiteSource, replay


def main() -> None:
    source = SQLiteSource(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    replay(source, [default_policy()], workers=1)  # warm-up: imports and caches
    best, events = float("inf"), 0
    for _ in range(rounds):
        start = time.process_time()
        result = replay(source, [default_policy()], workers=1)
        best, events = min(best, time.process_time() - start), result.events
    print(json.dumps({"compiled": engine.COMPILED, "group": list(engine.GROUP),
                      "events": events, "cpu_us_per_event": round(best / events * 1e6, 2)}))


if __name__ == "__main__":
    main()
