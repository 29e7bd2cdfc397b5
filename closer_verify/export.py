"""An audit export, line by line, and `check_export`: everything checked offline.

The file is JSON Lines, each line an object with ``kind``, ``line`` (its number from 1)
and, last, ``seal``:

- ``header``: the export's id, the public key, the signed tree head the proofs are
  against, and what was asked (candidacy, time range).
- ``checkpoint``: an earlier signed tree head with its consistency proof to the header's
  (RFC 9162): the log only grew between them.
- ``event``: one stored event as stored (originator id, version, topic, ``state_b64``),
  its predecessor's chain hash and its own, its notification id and leaf index with an
  inclusion proof, and ``event``: the state decoded for reading (actor, on-behalf-of,
  policy version and rule, message bodies...), checked against the stored bytes.
- ``end``: how many lines, and an Ed25519 signature over the last seal.

``seal`` = SHA-256(previous line's seal || the line's bytes before ``,"seal":``), the
header's previous seal being ``"closer-export-v1" 0x00``: a changed, removed, reordered
or spliced-in line breaks the seals from that line on, and the signature in ``end``
binds the last seal to the key, so a line cannot be changed and all seals recomputed.
Every refusal names the line.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from closer_verify.merkle import ProofError, verify_consistency, verify_inclusion
from closer_verify.records import TreeHead, event_hash, log_leaf, public_key_from_hex

FORMAT = 1
SEAL_START = b"closer-export-v1\x00"
_SEAL_KEY = b',"seal":"'


class ExportRefused(ValueError):
    """The export does not verify; ``line`` names the first line found wrong."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


def seal_line(previous: bytes, body: bytes) -> tuple[bytes, bytes]:
    """``body`` (a JSON object's bytes, without its closing brace) completed with its
    seal, and the seal."""
    seal = hashlib.sha256(previous + body).digest()
    return body + _SEAL_KEY + seal.hex().encode() + b'"}\n', seal


def end_message(seal: bytes) -> bytes:
    """What the ``end`` line's signature signs."""
    return SEAL_START + b"end\x00" + seal


@dataclass
class ExportCheck:
    """What `check_export` verified."""

    events: int = 0
    checkpoints: int = 0
    tree_size: int = 0
    candidacies: set[str] = field(default_factory=set)
    public_key: str = ""
    key_pinned: bool = False


def check_export(lines: Iterable[bytes], public_key: Ed25519PublicKey | None = None
                 ) -> ExportCheck:
    """Verify an export, raising `ExportRefused` naming the first bad line.  Without
    ``public_key`` the header's key is used: the export is then only proven to be
    consistent with itself (see `ExportCheck.key_pinned`)."""
    check = ExportCheck(key_pinned=public_key is not None)
    previous = SEAL_START
    head: TreeHead | None = None
    key = public_key
    tips: dict[UUID, tuple[int, bytes]] = {}
    number = 0
    ended = False
    for number, raw in enumerate(lines, start=1):
        if ended:
            raise ExportRefused(number, "a line after the end line")
        line = raw.rstrip(b"\r\n")
        cut = line.rfind(_SEAL_KEY)
        if cut < 0 or not line.endswith(b'"}'):
            raise ExportRefused(number, "not a sealed export line")
        body = line[:cut]
        prior = previous
        expected = hashlib.sha256(previous + body).hexdigest().encode()
        if line[cut + len(_SEAL_KEY):-2] != expected:
            raise ExportRefused(number, "its seal does not follow the line before it: this "
                                        "line was changed, or a line before it was removed, "
                                        "moved or taken from another export")
        previous = bytes.fromhex(expected.decode())
        try:
            data = json.loads(body + b"}")
        except ValueError as error:
            raise ExportRefused(number, f"not JSON ({error})") from None
        if not isinstance(data, dict):
            raise ExportRefused(number, "not a JSON object")
        if data.get("line") != number:
            raise ExportRefused(number, f"says it is line {data.get('line')}")
        kind = data.get("kind")
        try:
            if number == 1:
                if kind != "header" or data.get("format") != FORMAT:
                    raise ProofError(f"the first line must be an export header of format "
                                     f"{FORMAT}")
                header_key = public_key_from_hex(str(data.get("public_key", "")))
                check.public_key = str(data["public_key"])
                if key is None:
                    key = header_key
                elif header_key.public_bytes_raw() != key.public_bytes_raw():
                    raise ProofError("the export names another public key than the one given")
                head = TreeHead.from_dict(data.get("tree_head") or {})
                head.verify(key)
                check.tree_size = head.size
            elif head is None or key is None:  # pragma: no cover - line 1 sets them
                raise ProofError("no header")
            elif kind == "checkpoint":
                _check_checkpoint(data, head, key)
                check.checkpoints += 1
            elif kind == "event":
                _check_event(data, head, tips)
                check.events += 1
                if data.get("aggregate") == "candidacy":
                    check.candidacies.add(str(data["originator_id"]))
            elif kind == "end":
                if data.get("lines") != number:
                    raise ProofError(f"says the export has {data.get('lines')} lines")
                try:
                    key.verify(bytes.fromhex(str(data.get("signature", ""))),
                               end_message(prior))
                except Exception:
                    raise ProofError("the export's signature does not verify with the "
                                     "key") from None
                ended = True
            else:
                raise ProofError(f"unknown kind {kind!r}")
        except ProofError as error:
            raise ExportRefused(number, str(error)) from None
        except (KeyError, TypeError, ValueError) as error:
            raise ExportRefused(number, f"malformed {kind} line ({type(error).__name__}: "
                                        f"{error})") from None
    if not ended:
        raise ExportRefused(number + 1, "the end line is missing: the export was cut short")
    return check


def _check_checkpoint(data: dict[str, Any], head: TreeHead, key: Ed25519PublicKey) -> None:
    earlier = TreeHead.from_dict(data["tree_head"])
    earlier.verify(key)
    proof = [bytes.fromhex(h) for h in data["consistency"]]
    verify_consistency(earlier.size, earlier.root, head.size, head.root, proof)


def _check_event(data: dict[str, Any], head: TreeHead,
                 tips: dict[UUID, tuple[int, bytes]]) -> None:
    uid = UUID(str(data["originator_id"]))
    version = int(data["version"])
    state = base64.b64decode(data["state_b64"], validate=True)
    previous = bytes.fromhex(data["previous"])
    chained = event_hash(previous, uid, version, str(data["topic"]), state)
    if chained.hex() != data["hash"]:
        raise ProofError(f"event {uid} version {version}: its hash is not the hash of what "
                         "it says is stored")
    tip = tips.get(uid)
    if tip is not None and tip[0] + 1 == version and tip[1] != previous:
        raise ProofError(f"event {uid} version {version} does not follow version {tip[0]} "
                         "of this export")
    if tip is not None and version <= tip[0]:
        raise ProofError(f"event {uid} version {version} comes after version {tip[0]}")
    tips[uid] = (version, chained)
    proof: Sequence[bytes] = [bytes.fromhex(h) for h in data["proof"]]
    verify_inclusion(log_leaf(int(data["notification_id"]), chained), int(data["leaf_index"]),
                     head.size, proof, head.root)
    if "event" in data and data["event"] is not None:
        try:
            decoded = json.loads(state)
        except ValueError:
            raise ProofError("its readable event is given but the stored state is not "
                             "JSON") from None
        if decoded != data["event"]:
            raise ProofError(f"event {uid} version {version}: its readable event is not the "
                             "stored one")
