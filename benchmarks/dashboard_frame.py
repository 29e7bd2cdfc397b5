"""What each cut of the dashboard's fixed cost buys: a signed-in page's server time with
each device on and off, in one process, alternating rounds.

    python benchmarks/dashboard_frame.py [--candidacies 1000] [--rounds 6] [--requests 200]

The devices (each switched off exactly as the code was before it):

- ``nav``: the navigation's URLs looked up once per app (`api.dashboard.pages._nav_urls`);
  off: looked up on every request (`url_path_for` for each of the seven entries).
- ``token``: a cached token checked on the event loop (`TokenVerifier.cached_hash`); off:
  every check sent to a worker thread (`run_in_threadpool(verify_hash)`).

Each page is called through the whole app (middleware, routing, session, page, HTML) as
an ASGI call from an event loop in this process, timed to its last byte: server time, as
`benchmarks/dashboard_bench.py`'s `Timed`, and the process's CPU time over the same
call (every thread's), which a machine shared with other work disturbs far less.
Logging as `closer serve` configures it off a terminal (JSON lines), written to a file.
The store: ``--candidacies`` simulated ones in a SQLite file under /tmp (written once),
the read models followed to the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from dashboard_bench import asgi_get
from paired import load_average, ratios, spread, table

DEVICES = ("nav", "token")
PAGES = {"Today": "/dashboard/today", "Candidacy": None,
         "Frame (404)": "/dashboard/candidacies/00000000-0000-4000-8000-000000000000"}


def store(path: Path, candidacies: int) -> str:
    from engine.application import Candidacies
    from engine.simulation import simulate
    from engine.store import eventsourcing_env

    url = f"sqlite:///{path}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        app = Candidacies(eventsourcing_env(url))
        simulate(app, candidacies, 2026, batch=500)
        app.close()
    return url


class Site:
    """The app over the store, a recruiter signed in, and a way to call a page."""

    def __init__(self, url: str, log: Path) -> None:
        from fastapi.testclient import TestClient

        from api.app import create_app
        from api.auth import create_token
        from api.logs import configure_logging
        from api.read_models import follower
        from api.settings import Settings
        from engine.application import Candidacies
        from engine.store import eventsourcing_env

        self.log = log.open("w")
        configure_logging("json", stream=self.log)
        self.candidacies = Candidacies(eventsourcing_env(url))
        token = create_token(self.candidacies, workspace="simulated", role="recruiter",
                             user="bench@recruit.example")
        follower(self.candidacies).run_once()
        self.app = create_app(Settings(session_secret="b" * 40), candidacies=self.candidacies)
        [row] = self.candidacies.rows("simulated", limit=1)
        PAGES["Candidacy"] = f"/dashboard/candidacies/{row.id}"
        with TestClient(self.app, base_url="http://testserver") as client:
            import re

            page = client.get("/dashboard/sign-in")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert csrf is not None
            answer = client.post("/dashboard/sign-in", data={"csrf": csrf.group(1),
                                                              "token": token},
                                 headers={"Origin": "http://testserver"},
                                 follow_redirects=False)
            assert answer.status_code == 303, answer.text
            self.cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items()).encode()

    async def call(self, path: str) -> int:
        return await asgi_get(self.app, path, self.cookie)

    def switch(self, device: str, on: bool) -> None:
        """Turn one device on or off (off: the code's behaviour before it)."""
        from api.dashboard import pages

        if device == "nav":
            pages._nav_urls = NAV_URLS if on else _nav_urls_every_time  # type: ignore[assignment]
        elif device == "token":
            verifier = self.app.state.tokens
            if on:
                verifier.__dict__.pop("cached_hash", None)
            else:
                verifier.cached_hash = lambda digest: None  # always the thread hop


def _nav_urls_every_time(request: Any) -> Any:
    """The navigation's URLs looked up again, as every request did before."""
    if hasattr(request.app.state, "dashboard_nav"):
        del request.app.state.dashboard_nav
    return NAV_URLS(request)


NAV_URLS: Any = None  # `api.dashboard.pages._nav_urls`, kept by `main`


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidacies", type=int, default=1000)
    parser.add_argument("--store", type=Path, default=Path("/tmp/closer_frame/frame.db"))
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    global NAV_URLS
    from api.dashboard import pages

    NAV_URLS = pages._nav_urls
    site = Site(store(args.store, args.candidacies), args.store.with_suffix(".log"))
    variants = ["all on", *(f"{d} off" for d in DEVICES), "all off"]

    async def run() -> None:
        def setup(variant: str) -> None:
            for device in DEVICES:
                site.switch(device, not (variant == "all off" or variant == f"{device} off"))

        async def medians(variant: str, path: str) -> tuple[float, float]:
            """The request's median wall time and median CPU time (the process's, every
            thread: on a loaded machine the wall time also counts the waits for a CPU)."""
            setup(variant)
            for _ in range(10):
                await site.call(path)
            wall, cpu = [], []
            for _ in range(args.requests):
                started, used = time.perf_counter(), time.process_time()
                status = await site.call(path)
                cpu.append(time.process_time() - used)
                wall.append(time.perf_counter() - started)
            assert status in (200, 404), (path, status)
            return statistics.median(wall), statistics.median(cpu)

        lines = []
        for page, path in PAGES.items():
            assert path is not None
            walls: dict[str, list[float]] = {v: [] for v in variants}
            cpus: dict[str, list[float]] = {v: [] for v in variants}
            for number in range(args.rounds):  # the order rotating, as `paired.alternated`
                turn = number % len(variants)
                for variant in variants[turn:] + variants[:turn]:
                    wall, cpu = await medians(variant, path)
                    walls[variant].append(wall)
                    cpus[variant].append(cpu)
            for variant in variants:
                lines.append([page, variant,
                              f"{statistics.median(cpus[variant]) * 1000:.3f}",
                              spread(ratios(cpus[variant], cpus["all on"])),
                              f"{statistics.median(walls[variant]) * 1000:.3f}",
                              spread(ratios(walls[variant], walls["all on"]))])
            print(page, "done", file=sys.stderr)
        setup("all on")
        print(f"`python benchmarks/dashboard_frame.py --candidacies {args.candidacies} "
              f"--rounds {args.rounds} --requests {args.requests}`, CPython "
              f"{sys.version.split()[0]}, {load_average()} at the end.\n")
        print("\n".join(table(["page", "variant", "CPU ms (p50)", "CPU / all on (per round)",
                               "wall ms (p50)", "wall / all on (per round)"], lines)))

    asyncio.run(run())
    site.candidacies.close()


if __name__ == "__main__":
    main()
