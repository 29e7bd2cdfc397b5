"""The audit's Ed25519 signing key: one file (``CLOSER_AUDIT_KEY_FILE``), made on first
use with owner-only permissions, never printed nor exported (its public half is)."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from engine.errors import InvalidInput


def signing_key(path: str | Path, *, create: bool = True) -> Ed25519PrivateKey:
    """The key in ``path``; a new one written there first if there is none (``create``)."""
    path = Path(path)
    if not path.exists():
        if not create:
            raise InvalidInput("CLOSER_AUDIT_KEY_FILE", f"{path}: no audit key here (closer "
                                                        "audit checkpoint makes one)")
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # O_EXCL: two processes starting together keep one key, the first one's.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return signing_key(path, create=False)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        return key
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as error:
        raise InvalidInput("CLOSER_AUDIT_KEY_FILE", f"{path}: not a PEM private key "
                                                    f"({error})") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise InvalidInput("CLOSER_AUDIT_KEY_FILE", f"{path}: not an Ed25519 key")
    return loaded


def public_hex(key: Ed25519PrivateKey) -> str:
    """The public key's 32 raw bytes in hex (what auditors are given)."""
    return key.public_key().public_bytes_raw().hex()
