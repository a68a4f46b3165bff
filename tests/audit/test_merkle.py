"""The RFC 9162 tree against a reference written here from the RFC's definitions.

The reference functions below are direct transcriptions of RFC 9162 §2.1.1
(MTH), §2.1.3.1 (PATH) and §2.1.4.1 (PROOF/SUBPROOF) over byte strings, using
hashlib only, so a mistake in `broker.audit.merkle` cannot hide in both.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from broker.audit.merkle import (
    EMPTY_ROOT,
    ConsistencyProofError,
    InclusionProofError,
    MerkleAccumulator,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaves,
    verify_consistency,
    verify_inclusion,
)

MAX_SIZE = 40


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def ref_k(n: int) -> int:
    """The largest power of two smaller than n, by counting."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(data: list[bytes]) -> bytes:
    """MTH over the entries' bytes d(i), RFC 9162 §2.1.1."""
    if not data:
        return sha256(b"")
    if len(data) == 1:
        return sha256(b"\x00" + data[0])
    k = ref_k(len(data))
    return sha256(b"\x01" + ref_mth(data[:k]) + ref_mth(data[k:]))


def ref_path(m: int, data: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]), RFC 9162 §2.1.3.1."""
    if len(data) == 1:
        return []
    k = ref_k(len(data))
    if m < k:
        return [*ref_path(m, data[:k]), ref_mth(data[k:])]
    return [*ref_path(m - k, data[k:]), ref_mth(data[:k])]


def ref_subproof(m: int, data: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b), RFC 9162 §2.1.4.1."""
    n = len(data)
    if m == n:
        return [] if b else [ref_mth(data)]
    k = ref_k(n)
    if m <= k:
        return [*ref_subproof(m, data[:k], b), ref_mth(data[k:])]
    return [*ref_subproof(m - k, data[k:], False), ref_mth(data[:k])]


# Entry bytes: distinct, of varying length, including the empty string.
DATA = [bytes(range(i % 7)) + i.to_bytes(2, "big") * (i % 3) for i in range(MAX_SIZE)]
DATA[0] = b""
LEAVES = [sha256(b"\x00" + d) for d in DATA]

# The leaf inputs of the Certificate Transparency reference tests
# (certificate-transparency's merkle_tree_test.cc), with the roots of the
# trees of their first 1..8 leaves as published there.
CT_LEAF_INPUTS = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def flip(h: bytes) -> bytes:
    return bytes([h[0] ^ 1]) + h[1:]


def flipped_at(proof: list[bytes], i: int) -> list[bytes]:
    return [*proof[:i], flip(proof[i]), *proof[i + 1 :]]


def test_empty_tree_root_is_the_hash_of_the_empty_string() -> None:
    assert root_from_leaves([]) == EMPTY_ROOT == sha256(b"")
    assert MerkleAccumulator().root() == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, len(CT_ROOTS) + 1))
def test_roots_match_the_certificate_transparency_vectors(size: int) -> None:
    leaves = [sha256(b"\x00" + d) for d in CT_LEAF_INPUTS[:size]]
    assert root_from_leaves(leaves).hex() == CT_ROOTS[size - 1]
    assert ref_mth(CT_LEAF_INPUTS[:size]).hex() == CT_ROOTS[size - 1]


@pytest.mark.parametrize(
    ("entry", "jcs"),
    [
        # keys sorted, no whitespace, UTF-8 as is
        ({"b": 1, "a": "é"}, b'{"a":"\xc3\xa9","b":1}'),
        # 1.0 is the number 1 in JCS; nested objects sorted too
        (
            {"z": [1.0, None, True], "a": {"y": "x", "b": "c"}},
            b'{"a":{"b":"c","y":"x"},"z":[1,null,true]}',
        ),
    ],
)
def test_leaf_hash_is_sha256_of_zero_byte_and_canonical_json(
    entry: dict[str, object], jcs: bytes
) -> None:
    assert leaf_hash(entry) == sha256(b"\x00" + jcs)


def test_node_hash_is_sha256_of_one_byte_and_both_children() -> None:
    left, right = LEAVES[1], LEAVES[2]
    assert node_hash(left, right) == sha256(b"\x01" + left + right)
    # Domain separation (RFC 9162 §2.1.1): no node equals a leaf over the same bytes.
    assert node_hash(left, right) != sha256(b"\x00" + left + right)


@pytest.mark.parametrize("size", range(MAX_SIZE + 1))
def test_root_equals_the_rfc_definition_for_every_size(size: int) -> None:
    assert root_from_leaves(LEAVES[:size]) == ref_mth(DATA[:size])


def test_accumulator_root_equals_the_rfc_definition_after_every_append() -> None:
    accumulator = MerkleAccumulator()
    for size in range(1, MAX_SIZE + 1):
        accumulator.append(LEAVES[size - 1])
        assert accumulator.size == size
        assert accumulator.root() == ref_mth(DATA[:size])
        assert MerkleAccumulator.from_leaves(LEAVES[:size]).root() == accumulator.root()


@pytest.mark.parametrize("first", range(0, MAX_SIZE + 1, 3))
def test_bulk_extend_from_any_size_gives_the_rfc_root_at_every_size(first: int) -> None:
    # extend() hashes aligned subtrees level by level; every split must land
    # on the same frontier as appending leaf by leaf.
    for second in range(first, MAX_SIZE + 1):
        accumulator = MerkleAccumulator.from_leaves(LEAVES[:first])
        accumulator.extend(LEAVES[first:second])
        assert accumulator.size == second
        assert accumulator.root() == ref_mth(DATA[:second])
        accumulator.append(LEAVES[second % MAX_SIZE])
        assert accumulator.root() == ref_mth([*DATA[:second], DATA[second % MAX_SIZE]])


def test_bulk_extend_refuses_a_leaf_that_is_not_a_sha256_hash() -> None:
    accumulator = MerkleAccumulator()
    with pytest.raises(ValueError, match="32-byte leaf hash"):
        accumulator.extend([LEAVES[0], b"\x00" * 31])
    assert accumulator.size == 0


def test_accumulator_copy_does_not_share_state() -> None:
    original = MerkleAccumulator.from_leaves(LEAVES[:5])
    root = original.root()
    twin = original.copy()
    twin.append(LEAVES[5])
    assert (original.size, original.root()) == (5, root)
    assert twin.root() == ref_mth(DATA[:6])


@pytest.mark.parametrize("bad", [b"", b"\x00" * 31, b"\x00" * 33])
def test_accumulator_refuses_a_leaf_that_is_not_a_sha256_hash(bad: bytes) -> None:
    with pytest.raises(ValueError, match="32-byte"):
        MerkleAccumulator().append(bad)


def all_indexes() -> list[tuple[int, int]]:
    return [(index, size) for size in range(1, MAX_SIZE + 1) for index in range(size)]


def all_pairs() -> list[tuple[int, int]]:
    return [(first, second) for second in range(1, MAX_SIZE + 1) for first in range(1, second + 1)]


def test_inclusion_proofs_equal_the_rfc_path_and_verify_for_every_index_and_size() -> None:
    for index, size in all_indexes():
        proof = inclusion_proof(LEAVES, index, size)
        assert proof == ref_path(index, DATA[:size]), (index, size)
        verify_inclusion(
            leaf_hash=LEAVES[index], index=index, size=size, proof=proof, root=ref_mth(DATA[:size])
        )


# Each row changes one input of a valid inclusion check; all must fail.
INCLUSION_TAMPERS: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    ("other leaf", lambda a: a.update(leaf_hash=flip(a["leaf_hash"]))),
    ("other root", lambda a: a.update(root=flip(a["root"]))),
    ("index past the end", lambda a: a.update(index=a["size"])),
    ("negative index", lambda a: a.update(index=-1)),
    ("proof one hash too long", lambda a: a.update(proof=[*a["proof"], LEAVES[0]])),
]


@pytest.mark.parametrize(
    ("name", "tamper"), INCLUSION_TAMPERS, ids=[t[0] for t in INCLUSION_TAMPERS]
)
def test_tampered_inclusion_check_fails_for_every_index_and_size(
    name: str, tamper: Callable[[dict[str, Any]], None]
) -> None:
    for index, size in all_indexes():
        args: dict[str, Any] = {
            "leaf_hash": LEAVES[index],
            "index": index,
            "size": size,
            "proof": inclusion_proof(LEAVES, index, size),
            "root": ref_mth(DATA[:size]),
        }
        tamper(args)
        with pytest.raises(InclusionProofError):
            verify_inclusion(**args)


def test_inclusion_fails_when_any_proof_hash_is_changed_or_dropped() -> None:
    for index, size in all_indexes():
        proof = inclusion_proof(LEAVES, index, size)
        root = ref_mth(DATA[:size])
        variants = [flipped_at(proof, i) for i in range(len(proof))]
        variants += [proof[:-1]] if proof else []
        for variant in variants:
            with pytest.raises(InclusionProofError):
                verify_inclusion(
                    leaf_hash=LEAVES[index], index=index, size=size, proof=variant, root=root
                )


def test_another_index_cannot_reuse_a_leafs_proof() -> None:
    for index, size in all_indexes():
        proof = inclusion_proof(LEAVES, index, size)
        root = ref_mth(DATA[:size])
        for other in range(size):
            if other == index:
                continue
            with pytest.raises(InclusionProofError):
                verify_inclusion(
                    leaf_hash=LEAVES[index], index=other, size=size, proof=proof, root=root
                )


def test_consistency_proofs_equal_the_rfc_proof_and_verify_for_every_pair() -> None:
    for first, second in all_pairs():
        proof = consistency_proof(LEAVES, first, second)
        expected = [] if first == second else ref_subproof(first, DATA[:second], True)
        assert proof == expected, (first, second)
        verify_consistency(
            first=first,
            second=second,
            first_root=ref_mth(DATA[:first]),
            second_root=ref_mth(DATA[:second]),
            proof=proof,
        )


def test_consistency_fails_when_any_input_is_changed_for_every_pair() -> None:
    for first, second in all_pairs():
        proof = consistency_proof(LEAVES, first, second)
        first_root, second_root = ref_mth(DATA[:first]), ref_mth(DATA[:second])
        attempts = [
            (flip(first_root), second_root, proof),  # a different old tree
            (first_root, flip(second_root), proof),  # a different new tree (a rewrite)
            (first_root, second_root, [*proof, LEAVES[0]]),  # a hash too many
        ]
        attempts += [(first_root, second_root, proof[:-1])] if proof else []
        attempts += [(first_root, second_root, flipped_at(proof, i)) for i in range(len(proof))]
        for a_first_root, a_second_root, a_proof in attempts:
            with pytest.raises(ConsistencyProofError):
                verify_consistency(
                    first=first,
                    second=second,
                    first_root=a_first_root,
                    second_root=a_second_root,
                    proof=a_proof,
                )


def test_a_rewritten_prefix_is_not_consistent_with_the_old_root() -> None:
    rewritten = list(LEAVES)
    rewritten[3] = flip(rewritten[3])
    for first in range(4, 20):
        with pytest.raises(ConsistencyProofError):
            verify_consistency(
                first=first,
                second=20,
                first_root=root_from_leaves(LEAVES[:first]),
                second_root=root_from_leaves(rewritten[:20]),
                proof=consistency_proof(rewritten, first, 20),
            )


@pytest.mark.parametrize(
    ("first", "second", "first_root", "second_root", "proof"),
    [
        # every tree extends the empty one; nothing to prove
        (0, 5, EMPTY_ROOT, LEAVES[0], []),
        # a tree is consistent with itself
        (3, 3, LEAVES[4], LEAVES[4], []),
    ],
)
def test_trivial_consistency_holds_without_a_proof(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: list[bytes]
) -> None:
    verify_consistency(
        first=first, second=second, first_root=first_root, second_root=second_root, proof=proof
    )


@pytest.mark.parametrize(
    ("first", "second", "first_root", "second_root", "proof"),
    [
        # "size 0" must come with the empty root
        (0, 5, LEAVES[1], LEAVES[0], []),
        # ... and without a proof
        (0, 5, EMPTY_ROOT, LEAVES[0], [LEAVES[2]]),
        # same size, different root: a fork
        (3, 3, LEAVES[4], LEAVES[5], []),
        # same size needs no proof; one offered is suspect
        (3, 3, LEAVES[4], LEAVES[4], [LEAVES[2]]),
        # a tree cannot shrink
        (4, 3, LEAVES[4], LEAVES[5], [LEAVES[6]]),
        # RFC 9162 §2.1.4.2 step 1: first < second needs a non-empty proof
        (3, 4, LEAVES[4], LEAVES[5], []),
        # a proof hash that is not a SHA-256 output
        (3, 4, LEAVES[4], LEAVES[5], [b"short"]),
    ],
)
def test_malformed_consistency_claims_fail(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: list[bytes]
) -> None:
    with pytest.raises(ConsistencyProofError):
        verify_consistency(
            first=first, second=second, first_root=first_root, second_root=second_root, proof=proof
        )


def test_empty_consistency_proof_is_what_the_trivial_cases_get() -> None:
    assert consistency_proof(LEAVES, 0, 7) == []
    assert consistency_proof(LEAVES, 7, 7) == []


@pytest.mark.parametrize(
    ("index", "size"),
    [
        (0, 0),  # the empty tree has no leaves
        (5, 5),  # index must be below size
        (-1, 5),  # no negative positions
        (0, MAX_SIZE + 1),  # more leaves than given
    ],
)
def test_inclusion_proof_refuses_positions_outside_the_tree(index: int, size: int) -> None:
    with pytest.raises(ValueError, match="expected 0 <= index < size"):
        inclusion_proof(LEAVES, index, size)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (5, 4),  # a tree cannot shrink
        (-1, 4),  # no negative sizes
        (1, MAX_SIZE + 1),  # more leaves than given
    ],
)
def test_consistency_proof_refuses_sizes_outside_the_tree(first: int, second: int) -> None:
    with pytest.raises(ValueError, match="expected 0 <= first <= second"):
        consistency_proof(LEAVES, first, second)


@pytest.mark.parametrize(
    "kwargs",
    [
        # leaf hash of the wrong length
        {"leaf_hash": b"x", "index": 0, "size": 1, "proof": [], "root": LEAVES[0]},
        # root of the wrong length
        {"leaf_hash": LEAVES[0], "index": 0, "size": 1, "proof": [], "root": b""},
        # proof hash of the wrong length
        {"leaf_hash": LEAVES[0], "index": 0, "size": 2, "proof": [b"y" * 31], "root": LEAVES[0]},
    ],
)
def test_inclusion_check_refuses_hashes_of_the_wrong_length(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InclusionProofError, match="32-byte"):
        verify_inclusion(**kwargs)
