"""`closer audit export`: stored events with the proofs an outsider checks offline.

The lines are `closer_verify.export`'s (that module documents them and checks them with
nothing of Closer).  Every event is exported as stored, with its decoded state beside it
for reading (actor, on-behalf-of, the policy's name, version and rule in ``decided_by``,
deliveries, and the outbox's messages with their bodies), an inclusion proof against a
signed tree head, and every earlier checkpoint's consistency proof to that head.
"""

from __future__ import annotations

import base64
import csv
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any
from uuid import UUID

import orjson

from closer_verify.export import FORMAT, SEAL_START, end_message, seal_line
from closer_verify.merkle import MerkleTree
from closer_verify.records import GENESIS, TreeHead, event_hash, log_leaf
from engine.audit import PAGE, log_rows
from engine.audit_store import Checkpoint
from engine.errors import InvalidInput

_KINDS = (("engine.candidacy:Candidacy.", "candidacy"), ("adapters.outbox:", "message"),
          ("engine.policy_book:", "policy"))


@dataclass
class ExportSummary:
    events: int = 0
    candidacies: int = 0
    tree_size: int = 0


@dataclass(frozen=True, slots=True)
class _Exported:
    nid: int
    leaf_index: int
    uid: UUID
    version: int
    topic: str
    state: bytes
    previous: bytes
    chained: bytes


def aggregate_kind(topic: str) -> str:
    return next((kind for prefix, kind in _KINDS if topic.startswith(prefix)), "other")


def _moment(state: bytes) -> datetime | None:
    try:
        stamp = orjson.loads(state).get("timestamp")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    text = stamp.get("_data_") if isinstance(stamp, dict) else stamp
    try:
        return datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _selected(recorder: Any, head: Checkpoint, wanted: Callable[[UUID, str, bytes], bool]
              ) -> tuple[list[bytes], list[_Exported]]:
    """The log's leaves up to ``head`` and the wanted events among them."""
    leaves: list[bytes] = []
    chosen: list[_Exported] = []
    tips: dict[UUID, bytes] = {}
    for nid, uid, version, topic, state, prev, _ in log_rows(recorder, 0, PAGE):
        if len(leaves) == head.size:
            break
        previous = tips.get(uid, GENESIS if version == 1 else (prev or GENESIS))
        chained = event_hash(previous, uid, version, topic, state)
        tips[uid] = chained
        if wanted(uid, topic, state):
            chosen.append(_Exported(nid, len(leaves), uid, version, topic, state,
                                    previous, chained))
        leaves.append(log_leaf(nid, chained))
    return leaves, chosen


def write_export(recorder: Any, out: IO[bytes], *, head: Checkpoint,
                 earlier: list[Checkpoint], sign: Callable[[bytes], bytes],
                 public_key_hex: str, candidacy: UUID | None = None,
                 message_ids: frozenset[UUID] = frozenset(), start: datetime | None = None,
                 end: datetime | None = None, created_ms: int = 0,
                 erased: frozenset[str] = frozenset()) -> ExportSummary:
    """Write the export of ``candidacy`` (and its messages), or of every event, recorded
    between ``start`` and ``end``, against the signed ``head``.  ``erased``: the erased
    candidacies' ids, named in the header (those exported) and on each of their events
    (their personal fields are sealed with a destroyed key: they read as ciphertext)."""

    def wanted(uid: UUID, topic: str, state: bytes) -> bool:
        if candidacy is not None and uid != candidacy and uid not in message_ids:
            return False
        if start is None and end is None:
            return True
        moment = _moment(state)
        return moment is not None and (start is None or moment >= start) and \
            (end is None or moment < end)

    leaves, chosen = _selected(recorder, head, wanted)
    tree = MerkleTree(leaves)
    if tree.size != head.size or tree.root() != head.root:
        raise InvalidInput("store", f"the log no longer matches checkpoint #{head.seq}: "
                                    "run closer audit verify")
    signed = TreeHead(head.size, head.root, head.timestamp_ms, head.last_notification_id,
                      head.signature)
    writer = _Lines(out)
    exported_erased = sorted({str(e.uid) for e in chosen} & erased)
    writer.write({"kind": "header", "format": FORMAT, "export_id": secrets.token_hex(16),
                  "erased_candidacies": exported_erased, "created_ms": created_ms,
                  "public_key": public_key_hex, "tree_head": signed.as_dict(),
                  "asked": {"candidacy": str(candidacy) if candidacy else None,
                            "from": start.isoformat() if start else None,
                            "to": end.isoformat() if end else None}})
    for cp in earlier:
        if cp.size > head.size:
            continue
        writer.write({"kind": "checkpoint", "seq": cp.seq,
                      "tree_head": TreeHead(cp.size, cp.root, cp.timestamp_ms,
                                            cp.last_notification_id, cp.signature).as_dict(),
                      "consistency": [h.hex() for h in tree.consistency_proof(cp.size)]})
    summary = ExportSummary(tree_size=head.size)
    seen: set[UUID] = set()
    for e in chosen:
        kind = aggregate_kind(e.topic)
        try:
            readable = orjson.loads(e.state)
        except orjson.JSONDecodeError:
            readable = None
        writer.write({"kind": "event", "notification_id": e.nid, "leaf_index": e.leaf_index,
                      "aggregate": kind, "originator_id": str(e.uid), "version": e.version,
                      "topic": e.topic, "state_b64": base64.b64encode(e.state).decode(),
                      "previous": e.previous.hex(), "hash": e.chained.hex(),
                      "proof": [h.hex() for h in tree.inclusion_proof(e.leaf_index)],
                      "event": readable,
                      **({"erased": True} if str(e.uid) in erased else {})})
        summary.events += 1
        if kind == "candidacy":
            seen.add(e.uid)
    summary.candidacies = len(seen)
    writer.finish(sign)
    return summary


class _Lines:
    """Sealed lines (see `closer_verify.export`)."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.seal = SEAL_START
        self.count = 0

    def write(self, data: dict[str, Any]) -> None:
        self.count += 1
        body = orjson.dumps({**data, "line": self.count})[:-1]
        line, self.seal = seal_line(self.seal, body)
        self.out.write(line)

    def finish(self, sign: Callable[[bytes], bytes]) -> None:
        signature = sign(end_message(self.seal))
        self.write({"kind": "end", "lines": self.count + 1, "signature": signature.hex()})


CSV_COLUMNS = ("notification_id", "aggregate", "originator_id", "version", "type", "at",
               "actor", "on_behalf_of", "workspace", "policy", "policy_version", "rule",
               "hash", "data")


def csv_rows(export_lines: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    """The event lines of an export as flat rows for a spreadsheet (a view: the JSON
    Lines file is what proves them)."""
    for raw in export_lines:
        line = orjson.loads(raw)
        if line.get("kind") != "event":
            continue
        event = line.get("event") or {}
        decided = event.get("decided_by") or {}
        stamp = event.get("timestamp")
        data = {k: v for k, v in event.items()
                if k not in ("timestamp", "originator_topic", "actor", "on_behalf_of",
                             "workspace", "decided_by")}
        yield {"notification_id": line["notification_id"], "aggregate": line["aggregate"],
               "originator_id": line["originator_id"], "version": line["version"],
               "type": line["topic"].rpartition(".")[2],
               "at": stamp.get("_data_") if isinstance(stamp, dict) else stamp,
               "actor": event.get("actor"), "on_behalf_of": event.get("on_behalf_of"),
               "workspace": event.get("workspace"), "policy": decided.get("policy"),
               "policy_version": decided.get("version"), "rule": decided.get("rule"),
               "hash": line["hash"], "data": orjson.dumps(data).decode()}


def write_csv(export_lines: Iterator[bytes], out: IO[str]) -> int:
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    count = 0
    for row in csv_rows(export_lines):
        writer.writerow(row)
        count += 1
    return count
