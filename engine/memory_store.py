"""Candidacies in memory: eventsourcing's in-memory (POPO) process recorder, extended
with Closer's current rows as Python structures, for tests that need no database.

It answers every query `engine.store`'s SQL recorders answer, with the same ordering,
filters, limits and pagination, and takes the same extra keyword arguments of a save
(``idempotency``, ``rows``, ``position``, ``followed_past``, and each added `ExtraTable`'s,
held by its ``hold``), written with the events under the library's own lock: every check
runs before anything is written, so a refused write (a duplicate version, a reused key,
a stale position) writes nothing at all.  Values go in and come out as the SQL stores
return them (moments in UTC, summaries through JSON), so a test cannot pass here and fail
there on a type.

``memory://NAME`` names a store shared by every application object of the process
that opens the same name (as two objects share one SQLite file) for as long as one
of them holds it; ``memory://`` alone is a store of the opening object's own.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    IntegrityError,
    Notification,
    ProcessRecorder,
    ProgrammingError,
    StoredEvent,
    Tracking,
)
from eventsourcing.popo import POPOAggregateRecorder, POPOFactory, POPOProcessRecorder
from eventsourcing.utils import resolve_topic

from engine.store import CandidacyRow, IdempotencyRecord
from engine.tables import SAVE_KEYWORDS, ExtraTable, as_stored_json, in_utc, stored_moment

MEMORY_STORE = "MEMORY_STORE"
"""The environment variable naming the in-memory store to open (see `eventsourcing_env`)."""


def _fresh(row: Any) -> Any:
    # A summary of its own for each read, as each SQL read decodes one: no caller can
    # change what is stored.
    return replace(row, summary=as_stored_json(row.summary))


def _texts(row: CandidacyRow) -> tuple[str | None, ...]:
    # What a text search reads; a column SQL holds as NULL matches no LIKE.
    return (row.candidate, row.company, row.role)


def _like(text: str) -> re.Pattern[str]:
    """SQL's ``LIKE '%text%'`` on lowered text: ``%`` and ``_`` are wildcards there too."""
    parts = ("." if c == "_" else ".*" if c == "%" else re.escape(c) for c in text.lower())
    return re.compile(".*" + "".join(parts) + ".*", re.DOTALL)


class CloserMemoryTable(POPOAggregateRecorder):
    """Another table of the same in-memory store (the snapshots'), under its lock."""

    def __init__(self, name: str, lock: Any) -> None:
        super().__init__()
        self.events_table_name = name
        # One store, one lock, as one database: a read of both tables sees one state.
        # (eventsourcing 9.5.6: `POPORecorder.__init__` makes each recorder its own.)
        self._database_lock = lock


class CloserMemoryRecorder(POPOProcessRecorder):
    """eventsourcing's in-memory process recorder plus Closer's current rows."""

    events_table_name = "closer_events"

    def __init__(self) -> None:
        super().__init__()
        self._idempotency: dict[tuple[str, str], IdempotencyRecord] = {}
        self._rows: dict[str, CandidacyRow] = {}
        self.extra_tables: dict[str, ExtraTable] = {}
        self._held: dict[str, dict[Any, Any]] = {}
        self._tables: dict[str, POPOAggregateRecorder] = {self.events_table_name: self}

    def table(self, name: str) -> POPOAggregateRecorder:
        """The store's table ``name`` (made empty on first use), as the factory's
        `aggregate_recorder` for that purpose."""
        with self._database_lock:
            if name not in self._tables:
                self._tables[name] = CloserMemoryTable(name, self._database_lock)
            return self._tables[name]

    def add_table(self, table: ExtraTable) -> None:
        """Hold ``table``'s rows with the saves that carry its keyword (see
        `engine.tables.ExtraTable`; adding it again does nothing)."""
        with self._database_lock:
            if table.keyword not in self.extra_tables:
                self._held[table.keyword] = {}
                self.extra_tables[table.keyword] = table

    def held(self, table: ExtraTable) -> list[Any]:
        """``table``'s rows as held now (its dict's values), for its owner's queries."""
        with self._database_lock:
            return list(self._held.get(table.keyword, {}).values())

    # -- writes: the events, then the rows, in one critical section -----------------------
    # eventsourcing 9.5.6: `POPOAggregateRecorder._insert_events` runs these two hooks under
    # the lock, every check before any write (`POPOProcessRecorder` extends them so for
    # ``tracking``); `tests/test_memory_store.py` fails if they stop being called so.

    def _assert_uniqueness(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        super()._assert_uniqueness(stored_events, **kwargs)
        record: IdempotencyRecord | None = kwargs.get("idempotency")
        if record is not None and (record.workspace, record.key) in self._idempotency:
            raise IntegrityError(f"idempotency key already recorded: {record.key!r}")
        self._positions(stored_events, kwargs)  # a stale position is refused
        unknown = kwargs.keys() - SAVE_KEYWORDS - self.extra_tables.keys()
        if unknown:
            # Rows nobody would hold must not vanish: the whole save is refused.
            raise ProgrammingError(f"no table takes the save's {sorted(unknown)[0]!r} rows: "
                                   "add its ExtraTable to the recorder first (add_table)")

    def _positions(self, stored_events: Sequence[StoredEvent],
                   kwargs: dict[str, Any]) -> list[Tracking]:
        """The followers' positions a write records, in the SQL stores' order (``position``,
        then ``followed_past`` past the new events' ids, known here before they are
        written), each checked against the one before it: refused as SQL refuses it."""
        positions: list[Tracking] = []
        position: Tracking | None = kwargs.get("position")
        if position is not None:
            positions.append(position)
        if stored_events:
            last = len(self._stored_events) + len(stored_events)  # the ids `_update_table` gives
            positions += [Tracking(name, last) for name in kwargs.get("followed_past") or ()]
        held: dict[str, int | None] = {}
        for tracking in positions:
            name = tracking.application_name
            current = held[name] if name in held else self._max_tracking_ids[name]
            if current is not None and current >= tracking.notification_id:
                raise IntegrityError(f"Tracking notification ID {tracking.notification_id} "
                                     f"not greater than current max tracking ID {current}")
            held[name] = tracking.notification_id
        return positions

    def _update_table(self, stored_events: Sequence[StoredEvent],
                      **kwargs: Any) -> Sequence[int] | None:
        # Added tables' rows first, on copies: one whose `hold` fails leaves nothing written.
        staged = {}
        for keyword in kwargs.keys() - SAVE_KEYWORDS:
            if kwargs[keyword]:
                staged[keyword] = dict(self._held[keyword])
                self.extra_tables[keyword].hold(staged[keyword], kwargs[keyword])
        positions = self._positions(stored_events, kwargs)  # before the events change the ids
        notification_ids = super()._update_table(stored_events, **kwargs)
        for tracking in positions:
            self._insert_tracking(tracking)
        record: IdempotencyRecord | None = kwargs.get("idempotency")
        if record is not None:
            self._idempotency[(record.workspace, record.key)] = replace(
                record, response=as_stored_json(record.response),
                created_at=record.created_at.astimezone(UTC))
        for row in kwargs.get("rows") or ():
            held = self._rows.get(row.id)
            # A row never goes back to an older version (see engine.store).
            if held is None or held.version <= row.version:
                self._rows[row.id] = replace(row, updated_at=in_utc(row.updated_at),
                                             due_at=in_utc(row.due_at),
                                             summary=as_stored_json(row.summary))
        self._held.update(staged)
        return notification_ids

    # -- the queries of engine.store's `_Queries` ------------------------------------------

    def find_idempotency(self, workspace: str, key: str) -> IdempotencyRecord | None:
        with self._database_lock:
            record = self._idempotency.get((workspace, key))
        return None if record is None else replace(record, response=as_stored_json(record.response))

    def find_candidacy_row(self, candidacy_id: str) -> CandidacyRow | None:
        with self._database_lock:
            row = self._rows.get(candidacy_id)
        return None if row is None else _fresh(row)

    def select_candidacy_rows(
        self, workspace: str, *, stage: str | None = None, text: str | None = None,
        after: str | None = None, limit: int = 50,
    ) -> list[CandidacyRow]:
        """A workspace's rows in id order, filtered, from just after ``after``."""
        pattern = _like(text) if text else None
        with self._database_lock:
            rows = [r for r in self._rows.values() if r.workspace == workspace
                    and (not stage or r.stage == stage) and (not after or r.id > after)
                    and (pattern is None or any(
                        v is not None and pattern.fullmatch(v.lower())
                        for v in _texts(r)))]
        return [_fresh(r) for r in sorted(rows, key=lambda r: r.id)[:limit]]

    def select_due(self, before: datetime, *, after: tuple[str, str] = ("", ""),
                   limit: int = 1000) -> list[tuple[str, str]]:
        """``(due_at, id)`` of candidacies with something due by ``before``, in that order,
        from just after the ``after`` cursor."""
        bound = stored_moment(before)
        assert bound is not None
        with self._database_lock:
            keys = [(stored_moment(r.due_at), r.id) for r in self._rows.values()
                    if r.due_at is not None]
        due = sorted(k for k in keys if k[0] <= bound and k > after)  # type: ignore[operator]
        return due[:limit]  # type: ignore[return-value]

    def select_latest_records(self, table: str,
                              ids: Sequence[UUID]) -> list[tuple[UUID, int, str, bytes]]:
        """``(id, version, topic, state)`` of the highest-version record of each of
        ``ids`` in ``table`` (their latest snapshots)."""
        records = self._tables[table]
        with self._database_lock:
            latest = [records.select_events(uid, desc=True, limit=1) for uid in dict.fromkeys(ids)]
        return [(uid, s[0].originator_version, s[0].topic, s[0].state)
                for uid, s in zip(dict.fromkeys(ids), latest, strict=True) if s]

    def select_records_after(self, table: str,
                             after: dict[UUID, int]) -> list[tuple[UUID, int, str, bytes]]:
        """``(id, version, topic, state)`` of each id's records in ``table`` after its
        given version, in id order, then version order per id."""
        records = self._tables[table]
        with self._database_lock:
            return [(uid, s.originator_version, s.topic, s.state) for uid in sorted(after)
                    for s in records.select_events(uid, gt=after[uid])]

    def select_for_load(self, snapshots: str | None, events: str,
                        uid: UUID) -> tuple[StoredEvent | None, list[StoredEvent]]:
        """One aggregate's latest snapshot (None without one) and its events after it, in
        version order, as one consistent view."""
        with self._database_lock:
            snapshot = None
            if snapshots is not None:
                latest = self._tables[snapshots].select_events(uid, desc=True, limit=1)
                snapshot = latest[0] if latest else None
            gt = snapshot.originator_version if snapshot is not None else None
            return snapshot, list(self._tables[events].select_events(uid, gt=gt))

    def select_workspace_events(self, workspace: str, after: int, limit: int,
                                scan: int) -> tuple[list[Notification], int, bool]:
        """Up to ``limit`` of one workspace's candidacy events after notification id
        ``after``, in log order, looking at most ``scan`` ids ahead; the events, the id
        to read after next time, and whether there may be more (see engine.store)."""
        with self._database_lock:
            top = self.max_notification_id()
            if top is None or top <= after:
                return [], after, False
            bound = min(after + scan, top)
            found = []
            for notification in self.select_notifications(after, bound - after, stop=bound,
                                                           inclusive_of_start=False):
                row = self._rows.get(str(notification.originator_id))
                if row is not None and row.workspace == workspace:
                    found.append(notification)
                    if len(found) == limit:
                        return found, found[-1].id, True
        return found, bound, bound < top

    def latest_recorded_at(self) -> datetime | None:
        """The latest moment a candidacy (or a row of an added table that keeps time) was
        last changed at (None in an empty store): the rows keep their aggregate's last
        event time."""
        with self._database_lock:
            found = [stored_moment(r.updated_at) for r in self._rows.values()]
            found += [stored_moment(t.latest_held(self._held[k]))
                      for k, t in self.extra_tables.items()]
        # The latest as the SQL stores find it: the greatest UTC text.
        latest = max((t for t in found if t is not None), default=None)
        return None if latest is None else datetime.fromisoformat(latest)

    def find_notification_id(self, uid: UUID, version: int) -> int | None:
        """The log position of ``uid``'s event at ``version`` (None: no such event)."""
        with self._database_lock:
            index = self._stored_events_index.get(str(uid), {})
            return index[version] + 1 if version in index else None  # ids count from 1

    def select_records_page(self, table: str, after: tuple[Any, int] | None,
                            limit: int) -> list[tuple[UUID, int, str, bytes, Any]]:
        """Up to ``limit`` records of ``table`` (e.g. the snapshots) in (id, version)
        order after the ``after`` cursor (the last row's stored id and version), as
        ``(id, version, topic, state, stored id)``; the stored id here is the UUID."""
        records = self._tables[table]
        page: list[tuple[UUID, int, str, bytes, Any]] = []
        with self._database_lock:
            index = records._stored_events_index  # eventsourcing 9.5.6: id -> version -> row
            for uid in sorted(UUID(key) for key, versions in index.items() if versions):
                if len(page) >= limit:
                    break
                if after is not None and uid < after[0]:
                    continue
                versions = index[str(uid)]
                for version in sorted(versions):
                    if after is not None and uid == after[0] and version <= after[1]:
                        continue
                    stored = records._stored_events[versions[version]]
                    page.append((uid, version, stored.topic, stored.state, uid))
                    if len(page) >= limit:
                        break
        return page

    def select_all_rows(self, *, after: str = "", limit: int = 1000) -> list[CandidacyRow]:
        """Every candidacy's row across workspaces, in id order (for floors and audits)."""
        with self._database_lock:
            rows = [r for r in self._rows.values() if r.id > after]
        return [_fresh(r) for r in sorted(rows, key=lambda r: r.id)[:limit]]


# The named stores of this process; each lives while an application object holds it.
_STORES: weakref.WeakValueDictionary[str, CloserMemoryRecorder] = weakref.WeakValueDictionary()
_STORES_LOCK = threading.Lock()


class CloserMemoryFactory(POPOFactory):
    """eventsourcing's in-memory factory, reading ``APPLICATION_RECORDER_TOPIC`` as the
    SQLite and PostgreSQL factories do (eventsourcing 9.5.6's POPO factory ignores it),
    and ``MEMORY_STORE`` to share one named store between application objects."""

    _opened: CloserMemoryRecorder | None = None

    def _store(self) -> CloserMemoryRecorder:
        if self._opened is not None:
            return self._opened
        topic = self.env.get(self.APPLICATION_RECORDER_TOPIC)
        recorder_class = resolve_topic(topic) if topic else CloserMemoryRecorder
        if not issubclass(recorder_class, CloserMemoryRecorder):
            raise TypeError(f"{topic} is not an in-memory Closer recorder")
        name = self.env.get(MEMORY_STORE) or ""
        with _STORES_LOCK:
            recorder = _STORES.get(name) if name else None
            if recorder is None:
                recorder = recorder_class()
                if name:
                    _STORES[name] = recorder
        self._opened = recorder
        return recorder

    def application_recorder(self) -> ApplicationRecorder:
        return self._store()

    def process_recorder(self) -> ProcessRecorder:
        return self._store()

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        return self._store().table(purpose)
