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
other processes added (`_sync`); a batch's first index tells how far.
Proofs use the roots of complete subtrees, cached as the log grows
(`subtrees.py`), and read only the leaves of a block or two: O(log n)
hashes each.

Why group commit (`group_commit.py`): the durable commit (fsync) is most of
an append's cost, and concurrent exchanges would each wait for their own.
Entries that arrive while one commit runs go together in the next: one
transaction, one fsync, one signed checkpoint for the batch, and still a
receipt per caller, returned only once that caller's entry is durable.

Why `verify` reads raw rows: re-serialising every entry with the reference
RFC 8785 code cost ~45 µs an entry; hashing the stored bytes once they are
shown canonical (`recompute.py`) costs a fifth of that, and worker
processes (`parallel.py`) can each take a range of indexes.
"""

from __future__ import annotations

import bisect
import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from broker.audit._rows import make_row
from broker.audit.checkpoint import Checkpoint, sign_checkpoint
from broker.audit.group_commit import GroupCommit
from broker.audit.merkle import (
    MerkleAccumulator,
    consistency_proof,
    inclusion_proof,
)
from broker.audit.parallel import check_page, check_range, ordered_pool
from broker.audit.recompute import MAX_KEPT_PROBLEMS, CheckedRows
from broker.audit.store import (
    MAX_QUERY_LIMIT,
    AuditQuery,
    AuditReadError,
    AuditStore,
    RawRow,
    RowReader,
    StoredEntry,
)
from broker.audit.subtrees import ProofNodes, SubtreeCache
from broker.clock import Clock
from broker.errors import AuditWriteError, InvalidRequestError
from broker.keys import SigningKey
from broker.metrics import Metrics

LEAF_BATCH = 10_000  # leaf hashes read per query when rebuilding the tree (~320 KB)
DEFAULT_MAX_BATCH = 256  # entries per group commit; settings.audit_max_batch
ROW_PAGE = 10_000  # rows `verify` reads per query (~12 MB of entries)
MAX_REPORTED_PROBLEMS = MAX_KEPT_PROBLEMS


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

    def __init__(
        self,
        *,
        store: AuditStore,
        signing_key: SigningKey,
        clock: Clock,
        metrics: Metrics | None = None,
        group_commit: bool = True,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        self._store = store
        self._key = signing_key
        self._clock = clock
        self._metrics = metrics or Metrics()
        self._lock = threading.Lock()
        # None: one append per record (the behaviour the benchmark compares with).
        self._batcher: GroupCommit[dict[str, Any], Receipt] | None = (
            GroupCommit(self._record_batch, max_batch=max_batch) if group_commit else None
        )
        self._subtrees = SubtreeCache()
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
        """Make `entry` durable and return its receipt; raises AuditWriteError if it cannot.

        With group commit, concurrent callers share one append (one
        transaction, one fsync); each returns once its own entry is durable.
        """
        started = time.perf_counter()
        try:
            # Refuse an entry that cannot be stored before it joins a batch:
            # it must not fail the other callers' entries with it.
            make_row(entry, 0)
        except (TypeError, ValueError) as e:
            raise AuditWriteError(f"the entry cannot be logged: {e}") from e
        try:
            if self._batcher is None:
                (receipt,) = self._record_batch([entry])
            else:
                receipt = self._batcher.submit(entry)
        finally:
            self._metrics.observe_audit_append(time.perf_counter() - started)
        return receipt

    @property
    def pending_entries(self) -> int:
        """Entries waiting for the next group commit (0 without group commit)."""
        return 0 if self._batcher is None else self._batcher.pending

    def _record_batch(self, entries: Sequence[dict[str, Any]]) -> list[Receipt]:
        """Append `entries` in one transaction; one signed checkpoint covers them all."""
        with self._lock:
            started = time.perf_counter()
            stored = self._store.append(entries)
            self._metrics.observe_audit_commit(
                seconds=time.perf_counter() - started, entries=len(entries)
            )
            if not stored or [s.index for s in stored] != list(
                range(stored[0].index, stored[0].index + len(entries))
            ):
                raise AuditWriteError(
                    f"expected {len(entries)} consecutive indexes from the store,"
                    f" got {[s.index for s in stored][:5]}..."
                )
            first = stored[0].index
            # The accumulator is replaced only once it is whole: a failure
            # below leaves the old one, still a true prefix of the store.
            try:
                tree = self._caught_up(self._tree, first)
            except AuditReadError as e:
                raise AuditWriteError(
                    f"entries from {first} are stored but the tree could not catch up: {e}"
                ) from e
            if tree.size != first:
                raise AuditWriteError(
                    f"expected the next index to be {tree.size}, the store gave {first}"
                )
            tree = tree.copy()
            tree.extend([s.leaf_hash for s in stored])
            self._tree = tree
        checkpoint = sign_checkpoint(
            key=self._key, size=tree.size, root_hash=tree.root(), now=self._clock.now()
        )
        return [
            Receipt(log_index=s.index, leaf_hash=s.leaf_hash.hex(), checkpoint=checkpoint)
            for s in stored
        ]

    def checkpoint(self) -> Checkpoint:
        """A signed checkpoint of the whole log as it is now (the empty root for size 0)."""
        tree = self._sync()
        return sign_checkpoint(
            key=self._key, size=tree.size, root_hash=tree.root(), now=self._clock.now()
        )

    def _proof_nodes(self, size: int) -> ProofNodes:
        """The tree of `size` leaves for a proof: cached subtree roots, few leaves read."""
        read = self._store.leaf_hashes
        self._subtrees.fill(size, read)
        return ProofNodes(self._subtrees, read, size)

    def inclusion_proof(self, index: int, size: int) -> list[str]:
        """RFC 9162 §2.1.3 audit path (hex) for `index` in the tree of `size` leaves."""
        index, size = _require_int("index", index), _require_int("size", size)
        current = self._sync().size
        if not 0 <= index < size <= current:
            raise InvalidRequestError(
                f"expected 0 <= index < size <= {current}, got index={index} size={size}"
            )
        return [h.hex() for h in inclusion_proof(self._proof_nodes(size), index, size)]

    def consistency_proof(self, first: int, second: int) -> list[str]:
        """RFC 9162 §2.1.4 proof (hex) that the tree of `second` extends that of `first`."""
        first, second = _require_int("first", first), _require_int("second", second)
        current = self._sync().size
        if not 0 <= first <= second <= current:
            raise InvalidRequestError(
                f"expected 0 <= first <= second <= {current}, got first={first} second={second}"
            )
        return [h.hex() for h in consistency_proof(self._proof_nodes(second), first, second)]

    def entries(self, q: AuditQuery) -> list[StoredEntry]:
        return self._store.query(q)

    def ping(self) -> None:
        self._store.ping()

    def verify(self, *, trusted: Sequence[Checkpoint] = (), workers: int = 1) -> VerificationReport:
        """Recompute the tree from the stored entries and compare it with what is known.

        Checks that indexes run 0..n-1 without gaps, that each entry's
        `"index"` is its row's, that each stored leaf hash is the hash of its
        entry, that the recomputed root at this process's tree size is the
        accumulator's root, and that the root at each `trusted` checkpoint's
        size is that checkpoint's. Without `trusted`, a rewrite made before
        this process started goes unseen: keep checkpoints and pass them in
        (checking their signatures, `verify_checkpoint`, is the caller's job).

        `workers` > 1 recomputes leaves in that many worker processes
        (`parallel.py`); the verdict is the same, only faster on a machine
        with cores to spare.
        """
        with self._lock:
            known = self._tree.copy()
        # size -> the roots something trustworthy says the tree had at that size
        claims: dict[int, list[tuple[str, str]]] = {}
        claims.setdefault(known.size, []).append((known.root().hex(), "this process's tree"))
        for cp in trusted:
            claims.setdefault(cp.size, []).append((cp.root_hash, f"the checkpoint of {cp.time}"))
        check = _TreeCheck(claims)
        cursor: int | None = None
        try:
            for indexes, checked in self._checked_pages(workers):
                if not indexes:
                    continue
                check.gaps(indexes)
                check.problems.merge(checked.problems, checked.problem_count)
                # The tree counts rows by position, as a verifier reading
                # the export would.
                check.grow(checked.leaves)
                cursor = indexes[-1]
        except AuditReadError as e:
            check.problems.add(f"the store could not be read after index {cursor}: {e}")
        return check.report()

    def _checked_pages(self, workers: int) -> Iterator[tuple[list[int], CheckedRows]]:
        """(indexes, checked rows) for every stored row, in index order, page by page."""
        store = self._store
        after = -1
        tail_workers = workers
        if workers > 1 and isinstance(store, RowReader):
            tail_workers = 1  # what was appended while the workers read: little
            # Each worker reads its own range of indexes: the rows never
            # pass through this process. Ranges cover the indexes below the
            # size seen now; rows appended meanwhile are read below.
            size, source = store.size(), store.row_source()
            jobs = (
                (source, start, min(start + ROW_PAGE, size)) for start in range(0, size, ROW_PAGE)
            )
            with ordered_pool(check_range, workers) as checked_ranges:
                for _, (indexes, checked) in checked_ranges(jobs):
                    after = indexes[-1] if indexes else after
                    yield indexes, checked
        with ordered_pool(check_page, tail_workers) as checked_pages:
            yield from (checked for _, checked in checked_pages(self._pages(after)))

    def _pages(self, after: int) -> Iterator[list[RawRow]]:
        """The stored rows after index `after` in index order, in big pages, bytes as stored."""
        store = self._store
        if isinstance(store, RowReader):
            while page := store.read_rows(after, ROW_PAGE):
                yield page
                after = page[-1][0]
            return
        # A store without raw reads (a wrapper): any JSON text of the decoded
        # entry serves, since a row the shortcut cannot vouch for is decoded
        # and canonicalised by the reference.
        cursor = after
        while decoded := store.query(AuditQuery(after_index=cursor, limit=MAX_QUERY_LIMIT)):
            yield [
                (s.index, s.leaf_hash, json.dumps(s.entry, ensure_ascii=False).encode())
                for s in decoded
            ]
            cursor = decoded[-1].index


class _TreeCheck:
    """The tree `verify` rebuilds, with the roots it must meet and the problems found."""

    def __init__(self, claims: dict[int, list[tuple[str, str]]]) -> None:
        self.claims = claims
        self.sizes = sorted(claims)
        self.tree = MerkleAccumulator()
        self.problems = _Problems()
        self.next_index = 0
        self._compare_roots()

    def _compare_roots(self) -> None:
        tree = self.tree
        if tree.size not in self.claims:
            return
        root = tree.root().hex()
        for claimed, source in self.claims[tree.size]:
            if claimed != root:
                self.problems.add(
                    f"root at size {tree.size}: {source} has {claimed}, the entries give {root}"
                )

    def gaps(self, indexes: Sequence[int]) -> None:
        first, last = indexes[0], indexes[-1]
        # Indexes come sorted and unique (the primary key): when the ends
        # fit, nothing is missing in between.
        if first != self.next_index or last - first != len(indexes) - 1:
            for index in indexes:
                if index != self.next_index:
                    self.problems.add(f"indexes {self.next_index} to {index - 1} are missing")
                self.next_index = index + 1
        self.next_index = last + 1

    def grow(self, leaves: list[bytes]) -> None:
        """Append `leaves`, stopping at every claimed size to compare roots."""
        done = 0
        while done < len(leaves):
            size = self.tree.size
            stop = bisect.bisect_right(self.sizes, size)
            room = len(leaves) - done
            if stop < len(self.sizes):
                room = min(room, self.sizes[stop] - size)
            self.tree.extend(leaves[done : done + room])
            done += room
            self._compare_roots()

    def report(self) -> VerificationReport:
        tree = self.tree
        for size, sources in sorted(self.claims.items()):
            if size > tree.size:
                for _, source in sources:
                    self.problems.add(
                        f"{source} has size {size}, the store holds only {tree.size} entries"
                    )
        return VerificationReport(
            size=tree.size,
            root_hash=tree.root().hex(),
            ok=self.problems.count == 0,
            problems=self.problems.listed(),
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

    def merge(self, kept: list[str], count: int) -> None:
        """Add problems found elsewhere: `kept` of them listed, `count` in all."""
        room = MAX_REPORTED_PROBLEMS - len(self._kept)
        self._kept.extend(kept[: max(room, 0)])
        self.count += count

    def listed(self) -> list[str]:
        hidden = self.count - len(self._kept)
        return [*self._kept, f"... and {hidden} more problems"] if hidden else list(self._kept)
