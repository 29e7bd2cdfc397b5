"""closer_verify's proofs against RFC 9162's own definitions, and the chain and heads.

The reference functions below are RFC 9162's recursive definitions (2.1.1 MTH, 2.1.3.1
PATH, 2.1.4.1 PROOF/SUBPROOF) written out literally over lists; the module under test
computes them from stored levels and verifies them with the RFC's iterative algorithms.
"""

from __future__ import annotations

import hashlib
from uuid import UUID

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from closer_verify.merkle import (
    EMPTY_ROOT,
    Frontier,
    MerkleTree,
    ProofError,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)
from closer_verify.records import (
    GENESIS,
    TreeHead,
    encode_record,
    event_hash,
    log_leaf,
    raw_event_hash,
)


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = _k(n)
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:])]
    return ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return ref_subproof(m, d[:k], b) + [ref_mth(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [ref_mth(d[:k])]


def ref_proof(m: int, d: list[bytes]) -> list[bytes]:
    return [] if m in (0, len(d)) else ref_subproof(m, d, True)


def _data(n: int) -> list[bytes]:
    return [f"leaf {i}".encode() for i in range(n)]


@pytest.mark.parametrize("n", range(0, 40))
def test_roots_and_proofs_match_the_rfc_definitions(n: int) -> None:
    data = _data(n)
    leaves = [leaf_hash(x) for x in data]
    tree = MerkleTree(leaves)
    assert tree.root() == root_of(leaves) == ref_mth(data)
    for m in range(n):
        assert tree.inclusion_proof(m) == ref_path(m, data)
    for m in range(n + 1):
        assert tree.consistency_proof(m) == ref_proof(m, data)
        assert tree.root(m) == ref_mth(data[:m])


def test_empty_tree_and_known_vectors() -> None:
    assert root_of([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    # Two leaves: SHA-256(0x01 || SHA-256(0x00||a) || SHA-256(0x00||b)), by hand.
    a, b = hashlib.sha256(b"\x00a").digest(), hashlib.sha256(b"\x00b").digest()
    assert root_of([leaf_hash(b"a"), leaf_hash(b"b")]) == hashlib.sha256(b"\x01" + a + b).digest()
    assert node_hash(a, b) != node_hash(b, a)


sizes = st.integers(min_value=1, max_value=300)


@settings(max_examples=150, deadline=None)
@given(n=sizes, data=st.data())
def test_every_inclusion_proof_verifies_and_any_tampered_one_fails(n: int,
                                                                  data: st.DataObject) -> None:
    leaves = [leaf_hash(x) for x in _data(n)]
    tree = MerkleTree(leaves)
    root = tree.root()
    m = data.draw(st.integers(0, n - 1))
    proof = tree.inclusion_proof(m)
    verify_inclusion(leaves[m], m, n, proof, root)
    # Another leaf, another index, another size, a flipped bit, a dropped or added hash.
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(b"not there"), m, n, proof, root)
    if n > 1:
        other = data.draw(st.integers(0, n - 1).filter(lambda i: i != m))
        with pytest.raises(ProofError):
            verify_inclusion(leaves[m], other, n, proof, root)
        with pytest.raises(ProofError):
            verify_inclusion(leaves[other], m, n, proof, root)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1))
        bit = data.draw(st.integers(0, 255))
        bad = list(proof)
        bad[i] = bytes(b ^ (1 << (bit % 8)) if j == bit // 8 else b
                       for j, b in enumerate(bad[i]))
        with pytest.raises(ProofError):
            verify_inclusion(leaves[m], m, n, bad, root)
        with pytest.raises(ProofError):
            verify_inclusion(leaves[m], m, n, proof[:-1], root)
    with pytest.raises(ProofError):
        verify_inclusion(leaves[m], m, n, [*proof, root], root)
    # (A proof checks its path's shape for the size given, and the root binds the rest:
    # the size itself is bound by the signed tree head, see test_tree_heads_...)


@settings(max_examples=150, deadline=None)
@given(n=sizes, data=st.data())
def test_consistency_between_any_m_and_n_and_tampered_proofs_fail(n: int,
                                                                 data: st.DataObject) -> None:
    leaves = [leaf_hash(x) for x in _data(n)]
    tree = MerkleTree(leaves)
    m = data.draw(st.integers(0, n))
    proof = tree.consistency_proof(m)
    verify_consistency(m, tree.root(m), n, tree.root(), proof)
    if 0 < m < n:
        # A rewritten old leaf: the earlier head is no prefix of this tree.
        other = MerkleTree([leaf_hash(b"rewritten")] + leaves[1:])
        with pytest.raises(ProofError):
            verify_consistency(m, tree.root(m), n, other.root(), proof)
        with pytest.raises(ProofError):
            verify_consistency(m, other.root(m), n, tree.root(), proof)
        i = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[i] = hashlib.sha256(bad[i]).digest()
        with pytest.raises(ProofError):
            verify_consistency(m, tree.root(m), n, tree.root(), bad)
        with pytest.raises(ProofError):
            verify_consistency(m, tree.root(m), n, tree.root(), proof[:-1])
        with pytest.raises(ProofError):
            verify_consistency(m, tree.root(m), n, tree.root(), [*proof, EMPTY_ROOT])


@settings(max_examples=100, deadline=None)
@given(n=st.integers(0, 200), cut=st.data())
def test_a_frontier_stored_part_way_continues_to_the_same_root(n: int,
                                                              cut: st.DataObject) -> None:
    leaves = [leaf_hash(x) for x in _data(n)]
    m = cut.draw(st.integers(0, n))
    first = Frontier()
    first.extend(leaves[:m])
    assert first.root() == ref_mth(_data(m))
    resumed = Frontier(first.size, first.hashes)
    resumed.extend(leaves[m:])
    assert resumed.root() == ref_mth(_data(n))


def test_a_frontier_with_the_wrong_number_of_hashes_is_refused() -> None:
    with pytest.raises(ProofError, match="3 hashes"):
        Frontier(7, [EMPTY_ROOT])


ID = UUID("12345678-1234-5678-1234-567812345678")


def test_the_record_encoding_is_unambiguous() -> None:
    # Moving a byte from the topic to the state changes the encoding (lengths are in it).
    assert encode_record(ID, 1, "a.b", b"{}") != encode_record(ID, 1, "a.", b"b{}")
    assert encode_record(ID, 1, "t", b"s") != encode_record(ID, 2, "t", b"s")
    first = event_hash(GENESIS, ID, 1, "t", b"s")
    second = event_hash(first, ID, 2, "t", b"s")
    assert second != event_hash(GENESIS, ID, 2, "t", b"s")  # the predecessor is in it
    assert log_leaf(1, first) != log_leaf(2, first)  # and the log position in the leaf


def test_tree_heads_verify_only_with_their_key_and_content() -> None:
    key = Ed25519PrivateKey.generate()
    head = TreeHead(5, EMPTY_ROOT, 1_700_000_000_000, 9)
    signed = TreeHead(5, EMPTY_ROOT, 1_700_000_000_000, 9, key.sign(head.message()))
    signed.verify(key.public_key())
    assert TreeHead.from_dict(signed.as_dict()) == signed
    with pytest.raises(ProofError, match="not signed"):
        signed.verify(Ed25519PrivateKey.generate().public_key())
    forged = TreeHead(6, EMPTY_ROOT, 1_700_000_000_000, 9, signed.signature)
    with pytest.raises(ProofError, match="not signed"):
        forged.verify(key.public_key())


@settings(max_examples=100, deadline=None)
@given(version=st.integers(1, 2**40), topic=st.text(max_size=60), state=st.binary(max_size=300),
       previous=st.binary(min_size=32, max_size=32), nid=st.integers(0, 2**62))
def test_the_fast_hashes_are_the_defined_ones(version: int, topic: str, state: bytes,
                                             previous: bytes, nid: int) -> None:
    assert raw_event_hash(previous, ID.bytes, version, topic.encode(), state) == \
        hashlib.sha256(b"\x02" + previous + encode_record(ID, version, topic, state)).digest()
    chained = event_hash(previous, ID, version, topic, state)
    assert log_leaf(nid, chained) == leaf_hash(nid.to_bytes(8, "big") + chained)
