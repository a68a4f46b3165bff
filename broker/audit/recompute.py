"""Recompute the leaves of stored audit rows, and say what is wrong with each row.

What it does: `check_rows` takes rows as the store holds them (index, leaf
hash, the entry's bytes) and returns the leaf each row's entry hashes to,
with the problems found: an entry that does not decode, whose `"index"` is
not its row's, that RFC 8785 cannot canonicalise, or whose stored leaf hash
is not the recomputed one. `AuditLog.verify` runs it page by page, in
process or in a pool of worker processes (`parallel.py`).

What it does not: read the store, check gaps between rows, or build the
tree; those need the order of all rows and stay with the caller.

Why the stored bytes are hashed directly when they are canonical: a leaf is
SHA-256(0x00 || RFC 8785 bytes), and the store keeps exactly those bytes.
When `canonical_index` shows the row's bytes are the RFC 8785 form of the
entry they parse to, hashing them gives the same leaf as parsing and
re-canonicalising with the reference, at a tenth of the cost. Any row it
cannot vouch for goes the reference way (`decode_row`, `leaf_hash`), so the
verdict and the messages are those of the reference either way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from broker.audit._rows import decode_row
from broker.audit.merkle import HASH_SIZE, LEAF_PREFIX, leaf_hash
from broker.audit.store import CorruptEntryError, RawRow
from broker.canonical import canonical_index

MAX_KEPT_PROBLEMS = 100  # a wholly rewritten log should not make a gigabyte report
ZERO_LEAF = bytes(HASH_SIZE)  # stands in for an unreadable entry; keeps positions counted


@dataclass
class CheckedRows:
    """The leaves of a run of rows, and the first `keep` problems of `problem_count`."""

    leaves: list[bytes] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0


Add = Callable[[str], None]


def _reference_leaf(index: int, stored_leaf: bytes, data: bytes, add: Add) -> bytes | None:
    """The leaf the slow, reference way, or None when the entry has none."""
    try:
        entry = decode_row(index, stored_leaf, data.decode("utf-8")).entry
    except (CorruptEntryError, UnicodeDecodeError) as e:
        add(f"entry {index} could not be read: {e}")
        return None
    if entry.get("index") != index:
        add(f"entry at index {index} says index {entry.get('index')!r}")
    try:
        return leaf_hash(entry)
    except (ValueError, RecursionError) as e:
        # Decoded JSON that JCS refuses (an integer beyond 2**53): not written by us.
        add(f"entry {index} cannot be canonicalised: {e}")
        return None


def check_rows(rows: Sequence[RawRow], *, keep: int) -> CheckedRows:
    """The recomputed leaf of every row and what is wrong with the rows (at most `keep` kept)."""
    found = CheckedRows()

    def add(problem: str) -> None:
        found.problem_count += 1
        if len(found.problems) < keep:
            found.problems.append(problem)

    sha256 = hashlib.sha256
    append = found.leaves.append
    for index, stored_leaf, data in rows:
        claimed = canonical_index(data)
        if claimed is not None:
            if claimed != index:
                add(f"entry at index {index} says index {claimed!r}")
            leaf: bytes | None = sha256(LEAF_PREFIX + data).digest()
        else:
            leaf = _reference_leaf(index, stored_leaf, data, add)
        if leaf is None:
            # A zero leaf keeps counting positions; the roots will differ.
            append(ZERO_LEAF)
            continue
        if leaf != stored_leaf:
            add(f"leaf hash of entry {index}: stored {stored_leaf.hex()}, recomputed {leaf.hex()}")
        append(leaf)
    return found
