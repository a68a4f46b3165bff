"""Group commit: many threads' items made durable by one call, each caller told its own result.

What it does: `GroupCommit.submit(item)` queues the item and blocks until it
has been committed. Whoever finds no commit running becomes the committer:
it takes everything queued (up to `max_batch`, oldest first), calls
`commit(batch)` once, outside the lock, hands each waiter its own result,
and wakes them. While that commit runs, new items queue up and go together
in the next one. So at concurrency 1 an item is committed at once (no timer,
no added latency), and at concurrency 32 one transaction and one fsync
serve many callers.

What it does not: retry, reorder or split a batch. When `commit` raises,
every caller of that batch gets an AuditWriteError (the committer the
original), nothing of theirs has a result, and the next batch starts
afresh: fail closed per batch. It does not run a thread of its own either;
the committer is always one of the callers.

Why leader/follower: a background writer thread would need its own
lifecycle and shutdown, and would add a hand-off to every commit. Here a
caller does the work it would have done anyway, and the others merely wait
on a condition variable. The `commit` function is responsible for keeping
whatever it updates consistent when it fails (`AuditLog` replaces its tree
only after a whole batch is stored).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from broker.errors import AuditWriteError

Item = TypeVar("Item")
Result = TypeVar("Result")

# How long a caller waits for its batch. Well beyond a commit's own bounds
# (SQLite's busy timeout, PostgreSQL's connect timeout); past it the caller
# gives up and discloses nothing. Its entry may still become durable if its
# batch was already being written: the log then holds more than was
# disclosed, never less.
WAIT_SECONDS = 60.0
MAX_BATCH_LIMIT = 4096  # settings bound audit_max_batch to this too


class _Slot(Generic[Item, Result]):
    """One caller's item and, once its batch is done, its result or the batch's error."""

    __slots__ = ("done", "error", "item", "result")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.done = False
        self.result: Result | None = None
        self.error: BaseException | None = None


class GroupCommit(Generic[Item, Result]):
    """Batches concurrent `submit` calls into `commit` calls; see the module docstring."""

    def __init__(
        self,
        commit: Callable[[Sequence[Item]], Sequence[Result]],
        *,
        max_batch: int,
        wait_seconds: float = WAIT_SECONDS,
    ) -> None:
        if not 1 <= max_batch <= MAX_BATCH_LIMIT:
            raise ValueError(f"expected 1 <= max_batch <= {MAX_BATCH_LIMIT}, got {max_batch}")
        self._commit = commit
        self._max_batch = max_batch
        self._wait_seconds = wait_seconds
        self._cond = threading.Condition()
        self._queue: deque[_Slot[Item, Result]] = deque()
        self._committing = False

    @property
    def pending(self) -> int:
        """Items queued and not yet taken into a commit (the queue depth)."""
        with self._cond:
            return len(self._queue)

    def submit(self, item: Item) -> Result:
        """Commit `item` with whatever else is queued; its result, or AuditWriteError."""
        slot: _Slot[Item, Result] = _Slot(item)
        deadline = time.monotonic() + self._wait_seconds
        with self._cond:
            self._queue.append(slot)
        # Each round either finds the slot done, waits for the running
        # commit, or runs one commit of at most max_batch items taken from
        # the front; the slot only moves forward, so within
        # len(queue) / max_batch + 1 commits it is done. The deadline
        # bounds the rounds in time as well.
        while True:
            with self._cond:
                if not slot.done and time.monotonic() >= deadline:
                    self._give_up(slot)
                while self._committing and not slot.done:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self._give_up(slot)
                    self._cond.wait(left)
                if slot.done:
                    return self._outcome(slot)
                self._committing = True
                taken = min(self._max_batch, len(self._queue))
                batch = [self._queue.popleft() for _ in range(taken)]
            self._run(batch)
            if any(s is slot for s in batch):
                return self._outcome(slot, committer=True)

    def _run(self, batch: list[_Slot[Item, Result]]) -> None:
        """Commit `batch` (lock not held) and settle every slot of it."""
        results: Sequence[Result] = ()
        error: BaseException | None = None
        try:
            results = self._commit([s.item for s in batch])
            if len(results) != len(batch):
                error = AuditWriteError(
                    f"expected {len(batch)} results from the commit, got {len(results)}"
                )
        except BaseException as e:  # noqa: BLE001 - handed to every waiter, re-raised below
            error = e
        with self._cond:
            for position, slot in enumerate(batch):
                if error is None:
                    slot.result = results[position]
                else:
                    slot.error = error
                slot.done = True
            self._committing = False
            self._cond.notify_all()

    def _give_up(self, slot: _Slot[Item, Result]) -> None:
        """Called with the lock held when the deadline passed; always raises."""
        queued = slot in self._queue
        if queued:
            self._queue.remove(slot)  # never committed: nothing of it is written
        raise AuditWriteError(
            f"waited {self._wait_seconds:.0f} s for the audit commit"
            + ("" if queued else "; the entry may still be stored")
        )

    def _outcome(self, slot: _Slot[Item, Result], *, committer: bool = False) -> Result:
        if slot.error is not None:
            if committer:
                raise slot.error
            # A fresh exception per waiter: one instance raised in many
            # threads would collect all their tracebacks.
            raise AuditWriteError(f"the audit batch failed: {slot.error}") from slot.error
        if slot.result is None:  # settled without a result: cannot happen, fail closed anyway
            raise AuditWriteError("the audit batch gave no result")
        return slot.result
