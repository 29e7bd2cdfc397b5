"""What is hashed and signed: a stored event's canonical encoding, the hash chain of each
aggregate's events, the log's Merkle leaves, and signed tree heads.

The hash covers what is *stored* (originator id, version, topic, state bytes as written),
not a decoded or re-encoded view, so it verifies whatever the state holds (plain JSON,
or ciphertext once personal data is encrypted) and after anything a reader does with it.

- ``record`` = "closer-event-v1" 0x00 || originator id (16 bytes) || version (8, big
  endian) || topic length (4) || topic (UTF-8) || state length (8) || state.
- event hash = SHA-256(0x02 || predecessor's event hash || record); the first event's
  predecessor is 32 zero bytes.  0x02 keeps a chain hash apart from the Merkle tree's
  0x00 leaves and 0x01 nodes.
- Merkle leaf data = notification id (8, big endian) || event hash, so the tree fixes
  each event's place in the log as well as its content and its chain.
- tree head, signed with Ed25519: "closer-tree-head-v1" 0x00 || tree size (8) ||
  root (32) || timestamp in ms since the epoch (8) || last notification id (8).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from closer_verify.merkle import ProofError

GENESIS = bytes(32)
"""The predecessor hash of an aggregate's first event."""
_RECORD = b"closer-event-v1\x00"
_HEAD = b"closer-tree-head-v1\x00"


def encode_record(originator_id: UUID, version: int, topic: str, state: bytes) -> bytes:
    """The canonical bytes of one stored event (see the module docstring)."""
    topic_bytes = topic.encode()
    return b"".join((_RECORD, originator_id.bytes, struct.pack(">QI", version, len(topic_bytes)),
                     topic_bytes, struct.pack(">Q", len(state)), state))


def event_hash(previous: bytes, originator_id: UUID, version: int, topic: str,
               state: bytes) -> bytes:
    """The chain hash of a stored event whose predecessor's chain hash is ``previous``."""
    return hashlib.sha256(b"\x02" + previous
                          + encode_record(originator_id, version, topic, state)).digest()


def raw_event_hash(previous: bytes, originator: bytes, version: int, topic: bytes,
                   state: bytes) -> bytes:
    """`event_hash` from the id's 16 bytes and the topic's UTF-8, in one join: what a
    walk over a million events calls (`tests/test_audit_proofs.py` holds the two equal)."""
    return _sha256(b"".join((b"\x02", previous, _RECORD, originator,
                             _pack_vt(version, len(topic)), topic, _pack_q(len(state)),
                             state))).digest()


def log_leaf(notification_id: int, chained: bytes) -> bytes:
    """The Merkle leaf hash of the event at ``notification_id`` with chain hash ``chained``."""
    return _sha256(b"\x00" + _pack_q(notification_id) + chained).digest()


_sha256 = hashlib.sha256
_pack_vt = struct.Struct(">QI").pack
_pack_q = struct.Struct(">Q").pack


@dataclass(frozen=True, slots=True)
class TreeHead:
    """A signed statement that the log's first ``size`` events hash to ``root``."""

    size: int
    root: bytes
    timestamp_ms: int
    last_notification_id: int
    signature: bytes = b""

    def message(self) -> bytes:
        """The bytes signed."""
        return (_HEAD + struct.pack(">Q", self.size) + self.root
                + struct.pack(">QQ", self.timestamp_ms, self.last_notification_id))

    def as_dict(self) -> dict[str, object]:
        return {"size": self.size, "root": self.root.hex(), "timestamp_ms": self.timestamp_ms,
                "last_notification_id": self.last_notification_id,
                "signature": self.signature.hex()}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> TreeHead:
        try:
            return cls(int(data["size"]), bytes.fromhex(str(data["root"])),  # type: ignore[call-overload]
                       int(data["timestamp_ms"]), int(data["last_notification_id"]),  # type: ignore[call-overload]
                       bytes.fromhex(str(data["signature"])))
        except (KeyError, TypeError, ValueError) as error:
            raise ProofError(f"not a tree head ({type(error).__name__}: {error})") from None

    def verify(self, public_key: Ed25519PublicKey) -> None:
        """Raise `ProofError` unless ``public_key`` signed this head."""
        try:
            public_key.verify(self.signature, self.message())
        except InvalidSignature:
            raise ProofError(f"the tree head of size {self.size} is not signed by this "
                             "key") from None


def public_key_from_hex(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key from its 32 raw bytes in hex (as `closer audit public-key`
    prints it)."""
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text.strip()))
    except ValueError as error:
        raise ProofError(f"not an Ed25519 public key in hex: {error}") from None
