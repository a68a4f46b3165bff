"""The exchange benchmark's plumbing: scenarios, pairing, figures, and one real loadgen run.

The last test starts the embedded stack on loopback and the loadgen as a
separate process for a few requests, so `make bench` is known to produce
figures from real exchanges before anyone waits ten minutes for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.exchange import (
    LoadSettings,
    level_rows,
    loadgen_plan,
    path_summary,
    prepare_case,
    run_loadgen,
    scenarios,
)
from bench.loadgen import Plan, Scenario, run_scenario
from broker.keys import KeyStore
from broker.ratelimit.policy import MAX_LIMIT, RateLimits
from broker.stack import free_port, start_local_stack


def _result(path: str, concurrency: int, latencies: list[float], **extra: Any) -> dict[str, Any]:
    return {
        "path": path,
        "concurrency": concurrency,
        "completed": len(latencies),
        "failed": 0,
        "errors": [],
        "wall_seconds": 2.0,
        "latencies_ms": latencies,
        "hung_threads": 0,
        **extra,
    }


def test_scenarios_ask_direct_then_broker_at_each_level() -> None:
    plan = scenarios(LoadSettings(concurrencies=(1, 8)))
    assert [(s["path"], s["concurrency"]) for s in plan] == [
        ("direct", 1),
        ("broker", 1),
        ("direct", 8),
        ("broker", 8),
    ]
    # Every scenario the driver writes is one the loadgen accepts.
    assert [Scenario.from_dict(s).path for s in plan] == ["direct", "broker"] * 2


def test_a_plan_beyond_the_daily_quota_is_refused() -> None:
    # 3 levels x 3 400 requests would cross the partner's 10 000 a day: the
    # bench would measure 429s, so it refuses to start.
    with pytest.raises(ValueError, match="daily quota"):
        LoadSettings(broker_requests=3_400).check()
    LoadSettings().check()  # the default fits


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"path": "sideways"}, "path"),  # only the two paths exist
        ({"concurrency": 0}, "concurrency"),
        ({"max_requests": 0}, "max_requests"),  # no cap, no bound
        ({"max_seconds": 0}, "max_seconds"),
        ({"max_seconds": 10_000}, "max_seconds"),  # no scenario may hold the bench for hours
    ],
)
def test_loadgen_refuses_unbounded_or_odd_scenarios(raw: dict[str, Any], message: str) -> None:
    base = {"path": "broker", "concurrency": 1, "max_requests": 10, "max_seconds": 1.0}
    with pytest.raises(ValueError, match=message):
        Scenario.from_dict({**base, **raw})


def test_throughput_is_completed_requests_over_wall_time() -> None:
    summary = path_summary(_result("broker", 8, [1.0, 2.0, 3.0, 4.0]))
    assert summary["status"] == "measured"
    assert summary["throughput_per_s"] == 2.0  # 4 completed in 2 s
    assert summary["p50_ms"] == 2.5


def test_failed_requests_mark_the_figures_as_not_counting() -> None:
    summary = path_summary(
        _result("broker", 1, [1.0, 2.0], failed=3, errors=["429 too many requests"])
    )
    assert summary["status"] == "failed"
    assert "3 requests failed" in summary["reason"]
    assert "429" in summary["reason"]


def test_no_completed_request_gives_no_figure() -> None:
    summary = path_summary(_result("direct", 1, [], failed=5, errors=["ConnectError"]))
    assert summary["status"] == "failed"
    assert "p50_ms" not in summary


def test_levels_pair_direct_and_broker_with_ratios() -> None:
    rows = level_rows(
        [
            _result("direct", 1, [2.0, 2.0]),
            _result("broker", 1, [6.0, 6.0]),
            _result("direct", 8, [4.0]),
        ]
    )
    assert [r["concurrency"] for r in rows] == [1, 8]
    assert rows[0]["added_p50_ms"] == 4.0
    assert rows[0]["ratio_p50"] == 3.0
    assert rows[0]["ratio_throughput"] == 1.0  # both 2 requests in 2 s
    assert "ratio_p50" not in rows[1]  # no broker figure at c=8, no ratio


@pytest.mark.e2e
def test_loadgen_process_measures_real_exchanges(keystore: KeyStore, tmp_path: Path) -> None:
    base = {
        "keys_dir": keystore.root,
        "sqlite_path": tmp_path / "kb.sqlite3",
        "storage_backend": "sqlite",
        "cache_backend": "memory",
        "policy_engine": "embedded",
        "rate_limits": dict.fromkeys(RateLimits.model_fields, MAX_LIMIT),
    }
    load = LoadSettings(
        concurrencies=(2,),
        direct_seconds=20.0,
        direct_requests=10,
        broker_seconds=20.0,
        broker_requests=6,
        warmup_per_worker=1,
    )
    with start_local_stack(base=base) as stack:
        case_id = prepare_case(stack.broker_url, keystore)
        before = stack.services.audit.checkpoint().size
        answer = run_loadgen(loadgen_plan(stack, case_id, load), timeout=120)
        written = stack.services.audit.checkpoint().size - before
    (row,) = level_rows(answer["scenarios"])
    assert row["direct"]["status"] == "measured", row["direct"]
    assert row["broker"]["status"] == "measured", row["broker"]
    assert row["direct"]["completed"] == 10
    assert row["broker"]["completed"] == 6
    # Each disclosed exchange made two durable entries (intent, disclosure):
    # 6 timed + 2 warm-up exchanges through the broker.
    assert written == 2 * (6 + 2)


@pytest.mark.parametrize("path", ["direct", "broker"])
def test_loadgen_against_a_closed_port_reports_failures_and_ends(
    keystore: KeyStore, path: str
) -> None:
    # Nobody listens: every request fails fast; the scenario must count the
    # failures and end at its request cap instead of hanging or inventing figures.
    url = f"http://127.0.0.1:{free_port()}"
    plan = Plan.from_dict(
        {
            "broker_url": url,
            "adapter_url": url,
            "adapter_partner": "politie-lekstroom",
            "keys_dir": str(keystore.root),
            "client_id": "gemeente-lekstroom",
            "exchange_body": {},
            "adapter_body": "{}",
            "scenarios": [],
        }
    )
    scenario = Scenario(path=path, concurrency=2, warmup=1, max_requests=6, max_seconds=30.0)
    result = run_scenario(plan, scenario, keystore)
    assert result["completed"] == 0
    assert result["failed"] >= 6  # six timed requests, plus any warm-up failures
    assert result["hung_threads"] == 0
    assert result["errors"]
    assert path_summary(result)["status"] == "failed"
