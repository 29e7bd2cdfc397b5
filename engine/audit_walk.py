"""The hot loop of `engine.audit.verify`: each stored event's chain hash recomputed and
compared, and its Merkle leaf appended to the frontier, a page of the log at a time.

Compiled with mypyc (setup.py, `engine.GROUP`): the loop took 4.3 s against 5.1 s of CPU
over 1,001,738 events (1.17x; docs/performance.md, "Audit (issue 17)").  Its source is
what runs under ``CLOSER_PURE_PYTHON``; tests/test_audit.py holds its root equal to
closer_verify's definitions either way.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from typing import Any

_PACK_VT = struct.Struct(">QI").pack
_PACK_Q = struct.Struct(">Q").pack
RECORD = b"closer-event-v1\x00"
"""closer_verify.records' encoding of an event, written out here."""


def chain_rows(rows: list[Any], start: int, tips: dict[bytes, tuple[int, bytes]],
               ids: dict[Any, bytes], id_bytes: Callable[[Any], bytes],
               topics: dict[str, bytes], stack: list[bytes], size: int, stop_at: int,
               first_tip: Callable[[int, Any], tuple[int, bytes]],
               odd: Callable[..., bytes]) -> tuple[int, int]:
    """Walk ``rows`` (`select_audit_log`'s) from ``start``: an event that extends its
    aggregate's tip in ``tips`` with the hash recorded for it is chained here, any other
    goes to ``odd`` (which names it and returns its hash); each one's leaf joins
    ``stack``, the frontier of a tree of ``size`` leaves.  Stops after the row that makes
    the tree ``stop_at`` leaves (a checkpoint's size) or at the end: (next row, size)."""
    sha256 = hashlib.sha256
    pack_vt, pack_q, record = _PACK_VT, _PACK_Q, RECORD
    i, n = start, len(rows)
    while i < n:
        nid, raw, version, topic, state, prev, stored = rows[i]
        i += 1
        uid = ids.get(raw)
        if uid is None:
            uid = ids[raw] = id_bytes(raw)
        tip = tips.get(uid)
        if tip is None:
            tip = first_tip(version, prev)
        chained: bytes | None = None
        if version == tip[0] + 1:
            encoded = topics.get(topic)
            if encoded is None:
                encoded = topics[topic] = topic.encode()
            chained = sha256(b"".join((b"\x02", tip[1], record, uid,
                                       pack_vt(version, len(encoded)), encoded,
                                       pack_q(len(state)), state))).digest()
            if stored == chained:
                tips[uid] = (version, chained)
            else:
                chained = None
        if chained is None:
            chained = odd(nid, uid, version, topic, state, prev, stored, tip)
        stack.append(sha256(b"\x00" + pack_q(nid) + chained).digest())  # the leaf
        size += 1
        merged = size  # `Frontier.append`
        while not merged & 1:
            right = stack.pop()
            stack[-1] = sha256(b"\x01" + stack[-1] + right).digest()
            merged >>= 1
        if size == stop_at:
            break
    return i, size
