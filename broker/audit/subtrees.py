"""Roots of the log's complete aligned subtrees, so proofs need not read every leaf.

What it does: `SubtreeCache` keeps, for every complete block of BLOCK leaves
(aligned: the block starting at a multiple of BLOCK) and every complete
aligned subtree above it, that subtree's root, filled from the store on
first use and then only for what was added since. `ProofNodes` answers
`mth(start, end)` for the RFC 9162 proof algorithms in `merkle.py` from
those roots, reading from the store only the leaves of the (at most a few)
blocks that the proof goes into: the proven leaf's block and the last,
incomplete one. A proof then costs O(log n) hashes and a couple of small
reads instead of reading and hashing all n leaves.

What it does not: verify anything or decide what a proof contains; the
algorithms stay those of `merkle.py`, so the proofs are the same bytes.

Why a block of 256: below it, hashing 256 leaves is cheaper than a cache
entry per node; above it the cache holds n / 128 hashes in all (256 KB for
a million entries).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from broker.audit.merkle import node_hash, perfect_root, root_from_leaves
from broker.audit.store import AuditReadError

BLOCK = 256  # leaves per cached block; a power of two
FILL_BATCH = 16_384  # leaf hashes read per query while filling (~0.5 MB)

LeafReader = Callable[[int, int], list[bytes]]


class SubtreeCache:
    """Roots of complete aligned subtrees of BLOCK leaves and up, grown on demand."""

    def __init__(self, *, block: int = BLOCK) -> None:
        if block < 2 or block & (block - 1):
            raise ValueError(f"expected a power of two >= 2 as block, got {block}")
        self.block = block
        # _levels[h][i]: root of the leaves [i * block * 2**h, (i + 1) * block * 2**h).
        self._levels: list[list[bytes]] = [[]]
        self._lock = threading.Lock()

    @property
    def leaves(self) -> int:
        """How many leaves the cached blocks cover."""
        return len(self._levels[0]) * self.block

    def fill(self, size: int, read: LeafReader) -> None:
        """Cache every complete block of the first `size` leaves, reading what is new."""
        with self._lock:
            goal = size - size % self.block
            while self.leaves < goal:
                start = self.leaves
                end = min(goal, start + max(FILL_BATCH - FILL_BATCH % self.block, self.block))
                leaves = read(start, end)
                if len(leaves) != end - start:
                    raise AuditReadError(
                        f"expected {end - start} leaf hashes from index {start},"
                        f" got {len(leaves)}: the store has a gap"
                    )
                for at in range(0, len(leaves), self.block):
                    self._push(perfect_root(leaves[at : at + self.block]))

    def _push(self, root: bytes) -> None:
        level = 0
        self._levels[0].append(root)
        # Two complete siblings make their parent complete: carry upwards.
        while len(self._levels[level]) % 2 == 0:
            parent = node_hash(self._levels[level][-2], self._levels[level][-1])
            level += 1
            if level == len(self._levels):
                self._levels.append([])
            self._levels[level].append(parent)

    def root(self, start: int, width: int) -> bytes | None:
        """The cached root of the aligned subtree [start, start + width), if there is one."""
        if width < self.block or width & (width - 1) or start % width:
            return None
        level = (width // self.block).bit_length() - 1
        position = start // width
        if level < len(self._levels) and position < len(self._levels[level]):
            return self._levels[level][position]
        return None


class ProofNodes:
    """The first `size` leaves as `merkle.RangeHasher`: cached roots, leaves only where needed."""

    def __init__(self, cache: SubtreeCache, read: LeafReader, size: int) -> None:
        self._cache = cache
        self._read = read
        self._size = size
        self._blocks: dict[int, list[bytes]] = {}  # leaves of the blocks read for this proof

    def __len__(self) -> int:
        return self._size

    def mth(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) per RFC 9162 §2.1.1."""
        width = end - start
        cached = self._cache.root(start, width)
        if cached is not None:
            return cached
        if width <= self._cache.block:
            return root_from_leaves(self._leaves(start, end))
        k = 1 << ((width - 1).bit_length() - 1)
        return node_hash(self.mth(start, start + k), self.mth(start + k, end))

    def _leaves(self, start: int, end: int) -> list[bytes]:
        block = self._cache.block
        out: list[bytes] = []
        for number in range(start // block, (end - 1) // block + 1):
            if number not in self._blocks:
                first = number * block
                last = min(first + block, self._size)
                leaves = self._read(first, last)
                if len(leaves) != last - first:
                    raise AuditReadError(
                        f"expected {last - first} leaf hashes from index {first}, got {len(leaves)}"
                    )
                self._blocks[number] = leaves
            first = number * block
            out.extend(self._blocks[number][max(start, first) - first : end - first])
        return out
