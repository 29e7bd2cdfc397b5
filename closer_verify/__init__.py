"""What an outsider needs to check Closer's audit proofs, and nothing of Closer itself.

This package imports only the standard library and `cryptography`: an auditor can copy
it beside an export and run ``python -m closer_verify EXPORT --public-key KEY`` without
the store, the engine or a database.  `engine.audit` builds on the same functions, so
what the store proves and what the auditor checks are one definition.

- `closer_verify.merkle`: RFC 9162's Merkle tree hash, inclusion and consistency proofs.
- `closer_verify.records`: the canonical encoding of a stored event, the per-aggregate
  hash chain, the log's leaves, and signed tree heads (Ed25519).
- `closer_verify.export`: the export file's lines, and `check_export`.
"""
