"""The audit's tables, written with the events: each stored event's chain hash (issue 17).

``closer_event_hashes`` holds, for every stored event, the chain hash of its predecessor
in its aggregate and its own (`closer_verify.records.event_hash`), written in the *same
transaction* as the event: `EventChain.insert_events` computes them before the write and
hands them down with the other rows of a save (``event_hashes=``), so SQLite, PostgreSQL
(its one-script write and the library's) and the in-memory store
all write them where they write the events.  ``closer_audit_checkpoints`` holds the
signed tree heads `engine.audit.checkpoint` records, with the frontier of the tree at
each, so a later verification can start there.

A predecessor's hash is read before the write (a committed event's hash never changes,
so the read needs no lock): from the tip this recorder last wrote for that aggregate,
or with one indexed query.  An aggregate with no hash at all (events stored before the
audit existed) has its earlier events hashed in the same write: the chain is a function
of what is stored, so hashing again gives the very hashes a first write would have.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent
from psycopg.sql import SQL

from closer_verify.records import GENESIS, event_hash
from engine.memory_store import CloserMemoryRecorder
from engine.store import CloserPostgresRecorder, CloserSQLiteRecorder
from engine.tables import ExtraTable, Tx

TIPS = 10_000
"""How many aggregates' last chain hashes a recorder remembers (a command on one of them
skips reading its predecessor's hash: ~60 µs on SQLite, a round trip on PostgreSQL)."""


@dataclass(frozen=True, slots=True)
class EventHash:
    """One stored event's place in its aggregate's chain."""

    originator_id: UUID
    version: int
    previous: bytes
    hash: bytes


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed tree head as recorded, with the tree's frontier at that size."""

    seq: int
    size: int
    root: bytes
    timestamp_ms: int
    last_notification_id: int
    signature: bytes
    frontier: list[bytes]


_HASH_COLUMNS = "originator_id, originator_version, prev_hash, event_hash"
_CHECKPOINT_COLUMNS = ("seq, tree_size, root, timestamp_ms, last_notification_id, signature, "
                       "frontier")
INSERT_HASHES = (f"INSERT INTO closer_event_hashes ({_HASH_COLUMNS}) VALUES (?, ?, ?, ?)")


def _tables(id_type: str, blob: str, clustered: str = "") -> list[str]:
    return [
        f"CREATE TABLE IF NOT EXISTS closer_event_hashes (originator_id {id_type} NOT NULL, "
        f"originator_version INTEGER NOT NULL, prev_hash {blob} NOT NULL, "
        f"event_hash {blob} NOT NULL, PRIMARY KEY (originator_id, originator_version))"
        f"{clustered}",
        f"CREATE TABLE IF NOT EXISTS closer_audit_checkpoints (seq BIGINT PRIMARY KEY, "
        f"tree_size BIGINT NOT NULL, root {blob} NOT NULL, timestamp_ms BIGINT NOT NULL, "
        f"last_notification_id BIGINT NOT NULL, signature {blob} NOT NULL, "
        f"frontier {blob} NOT NULL)",
    ]


# WITHOUT ROWID: the hashes live in the primary key's own B-tree, so verify's join reads
# one tree per event instead of an index and then the table (audit_bench: the walk's
# fetch cost a third less).
SQLITE_TABLES = _tables("TEXT", "BLOB", " WITHOUT ROWID")
POSTGRES_TABLES = _tables("UUID", "BYTEA")


class EventHashes(ExtraTable):
    """``closer_event_hashes`` as an `engine.store.ExtraTable` (the save keyword
    ``event_hashes``), with the checkpoints' table created beside it: written in the
    events' transaction on SQLite and PostgreSQL.  One per dialect, as the id's and the
    hashes' column types differ."""

    keyword = "event_hashes"

    def __init__(self, statements: Sequence[str], id_param: Any) -> None:
        self.statements = tuple(statements)
        self._id_param = id_param

    def write(self, tx: Tx, rows: Sequence[EventHash]) -> None:
        tx.executemany(INSERT_HASHES, [(self._id_param(r.originator_id), r.version,
                                        r.previous, r.hash) for r in rows])

    def hold(self, held: dict[Any, Any], rows: Sequence[EventHash]) -> None:
        raise NotImplementedError("the in-memory store holds the hashes itself "
                                  "(AuditedMemoryRecorder)")


class EventChain:
    """Mixed into the application recorders: chain hashes for every write, and the
    audit's reads.  The SQL recorders get the reads from `ChainQueries`; the in-memory
    one answers them from its own structures."""

    chain_events = True
    """False: write no hashes (the benchmark's baseline only)."""

    _tips: OrderedDict[UUID, tuple[int, bytes]] | None = None
    _tips_lock = threading.Lock()

    chains_in_writer = False
    """True (the SQL recorders): the store's writer chains each save of a batch in turn
    (`_prepare`, `_written`, `_committed`), so a save follows the tips the batch's
    earlier saves wrote, and only committed tips are remembered."""

    def insert_events(self, stored_events: Sequence[StoredEvent],
                      **kwargs: Any) -> Sequence[int] | None:
        if self.chains_in_writer:
            return super().insert_events(stored_events, **kwargs)  # type: ignore[misc, no-any-return]
        hashes = self._chained(stored_events, kwargs)
        ids = super().insert_events(stored_events, **kwargs)  # type: ignore[misc]
        self._remember(hashes)
        return ids  # type: ignore[no-any-return]

    def _prepare(self, stored_events: Sequence[StoredEvent], kwargs: dict[str, Any],
                 pending: dict[Any, Any]) -> Any:
        return self._chained(stored_events, kwargs, pending)

    def _written(self, prepared: Any, pending: dict[Any, Any]) -> None:
        for row in prepared:
            pending[row.originator_id] = (row.version, row.hash)

    def _committed(self, prepared: Any) -> None:
        self._remember(prepared)

    def _chained(self, stored_events: Sequence[StoredEvent], kwargs: dict[str, Any],
                 pending: dict[Any, Any] | None = None) -> list[EventHash]:
        """The chain hashes of ``stored_events`` (and of any unhashed earlier events of
        their aggregates), put in ``kwargs`` as ``event_hashes``; ``pending``: the tips
        the batch's earlier saves wrote, not yet committed (they come first)."""
        if not self.chain_events or not stored_events:
            return []
        rows: list[EventHash] = []
        tips: dict[UUID, tuple[int, bytes]] = {}
        firsts: dict[UUID, int] = {}
        for stored in stored_events:
            firsts.setdefault(UUID(str(stored.originator_id)), stored.originator_version)
        with self._tips_lock:
            remembered: dict[UUID, tuple[int, bytes]] = self._tips or {}
            for uid, version in firsts.items():
                tip = (pending or {}).get(uid) or remembered.get(uid)
                if version == 1:
                    tips[uid] = (0, GENESIS)
                elif tip is not None and tip[0] == version - 1:
                    tips[uid] = tip
        unknown = {uid: version - 1 for uid, version in firsts.items() if uid not in tips}
        if unknown:
            # A page of the scheduler's candidacies last written by another process: their
            # predecessors in one query, not one round trip each.
            tips.update(self.select_event_hashes(unknown))
        for stored in stored_events:
            uid = UUID(str(stored.originator_id))
            version = stored.originator_version
            tip = tips.get(uid)
            if tip is None or tip[0] != version - 1:
                tip = self._tip_before(uid, version, rows)
            chained = event_hash(tip[1], uid, version, stored.topic, stored.state)
            rows.append(EventHash(uid, version, tip[1], chained))
            tips[uid] = (version, chained)
        kwargs["event_hashes"] = rows
        return rows

    def _tip_before(self, uid: UUID, version: int, rows: list[EventHash]) -> tuple[int, bytes]:
        """``(version, hash)`` of the event ``uid``'s event at ``version`` follows."""
        if version == 1:
            return 0, GENESIS
        with self._tips_lock:
            remembered = self._tips.get(uid) if self._tips is not None else None
        if remembered is not None and remembered[0] == version - 1:
            return remembered
        found = self.select_chain_tip(uid, version)
        if found is not None:
            return found  # (below version - 1 only if a hash row was removed: verify says)
        # Stored before the audit: hash its earlier events now, in this write.
        tip = (0, GENESIS)
        for earlier in self._events_before(uid, version):
            chained = event_hash(tip[1], uid, earlier.originator_version, earlier.topic,
                                 earlier.state)
            rows.append(EventHash(uid, earlier.originator_version, tip[1], chained))
            tip = (earlier.originator_version, chained)
        return tip

    def _events_before(self, uid: UUID, version: int) -> list[StoredEvent]:
        """``uid``'s stored events below ``version``, in order."""
        return list(self.select_events(uid, lte=version - 1))  # type: ignore[attr-defined]

    def _remember(self, rows: list[EventHash]) -> None:
        if not rows:
            return
        with self._tips_lock:
            if self._tips is None:
                self._tips = OrderedDict()
            for row in rows:
                self._tips[row.originator_id] = (row.version, row.hash)
                self._tips.move_to_end(row.originator_id)
            while len(self._tips) > TIPS:
                self._tips.popitem(last=False)

    def forget_tips(self) -> None:
        """Read every predecessor's hash from the store again (tests that rewrite it)."""
        with self._tips_lock:
            self._tips = None

    def select_chain_tip(self, uid: UUID, version: int) -> tuple[int, bytes] | None:
        """``(version, hash)`` of ``uid``'s highest hashed event below ``version``."""
        raise NotImplementedError

    def select_event_hashes(self, wanted: dict[UUID, int]) -> dict[UUID, tuple[int, bytes]]:
        """``(version, hash)`` recorded for each of ``wanted``'s (id, version), those found."""
        raise NotImplementedError

    def select_chain_checked(self, uid: UUID) -> tuple[list[Any], list[int]]:
        """`select_chain` and the versions of `select_orphan_hashes`, for one aggregate
        (what a command's chain check reads)."""
        return (self.select_chain(uid),  # type: ignore[attr-defined]
                [v for _, v in self.select_orphan_hashes(uid)])  # type: ignore[attr-defined]

    def select_chains_checked(self, uids: Sequence[UUID]
                              ) -> dict[UUID, tuple[list[Any], list[int]]]:
        """`select_chain_checked` for each of ``uids`` (every one answered)."""
        return {uid: self.select_chain_checked(uid) for uid in uids}


class ChainQueries(EventChain):
    """The audit's reads on SQLite and PostgreSQL (with `engine.store._Queries`), whose
    writer chains each save."""

    chains_in_writer = True

    def select_chain_tip(self, uid: UUID, version: int) -> tuple[int, bytes] | None:
        rows = self._select(  # type: ignore[attr-defined]
            "SELECT originator_version, event_hash FROM closer_event_hashes WHERE "
            "originator_id=? AND originator_version<? ORDER BY originator_version DESC "
            "LIMIT 1", (self._id_param(uid), version))  # type: ignore[attr-defined]
        return (int(rows[0][0]), bytes(rows[0][1])) if rows else None

    def _events_before(self, uid: UUID, version: int) -> list[StoredEvent]:
        # Through `_select`, as the writer's other reads: inside a batch, its transaction.
        events, _ = self._notification_table()  # type: ignore[attr-defined]
        rows = self._select(  # type: ignore[attr-defined]
            f"SELECT originator_version, topic, state FROM {events} WHERE originator_id=? "
            "AND originator_version<? ORDER BY originator_version",
            (self._id_param(uid), version))  # type: ignore[attr-defined]
        return [StoredEvent(uid, int(v), topic, bytes(state)) for v, topic, state in rows]

    def select_event_hashes(self, wanted: dict[UUID, int]) -> dict[UUID, tuple[int, bytes]]:
        keys = {self._id_param(uid): uid for uid in wanted}  # type: ignore[attr-defined]
        params: list[Any] = []
        for key, version in zip(keys, wanted.values(), strict=True):
            params += [key, version]
        rows = self._select(  # type: ignore[attr-defined]
            f"WITH wanted (id, version) AS (VALUES {', '.join(['(?, ?)'] * len(keys))}) "
            "SELECT h.originator_id, h.originator_version, h.event_hash FROM wanted JOIN "
            "closer_event_hashes h ON h.originator_id = wanted.id AND "
            "h.originator_version = wanted.version", params)
        return {keys[r[0]]: (int(r[1]), bytes(r[2])) for r in rows}

    def select_audit_log(self, after: int, limit: int) -> list[Any]:
        """Up to ``limit`` events after notification id ``after``, in log order, each
        with its recorded hashes (None, None: no hash recorded): ``(id, stored originator
        id, version, topic, state, previous, hash)``, the rows as the driver returns them
        (`audit_id_bytes` reads the originator id)."""
        events, nid = self._notification_table()  # type: ignore[attr-defined]
        return self._select(  # type: ignore[attr-defined, no-any-return]
            f"SELECT e.{nid}, e.originator_id, e.originator_version, e.topic, e.state, "
            f"h.prev_hash, h.event_hash FROM {events} e LEFT JOIN closer_event_hashes h "
            "ON h.originator_id = e.originator_id AND h.originator_version = "
            f"e.originator_version WHERE e.{nid} > ? ORDER BY e.{nid} LIMIT ?", (after, limit))

    @staticmethod
    def audit_id_bytes(stored: Any) -> bytes:
        """The 16 bytes of an originator id as `select_audit_log` returns it (SQLite keeps
        32 hex digits, PostgreSQL a UUID)."""
        return stored.bytes if isinstance(stored, UUID) else bytes.fromhex(stored)

    def select_chain(self, uid: UUID) -> list[tuple[int, int, str, bytes, bytes | None,
                                                    bytes | None]]:
        """One aggregate's events in version order with their recorded hashes, as
        ``(id, version, topic, state, previous, hash)``."""
        events, nid = self._notification_table()  # type: ignore[attr-defined]
        rows = self._select(  # type: ignore[attr-defined]
            f"SELECT e.{nid}, e.originator_version, e.topic, e.state, h.prev_hash, "
            f"h.event_hash FROM {events} e LEFT JOIN closer_event_hashes h ON "
            "h.originator_id = e.originator_id AND h.originator_version = e.originator_version "
            "WHERE e.originator_id = ? ORDER BY e.originator_version",
            (self._id_param(uid),))  # type: ignore[attr-defined]
        return [(r[0], r[1], r[2], bytes(r[3]), None if r[4] is None else bytes(r[4]),
                 None if r[5] is None else bytes(r[5])) for r in rows]

    def select_chain_checked(self, uid: UUID) -> tuple[list[Any], list[int]]:
        # One query, not two: the check runs before every API command; with two, the
        # command path ran at 0.70x by wall on PostgreSQL in a smoke run, with one at
        # 0.81-1.02x (docs/performance.md, "Audit (issue 17)").
        events, nid = self._notification_table()  # type: ignore[attr-defined]
        key = self._id_param(uid)  # type: ignore[attr-defined]
        rows = self._select(  # type: ignore[attr-defined]
            f"SELECT e.{nid}, e.originator_version, e.topic, e.state, h.prev_hash, "
            f"h.event_hash FROM {events} e LEFT JOIN closer_event_hashes h ON "
            "h.originator_id = e.originator_id AND h.originator_version = e.originator_version "
            "WHERE e.originator_id = ? UNION ALL SELECT NULL, h.originator_version, NULL, "
            "NULL, NULL, NULL FROM closer_event_hashes h WHERE h.originator_id = ? AND NOT "
            f"EXISTS (SELECT 1 FROM {events} e WHERE e.originator_id = h.originator_id AND "
            "e.originator_version = h.originator_version) ORDER BY 2", (key, key))
        chain = [(r[0], r[1], r[2], bytes(r[3]), None if r[4] is None else bytes(r[4]),
                  None if r[5] is None else bytes(r[5])) for r in rows if r[0] is not None]
        return chain, [int(r[1]) for r in rows if r[0] is None]

    def select_chains_checked(self, uids: Sequence[UUID]
                              ) -> dict[UUID, tuple[list[Any], list[int]]]:
        # One query a page of the tick's due candidacies, not one each: the tick's CPU
        # 1.10-1.17x less on SQLite, the check 0.70 s -> 0.16 s wall on PostgreSQL at 706
        # due (docs/performance.md, items 2 and 3).
        events, nid = self._notification_table()  # type: ignore[attr-defined]
        keys = {self._id_param(uid): uid for uid in uids}  # type: ignore[attr-defined]
        found: dict[UUID, tuple[list[Any], list[int]]] = {uid: ([], []) for uid in uids}
        if not keys:
            return found
        rows = self._select(  # type: ignore[attr-defined]
            f"WITH wanted (id) AS (VALUES {', '.join(['(?)'] * len(keys))}) "
            f"SELECT e.originator_id, e.{nid}, e.originator_version, e.topic, e.state, "
            f"h.prev_hash, h.event_hash FROM wanted JOIN {events} e ON e.originator_id = "
            "wanted.id LEFT JOIN closer_event_hashes h ON h.originator_id = e.originator_id "
            "AND h.originator_version = e.originator_version UNION ALL SELECT "
            "h.originator_id, NULL, h.originator_version, NULL, NULL, NULL, NULL FROM wanted "
            "JOIN closer_event_hashes h ON h.originator_id = wanted.id WHERE NOT EXISTS "
            f"(SELECT 1 FROM {events} e WHERE e.originator_id = h.originator_id AND "
            "e.originator_version = h.originator_version) ORDER BY 1, 3", list(keys))
        for r in rows:
            chain, orphans = found[keys[r[0]]]
            if r[1] is None:
                orphans.append(int(r[2]))
            else:
                chain.append((r[1], r[2], r[3], bytes(r[4]),
                              None if r[5] is None else bytes(r[5]),
                              None if r[6] is None else bytes(r[6])))
        return found

    def select_orphan_hashes(self, uid: UUID | None = None,
                             limit: int = 1000) -> list[tuple[UUID, int]]:
        """``(originator id, version)`` of recorded hashes whose event is not stored."""
        events, _ = self._notification_table()  # type: ignore[attr-defined]
        sql = (f"SELECT h.originator_id, h.originator_version FROM closer_event_hashes h "
               f"WHERE NOT EXISTS (SELECT 1 FROM {events} e WHERE e.originator_id = "
               "h.originator_id AND e.originator_version = h.originator_version)")
        params: list[Any] = []
        if uid is not None:
            sql += " AND h.originator_id = ?"
            params.append(self._id_param(uid))  # type: ignore[attr-defined]
        rows = self._select(sql + " ORDER BY h.originator_id, h.originator_version LIMIT ?",  # type: ignore[attr-defined]
                            [*params, limit])
        return [(_uuid(r[0]), int(r[1])) for r in rows]

    def count_event_hashes(self) -> int:
        return int(self._select("SELECT COUNT(*) FROM closer_event_hashes", ())[0][0])  # type: ignore[attr-defined]

    def insert_event_hashes(self, rows: Sequence[EventHash]) -> None:
        """Hashes of events stored before the audit (`engine.audit.seal`), in one
        transaction."""
        self._write_audit(INSERT_HASHES, [(self._id_param(r.originator_id), r.version,  # type: ignore[attr-defined]
                                           r.previous, r.hash) for r in rows])

    def insert_checkpoint(self, checkpoint: Checkpoint) -> None:
        self._write_audit(
            f"INSERT INTO closer_audit_checkpoints ({_CHECKPOINT_COLUMNS}) VALUES "
            "(?, ?, ?, ?, ?, ?, ?)",
            [(checkpoint.seq, checkpoint.size, checkpoint.root, checkpoint.timestamp_ms,
              checkpoint.last_notification_id, checkpoint.signature,
              b"".join(checkpoint.frontier))])

    def select_checkpoints(self) -> list[Checkpoint]:
        rows = self._select(f"SELECT {_CHECKPOINT_COLUMNS} FROM closer_audit_checkpoints "  # type: ignore[attr-defined]
                            "ORDER BY seq", ())
        return [Checkpoint(int(r[0]), int(r[1]), bytes(r[2]), int(r[3]), int(r[4]),
                           bytes(r[5]), _hashes(bytes(r[6]))) for r in rows]

    def _write_audit(self, sql: str, params: list[tuple[Any, ...]]) -> None:
        raise NotImplementedError


class AuditedSQLiteRecorder(ChainQueries, CloserSQLiteRecorder):
    """Closer's SQLite recorder, each write chained (the store's default)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_table(EventHashes(SQLITE_TABLES, self._id_param))

    def _write_audit(self, sql: str, params: list[tuple[Any, ...]]) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.executemany(self._q(sql), params)


class AuditedPostgresRecorder(ChainQueries, CloserPostgresRecorder):
    """Closer's PostgreSQL recorder, each write chained (the store's default)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_table(EventHashes(POSTGRES_TABLES, self._id_param))

    def _write_audit(self, sql: str, params: list[tuple[Any, ...]]) -> None:
        with (self.datastore.get_connection() as conn, conn.transaction(),
              conn.cursor() as curs):
            curs.executemany(SQL(self._q(sql)), params)


class AuditedMemoryRecorder(EventChain, CloserMemoryRecorder):
    """Closer's in-memory recorder, each write chained, the audit's reads answered from
    Python structures as the SQL ones answer them."""

    def __init__(self) -> None:
        super().__init__()
        self._event_hashes: dict[tuple[UUID, int], EventHash] = {}
        self._checkpoints: list[Checkpoint] = []

    # Not an added table here: `CloserMemoryRecorder` stages an added table's rows on a
    # copy of all it holds, which for one row per event made every save copy the whole
    # history.  The hashes are written after every check, under the same lock, instead.
    def _assert_uniqueness(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        kwargs.pop(EventHashes.keyword, None)
        super()._assert_uniqueness(stored_events, **kwargs)

    def _update_table(self, stored_events: Sequence[StoredEvent],
                      **kwargs: Any) -> Sequence[int] | None:
        rows = kwargs.pop(EventHashes.keyword, None) or ()
        ids = super()._update_table(stored_events, **kwargs)
        for row in rows:
            self._event_hashes[(row.originator_id, row.version)] = row
        return ids

    def select_chain_tip(self, uid: UUID, version: int) -> tuple[int, bytes] | None:
        with self._database_lock:
            below = [v for (u, v) in self._event_hashes if u == uid and v < version]
            if not below:
                return None
            row = self._event_hashes[(uid, max(below))]
        return row.version, row.hash

    def select_event_hashes(self, wanted: dict[UUID, int]) -> dict[UUID, tuple[int, bytes]]:
        with self._database_lock:
            found = {uid: self._event_hashes.get((uid, version))
                     for uid, version in wanted.items()}
        return {uid: (row.version, row.hash) for uid, row in found.items() if row is not None}

    def _hash_of(self, uid: UUID, version: int) -> tuple[bytes | None, bytes | None]:
        row = self._event_hashes.get((uid, version))
        return (None, None) if row is None else (row.previous, row.hash)

    @staticmethod
    def audit_id_bytes(stored: Any) -> bytes:
        return stored.bytes  # type: ignore[no-any-return]

    def select_audit_log(self, after: int, limit: int) -> list[Any]:
        with self._database_lock:
            found = []
            for n in self.select_notifications(after, limit, inclusive_of_start=False):
                uid = UUID(str(n.originator_id))
                found.append((n.id, uid, n.originator_version, n.topic, n.state,
                              *self._hash_of(uid, n.originator_version)))
            return found

    def select_chain(self, uid: UUID) -> list[tuple[int, int, str, bytes, bytes | None,
                                                    bytes | None]]:
        with self._database_lock:
            index = self._stored_events_index[str(uid)]
            return [(position + 1, version, self._stored_events[position].topic,
                     self._stored_events[position].state, *self._hash_of(uid, version))
                    for version, position in sorted(index.items())]

    def select_orphan_hashes(self, uid: UUID | None = None,
                             limit: int = 1000) -> list[tuple[UUID, int]]:
        with self._database_lock:
            found = sorted((u, v) for (u, v) in self._event_hashes
                           if (uid is None or u == uid)
                           and v not in self._stored_events_index[str(u)])
        return found[:limit]

    def count_event_hashes(self) -> int:
        with self._database_lock:
            return len(self._event_hashes)

    def insert_event_hashes(self, rows: Sequence[EventHash]) -> None:
        with self._database_lock:
            for row in rows:
                self._event_hashes[(row.originator_id, row.version)] = row

    def insert_checkpoint(self, checkpoint: Checkpoint) -> None:
        with self._database_lock:
            if any(c.seq == checkpoint.seq for c in self._checkpoints):
                raise IntegrityError(f"checkpoint {checkpoint.seq} already recorded")
            self._checkpoints.append(checkpoint)

    def select_checkpoints(self) -> list[Checkpoint]:
        with self._database_lock:
            return sorted(self._checkpoints, key=lambda c: c.seq)


def _hashes(blob: bytes) -> list[bytes]:
    return [blob[i:i + 32] for i in range(0, len(blob), 32)]


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))
