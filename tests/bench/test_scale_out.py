"""The scale-out part's pure pieces and its process handling (real processes, no servers)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench import scale_out
from bench.processes import ServerProcess
from bench.run import DEFAULT_BUDGET_SECONDS, Budget, RunSettings, run_parts
from bench.scale_out import ScaleSettings, scaling_rows, section


def _config(workers: int, rates: dict[int, float], status: str = "measured") -> dict[str, Any]:
    return {
        "workers": workers,
        "status": status,
        "levels": [
            {"concurrency": c, "broker": {"status": "measured", "throughput_per_s": rate}}
            for c, rate in rates.items()
        ],
    }


def test_scaling_compares_each_worker_count_with_the_fewest_per_concurrency() -> None:
    rows = scaling_rows([_config(2, {8: 90.0, 32: 70.0}), _config(1, {8: 60.0, 32: 50.0})])
    by_level = {row["concurrency"]: row for row in rows}
    assert by_level[8]["ratio_throughput"] == pytest.approx(1.5)
    assert by_level[8]["efficiency"] == pytest.approx(0.75)  # 1.5 of a possible 2.0
    assert by_level[32]["ratio_throughput"] == pytest.approx(1.4)
    assert {row["base_workers"] for row in rows} == {1}


def test_scaling_skips_what_was_not_measured() -> None:
    failed_level = _config(2, {8: 90.0, 32: 70.0})
    failed_level["levels"][1]["broker"]["status"] = "failed"
    rows = scaling_rows([_config(1, {8: 60.0, 32: 50.0}), failed_level])
    assert [row["concurrency"] for row in rows] == [8]
    # One measured worker count leaves nothing to compare.
    assert scaling_rows([_config(1, {8: 60.0}), _config(2, {8: 90.0}, status="failed")]) == []


def test_section_is_measured_if_any_worker_count_is_else_says_why() -> None:
    over = {"workers": 2, "status": "skipped: over budget", "reason": "needs up to 95 s, 7 s left"}
    assert section([_config(1, {8: 60.0}), over])["status"] == "measured"
    alone = section([over])
    assert alone["status"] == "skipped: over budget"
    assert alone["reason"] == "needs up to 95 s, 7 s left"


def test_settings_refuse_a_plan_over_the_daily_quota_or_without_workers() -> None:
    ScaleSettings().check()
    with pytest.raises(ValueError, match="fewer than"):
        ScaleSettings(max_requests=20_000).check()
    with pytest.raises(ValueError, match="worker counts"):
        ScaleSettings(workers=(0, 2)).check()


def test_the_default_scale_out_fits_the_budget_after_the_other_parts_worst_case() -> None:
    settings = RunSettings.default()
    # Both worker counts at their caps fit beside a typical run of the rest (~210 s).
    assert 210 + 2 * settings.scale.config_seconds() < DEFAULT_BUDGET_SECONDS


def test_scale_out_that_does_not_fit_is_skipped_and_starts_nothing() -> None:
    doc = run_parts(["scale_out"], RunSettings.quick(), Budget(5.0))
    assert doc["scale_out"]["status"] == "skipped: over budget"
    assert "s left" in doc["scale_out"]["reason"]
    assert scale_out.STARTED_LINE  # the readiness line the part waits for


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_stop_ends_the_whole_process_group_children_included(tmp_path: Path) -> None:
    # The leader spawns a child that ignores nothing and sleeps: as uvicorn's workers do.
    script = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    log = tmp_path / "leader.log"
    process = ServerProcess(name="leader", args=["-c", script], env=dict(os.environ), log_file=log)
    deadline = time.monotonic() + 20
    while not log.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(log.read_text().split()[0])
    assert _alive(child)
    process.stop()
    assert process.process.poll() is not None
    deadline = time.monotonic() + 10  # the child is reaped by init after SIGKILL
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_a_process_that_exits_before_ready_is_an_error_with_its_log(tmp_path: Path) -> None:
    process = ServerProcess(
        name="early",
        args=["-c", "import sys; print('no database'); sys.exit(3)"],
        env=dict(os.environ),
        log_file=tmp_path / "early.log",
    )
    try:
        with pytest.raises(RuntimeError, match="early exited 3 before ready: no database"):
            process.wait_ready("http://127.0.0.1:9/readyz", deadline=time.monotonic() + 20)
    finally:
        process.stop()
    assert sys.executable  # the command ran under our own interpreter
