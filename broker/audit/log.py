"""The audit log: a store plus a Merkle tree plus the broker's signature.

What it does: records an entry durably and hands back a `Receipt` (its
index, leaf hash, and a signed checkpoint of a tree that contains it);
signs checkpoints; serves RFC 9162 inclusion and consistency proofs; and
re-checks the whole store against the tree (`verify`).

What it does not: decide what goes into an entry (`entries.py`), or who may
read it (the API edge). It never swallows a store failure: `record` raises
`AuditWriteError`, and the caller must then disclose nothing (fail closed).

Why an in-memory accumulator: checkpoints and receipts need the root after
every append, and a compact range gives it in O(log n) hashes without
reading the table. Several broker processes may append to one PostgreSQL
database, so before answering, the accumulator catches up with any leaves
other processes added (`_sync`). Proofs read the leaf hashes they need from
the store and cost O(size) hashes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from broker.audit.checkpoint import Checkpoint, sign_checkpoint
from broker.audit.merkle import (
    HASH_SIZE,
    MerkleAccumulator,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
)
from broker.audit.store import (
    MAX_QUERY_LIMIT,
    AuditQuery,
    AuditReadError,
    AuditStore,
    StoredEntry,
)
from broker.clock import Clock
from broker.errors import AuditWriteError, InvalidRequestError
from broker.keys import SigningKey

LEAF_BATCH = 10_000  # leaf hashes read per query when rebuilding the tree (~320 KB)
MAX_REPORTED_PROBLEMS = 100  # a wholly rewritten log should not make a gigabyte report


@dataclass(frozen=True)
class Receipt:
    """Proof of recording: the entry's place and a checkpoint of a tree holding it."""

    log_index: int
    leaf_hash: str  # hex
    checkpoint: Checkpoint

    def to_dict(self) -> dict[str, Any]:
        return {
            "log_index": self.log_index,
            "leaf_hash": self.leaf_hash,
            "checkpoint": self.checkpoint.to_dict(),
        }


@dataclass(frozen=True)
class VerificationReport:
    """What `AuditLog.verify` found; `ok` only when `problems` is empty."""

    size: int
    root_hash: str  # hex, recomputed from the stored entries
    ok: bool
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "root_hash": self.root_hash,
            "ok": self.ok,
            "problems": list(self.problems),
        }


def _require_int(name: str, value: object) -> int:
    # bool is an int in Python; `true` is not an index.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequestError(f"expected an integer {name}, got {value!r}")
    return value


class AuditLog:
    """The broker's tamper-evident log (contract.md, "Audit log")."""

    def __init__(self, *, store: AuditStore, signing_key: SigningKey, clock: Clock) -> None:
        self._store = store
        self._key = signing_key
        self._clock = clock
        self._lock = threading.Lock()
        # A published accumulator is never changed in place, only replaced
        # under the lock, so a reader may use the one it got without the lock.
        self._tree = MerkleAccumulator()
        with self._lock:
            self._tree = self._caught_up(self._tree, store.size())

    def _caught_up(self, tree: MerkleAccumulator, size: int) -> MerkleAccumulator:
        """`tree` grown (as a copy) with the stored leaves up to `size`; hold the lock."""
        if size <= tree.size:
            return tree
        grown = tree.copy()
        while grown.size < size:
            end = min(size, grown.size + LEAF_BATCH)
            leaves = self._store.leaf_hashes(grown.size, end)
            if len(leaves) != end - grown.size:
                raise AuditReadError(
                    f"expected {end - grown.size} leaf hashes from index {grown.size},"
                    f" got {len(leaves)}: the store has a gap"
                )
            grown.extend(leaves)
        return grown

    def _sync(self) -> MerkleAccumulator:
        """The tree as of the store's current size (other processes may have appended)."""
        with self._lock:
            self._tree = self._caught_up(self._tree, self._store.size())
            return self._tree

    def record(self, entry: dict[str, Any]) -> Receipt:
        """Make `entry` durable and return its receipt; raises AuditWriteError if it cannot."""
        with self._lock:
            (stored,) = self._store.append([entry])
            # The accumulator is replaced only once it is whole: a failure
            # below leaves the old one, still a true prefix of the store.
            try:
                tree = self._caught_up(self._tree, stored.index)
            except AuditReadError as e:
                raise AuditWriteError(
                    f"entry {stored.index} is stored but the tree could not catch up: {e}"
                ) from e
            if tree.size != stored.index:
                raise AuditWriteError(
                    f"expected the next index to be {tree.size}, the store gave {stored.index}"
                )
            tree = tree.copy()
            tree.append(stored.leaf_hash)
            self._tree = tree
        checkpoint = sign_checkpoint(
            key=self._key, size=tree.size, root_hash=tree.root(), now=self._clock.now()
        )
        return Receipt(
            log_index=stored.index, leaf_hash=stored.leaf_hash.hex(), checkpoint=checkpoint
        )

    def checkpoint(self) -> Checkpoint:
        """A signed checkpoint of the whole log as it is now (the empty root for size 0)."""
        tree = self._sync()
        return sign_checkpoint(
            key=self._key, size=tree.size, root_hash=tree.root(), now=self._clock.now()
        )

    def _leaves(self, size: int) -> list[bytes]:
        leaves = self._store.leaf_hashes(0, size)
        if len(leaves) != size:
            raise AuditReadError(f"expected {size} leaf hashes, got {len(leaves)}")
        return leaves

    def inclusion_proof(self, index: int, size: int) -> list[str]:
        """RFC 9162 §2.1.3 audit path (hex) for `index` in the tree of `size` leaves."""
        index, size = _require_int("index", index), _require_int("size", size)
        current = self._sync().size
        if not 0 <= index < size <= current:
            raise InvalidRequestError(
                f"expected 0 <= index < size <= {current}, got index={index} size={size}"
            )
        return [h.hex() for h in inclusion_proof(self._leaves(size), index, size)]

    def consistency_proof(self, first: int, second: int) -> list[str]:
        """RFC 9162 §2.1.4 proof (hex) that the tree of `second` extends that of `first`."""
        first, second = _require_int("first", first), _require_int("second", second)
        current = self._sync().size
        if not 0 <= first <= second <= current:
            raise InvalidRequestError(
                f"expected 0 <= first <= second <= {current}, got first={first} second={second}"
            )
        return [h.hex() for h in consistency_proof(self._leaves(second), first, second)]

    def entries(self, q: AuditQuery) -> list[StoredEntry]:
        return self._store.query(q)

    def ping(self) -> None:
        self._store.ping()

    def verify(self, *, trusted: Sequence[Checkpoint] = ()) -> VerificationReport:
        """Recompute the tree from the stored entries and compare it with what is known.

        Checks that indexes run 0..n-1 without gaps, that each entry's
        `"index"` is its row's, that each stored leaf hash is the hash of its
        entry, that the recomputed root at this process's tree size is the
        accumulator's root, and that the root at each `trusted` checkpoint's
        size is that checkpoint's. Without `trusted`, a rewrite made before
        this process started goes unseen: keep checkpoints and pass them in
        (checking their signatures, `verify_checkpoint`, is the caller's job).
        """
        with self._lock:
            known = self._tree.copy()
        # size -> the roots something trustworthy says the tree had at that size
        claims: dict[int, list[tuple[str, str]]] = {}
        claims.setdefault(known.size, []).append((known.root().hex(), "this process's tree"))
        for cp in trusted:
            claims.setdefault(cp.size, []).append((cp.root_hash, f"the checkpoint of {cp.time}"))

        problems = _Problems()
        tree = MerkleAccumulator()

        def compare_roots() -> None:
            if tree.size not in claims:
                return
            root = tree.root().hex()
            for claimed, source in claims[tree.size]:
                if claimed != root:
                    problems.add(
                        f"root at size {tree.size}: {source} has {claimed}, the entries give {root}"
                    )

        compare_roots()
        cursor: int | None = None
        try:
            while page := self._store.query(AuditQuery(after_index=cursor, limit=MAX_QUERY_LIMIT)):
                for stored in page:
                    next_index = 0 if cursor is None else cursor + 1
                    if stored.index != next_index:
                        problems.add(f"indexes {next_index} to {stored.index - 1} are missing")
                    leaf = _check_entry(stored, problems)
                    # The tree counts rows by position, as a verifier reading
                    # the export would.
                    tree.append(leaf)
                    compare_roots()
                    cursor = stored.index
        except AuditReadError as e:
            problems.add(f"the store could not be read after index {cursor}: {e}")
        for size, sources in sorted(claims.items()):
            if size > tree.size:
                for _, source in sources:
                    problems.add(
                        f"{source} has size {size}, the store holds only {tree.size} entries"
                    )
        return VerificationReport(
            size=tree.size,
            root_hash=tree.root().hex(),
            ok=problems.count == 0,
            problems=problems.listed(),
        )


class _Problems:
    """Problems found by `verify`, keeping the first MAX_REPORTED_PROBLEMS and a count."""

    def __init__(self) -> None:
        self.count = 0
        self._kept: list[str] = []

    def add(self, text: str) -> None:
        self.count += 1
        if len(self._kept) < MAX_REPORTED_PROBLEMS:
            self._kept.append(text)

    def listed(self) -> list[str]:
        hidden = self.count - len(self._kept)
        return [*self._kept, f"... and {hidden} more problems"] if hidden else list(self._kept)


def _check_entry(stored: StoredEntry, problems: _Problems) -> bytes:
    """The leaf recomputed from a stored entry; what is wrong with the row goes to `problems`."""
    if stored.entry.get("index") != stored.index:
        problems.add(f"entry at index {stored.index} says index {stored.entry.get('index')!r}")
    try:
        leaf = leaf_hash(stored.entry)
    except ValueError as e:
        # Decoded JSON that JCS refuses (an integer beyond 2**53): not written
        # by us. A zero leaf keeps counting positions; the roots will differ.
        problems.add(f"entry {stored.index} cannot be canonicalised: {e}")
        return bytes(HASH_SIZE)
    if leaf != stored.leaf_hash:
        problems.add(
            f"leaf hash of entry {stored.index}: stored {stored.leaf_hash.hex()},"
            f" recomputed {leaf.hex()}"
        )
    return leaf
