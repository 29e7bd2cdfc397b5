"""`closer doctor`: every stored record the application cannot read, found by reading all.

Each stored event (through the notification log) and each snapshot is decoded with the
application's own mapper (its transcoder, and any compressor or cipher configured), so
what the doctor finds is exactly what the application would fail on.  (What a follower
of the log passed over is its owner's record: `closer doctor` adds it.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from engine.errors import CorruptHistory

PAGE = 1000


@dataclass(frozen=True, slots=True)
class Undecodable:
    """One stored record that cannot be decoded, and why (one line)."""

    record: str  # "event" or "snapshot"
    originator_id: str
    version: int
    topic: str
    notification_id: int | None
    error: str


@dataclass
class Diagnosis:
    """What `diagnose` found."""

    events: int = 0
    snapshots: int = 0
    undecodable: list[Undecodable] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        """No record that cannot be decoded."""
        return not self.undecodable

    def as_dict(self) -> dict[str, Any]:
        """As JSON-ready data (`closer doctor --json`)."""
        return {"healthy": self.healthy, "events_scanned": self.events,
                "snapshots_scanned": self.snapshots,
                "undecodable": [asdict(u) for u in self.undecodable]}


def diagnose(app: Any, *, page: int = PAGE) -> Diagnosis:
    """Decode every stored event and snapshot of ``app`` (a `Candidacies`), page by page."""
    diagnosis = Diagnosis()
    decode = app.mapper.to_domain_event
    for notification in _notifications(app, page):
        diagnosis.events += 1
        try:
            decode(notification)
        except CorruptHistory as error:
            diagnosis.undecodable.append(Undecodable(
                "event", str(notification.originator_id), notification.originator_version,
                notification.topic, notification.id, error.reason))
    if app.snapshots is not None:
        table = app.snapshots.recorder.events_table_name
        for uid, version, topic, state in _records(app.recorder, table, page):
            diagnosis.snapshots += 1
            try:
                decode(StoredEvent(uid, version, topic, state)).mutate(None)
            except CorruptHistory as error:
                diagnosis.undecodable.append(Undecodable(
                    "snapshot", str(uid), version, topic, None, error.reason))
            except (AttributeError, KeyError, TypeError, ValueError) as error:
                # Decoded, but the state does not make an aggregate.
                diagnosis.undecodable.append(Undecodable(
                    "snapshot", str(uid), version, topic, None,
                    f"{type(error).__name__}: {error}"[:300]))
    return diagnosis


def _notifications(app: Any, page: int) -> Iterator[Any]:
    start = 0
    while True:
        notifications = app.recorder.select_notifications(start=start, limit=page,
                                                          inclusive_of_start=False)
        yield from notifications
        if len(notifications) < page:
            return
        start = notifications[-1].id


def _records(recorder: Any, table: str, page: int) -> Iterator[tuple[UUID, int, str, bytes]]:
    after = None
    while True:
        rows = recorder.select_records_page(table, after, page)
        for uid, version, topic, state, _ in rows:
            yield uid, version, topic, state
        if len(rows) < page:
            return
        after = (rows[-1][4], rows[-1][1])
