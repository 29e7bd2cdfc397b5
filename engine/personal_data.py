"""Personal data sealed with its candidate's own key, so erasure can destroy it (issue 17).

Each candidacy has a key of its own (AES-256-GCM, from `cryptography`), kept in
``closer_subject_keys`` and written in the same transaction as its first event.  The
application's mapper (`engine.codec.QuarantiningMapper`, given a `Keyring`) seals the
personal leaves of each event it stores, the string values on the paths `SEALED` names
for the event's topic (the candidate's name, email, phone and "why I fit", hesitation
texts and answers, the employer's reply notes, the next step, withdrawal and pause
reasons, and the corrections of the candidate's details), and opens them on load.  The
outbox's messages (`adapters.outbox` registers its paths) are keyed per message but
grouped under their candidacy, so one erasure destroys them all.

A sealed leaf is stored as ``{"_type_": "sealed", "_data_": "<base64 nonce+ciphertext>"}``
(the library's transcoding extension point, `SealedAsBase64`); the chain hashes cover
those stored bytes, so `audit verify` is untouched by an erasure.  `Erasure` rows
(``subject_keys=[Erasure(...)]`` on a save: `Candidacies.erase`) delete the
candidacy's keys, record it in ``closer_erasures`` and run the scrub statements other
layers registered
(`register_scrub`: the read models' and outbox's plaintext columns), all in the
erasure event's transaction.  Afterwards a sealed leaf reads ``"erased"``; a mapper
without a keyring (replay reading tables itself) reads every sealed leaf as
``"withheld"``.  `scrub_storage` then rewrites the database so no freed page or WAL
frame keeps an old copy (SQLite: VACUUM and a truncating checkpoint; PostgreSQL:
VACUUM FULL of the tables the erasure wrote; docs/audit.md says what PostgreSQL still
keeps, and what erasure does not reach).
"""

from __future__ import annotations

import base64
import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import Transcoding
from eventsourcing.sqlite import SQLiteDatastore

from engine.tables import ExtraTable, Tx, stored_moment

ERASED = "erased"
"""What a personal field reads once its candidacy's key is destroyed."""
WITHHELD = "withheld"
"""What a sealed field reads through a mapper that holds no keys (replay's own reads)."""
KEYS_CACHED = 10_000
"""How many subjects' ciphers a keyring keeps (a command or load on one of them skips
the key's query: 0.85x the unsealed path's commands per CPU-second with it, 0.59x
without, benchmarks/erasure_bench.py, docs/performance.md "Erasure")."""


class Sealed:
    """A personal value as it is stored: 12 bytes of nonce, then the AES-GCM ciphertext."""

    __slots__ = ("blob",)

    def __init__(self, blob: bytes) -> None:
        self.blob = blob


class Withheld(str):
    """A sealed value as decoded, before a keyring opens it: reads ``"withheld"``."""

    blob: bytes

    def __new__(cls, blob: bytes) -> Withheld:
        value = super().__new__(cls, WITHHELD)
        value.blob = blob
        return value


class SealedAsBase64(Transcoding):
    """`Sealed` values in the JSON of a stored event (decoded as `Withheld`)."""

    type = Sealed
    name = "sealed"

    def encode(self, obj: Sealed) -> str:
        return base64.b64encode(obj.blob).decode("ascii")

    def decode(self, data: str) -> Withheld:
        return Withheld(base64.b64decode(data))


# -- what is personal, per event topic ----------------------------------------------------

Path = tuple[str, ...]
"""Keys from the event's state to a value whose string leaves are sealed; ``"[]"`` steps
into every item of a list."""


@dataclass(frozen=True)
class Sealing:
    """How one event type's personal data is sealed: ``paths`` (all of them, or only
    when ``when(state)``), and for an aggregate keyed apart from its candidacy (an
    outbox message) the field of its first event naming the candidacy (``group``)."""

    paths: tuple[Path, ...]
    when: Callable[[dict[str, Any]], bool] | None = None
    group: str | None = None


SEALED: dict[str, Sealing] = {}
"""Sealing per stored topic (a snapshot's: ``"snapshot:" + the aggregate's topic``)."""


def seal_fields(topic: str, *paths: str, when: Callable[[dict[str, Any]], bool] | None = None,
                group: str | None = None) -> None:
    """Seal ``paths`` (dotted, ``[]`` for list items: ``"hesitations.[].text"``) of the
    events stored under ``topic``."""
    SEALED[topic] = Sealing(tuple(tuple(p.split(".")) for p in paths), when, group)


def _candidate_detail(state: dict[str, Any]) -> bool:
    return state.get("person") == "candidate"


def _register_candidacy() -> None:
    prefix = "engine.candidacy:Candidacy."
    for name, paths in {
        "InterviewRecorded": ("candidate",), "HesitationRaised": ("text",),
        "HesitationAddressed": ("answer",), "NextStepClosed": ("description",),
        "ReplyReceived": ("note",), "Withdrawn": ("reason",), "CadencePaused": ("reason",),
        # What a channel said may quote the message or name an address.
        "MessageBlocked": ("findings",), "MessageDeadLettered": ("error",),
    }.items():
        seal_fields(prefix + name, *paths)
    for name in ("NameCorrected", "ContactCorrected", "DetailCorrected"):
        seal_fields(prefix + name, "before", "after", when=_candidate_detail)
    seal_fields("snapshot:engine.candidacy:Candidacy", "state.candidate",
                "state.hesitations.[].text", "state.hesitations.[].answer",
                "state.next_step.description", "state.last_reply.note",
                "state.outcome.reason", "state.paused.reason", "state.pauses.[].reason")


_register_candidacy()
SNAPSHOT_TOPIC = "eventsourcing.domain:Snapshot"


def sealing_of(topic: str, state: dict[str, Any]) -> Sealing | None:
    """The sealing for an event of ``topic`` with ``state`` (None: nothing personal)."""
    if topic == SNAPSHOT_TOPIC:
        topic = "snapshot:" + str(state.get("topic"))
    sealing = SEALED.get(topic)
    if sealing is None or (sealing.when is not None and not sealing.when(state)):
        return None
    return sealing


ERASED_TOPIC = "engine.candidacy:Candidacy.Erased"


def erased_by(topic: str, state: dict[str, Any]) -> bool:
    """Whether a decoded record says its candidacy was erased: the `Erased` event, or a
    snapshot taken after it."""
    if topic == ERASED_TOPIC:
        return True
    inner = state.get("state") if topic == SNAPSHOT_TOPIC else None
    return isinstance(inner, dict) and bool(inner.get("erased"))


def _transformed(value: Any, path: Path, leaf: Callable[[str], Any]) -> Any:
    """``value`` with ``leaf`` applied to the strings at ``path`` (copies of the
    containers on the way: the aggregate shares the event's dicts)."""
    if not path:
        if isinstance(value, str):
            return leaf(value)
        if isinstance(value, dict):
            return {k: _transformed(v, (), leaf) for k, v in value.items()}
        if isinstance(value, list):
            return [_transformed(v, (), leaf) for v in value]
        return value
    step, rest = path[0], path[1:]
    if step == "[]":
        return [_transformed(v, rest, leaf) for v in value] if isinstance(value, list) \
            else value
    if isinstance(value, dict) and step in value:
        return {**value, step: _transformed(value[step], rest, leaf)}
    return value


def transform(state: dict[str, Any], sealing: Sealing, leaf: Callable[[str], Any]) -> None:
    """Apply ``leaf`` to every personal string of ``state`` (replacing its values)."""
    for path in sealing.paths:
        if path[0] in state:
            state[path[0]] = _transformed(state[path[0]], path[1:], leaf)


# -- keys -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubjectKey:
    """One aggregate's key, and the candidacy whose erasure destroys it."""

    subject_id: str
    candidacy_id: str
    key: bytes


@dataclass(frozen=True, slots=True)
class Erasure:
    """A candidacy erased: its keys go, it is listed, the registered scrubs run."""

    candidacy_id: str
    erased_at: datetime
    actor: str


KEY_TABLES = (
    "CREATE TABLE IF NOT EXISTS closer_subject_keys (subject_id TEXT PRIMARY KEY, "
    "candidacy_id TEXT NOT NULL, key TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS closer_subject_keys_candidacy ON closer_subject_keys "
    "(candidacy_id)",
    "CREATE TABLE IF NOT EXISTS closer_erasures (candidacy_id TEXT PRIMARY KEY, "
    "erased_at TEXT NOT NULL, actor TEXT NOT NULL)",
)


class SubjectKeys(ExtraTable):
    """``closer_subject_keys`` and ``closer_erasures`` as an `ExtraTable` (the save
    keyword ``subject_keys``: `SubjectKey` rows insert, `Erasure` rows erase)."""

    keyword = "subject_keys"
    statements = KEY_TABLES

    def __init__(self, sqlite: bool = False) -> None:
        self.scrubs: list[str] = []
        """Statements run with an erasure, each taking the candidacy id (``?``) once."""
        self.sqlite = sqlite

    def write(self, tx: Tx, rows: Sequence[Any]) -> None:
        keys = [(r.subject_id, r.candidacy_id, r.key.hex()) for r in rows
                if isinstance(r, SubjectKey)]
        if keys:
            tx.executemany("INSERT INTO closer_subject_keys (subject_id, candidacy_id, key) "
                           "VALUES (?, ?, ?)", keys)
        for row in rows:
            if isinstance(row, Erasure):
                if self.sqlite:
                    # What the erasure deletes or overwrites is zeroed on its pages now.
                    tx.execute("PRAGMA secure_delete=ON")
                tx.execute("DELETE FROM closer_subject_keys WHERE candidacy_id = ?",
                           (row.candidacy_id,))
                tx.execute("INSERT INTO closer_erasures (candidacy_id, erased_at, actor) "
                           "VALUES (?, ?, ?)",
                           (row.candidacy_id, stored_moment(row.erased_at), row.actor))
                for sql in self.scrubs:
                    tx.execute(sql, (row.candidacy_id,))

    def hold(self, held: dict[Any, Any], rows: Sequence[Any]) -> None:
        for row in rows:
            if isinstance(row, SubjectKey):
                held[row.subject_id] = row
            else:
                for sid in [s for s, r in held.items()
                            if isinstance(r, SubjectKey) and r.candidacy_id == row.candidacy_id]:
                    del held[sid]
                held[("erased", row.candidacy_id)] = row


@dataclass
class _Known:
    """What `Keyring._look_up_many` read: the subjects asked, their stored keys
    (candidacy id, key) and the erased candidacies among them."""

    asked: set[str] = field(default_factory=set)
    keys: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    erased: set[str] = field(default_factory=set)


class Keyring:
    """The keys of one application's store: made for new subjects, looked up (and kept,
    `KEYS_CACHED`) for sealing and opening, forgotten when erased."""

    def __init__(self, recorder: Any) -> None:
        self.recorder = recorder
        self.table = SubjectKeys(sqlite=isinstance(getattr(recorder, "datastore", None),
                                                   SQLiteDatastore))
        recorder.add_table(self.table)
        self.table = recorder.extra_tables[SubjectKeys.keyword]
        self._ciphers: OrderedDict[str, tuple[str, AESGCM]] = OrderedDict()
        self._lock = threading.Lock()
        self.size = KEYS_CACHED
        """How many subjects' ciphers are kept (0: each is read from the store)."""
        self._new: dict[str, AESGCM] = {}  # made for a save not yet written (`settle`)

    # lookups
    def cipher(self, subject_id: str) -> AESGCM | None:
        """The cipher of ``subject_id`` (None: it has no key, or it was erased)."""
        with self._lock:
            new = self._new.get(subject_id)
            if new is not None:
                return new
            kept = self._ciphers.get(subject_id)
            if kept is not None:
                self._ciphers.move_to_end(subject_id)
                return kept[1]
        found = self._stored_key(subject_id)
        if found is None:
            return None
        return self._keep(subject_id, found[0], found[1])

    def _keep(self, subject_id: str, candidacy_id: str, key: bytes) -> AESGCM:
        cipher = AESGCM(key)
        if not self.size:
            return cipher
        with self._lock:
            self._ciphers[subject_id] = (candidacy_id, cipher)
            while len(self._ciphers) > self.size:
                self._ciphers.popitem(last=False)
        return cipher

    def _stored_key(self, subject_id: str) -> tuple[str, bytes] | None:
        if hasattr(self.recorder, "read"):
            rows = self.recorder.read("SELECT candidacy_id, key FROM closer_subject_keys "
                                      "WHERE subject_id = ?", (subject_id,))
            return (str(rows[0][0]), bytes.fromhex(rows[0][1])) if rows else None
        # The in-memory store: its held rows (engine.memory_store keeps them by keyword).
        with self.recorder._database_lock:  # noqa: SLF001 - the fake's own structure
            row = self.recorder._held.get(SubjectKeys.keyword, {}).get(subject_id)  # noqa: SLF001
        return (row.candidacy_id, row.key) if isinstance(row, SubjectKey) else None

    def erased(self, candidacy_id: str) -> bool:
        """Whether ``candidacy_id`` was erased."""
        if hasattr(self.recorder, "read"):
            return bool(self.recorder.read(
                "SELECT 1 FROM closer_erasures WHERE candidacy_id = ?", (candidacy_id,)))
        return any(r.candidacy_id == candidacy_id for r in self.recorder.held(self.table)
                   if isinstance(r, Erasure))

    def erased_ids(self) -> list[str]:
        """Every erased candidacy's id, sorted."""
        if hasattr(self.recorder, "read"):
            rows = self.recorder.read("SELECT candidacy_id FROM closer_erasures "
                                      "ORDER BY candidacy_id")
            return [str(r[0]) for r in rows]
        return sorted(r.candidacy_id for r in self.recorder.held(self.table)
                      if isinstance(r, Erasure))

    # writes
    def new_keys(self, events: Iterable[Any]) -> list[SubjectKey]:
        """Keys for the subjects among ``events`` that have none yet (their first event,
        or a candidacy stored before keys existed), kept here to seal them with."""
        made: list[SubjectKey] = []
        seen: set[str] = set()
        events = list(events)
        known = self._look_up_many(events)
        for event in events:
            state = vars(event)
            topic = f"{type(event).__module__}:{type(event).__qualname__}"
            sealing = SEALED.get(topic)
            if sealing is None and not topic.startswith("engine.candidacy:Candidacy."):
                continue
            subject = str(event.originator_id)
            if subject in seen or (event.originator_version != 1
                                   and self._cipher_known(subject, known) is not None):
                continue
            seen.add(subject)
            if sealing is not None and sealing.group is not None:
                if sealing.group not in state:
                    continue  # a later event of a message queued before keys existed
                group = str(state[sealing.group])
            else:
                group = subject
            if (group != subject or event.originator_version != 1) and (
                    group in known.erased if group in known.asked else self.erased(group)):
                continue  # sealed without a key: its personal leaves are stored as "erased"
            key = AESGCM.generate_key(bit_length=256)
            cipher = self._keep(subject, group, key)
            with self._lock:
                self._new[subject] = cipher
            made.append(SubjectKey(subject, group, key))
        return made

    def _look_up_many(self, events: list[Any]) -> _Known:
        """The stored keys and erasures of the subjects of ``events`` not held here, in
        one query each (SQL stores): a page of the tick or a batch of commands on
        candidacies not seen lately asked twice per candidacy before (issue 19)."""
        known = _Known()
        if not hasattr(self.recorder, "read"):
            return known
        with self._lock:
            # Membership tests, not `set - dict.keys()`: that walks every cached cipher.
            wanted = sorted({s for s in {str(e.originator_id) for e in events
                                         if e.originator_version != 1}
                             if s not in self._new and s not in self._ciphers})
        if len(wanted) < 2:
            return known  # one subject: the lookups of one (`cipher`, `erased`)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ", ".join("?" * len(chunk))
            for subject, candidacy, key in self.recorder.read(
                    "SELECT subject_id, candidacy_id, key FROM closer_subject_keys WHERE "
                    f"subject_id IN ({marks})", tuple(chunk)):
                known.keys[str(subject)] = (str(candidacy), bytes.fromhex(key))
            known.erased.update(str(r[0]) for r in self.recorder.read(
                f"SELECT candidacy_id FROM closer_erasures WHERE candidacy_id IN ({marks})",
                tuple(chunk)))
            known.asked.update(chunk)
        return known

    def _cipher_known(self, subject: str, known: _Known) -> AESGCM | None:
        """`cipher`, answered from ``known`` where it was asked."""
        if subject not in known.asked:
            return self.cipher(subject)
        found = known.keys.get(subject)
        return None if found is None else self._keep(subject, found[0], found[1])

    def settle(self, keys: Iterable[SubjectKey]) -> None:
        """The save carrying ``keys`` is over (written or refused): they are read from
        the store (or this keyring's cache) from now on."""
        with self._lock:
            for key in keys:
                self._new.pop(key.subject_id, None)

    def forget(self, candidacy_id: str) -> None:
        """Drop every kept cipher of ``candidacy_id``'s subjects (it was erased)."""
        with self._lock:
            for sid in [s for s, (g, _) in self._ciphers.items() if g == candidacy_id]:
                del self._ciphers[sid]

    # sealing
    def seal_state(self, uid: UUID, state: dict[str, Any], sealing: Sealing) -> None:
        """Seal ``state``'s personal strings with ``uid``'s key (none: stored "erased")."""
        cipher = self.cipher(str(uid))
        aad = uid.bytes
        if cipher is None:
            transform(state, sealing, lambda _text: ERASED)
            return

        def seal(text: str) -> Sealed:
            nonce = os.urandom(12)
            return Sealed(nonce + cipher.encrypt(nonce, text.encode("utf-8"), aad))

        transform(state, sealing, seal)

    def open_state(self, uid: UUID, state: dict[str, Any], sealing: Sealing) -> None:
        """Open ``state``'s sealed strings (each reads `ERASED` once its key is gone)."""
        found: list[AESGCM | None] = []  # looked up at the first sealed leaf, once

        def opened(text: str) -> str:
            if not isinstance(text, Withheld):
                return text
            if not found:
                found.append(self.cipher(str(uid)))
            cipher = found[0]
            if cipher is None:
                return ERASED
            blob = text.blob
            try:
                return cipher.decrypt(blob[:12], blob[12:], uid.bytes).decode("utf-8")
            except InvalidTag:
                # Sealed with a key this store never had (a copy made without keys:
                # `tick --on-copy`, `closer import`), the subject keyed anew since: its
                # key is as good as destroyed here.  (A changed byte: `audit verify`.)
                return ERASED

        transform(state, sealing, opened)


def register_scrub(app: Any, *statements: str) -> None:
    """Run ``statements`` (each taking the candidacy id once, ``?``) in every erasure's
    transaction on ``app``'s store: how the read models and the outbox clear their
    plaintext copies in the same step as the key goes."""
    keyring: Keyring | None = getattr(app, "keyring", None)
    if keyring is None:
        return
    for sql in statements:
        if sql not in keyring.table.scrubs:
            keyring.table.scrubs.append(sql)


def scrub_storage(recorder: Any, tables: Sequence[str]) -> dict[str, Any]:
    """Rewrite the store's files after an erasure, so freed pages and the log hold no
    old copy of what was deleted or overwritten.  SQLite: VACUUM (a fresh file, no free
    page nor freed cell of an earlier update left) then ``wal_checkpoint(TRUNCATE)`` (an
    empty WAL).  The audit's leaves include the events' rowids (their notification ids):
    SQLite's VACUUM keeps the rowids of a table with an index, which the events table has
    (its unique (originator_id, originator_version)); it is checked before (no index: no
    VACUUM, said) and after (the ids' count, sum and maximum unchanged, else an error).
    PostgreSQL: ``VACUUM FULL`` of ``tables`` (each rewritten; the WAL is not,
    docs/audit.md).  Answers what it did; the in-memory store has nothing to do."""
    datastore = getattr(recorder, "datastore", None)
    if isinstance(datastore, SQLiteDatastore):
        name = datastore.pool.db_name
        if datastore.pool.is_sqlite_memory_mode:
            return {"store": "sqlite", "vacuumed": False}
        events = recorder.events_table_name
        connection = sqlite3.connect(name, isolation_level=None, timeout=30,
                                     uri=name.startswith("file:"))
        try:
            connection.execute("PRAGMA secure_delete=ON")
            keeps_ids = bool(connection.execute(
                f"PRAGMA index_list({events})").fetchall())  # (Closer's own table name)
            ids = f"SELECT count(*), total(rowid), max(rowid) FROM {events}"
            before = connection.execute(ids).fetchone()
            if keeps_ids:
                connection.execute("VACUUM")
                if connection.execute(ids).fetchone() != before:
                    raise RuntimeError(f"VACUUM renumbered {events}: the audit's checkpoints "
                                       "no longer match; restore the store from its backup")
            busy, log_frames, done = connection.execute(
                "PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            connection.close()
        return {"store": "sqlite", "vacuumed": keeps_ids, "wal_truncated": not busy,
                "wal_frames": log_frames, "checkpointed": done}
    if datastore is not None and hasattr(datastore, "get_connection"):
        from psycopg.sql import SQL, Identifier

        done_tables = []
        with datastore.get_connection() as conn:
            conn.autocommit = True  # (VACUUM runs outside a transaction)
            for table in tables:
                exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL AS found",
                                      (table,)).fetchone()
                if exists and (exists["found"] if isinstance(exists, dict) else exists[0]):
                    conn.execute(SQL("VACUUM FULL {}").format(Identifier(table)))
                    done_tables.append(table)
            try:
                conn.execute("CHECKPOINT")  # (the rewritten files reach the disk now)
                checkpointed = True
            except Exception:  # noqa: BLE001 - a role without pg_checkpoint: said, not fatal
                checkpointed = False
        return {"store": "postgresql", "vacuumed": done_tables, "checkpointed": checkpointed}
    return {"store": "memory", "vacuumed": False}
