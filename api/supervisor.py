"""Background workers of `closer serve` (the scheduler, the outbox, the read models), supervised.

Each worker is a function ``run(stop, beat)`` that loops until ``stop`` (a
`threading.Event`) is set and calls ``beat()`` after each pass that completed.  The
`Supervisor` runs each in its own thread; when one ends by an exception (any, even a
`BaseException` that kills its thread) or returns without being asked to, it is logged,
shown *restarting* with the error and *down since* that moment, and started again
after a back-off that doubles with each crash in a row.  The first completed pass after
a restart clears *down since* and the back-off.

Its state is written (atomically) to a small JSON file on every change, so that
`/healthz` answers the same in every HTTP worker process (`read_state`, `down`).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from engine.clock import Clock, SystemClock

log = structlog.get_logger("closer.supervisor")

Run = Callable[[threading.Event, Callable[[], None]], None]


@dataclass
class WorkerState:
    """What `/healthz` shows of one background worker."""

    state: str = "starting"  # starting, running, restarting, stopped
    started_at: datetime | None = None
    down_since: datetime | None = None  # the first crash of the current streak
    restarts: int = 0
    last_error: str | None = None  # "ErrorType: message"
    last_error_at: datetime | None = None
    last_success_at: datetime | None = None  # the last completed pass

    def as_json(self) -> dict[str, Any]:
        return {k: v.isoformat() if isinstance(v, datetime) else v
                for k, v in asdict(self).items()}


@dataclass
class _Worker:
    name: str
    run: Run
    state: WorkerState
    thread: threading.Thread | None = None
    crashes: int = 0  # in a row, since the last completed pass
    restart_at: datetime | None = None


class Supervisor:
    """Runs background workers in threads and restarts them with back-off after a crash.

    ``clock`` tells the moments shown and when a restart is due; ``check`` (called by
    the supervisor's own thread every ``poll`` seconds) starts what is due.
    """

    def __init__(self, *, state_file: str | Path | None = None, restart_seconds: float = 1.0,
                 restart_max_seconds: float = 300.0, clock: Clock | None = None,
                 poll: float = 0.1) -> None:
        self.state_file = Path(state_file) if state_file else None
        self.restart_seconds = restart_seconds
        self.restart_max_seconds = restart_max_seconds
        self.clock = clock or SystemClock()
        self.poll = poll
        self.stop = threading.Event()
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, name: str, run: Run) -> None:
        """Supervise ``run`` under ``name`` (started by `start` or the next `check`)."""
        with self._lock:
            self._workers[name] = _Worker(name, run, WorkerState())
            self._publish()

    # -- running ------------------------------------------------------------------------

    def start(self) -> None:
        """Start every worker now, then keep checking them in a thread of our own."""
        self.check()
        self._thread = threading.Thread(target=self._watch, name="closer-supervisor",
                                        daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Ask every worker to stop, wait for them (up to ``timeout`` each), mark them
        stopped."""
        self.stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for worker in list(self._workers.values()):
            if worker.thread is not None:
                worker.thread.join(timeout)
        with self._lock:
            for worker in self._workers.values():
                worker.state.state = "stopped"
            self._publish()

    def _watch(self) -> None:
        while not self.stop.wait(self.poll):
            self.check()

    def check(self) -> None:
        """Start each worker that has no thread yet or whose restart is due."""
        now = self.clock.now()
        with self._lock:
            for worker in self._workers.values():
                # A thread marks itself restarting as its last act (then only logs).
                if self.stop.is_set() or (worker.thread is not None
                                          and worker.state.state != "restarting"):
                    continue
                if worker.restart_at is not None and now < worker.restart_at:
                    continue
                if worker.thread is not None:
                    worker.state.restarts += 1
                    log.info("worker restarting", worker=worker.name,
                             restarts=worker.state.restarts)
                worker.state.state, worker.state.started_at = "running", now
                worker.restart_at = None
                worker.thread = threading.Thread(target=self._run, args=(worker,),
                                                 name=f"closer-{worker.name}", daemon=True)
                worker.thread.start()
            self._publish()

    def _run(self, worker: _Worker) -> None:
        error: BaseException | None = None
        try:
            worker.run(self.stop, lambda: self._beat(worker))
        except BaseException as failure:  # noqa: BLE001 - recorded and restarted, never lost
            error = failure
        if self.stop.is_set() and error is None:
            return
        now = self.clock.now()
        reason = (f"{type(error).__name__}: {error}" if error is not None
                  else "the worker stopped on its own")
        with self._lock:
            worker.crashes += 1
            delay = min(self.restart_max_seconds,
                        self.restart_seconds * 2 ** (worker.crashes - 1))
            worker.restart_at = now + timedelta(seconds=delay)
            state = worker.state
            state.state, state.last_error, state.last_error_at = "restarting", reason, now
            state.down_since = state.down_since or now
            self._publish()
        log.error("worker crashed", worker=worker.name, error=reason,
                  restart_in_seconds=delay, exc_info=error)

    def _beat(self, worker: _Worker) -> None:
        now = self.clock.now()
        with self._lock:
            if worker.state.down_since is not None:
                log.info("worker recovered", worker=worker.name,
                         down_since=worker.state.down_since.isoformat())
            worker.state.last_success_at, worker.state.down_since = now, None
            worker.crashes = 0
            self._publish()

    # -- state ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every worker's state as JSON-ready data, by name."""
        with self._lock:
            return {name: w.state.as_json() for name, w in self._workers.items()}

    def _publish(self) -> None:
        if self.state_file is None:
            return
        data = {"pid": os.getpid(),
                "workers": {n: w.state.as_json() for n, w in self._workers.items()}}
        try:
            handle, temporary = tempfile.mkstemp(dir=self.state_file.parent,
                                                 prefix=f".{self.state_file.name}.")
            with os.fdopen(handle, "w") as stream:
                json.dump(data, stream)
            os.replace(temporary, self.state_file)  # readers never see half a file
        except OSError as error:  # /healthz goes stale; the workers themselves go on
            log.warning("worker state not written", path=str(self.state_file),
                        error=f"{type(error).__name__}: {error}")


def default_state_file() -> Path:
    """The state file of this `closer serve` process, in the temporary folder."""
    return Path(tempfile.gettempdir()) / f"closer-serve-{os.getpid()}-workers.json"


def read_state(path: str | Path | None) -> dict[str, dict[str, Any]]:
    """The workers' states published at ``path`` (none when there is no file)."""
    if not path:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return {}
    return dict(data.get("workers", {}))


def down(workers: dict[str, dict[str, Any]], now: datetime,
         threshold_seconds: float) -> list[str]:
    """The workers down for longer than ``threshold_seconds`` at ``now``."""
    limit = now - timedelta(seconds=threshold_seconds)
    return [name for name, state in workers.items()
            if state.get("down_since") and datetime.fromisoformat(state["down_since"]) <= limit]
