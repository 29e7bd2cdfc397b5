"""Probe: the CPU of one HTTP request through the app in-process (no socket, no load
generator), for comparing two trees alternated (issue 19, item 2):

    PYTHONPATH=<tree> python benchmarks/route_probe.py cmd|health [--profile]
    python benchmarks/route_probe.py parts [ROUNDS]

Seeds 16 candidacies on a fresh SQLite file, sends 30 warm-up requests, then times 300
(`POST /candidacies/{id}/offers`, or `GET /healthz`): CPU a request over every thread of
the process (the command's worker thread included); with ``--profile`` a cProfile of 300
more (the event loop's thread only).

``parts`` splits a command request's CPU into its layers, four sides of 300 requests
alternated in one process for ROUNDS rounds (default 7), medians: the whole request;
the same without the chain check (`refuse_if_chain_broken` a no-op); the command
answered from a fixed outcome in its worker thread (the route, the dependencies, the
middleware and the thread hop: no engine); and the same answered on the event loop (no
hop).  The differences are the chain check, the engine's command and the hop.  A probe
(the sides are patched in), not a device: nothing of it ships."""

from __future__ import annotations

import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from builders import PANEL, interview  # noqa: E402

from api.app import create_app  # noqa: E402
from api.auth import create_token  # noqa: E402
from api.logs import configure_logging  # noqa: E402
from api.settings import Settings  # noqa: E402
from api.wiring import build_candidacies  # noqa: E402
from engine.values import Actor  # noqa: E402

BODY = b'{"company": "Acme", "deadline": "2030-01-01T00:00:00Z"}'


async def request(app: Any, token: str, method: str, path: str, body: bytes) -> int:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(10)
        return {"type": "http.disconnect"}

    status: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    headers = [(b"host", b"probe"), (b"authorization", f"Bearer {token}".encode()),
               (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 1), "server": ("probe", 80), "state": {}}
    await app(scope, receive, send)
    return status[0]


PARTS = ("whole request", "no chain check", "no engine", "no engine, no hop")


def parts(run: Any, seed: Callable[[], None], rounds: int) -> None:
    """`parts` (the module's docstring): each side's median CPU a request, and the layers.
    Each side of each round ``seed``s new candidacies first, so that every side's chains
    are as long (3 events to 23: the chain check grows with the history)."""
    import statistics

    import anyio.to_thread

    from api import dependencies
    from engine.application import Outcome

    real_run, real_check = dependencies.CommandRunner.run, dependencies.refuse_if_chain_broken
    fixed = Outcome(candidacy_id="probe", version=5, stage="next_step_closed")

    async def no_engine(self: Any, *_: Any, **__: Any) -> Outcome:
        return await anyio.to_thread.run_sync(self._answered, fixed,
                                              limiter=self.turns.limiter())

    async def no_hop(self: Any, *_: Any, **__: Any) -> Outcome:
        return self._answered(fixed)  # type: ignore[no-any-return]

    sides = {"whole request": (real_run, real_check),
             "no chain check": (real_run, lambda *_: None),
             "no engine": (no_engine, real_check), "no engine, no hop": (no_hop, real_check)}
    cpu: dict[str, list[float]] = {side: [] for side in PARTS}
    for number in range(rounds):
        order = PARTS[number % 4:] + PARTS[:number % 4]
        for side in order:
            dependencies.CommandRunner.run, dependencies.refuse_if_chain_broken = sides[side]
            seed()
            asyncio.run(run(30))
            started = time.process_time()
            asyncio.run(run(300))
            cpu[side].append((time.process_time() - started) / 300 * 1e3)
    dependencies.CommandRunner.run, dependencies.refuse_if_chain_broken = sides["whole request"]
    median = {side: statistics.median(values) for side, values in cpu.items()}
    for side in PARTS:
        print(f"{side:18} {median[side]:.3f} ms CPU a request (median of {rounds}; "
              f"{min(cpu[side]):.3f}-{max(cpu[side]):.3f})")
    print(f"the chain check    {median['whole request'] - median['no chain check']:.3f} ms")
    print(f"the engine's command {median['no chain check'] - median['no engine']:.3f} ms")
    print(f"the thread hop     {median['no engine'] - median['no engine, no hop']:.3f} ms")
    print(f"route, dependencies, middleware {median['no engine, no hop']:.3f} ms")


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "cmd"
    devnull = open(os.devnull, "w")  # noqa: SIM115 - open for the process's life
    configure_logging("json", "info", stream=devnull)
    folder = tempfile.mkdtemp()
    settings = Settings(database_url=f"sqlite:///{folder}/probe.db", tasks_dir=f"{folder}/t",
                        audit_key_file=f"{folder}/k", session_secret="s" * 40)
    candidacies = build_candidacies(settings)
    actor = Actor(user="probe@agency", workspace="probe")
    now = datetime.now(UTC).isoformat()
    ids: list[str] = []

    def seed() -> None:
        """16 new candidacies (3 events each) for the requests to go to."""
        ids.clear()
        for n in range(16):
            cid = candidacies.record_interview(actor, interview(
                interviewers=PANEL, interviewed_at=now, company=f"Probe {n}")).candidacy_id
            candidacies.record_no_hesitations(actor, cid)
            candidacies.close_next_step(actor, cid, "Onsite")
            ids.append(str(cid))

    seed()
    token = create_token(candidacies, workspace="probe", role="recruiter")
    app = create_app(settings, candidacies=candidacies)

    async def run(count: int) -> None:
        for i in range(count):
            if kind in ("cmd", "parts"):
                await request(app, token, "POST", f"/candidacies/{ids[i % 16]}/offers", BODY)
            else:
                await request(app, token, "GET", "/healthz", b"")

    if kind == "parts":
        parts(run, seed, int(sys.argv[2]) if len(sys.argv) > 2 else 7)
        candidacies.close()
        return
    asyncio.run(run(30))
    cpu, wall = time.process_time(), time.perf_counter()
    asyncio.run(run(300))
    print(f"{kind}: {(time.process_time() - cpu) / 300 * 1e3:.3f} ms CPU/req (all threads), "
          f"{(time.perf_counter() - wall) / 300 * 1e3:.3f} ms wall")
    if "--profile" in sys.argv:
        profiler = cProfile.Profile()
        profiler.enable()
        asyncio.run(run(300))
        profiler.disable()
        pstats.Stats(profiler).strip_dirs().sort_stats("tottime").print_stats(30)
    candidacies.close()


if __name__ == "__main__":
    main()
