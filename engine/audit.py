"""The tamper-evident history (issue 17): verify the stored chains and the signed tree
heads, record checkpoints, and check one candidacy's chain for its readers.

What is proven rests on three layers, each checked here:

1. every stored event's hash over what is stored, chained to its predecessor's in the
   same aggregate, recorded in its own write (`engine.audit_store`): an event altered,
   removed, inserted or moved within its aggregate afterwards no longer matches;
2. a Merkle tree (RFC 9162) over the whole notification log, whose heads are signed
   with Ed25519 by `checkpoint`: an edit that also rewrites the recorded hashes still
   changes a signed root;
3. snapshots, decoded and compared with the aggregate their events make
   (`verify_snapshots`).

`verify` walks the log once in notification order, so its cost is one read and a few
SHA-256 calls per event.  Findings name the candidacy (aggregate), the version and the
notification id, the first one first.  docs/audit.md says what this proves to whom.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eventsourcing.persistence import IntegrityError

from closer_verify.merkle import Frontier, ProofError
from closer_verify.records import GENESIS, TreeHead, event_hash, raw_event_hash
from engine.audit_store import Checkpoint, EventHash
from engine.audit_walk import chain_rows
from engine.errors import InvalidInput

PAGE = 5000

ALTERED = "altered"
"""Its stored content is not what was hashed when it was written."""
REMOVED = "removed"
"""An event that was written is no longer stored."""
INSERTED = "inserted"
"""Stored, but not written by Closer (no hash recorded with it)."""
REORDERED = "reordered"
"""Out of its place: a version before one already seen, or a link to another predecessor."""
CHECKPOINT = "checkpoint"
"""A signed tree head that the log no longer matches, or whose signature fails."""
SNAPSHOT = "snapshot"
"""A snapshot that is not the state its events make."""
ROW = "row"
"""A candidacy's current row (lists, the scheduler, the dashboard read it) that is not
what its events make."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing verification found wrong, naming where."""

    kind: str
    originator_id: str | None
    version: int | None
    notification_id: int | None
    detail: str

    def line(self) -> str:
        where = []
        if self.originator_id is not None:
            where.append(f"candidacy {self.originator_id}")
        if self.version is not None:
            where.append(f"version {self.version}")
        if self.notification_id is not None:
            where.append(f"notification {self.notification_id}")
        return f"{self.kind}: {', '.join(where) or 'the log'}: {self.detail}"


@dataclass
class AuditReport:
    """What `verify` checked and found."""

    events: int = 0
    checkpoints_checked: int = 0
    snapshots_checked: int = 0
    rows_checked: int = 0
    read_model_rows_checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    size: int = 0
    root: bytes = b""
    last_notification_id: int = 0
    frontier: list[bytes] = field(default_factory=list)
    since: int | None = None

    @property
    def intact(self) -> bool:
        return not self.findings

    @property
    def first(self) -> Finding | None:
        return self.findings[0] if self.findings else None

    def as_dict(self) -> dict[str, Any]:
        return {"intact": self.intact, "events_checked": self.events,
                "checkpoints_checked": self.checkpoints_checked,
                "snapshots_checked": self.snapshots_checked,
                "rows_checked": self.rows_checked,
                "read_model_rows_checked": self.read_model_rows_checked, "since": self.since,
                "tree_size": self.size, "root": self.root.hex(),
                "first": asdict(self.first) if self.first else None,
                "findings": [asdict(f) for f in self.findings]}


def verify(recorder: Any, public_key: Ed25519PublicKey, *, since: int | None = None,
           page: int = PAGE, limit: int = 1000) -> AuditReport:
    """Check every stored event's chain link and every checkpoint (its signature with
    ``public_key``, its root against the log).  ``since`` (a checkpoint's number)
    trusts that checkpoint, once its signature and frontier check, and reads only the
    log after it.  At most ``limit`` findings are kept, in log order."""
    checkpoints = recorder.select_checkpoints()
    report = AuditReport(since=since)
    findings = report.findings
    frontier = Frontier()
    after = 0
    pending = list(checkpoints)
    for cp in checkpoints:
        problem = _checkpoint_problem(cp, public_key)
        if problem:
            findings.append(Finding(CHECKPOINT, None, None, cp.last_notification_id,
                                    f"checkpoint #{cp.seq} (tree size {cp.size}): {problem}"))
    if since is not None:
        base = next((cp for cp in checkpoints if cp.seq == since), None)
        if base is None:
            raise InvalidInput("since", f"no checkpoint #{since} (closer audit "
                                        "checkpoints lists them)")
        frontier = Frontier(base.size, base.frontier)
        after = base.last_notification_id
        pending = [cp for cp in checkpoints if cp.size > base.size]
    pending.sort(key=lambda cp: (cp.size, cp.seq))
    previous_cp_nid = after
    tips: dict[bytes, tuple[int, bytes]] = {}
    gaps: dict[tuple[bytes, int], int] = {}  # (aggregate, missing version): its finding
    # The hot loop is `engine.audit_walk.chain_rows` (compiled): a million UUID() calls
    # alone cost more than the hashing, so each stored id's and topic's bytes are made
    # once and the driver's rows read as they come.  Receipt: benchmarks/audit_bench.py,
    # verify from 0.22x to about 0.5x of replay's read floor written out, 1.17x compiled.
    id_bytes, topics = recorder.audit_id_bytes, _Topics()
    ids: dict[Any, bytes] = {}
    stack, size = frontier.hashes, frontier.size
    next_size = pending[0].size if pending else -1

    def first_tip(version: int, prev: bytes | None) -> tuple[int, bytes]:
        """The tip an aggregate's first event in this walk extends."""
        if since is None or version == 1:
            return (0, GENESIS)
        return (version - 1, prev if prev is not None else GENESIS)

    def odd(nid: int, uid: bytes, version: int, topic: str, state: bytes,
            prev: bytes | None, stored: bytes | None, tip: tuple[int, bytes]) -> bytes:
        """An event off the common path (a gap, a move, a hash that differs): named."""
        if version != tip[0] + 1 and len(findings) < limit:
            if version <= tip[0]:
                gap = gaps.pop((uid, version), None)
                moved = Finding(REORDERED, _name(uid), version, nid,
                                f"stored after version {tip[0]} in the log")
                if gap is None:
                    findings.append(moved)
                else:  # the version found missing earlier: moved, not removed
                    findings[gap] = moved
            else:
                missing = (f"version {tip[0] + 1}" if version == tip[0] + 2
                           else f"versions {tip[0] + 1}-{version - 1}")
                gaps[(uid, tip[0] + 1)] = len(findings)
                findings.append(Finding(REMOVED, _name(uid), tip[0] + 1, nid,
                                        f"{missing} missing before version {version} "
                                        f"(notification {nid})"))
        previous = tip[1] if version == tip[0] + 1 or prev is None else prev
        chained = raw_event_hash(previous, uid, version, topics[topic], state)
        if stored != chained and len(findings) < limit:
            if stored is None:
                findings.append(Finding(INSERTED, _name(uid), version, nid,
                                        "stored without a hash recorded in its write: "
                                        "not written by Closer"))
            elif prev != previous:
                findings.append(Finding(REORDERED, _name(uid), version, nid,
                                        "its recorded predecessor is not the event "
                                        "stored before it"))
            else:
                findings.append(Finding(ALTERED, _name(uid), version, nid,
                                        "its stored content is not what was written"))
        if version > tip[0]:  # a version moved back in the log does not rewind it
            tips[uid] = (version, stored if stored is not None else chained)
        return chained

    while True:
        rows = recorder.select_audit_log(after, page)
        done = 0
        while done < len(rows):
            done, size = chain_rows(rows, done, tips, ids, id_bytes, topics, stack, size,
                                    next_size, first_tip, odd)
            if size != next_size:
                continue
            nid = rows[done - 1][0]
            frontier = Frontier(size, stack)  # one per checkpoint
            while pending and pending[0].size == size:
                cp = pending.pop(0)
                report.checkpoints_checked += 1
                if (frontier.root() != cp.root or nid != cp.last_notification_id) \
                        and len(findings) < limit:
                    findings.append(Finding(
                        CHECKPOINT, None, None, cp.last_notification_id,
                        f"checkpoint #{cp.seq} (tree size {cp.size}) does not match the "
                        f"log's first {cp.size} events: an event with a notification id "
                        f"in ({previous_cp_nid}, {cp.last_notification_id}] was altered, "
                        "removed, inserted or reordered after it was signed"))
                previous_cp_nid = cp.last_notification_id
            next_size = pending[0].size if pending else -1
        if rows:
            after = rows[-1][0]
        report.events += len(rows)
        if len(rows) < page:
            break
    frontier = Frontier(size, stack)
    for cp in pending:
        report.checkpoints_checked += 1
        findings.append(Finding(
            REMOVED, None, None, cp.last_notification_id,
            f"checkpoint #{cp.seq} certified {cp.size} events up to notification "
            f"{cp.last_notification_id}; the log holds {frontier.size}: events after "
            f"notification {after} were removed"))
    for orphan, version in recorder.select_orphan_hashes(limit=max(1, limit - len(findings))):
        findings.append(Finding(REMOVED, str(orphan), version, None,
                                "written (its hash is recorded) but no longer stored"))
    findings.sort(key=lambda f: (f.notification_id is None, f.notification_id or 0))
    report.size, report.root = frontier.size, frontier.root()
    report.last_notification_id, report.frontier = after, frontier.hashes
    return report


class _Topics(dict[str, bytes]):
    """Each topic's UTF-8, encoded once."""

    def __missing__(self, topic: str) -> bytes:
        self[topic] = encoded = topic.encode()
        return encoded


def _name(uid: bytes) -> str:
    return str(UUID(bytes=uid))


def log_rows(recorder: Any, after: int, page: int) -> Iterator[tuple[Any, ...]]:
    """The log after ``after`` with recorded hashes, as ``(id, originator UUID, version,
    topic, state, previous, hash)``, a page at a time (for the walks that are not hot)."""
    id_bytes = recorder.audit_id_bytes
    while True:
        rows = recorder.select_audit_log(after, page)
        for nid, raw, version, topic, state, prev, stored in rows:
            yield nid, UUID(bytes=id_bytes(raw)), version, topic, state, prev, stored
            after = nid
        if len(rows) < page:
            return


def _checkpoint_problem(cp: Checkpoint, public_key: Ed25519PublicKey) -> str | None:
    head = TreeHead(cp.size, cp.root, cp.timestamp_ms, cp.last_notification_id, cp.signature)
    try:
        head.verify(public_key)
        if Frontier(cp.size, cp.frontier).root() != cp.root:
            return "its stored frontier does not make its root"
    except ProofError as error:
        return str(error)
    return None


def verify_chain(recorder: Any, originator_id: UUID) -> list[Finding]:
    """One aggregate's chain (what a read of a candidacy checks): each stored event
    against its recorded hash and link, and hashes recorded for events no longer
    stored.  The log's order and the checkpoints are `verify`'s."""
    return chain_findings(originator_id, *recorder.select_chain_checked(originator_id))


def first_break(recorder: Any, originator_id: UUID) -> Finding | None:
    """The first break in one aggregate's chain (None: intact, or a recorder without the
    audit's chains): what a write checks before it records on top of it."""
    return check_before_write(recorder, originator_id)[0]


def check_before_write(recorder: Any, originator_id: UUID
                       ) -> tuple[Finding | None, int | None]:
    """`first_break`, and the highest version stored (0: none), both from the one read
    of the chain; ``(None, None)`` for a recorder without the audit's chains."""
    if getattr(recorder, "select_chain_checked", None) is None:
        return None, None
    chain, orphans = recorder.select_chain_checked(originator_id)
    findings = chain_findings(originator_id, chain, orphans)
    return (findings[0] if findings else None), (int(chain[-1][1]) if chain else 0)


def verify_chains(recorder: Any, originator_ids: Sequence[UUID]) -> dict[UUID, list[Finding]]:
    """`verify_chain` for each of ``originator_ids``, their chains read in one query (a
    page of the tick's due candidacies): each id's findings, none for an intact chain."""
    chains = recorder.select_chains_checked(originator_ids)
    return {uid: chain_findings(uid, *chains[uid]) for uid in originator_ids}


def chain_findings(originator_id: UUID, chain: Sequence[tuple[Any, ...]],
                   orphans: Sequence[int]) -> list[Finding]:
    """The walk over one aggregate's rows as `select_chain_checked` returns them (its
    events in version order with their recorded hashes, and the versions hashed but no
    longer stored): what is wrong, the first break first."""
    findings: list[Finding] = []
    tip = (0, GENESIS)
    uid, key, topics = str(originator_id), originator_id.bytes, _Topics()
    for nid, version, topic, state, prev, stored in chain:
        if version != tip[0] + 1:
            findings.append(Finding(REMOVED, uid, tip[0] + 1, nid,
                                    f"missing before version {version}"))
        previous = tip[1] if version == tip[0] + 1 or prev is None else prev
        chained = raw_event_hash(previous, key, version, topics[topic], state)
        if stored is None:
            findings.append(Finding(INSERTED, uid, version, nid,
                                    "stored without a hash recorded in its write"))
        elif stored != chained:
            kind = REORDERED if prev != previous else ALTERED
            findings.append(Finding(kind, uid, version, nid,
                                    "its stored content is not what was written"
                                    if kind == ALTERED else
                                    "its recorded predecessor is not the event before it"))
        tip = (version, stored if stored is not None else chained)
    for version in orphans:
        findings.append(Finding(REMOVED, uid, version, None,
                                "written (its hash is recorded) but no longer stored"))
    return findings


def verify_snapshots(app: Any) -> tuple[int, list[Finding]]:
    """Each stored snapshot against the aggregate its events make at its version: both
    through the application's transcoder, so only a difference of state counts."""
    if app.snapshots is None:
        return 0, []
    from eventsourcing.persistence import StoredEvent

    from engine.errors import CorruptHistory

    recorder = app.recorder
    table = app.snapshots.recorder.events_table_name
    decode, encode = app.mapper.to_domain_event, app.mapper.transcoder.encode
    findings: list[Finding] = []
    checked = 0
    for uid, snaps in _snapshots_by_aggregate(recorder, table):
        aggregate: Any = None
        events = iter(recorder.select_events(uid))
        for version, topic, state in snaps:
            checked += 1
            try:
                while aggregate is None or aggregate.version < version:
                    aggregate = decode(next(events)).mutate(aggregate)
                held = decode(StoredEvent(uid, version, topic, state)).mutate(None)
                ours = type(aggregate).Snapshot.take(aggregate).state
                theirs = type(held).Snapshot.take(held).state
                same = encode(ours) == encode(theirs)
            except StopIteration:
                same = False
            except (CorruptHistory, AttributeError, KeyError, TypeError, ValueError):
                same = False
            if not same:
                findings.append(Finding(SNAPSHOT, str(uid), version, None,
                                        "the snapshot is not the state its events make"))
    return checked, findings


_ROW_FIELDS = ("workspace", "stage", "version", "round", "candidate", "company", "role")


def verify_rows(app: Any, page: int = 500) -> tuple[int, list[Finding]]:
    """Each candidacy's current row (``closer_candidacies``) against the candidacy its
    events make (loaded as commands load it): the fields lists and the scheduler trust.
    A row whose candidacy cannot be read is `closer doctor`'s, not counted here."""
    from engine.errors import CandidacyNotFound

    findings: list[Finding] = []
    checked = 0
    after = ""
    while True:
        rows = app.recorder.select_all_rows(after=after, limit=page)
        try:  # a page in two queries, as the scheduler loads it
            loaded = {str(c.id): c for c in app._load_many([r.id for r in rows], [])}
        except CandidacyNotFound:  # a row with no candidacy behind it: one by one
            loaded = {}
            for row in rows:
                try:
                    loaded.update({str(c.id): c for c in app._load_many([row.id], [])})
                except CandidacyNotFound:
                    findings.append(Finding(ROW, row.id, row.version, None,
                                            "a row with no candidacy's events behind it"))
        for row in rows:
            checked += 1
            c = loaded.get(row.id)
            if c is None:
                continue  # unreadable (closer doctor's), or no candidacy (named above)
            made = (c.workspace, c.stage, c.version, c.round, c.candidate["name"], c.company,
                    c.role)
            held = tuple(getattr(row, name) for name in _ROW_FIELDS)
            wrong = [f"{name} {h!r} (its events: {m!r})"
                     for name, h, m in zip(_ROW_FIELDS, held, made, strict=True) if h != m]
            if wrong:
                findings.append(Finding(ROW, row.id, row.version, None,
                                        "the candidacies table says " + ", ".join(wrong)))
        if len(rows) < page:
            return checked, findings
        after = rows[-1].id


def _snapshots_by_aggregate(recorder: Any, table: str
                            ) -> Iterator[tuple[UUID, list[tuple[int, str, bytes]]]]:
    after = None
    current: UUID | None = None
    group: list[tuple[int, str, bytes]] = []
    while True:
        rows = recorder.select_records_page(table, after, 1000)
        for uid, version, topic, state, _ in rows:
            if uid != current:
                if group and current is not None:
                    yield current, group
                current, group = uid, []
            group.append((version, topic, state))
        if len(rows) < 1000:
            break
        after = (rows[-1][4], rows[-1][1])
    if group and current is not None:
        yield current, group


def seal(recorder: Any, page: int = PAGE) -> int:
    """Hash the events stored before the audit existed (none in a store that had it from
    its first write), in log order; how many.  Only a store with no checkpoint yet is
    sealed (`checkpoint` does it first): afterwards an event without a hash is reported
    as inserted, never hashed."""
    if recorder.select_checkpoints():
        return 0
    tips: dict[UUID, tuple[int, bytes]] = {}
    new: list[EventHash] = []
    for _, uid, version, topic, state, _, stored in log_rows(recorder, 0, page):
        tip = tips.get(uid, (0, GENESIS))
        if stored is None:
            stored = event_hash(tip[1], uid, version, topic, state)
            new.append(EventHash(uid, version, tip[1], stored))
        tips[uid] = (version, stored)
    if new:
        recorder.insert_event_hashes(new)  # one transaction: all sealed or none
    return len(new)


def checkpoint(recorder: Any, sign: Callable[[bytes], bytes], public_key: Ed25519PublicKey,
               now_ms: int) -> tuple[Checkpoint | None, AuditReport]:
    """Record a signed tree head over the whole log, after verifying what is new since
    the last one: a broken log is never certified (None, with the report).  With no new
    event since the last checkpoint, that one is answered and nothing is recorded."""
    if not recorder.select_checkpoints():
        seal(recorder)
    existing = recorder.select_checkpoints()
    last = existing[-1] if existing else None
    report = verify(recorder, public_key, since=last.seq if last else None)
    if report.size == 0:
        raise InvalidInput("store", "the log is empty: there is nothing to certify yet")
    if not report.intact:
        return None, report
    if last is not None and report.size == last.size:
        return last, report
    head = TreeHead(report.size, report.root, now_ms, report.last_notification_id)
    recorded = Checkpoint((last.seq if last else 0) + 1, head.size, head.root, now_ms,
                          head.last_notification_id, sign(head.message()), report.frontier)
    try:
        recorder.insert_checkpoint(recorded)
    except IntegrityError:
        # Another process recorded this number first (two `closer serve`s, or a CLI
        # run beside one): theirs stands, over the same log or a longer one.
        return recorder.select_checkpoints()[-1], report
    return recorded, report
