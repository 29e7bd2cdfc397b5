"""The one source of time.

The domain never reads the wall clock: the application is handed a clock, so
live runs, tests and replays decide time the same way.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current moment as an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, for live runs."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told to: for tests, `tick --now` and replays."""

    def __init__(self, at: datetime) -> None:
        self._lock = threading.Lock()
        self._at = as_utc(at)

    def now(self) -> datetime:
        with self._lock:
            return self._at

    def set(self, at: datetime) -> None:
        with self._lock:
            self._at = as_utc(at)

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._at += delta
            return self._at


def as_utc(moment: datetime) -> datetime:
    """Return ``moment`` in UTC, refusing naive datetimes (their zone would be a guess)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no time zone offset")
    return moment.astimezone(UTC)
