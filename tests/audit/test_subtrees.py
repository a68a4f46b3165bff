"""Proofs from cached subtree roots are the proofs from all leaves, and read only a block or two."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from broker.audit import AuditLog, AuditStore, verify_consistency, verify_inclusion
from broker.audit.merkle import consistency_proof, inclusion_proof, root_from_leaves
from broker.audit.subtrees import BLOCK, ProofNodes, SubtreeCache
from broker.keys import SigningKey
from tests.audit.conftest import CountingStore, FixedClock, make_entry

LEAVES = [hashlib.sha256(b"\x00" + n.to_bytes(4, "big")).digest() for n in range(300)]


class Reader:
    """Leaf hashes from a list, counting how many were read."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.leaves = leaves
        self.read = 0

    def __call__(self, start: int, end: int) -> list[bytes]:
        self.read += end - start
        return self.leaves[start:end]


@pytest.mark.parametrize("block", [2, 4, 8])
def test_proofs_from_subtree_roots_equal_proofs_from_all_leaves(block: int) -> None:
    reader = Reader(LEAVES)
    cache = SubtreeCache(block=block)
    # Grown in uneven steps, as a log grows between proof requests.
    for size in [1, 2, 3, 5, 8, 13, 21, 34, 55, 89]:
        cache.fill(size, reader)
        for index in range(size):
            nodes = ProofNodes(cache, reader, size)
            assert inclusion_proof(nodes, index, size) == inclusion_proof(LEAVES, index, size)
        for first in range(size + 1):
            nodes = ProofNodes(cache, reader, size)
            assert consistency_proof(nodes, first, size) == consistency_proof(LEAVES, first, size)


def test_a_proof_reads_only_the_blocks_it_enters() -> None:
    reader = Reader(LEAVES)
    cache = SubtreeCache(block=4)
    cache.fill(299, reader)
    assert reader.read == 296  # every complete block, once
    for index in (0, 150, 297):
        reader.read = 0
        inclusion_proof(ProofNodes(cache, reader, 299), index, 299)
        # The leaf's block and the last, incomplete one.
        assert reader.read <= 2 * 4
    reader.read = 0
    consistency_proof(ProofNodes(cache, reader, 299), 150, 299)
    assert reader.read <= 3 * 4
    reader.read = 0
    cache.fill(299, reader)  # nothing new: nothing read
    assert reader.read == 0


@pytest.mark.parametrize("block", [0, 3, 6])
def test_cache_refuses_a_block_that_is_not_a_power_of_two(block: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        SubtreeCache(block=block)


class LeafCountingStore(CountingStore):
    """A real store, counting the leaf hashes read from it."""

    def __init__(self, inner: AuditStore) -> None:
        super().__init__(inner)
        self.leaves_read = 0

    def leaf_hashes(self, start: int, end: int) -> list[bytes]:
        self.leaves_read += end - start
        return super().leaf_hashes(start, end)


def test_log_proofs_on_a_long_log_verify_and_read_a_block_or_two(
    store: AuditStore, broker_key: SigningKey, clock: FixedClock
) -> None:
    entries: list[dict[str, Any]] = [make_entry(n) for n in range(3 * BLOCK + 40)]
    store.append(entries)
    counted = LeafCountingStore(store)
    log = AuditLog(store=counted, signing_key=broker_key, clock=clock)
    checkpoint = log.checkpoint()
    size = checkpoint.size
    log.inclusion_proof(0, size)  # the first proof fills the cache
    for index in (1, BLOCK + 7, size - 1):
        counted.leaves_read = 0
        proof = log.inclusion_proof(index, size)
        assert counted.leaves_read <= 2 * BLOCK
        verify_inclusion(
            leaf_hash=store.leaf_hashes(index, index + 1)[0],
            index=index,
            size=size,
            proof=[bytes.fromhex(h) for h in proof],
            root=bytes.fromhex(checkpoint.root_hash),
        )
    earlier = BLOCK + 3
    counted.leaves_read = 0
    proof = log.consistency_proof(earlier, size)
    assert counted.leaves_read <= 3 * BLOCK
    verify_consistency(
        first=earlier,
        second=size,
        first_root=root_from_leaves(store.leaf_hashes(0, earlier)),
        second_root=bytes.fromhex(checkpoint.root_hash),
        proof=[bytes.fromhex(h) for h in proof],
    )
