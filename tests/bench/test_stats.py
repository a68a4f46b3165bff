"""Percentiles and bounded timing loops: the arithmetic every bench figure rests on."""

from __future__ import annotations

import time

import pytest

from bench.stats import EmptySampleError, percentile, summarize, time_calls


@pytest.mark.parametrize(
    ("samples", "q", "expected"),
    [
        ([5.0], 50, 5.0),  # one sample is every percentile
        ([5.0], 99, 5.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),  # nearest rank: ceil(0.5 * 4) = 2nd
        ([4.0, 3.0, 2.0, 1.0], 50, 2.0),  # order of arrival does not matter
        ([float(i) for i in range(1, 101)], 99, 99.0),  # ceil(0.99 * 100) = 99th
        ([float(i) for i in range(1, 51)], 99, 50.0),  # 50 runs: p99 is the slowest run
        ([float(i) for i in range(1, 201)], 99, 198.0),  # ceil(0.99 * 200) = 198th
        ([1.0, 2.0, 3.0], 100, 3.0),  # p100 is the maximum
    ],
)
def test_percentile_is_nearest_rank_a_time_some_run_took(
    samples: list[float], q: float, expected: float
) -> None:
    assert percentile(samples, q) == expected
    assert expected in samples


@pytest.mark.parametrize("q", [0, -1, 100.5])
def test_percentile_refuses_a_percentile_outside_0_to_100(q: float) -> None:
    with pytest.raises(ValueError, match="q"):
        percentile([1.0], q)


def test_no_samples_give_no_figure() -> None:
    with pytest.raises(EmptySampleError):
        percentile([], 50)
    with pytest.raises(EmptySampleError):
        summarize([])


def test_summary_holds_median_p99_mean_and_count() -> None:
    summary = summarize([1.0, 2.0, 3.0, 10.0])
    assert summary == {
        "status": "measured",
        "count": 4,
        "p50_ms": 2.5,  # the median of an even sample is the mean of the middle two
        "p99_ms": 10.0,
        "mean_ms": 4.0,
        "max_ms": 10.0,
    }


def test_timing_loop_stops_at_its_count() -> None:
    calls: list[int] = []
    samples = time_calls(lambda: calls.append(1), rounds=25, seconds=60.0, warmup=3)
    assert len(samples) == 25
    assert len(calls) == 28  # warm-up runs are not samples
    assert all(s >= 0 for s in samples)


def test_timing_loop_stops_at_its_time_cap() -> None:
    # 20 ms calls under a 50 ms cap: a handful of samples, far from 10 000.
    samples = time_calls(lambda: time.sleep(0.02), rounds=10_000, seconds=0.05)
    assert 1 <= len(samples) <= 5


def test_timing_loop_takes_one_sample_even_when_the_first_run_overruns() -> None:
    samples = time_calls(lambda: time.sleep(0.01), rounds=10, seconds=0.001)
    assert len(samples) == 1


@pytest.mark.parametrize(
    "caps",
    [
        {"rounds": 0, "seconds": 1.0},  # no run at all would be no figure
        {"rounds": 1, "seconds": 0.0},  # no time at all
        {"rounds": 1, "seconds": 1.0, "warmup": -1},
    ],
)
def test_timing_loop_refuses_unbounded_or_empty_caps(caps: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="expected"):
        time_calls(lambda: None, **caps)  # type: ignore[arg-type]
