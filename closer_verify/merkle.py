"""RFC 9162 (Certificate Transparency 2.0), section 2.1: the Merkle tree hash over a list
of leaves, inclusion proofs and consistency proofs, with SHA-256.

Leaves are hashed with a 0x00 prefix and interior nodes with 0x01, so a leaf can never
be passed off as a node (the second-preimage attack the prefixes exist for).  The
verifiers are RFC 9162's algorithms 2.1.3.2 and 2.1.4.2 step by step; the proofs are
its PATH and PROOF/SUBPROOF definitions (2.1.3.1, 2.1.4.1), computed from stored levels.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}): the hash of an empty tree."""


class ProofError(ValueError):
    """A proof that does not verify (its reason in one line)."""


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """k: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The right edge of a growing tree: the roots of its perfect subtrees, largest
    first (at most log2(n) hashes).  Appending a leaf and asking the root cost O(log n),
    so a log of a million leaves is hashed in one pass with no list of its leaves, and a
    stored frontier lets a later pass start where an earlier one stopped."""

    __slots__ = ("size", "_stack")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        if bin(size).count("1") != len(hashes):
            raise ProofError(f"a frontier of {size} leaves has {bin(size).count('1')} "
                             f"hashes, not {len(hashes)}")
        self.size = size
        self._stack = list(hashes)

    @property
    def hashes(self) -> list[bytes]:
        """The perfect subtrees' roots, largest (leftmost) first."""
        return list(self._stack)

    def append(self, leaf: bytes) -> None:
        """Add a leaf's hash (`leaf_hash` of its data)."""
        self.size += 1
        stack = self._stack
        stack.append(leaf)
        size = self.size
        while not size & 1:  # each trailing zero bit: two equal subtrees to merge
            right = stack.pop()
            stack[-1] = node_hash(stack[-1], right)
            size >>= 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """MTH of the leaves so far (RFC 9162 splits at the largest power of two, so the
        right edge folds from the smallest subtree up)."""
        if not self._stack:
            return EMPTY_ROOT
        root = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            root = node_hash(left, root)
        return root


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH of ``leaves`` (leaf hashes)."""
    frontier = Frontier()
    frontier.extend(leaves)
    return frontier.root()


class MerkleTree:
    """A tree over known leaf hashes, kept level by level, answering proofs for any
    tree size up to its own (an earlier checkpoint's, too)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.levels: list[list[bytes]] = [list(leaves)]
        while len(self.levels[-1]) > 1:
            below = self.levels[-1]
            self.levels.append([node_hash(below[i], below[i + 1])
                                for i in range(0, len(below) - 1, 2)])

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def _mth(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) from the stored levels (a perfect, aligned range is one node)."""
        n = hi - lo
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and lo % n == 0:
            return self.levels[n.bit_length() - 1][lo // n]
        k = _split(n)
        return node_hash(self._mth(lo, lo + k), self._mth(lo + k, hi))

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (all of them by default)."""
        return self._mth(0, self._size(size))

    def _size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ProofError(f"tree size {size} is not between 0 and {self.size}")
        return size

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) (RFC 9162, 2.1.3.1)."""
        size = self._size(size)
        if not 0 <= index < size:
            raise ProofError(f"leaf {index} is not in a tree of {size}")
        return self._path(index, 0, size)

    def _path(self, m: int, lo: int, hi: int) -> list[bytes]:
        n = hi - lo
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return self._path(m, lo, lo + k) + [self._mth(lo + k, hi)]
        return self._path(m - k, lo + k, hi) + [self._mth(lo, lo + k)]

    def consistency_proof(self, old_size: int, size: int | None = None) -> list[bytes]:
        """PROOF(old_size, D[0:size]) (RFC 9162, 2.1.4.1); empty when old_size is 0 or
        equals size."""
        size = self._size(size)
        if not 0 <= old_size <= size:
            raise ProofError(f"tree size {old_size} is not between 0 and {size}")
        if old_size in (0, size):
            return []
        return self._subproof(old_size, 0, size, True)

    def _subproof(self, m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if whole else [self._mth(lo, hi)]
        k = _split(n)
        if m <= k:
            return self._subproof(m, lo, lo + k, whole) + [self._mth(lo + k, hi)]
        return self._subproof(m - k, lo + k, hi, False) + [self._mth(lo, lo + k)]


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes],
                     root: bytes) -> None:
    """RFC 9162, 2.1.3.2: raise `ProofError` unless ``leaf`` (a leaf hash) is at
    ``index`` of the tree of ``size`` leaves whose root is ``root``."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of {size}")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if fn & 1 or fn == 0:
                        break
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the inclusion proof is shorter than the tree is deep")
    if r != root:
        raise ProofError("the inclusion proof does not lead to the tree head's root")


def verify_consistency(old_size: int, old_root: bytes, size: int, root: bytes,
                       proof: Sequence[bytes]) -> None:
    """RFC 9162, 2.1.4.2: raise `ProofError` unless the tree of ``old_size`` leaves with
    root ``old_root`` is a prefix of the tree of ``size`` leaves with root ``root``."""
    if not 0 <= old_size <= size:
        raise ProofError(f"tree size {old_size} is larger than {size}")
    if old_size == size:
        if proof:
            raise ProofError("a proof between equal sizes must be empty")
        if old_root != root:
            raise ProofError("the two heads have the same size and different roots")
        return
    if old_size == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("the consistency proof is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root starts the path
        path.insert(0, old_root)
    fn, sn = old_size - 1, size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is longer than needed")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if fn & 1 or fn == 0:
                        break
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the consistency proof is shorter than needed")
    if fr != old_root:
        raise ProofError("the consistency proof does not lead to the earlier root")
    if sr != root:
        raise ProofError("the consistency proof does not lead to the later root")
