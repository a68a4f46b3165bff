"""Percentiles and bounded timing loops for every part of `make bench`.

What it does: `percentile` is the nearest-rank percentile of a sample
(the p99 of 50 runs is the slowest run, never an interpolated figure no
run took); `summarize` turns milliseconds into the median/p99/mean block
every part of the JSON uses; `time_calls` runs a call under a count cap
AND a time cap and returns one sample per timed run.

What it does not: decide how many runs are enough. Each part passes its
own caps, so the whole run stays inside `make bench`'s ten minutes.

Why nearest rank: a benchmark must report a time that some request took.
With few samples an interpolated p99 lies between two runs; nearest rank
is the conservative choice and the one tests can check by hand.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any


class EmptySampleError(ValueError):
    """A summary was asked of no samples: there is no figure to report."""


def percentile(samples: Sequence[float], q: float) -> float:
    """The nearest-rank `q`-th percentile (0 < q <= 100) of `samples`."""
    if not 0 < q <= 100:
        raise ValueError(f"expected 0 < q <= 100, got {q!r}")
    if not samples:
        raise EmptySampleError("expected at least one sample, got none")
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(samples_ms: Sequence[float]) -> dict[str, Any]:
    """Median, p99, mean and max of `samples_ms` (milliseconds), with the count."""
    if not samples_ms:
        raise EmptySampleError("expected at least one sample, got none")
    return {
        "status": "measured",
        "count": len(samples_ms),
        "p50_ms": statistics.median(samples_ms),
        "p99_ms": percentile(samples_ms, 99),
        "mean_ms": statistics.fmean(samples_ms),
        "max_ms": max(samples_ms),
    }


def time_calls(
    call: Callable[[], object], *, rounds: int, seconds: float, warmup: int = 0
) -> list[float]:
    """Milliseconds per run of `call`: `warmup` untimed, then up to `rounds` within `seconds`.

    The warm-up is capped by time too, at half of `seconds`, so a call slower
    than expected cannot stretch it. At least one timed run always happens,
    so a slow call yields one sample rather than none.
    """
    if rounds < 1 or seconds <= 0 or warmup < 0:
        raise ValueError(
            f"expected rounds >= 1, seconds > 0, warmup >= 0; got {rounds}, {seconds}, {warmup}"
        )
    warm_until = time.perf_counter() + seconds / 2
    for _ in range(warmup):
        call()
        if time.perf_counter() >= warm_until:
            break
    samples: list[float] = []
    deadline = time.perf_counter() + seconds
    for _ in range(rounds):
        start = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - start) / 1e6)
        if time.perf_counter() >= deadline:
            break
    return samples
