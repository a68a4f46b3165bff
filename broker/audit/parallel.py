"""Spread the per-entry work of verification over worker processes, results in order.

What it does: `ordered_pool(function, workers)` is a context manager giving
a map of `function` over an iterable of arguments, results in input order.
With one worker it calls `function` here; with more it hands arguments to a
pool of `spawn`ed processes, keeping at most two per worker in flight, so
memory stays bounded however long the log is. `check_page` (rows of the
store, for `AuditLog.verify`) and `offline.fast_entry_leaves` (lines of an
export) are the functions it runs.

What it does not: read the store or the export, or build the tree. The
caller reads (one reader, in order) and folds the results into its tree,
which needs them in order anyway; only the per-entry work, parsing and
hashing, is spread out.

Why processes: that work is CPU-bound Python (orjson holds the GIL, and
hashlib releases it only for inputs over 2 KiB), so threads would take
turns on one core. How they start: a single-threaded process on Linux (the
CLI, a benchmark) forks, so a worker is ready in milliseconds; any other
process spawns fresh interpreters (about 0.3 s each, importing the broker),
because forking a threaded process, such as the broker serving requests,
can copy a lock that another thread holds at that moment. A script that
may spawn must guard its entry point with `if __name__ == "__main__":`.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.pool import AsyncResult
from typing import TypeVar

from broker.audit.recompute import MAX_KEPT_PROBLEMS, CheckedRows, check_rows
from broker.audit.row_sources import RowSource
from broker.audit.store import RawRow

MAX_WORKERS = 64  # more processes than that is a mistake, not a machine
IN_FLIGHT_PER_WORKER = 2  # one page being checked, one queued: no worker waits
# A page of 10 000 rows takes a worker well under a second; a worker that
# takes minutes is stuck, and the verification fails rather than hangs.
PAGE_TIMEOUT_SECONDS = 300.0

Page = list[RawRow]
Arg = TypeVar("Arg")
Out = TypeVar("Out")


@contextlib.contextmanager
def ordered_pool(
    function: Callable[[Arg], Out], workers: int
) -> Iterator[Callable[[Iterable[Arg]], Iterator[tuple[Arg, Out]]]]:
    """A map of `function` over an iterable, in order, in `workers` processes (1: here).

    `function` must be a module-level function (it is pickled by name). At
    most IN_FLIGHT_PER_WORKER arguments per worker are outstanding, so a
    long input is never read ahead into memory.
    """
    if not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"expected 1 <= workers <= {MAX_WORKERS}, got {workers}")
    if workers == 1:

        def here(args: Iterable[Arg]) -> Iterator[tuple[Arg, Out]]:
            for arg in args:
                yield arg, function(arg)

        yield here
        return
    with _start_context().Pool(processes=workers) as pool:

        def pooled(args: Iterable[Arg]) -> Iterator[tuple[Arg, Out]]:
            pending: collections.deque[tuple[Arg, AsyncResult[Out]]] = collections.deque()
            for arg in args:
                pending.append((arg, pool.apply_async(function, (arg,))))
                if len(pending) >= workers * IN_FLIGHT_PER_WORKER:
                    done, result = pending.popleft()
                    yield done, result.get(timeout=PAGE_TIMEOUT_SECONDS)
            while pending:
                done, result = pending.popleft()
                yield done, result.get(timeout=PAGE_TIMEOUT_SECONDS)

        yield pooled


def _start_context() -> multiprocessing.context.BaseContext:
    """`fork` for a single-threaded process on Linux, else `spawn` (see the module docstring)."""
    if sys.platform == "linux" and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def check_page(page: Page) -> tuple[list[int], CheckedRows]:
    """The indexes of a page of rows and `check_rows` of it (as many problems as verify keeps)."""
    return [row[0] for row in page], check_rows(page, keep=MAX_KEPT_PROBLEMS)


def check_range(job: tuple[RowSource, int, int]) -> tuple[list[int], CheckedRows]:
    """`check_page` of the rows with start <= index < end, read by the worker itself."""
    source, start, end = job
    return check_page(source.read_range(start, end))
