"""The RFC 9162 (Certificate Transparency v2) Merkle tree over audit entries.

What it does: hashes entries into leaves, leaves into a tree head, and makes
and checks the two proofs of RFC 9162 §2.1: inclusion (this entry is in the
tree of that size) and consistency (the tree of size `second` extends the
tree of size `first` without rewriting it). `MerkleAccumulator` keeps only
the roots of the perfect subtrees on the right edge (a "compact range"), so
appending a leaf and computing the root cost O(log n) hashes.

What it does not: any I/O, signing or storage. Callers hand in leaf hashes
and get back hashes or an exception (style.md §1; sigstore's
`_internal/merkle.py` has the same shape).

Why these hashes: the 0x00/0x01 prefixes separate leaves from interior nodes
(RFC 9162 §2.1.1), so no interior node can be passed off as an entry
(second-preimage attack on unprefixed trees). The entry bytes are RFC 8785
canonical JSON, so anyone can recompute a leaf from the exported entry.

Proof generation takes the full list of leaf hashes and costs O(n) hashes,
or a `RangeHasher` that knows subtree roots (`subtrees.py`) and costs
O(log n); the algorithms are the RFC's recursive definitions, kept literal
so that a reader can check them line by line against the text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from broker.canonical import canonical_json
from broker.errors import TrustError

HASH_SIZE = 32  # SHA-256, the hash RFC 9162 §2.1 uses for these trees
LEAF_PREFIX = b"\x00"  # RFC 9162 §2.1.1: MTH({d(0)}) = HASH(0x00 || d(0))
NODE_PREFIX = b"\x01"  # RFC 9162 §2.1.1: HASH(0x01 || MTH(left) || MTH(right))
EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 9162 §2.1.1: MTH({}) = HASH()


class InclusionProofError(TrustError):
    """An inclusion proof does not lead from the leaf to the given root."""


class ConsistencyProofError(TrustError):
    """A consistency proof does not show that one tree extends the other."""


def leaf_hash(entry: Mapping[str, Any]) -> bytes:
    """SHA-256(0x00 || JCS(entry)): the leaf an audit entry becomes."""
    return hashlib.sha256(LEAF_PREFIX + canonical_json(dict(entry))).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): an interior node."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162 §2.1.1: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class RangeHasher(Protocol):
    """Leaves known by subtree roots (`subtrees.ProofNodes`), for proofs without every leaf."""

    def __len__(self) -> int: ...

    def mth(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) per RFC 9162 §2.1.1."""
        ...


# The leaves a proof is made from: all of them, or a RangeHasher standing in.
Leaves = Sequence[bytes] | RangeHasher


def _mth(leaves: Leaves, start: int, end: int) -> bytes:
    """MTH(D[start:end]) per RFC 9162 §2.1.1, without copying slices."""
    if not isinstance(leaves, Sequence):
        return leaves.mth(start, end)
    n = end - start
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[start]
    k = _largest_power_of_two_below(n)
    return node_hash(_mth(leaves, start, start + k), _mth(leaves, start + k, end))


def _require_hash_sizes(
    error: type[TrustError], named: Sequence[tuple[str, bytes]], proof: Sequence[bytes]
) -> None:
    """Every hash a verifier is handed must be a SHA-256 output, or the proof fails."""
    for what, value in [*named, *(("proof hash", p) for p in proof)]:
        if len(value) != HASH_SIZE:
            raise error(f"expected a {HASH_SIZE}-byte {what}, got {len(value)} bytes")


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ValueError(f"expected a {HASH_SIZE}-byte {what}, got {len(value)} bytes")


def root_from_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    """The Merkle Tree Hash of a list of leaf hashes (RFC 9162 §2.1.1)."""
    return _mth(leaf_hashes, 0, len(leaf_hashes))


class MerkleAccumulator:
    """An append-only tree that remembers only its right-edge subtree roots.

    `_frontier` holds one root per set bit of `size`, largest subtree first.
    Appending merges equal-sized subtrees like a binary carry; the root folds
    the frontier from the right, which is exactly MTH's split at the largest
    power of two (RFC 9162 §2.1.1).
    """

    def __init__(self) -> None:
        self._frontier: list[bytes] = []
        self._size = 0

    @classmethod
    def from_leaves(cls, leaf_hashes: Iterable[bytes]) -> MerkleAccumulator:
        accumulator = cls()
        accumulator.extend(leaf_hashes)
        return accumulator

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf: bytes) -> None:
        _check_hash(leaf, "leaf hash")
        node = leaf
        carry = self._size
        # Every trailing 1 bit of the old size is a perfect subtree of the
        # same size as `node`'s; merge them, like adding one in binary.
        while carry & 1:
            node = node_hash(self._frontier.pop(), node)
            carry >>= 1
        self._frontier.append(node)
        self._size += 1

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append many leaves: whole aligned subtrees at once, level by level.

        The same tree as appending one by one (tests/audit/test_merkle.py
        checks), without the per-leaf carry loop: a verifier of millions of
        entries spends its time hashing, not interpreting.
        """
        leaves = list(leaf_hashes)
        for leaf in leaves:
            _check_hash(leaf, "leaf hash")
        start, count = 0, len(leaves)
        while start < count:
            # The largest perfect subtree that starts at the current size
            # (aligned: size is a multiple of it) and fits in what is left.
            height = (count - start).bit_length() - 1
            if self._size:
                height = min(height, (self._size & -self._size).bit_length() - 1)
            width = 1 << height
            self._push(perfect_root(leaves[start : start + width]), height)
            start += width

    def _push(self, node: bytes, height: int) -> None:
        """Append the root of a perfect subtree of 2**height leaves; size must be aligned."""
        carry = self._size >> height
        while carry & 1:
            node = node_hash(self._frontier.pop(), node)
            carry >>= 1
        self._frontier.append(node)
        self._size += 1 << height

    def root(self) -> bytes:
        if not self._frontier:
            return EMPTY_ROOT
        root = self._frontier[-1]
        for subtree in reversed(self._frontier[:-1]):
            root = node_hash(subtree, root)
        return root

    def copy(self) -> MerkleAccumulator:
        twin = MerkleAccumulator()
        twin._frontier = list(self._frontier)
        twin._size = self._size
        return twin


def perfect_root(leaves: list[bytes]) -> bytes:
    """MTH of a power-of-two number of leaves, one level of pairs at a time."""
    level = leaves
    sha256 = hashlib.sha256
    while len(level) > 1:
        level = [
            sha256(NODE_PREFIX + left + right).digest()
            for left, right in zip(level[::2], level[1::2], strict=True)
        ]
    return level[0]


def _path(leaves: Leaves, m: int, start: int, end: int) -> list[bytes]:
    """PATH(m, D[start:end]) per RFC 9162 §2.1.3.1."""
    n = end - start
    if n == 1:
        return []
    k = _largest_power_of_two_below(n)
    if m < k:
        return [*_path(leaves, m, start, start + k), _mth(leaves, start + k, end)]
    return [*_path(leaves, m - k, start + k, end), _mth(leaves, start, start + k)]


def inclusion_proof(leaf_hashes: Leaves, index: int, size: int) -> list[bytes]:
    """The audit path of leaf `index` in the tree of the first `size` leaves."""
    if not 0 <= index < size <= len(leaf_hashes):
        raise ValueError(
            f"expected 0 <= index < size <= {len(leaf_hashes)}, got index={index} size={size}"
        )
    return _path(leaf_hashes, index, 0, size)


def verify_inclusion(
    *, leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check an inclusion proof by RFC 9162 §2.1.3.2; raise InclusionProofError if it fails."""
    _require_hash_sizes(InclusionProofError, [("leaf hash", leaf_hash), ("root", root)], proof)
    # Step 1: the leaf must lie inside the tree.
    if not 0 <= index < size:
        raise InclusionProofError(f"expected 0 <= index < size, got index={index} size={size}")
    # Step 2-3.
    fn, sn = index, size - 1
    r = leaf_hash
    # Step 4.
    for p in proof:
        if sn == 0:  # 4a: more proof than tree
            raise InclusionProofError(f"proof is longer than a tree of size {size} needs")
        if fn & 1 or fn == sn:  # 4b: p is a left sibling
            r = node_hash(p, r)
            # When fn == sn is a left child it has no right sibling at this
            # level: climb until it becomes a right child (or reaches 0).
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:  # p is a right sibling
            r = node_hash(r, p)
        fn >>= 1  # 4c
        sn >>= 1
    # Step 5: the whole path was used and ends at the root.
    if sn != 0:
        raise InclusionProofError(f"proof is shorter than a tree of size {size} needs")
    if r != root:
        raise InclusionProofError(
            f"expected root {root.hex()}, proof leads to {r.hex()} (index={index} size={size})"
        )


def _subproof(leaves: Leaves, m: int, start: int, end: int, *, complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[start:end], b) per RFC 9162 §2.1.4.1."""
    n = end - start
    if m == n:
        return [] if complete else [_mth(leaves, start, end)]
    k = _largest_power_of_two_below(n)
    if m <= k:
        return [
            *_subproof(leaves, m, start, start + k, complete=complete),
            _mth(leaves, start + k, end),
        ]
    return [
        *_subproof(leaves, m - k, start + k, end, complete=False),
        _mth(leaves, start, start + k),
    ]


def consistency_proof(leaf_hashes: Leaves, first: int, second: int) -> list[bytes]:
    """PROOF(first, D[second]) per RFC 9162 §2.1.4.1.

    The RFC defines the proof for 0 < first < second. For first == second
    and for first == 0 the proof is empty: a tree is consistent with itself,
    and every tree extends the empty one. `verify_consistency` handles both.
    """
    if not 0 <= first <= second <= len(leaf_hashes):
        raise ValueError(
            f"expected 0 <= first <= second <= {len(leaf_hashes)}, got {first} and {second}"
        )
    if first in (0, second):
        return []
    return _subproof(leaf_hashes, first, 0, second, complete=True)


def verify_consistency(
    *, first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check a consistency proof by RFC 9162 §2.1.4.2; raise ConsistencyProofError if it fails."""
    _require_hash_sizes(
        ConsistencyProofError,
        [("first root", first_root), ("second root", second_root)],
        proof,
    )
    if not 0 <= first <= second:
        raise ConsistencyProofError(f"expected 0 <= first <= second, got {first} and {second}")
    if first == 0:
        # Outside the RFC's 0 < first: the empty tree has a fixed root and
        # every tree extends it, so there is nothing to prove.
        if first_root != EMPTY_ROOT or proof:
            raise ConsistencyProofError("expected the empty root and an empty proof for size 0")
        return
    if first == second:
        # Outside the RFC's first < second: same size means same tree.
        if first_root != second_root or proof:
            raise ConsistencyProofError(
                f"expected equal roots and an empty proof for equal sizes {first},"
                f" got {first_root.hex()} and {second_root.hex()} with {len(proof)} hashes"
            )
        return
    fr, sr = _consistency_roots(first, second, first_root, proof)
    # Step 7, second half (the first, sn == 0, is checked inside).
    if fr != first_root:
        raise ConsistencyProofError(
            f"expected first root {first_root.hex()}, proof leads to {fr.hex()}"
        )
    if sr != second_root:
        raise ConsistencyProofError(
            f"expected second root {second_root.hex()}, proof leads to {sr.hex()}"
        )


def _consistency_roots(
    first: int, second: int, first_root: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """Steps 1-7 of RFC 9162 §2.1.4.2 for 0 < first < second: the roots (fr, sr)."""
    # Step 1.
    if not proof:
        raise ConsistencyProofError("expected a non-empty proof for first < second")
    # Step 2: when `first` is a power of two its tree is a single subtree of
    # the second tree, and its root starts the path.
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    # Step 3-4: skip the levels where the first tree's last node is a right child.
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 5.
    fr = sr = path[0]
    # Step 6.
    for c in path[1:]:
        if sn == 0:  # 6a: more proof than tree
            raise ConsistencyProofError(f"proof is longer than sizes {first}, {second} need")
        if fn & 1 or fn == sn:  # 6b: c is a left sibling, shared by both trees
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            # As in inclusion: a last node without right sibling climbs.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:  # c is a right sibling that only the second tree has
            sr = node_hash(sr, c)
        fn >>= 1  # 6c
        sn >>= 1
    # Step 7, first half: the whole path was used.
    if sn != 0:
        raise ConsistencyProofError(f"proof is shorter than sizes {first}, {second} need")
    return fr, sr
