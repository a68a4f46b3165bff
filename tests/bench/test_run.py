"""The driver's budget and verdict: a part that cannot fit is skipped and says so."""

from __future__ import annotations

import pytest

from bench.run import PARTS, Budget, RunSettings, has_failure, parse_args, per_backend


def test_a_part_that_does_not_fit_the_time_left_is_skipped_not_run() -> None:
    ran: list[str] = []

    def run(backend: str) -> dict[str, object]:
        ran.append(backend)
        return {"status": "measured", "size": 1}

    result = per_backend("audit_verify", RunSettings.default(), Budget(5.0), run)
    assert ran == []
    for backend in ("sqlite", "postgres"):
        assert result[backend]["status"] == "skipped: over budget"
        assert "s left" in result[backend]["reason"]


def test_a_part_that_fits_runs_on_both_backends() -> None:
    ran: list[str] = []

    def run(backend: str) -> dict[str, object]:
        ran.append(backend)
        return {"status": "measured", "size": 1}

    result = per_backend("micro", RunSettings.quick(), Budget(600.0), run)
    assert ran == ["sqlite", "postgres"]
    assert result["sqlite"]["status"] == "measured"


def test_a_raising_part_is_reported_failed_and_the_others_still_run() -> None:
    def run(backend: str) -> dict[str, object]:
        if backend == "sqlite":
            raise RuntimeError("disk full")
        return {"status": "measured", "size": 1}

    result = per_backend("micro", RunSettings.quick(), Budget(600.0), run)
    assert result["sqlite"]["status"] == "failed"
    assert result["sqlite"]["reason"] == "RuntimeError: disk full"
    assert result["postgres"]["status"] == "measured"


def test_default_caps_fit_the_daily_quota_and_ten_minutes() -> None:
    settings = RunSettings.default()
    settings.load.check()
    # Every part starts only within the budget; the budget leaves a minute
    # of the ten for start-up, machine info and the report.
    assert parse_args([]).budget <= 540


def test_any_failed_block_anywhere_fails_the_run() -> None:
    assert has_failure({"exchange": {"sqlite": {"levels": [{"broker": {"status": "failed"}}]}}})
    assert not has_failure({"exchange": {"sqlite": {"status": "not available"}}})


@pytest.mark.parametrize(
    "argv",
    [
        ["--parts", "exchange,teleport"],  # no such part
        ["--budget", "0"],
        ["--verify-size", "0"],
    ],
)
def test_driver_refuses_odd_arguments(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(argv)


def test_driver_parts_default_to_all() -> None:
    assert parse_args([]).parts == list(PARTS)
