"""``python -m closer_verify EXPORT [--public-key HEX]``: check an audit export offline."""

from __future__ import annotations

import argparse
import sys

from closer_verify.export import ExportRefused, check_export
from closer_verify.merkle import ProofError
from closer_verify.records import public_key_from_hex


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="closer_verify", description=__doc__)
    parser.add_argument("export", help="the JSON Lines file `closer audit export` wrote")
    parser.add_argument("--public-key", help="the store's public key in hex (closer audit "
                                             "public-key); without it, the export's own")
    args = parser.parse_args(argv)
    return run(args.export, args.public_key)


def run(path: str, public_key: str | None) -> int:
    """Check ``path``; print the verdict; 0 when it verifies, 1 when it is refused."""
    try:
        key = public_key_from_hex(public_key) if public_key else None
        with open(path, "rb") as lines:
            check = check_export(lines, key)
    except (ExportRefused, ProofError) as error:
        print(f"refused: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"refused: {path}: {error.strerror}", file=sys.stderr)
        return 1
    print(f"verified: {check.events} events of {len(check.candidacies)} candidacies, each "
          f"proven in the signed tree of {check.tree_size}; {check.checkpoints} earlier "
          "checkpoints proven consistent with it")
    if not check.key_pinned:
        print(f"warning: checked with the export's own key {check.public_key}: compare it "
              "with the store's (closer audit public-key), or pass --public-key")
    return 0


if __name__ == "__main__":
    sys.exit(main())
