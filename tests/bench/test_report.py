"""The printed table and the JSON files: what a reader of a bench run sees."""

from __future__ import annotations

import json
from pathlib import Path

from bench.report import render_table, write_results
from bench.targets import evaluate
from tests.bench.documents import sample_document


def _table() -> str:
    document = sample_document()
    document["targets"] = evaluate(document)
    return render_table(document)


def test_table_shows_direct_and_broker_side_by_side_with_ratios() -> None:
    table = _table()
    # c=1: direct p50 1.50 / p99 3.00 / 1 000 req/s; broker 3.00 / 6.00 / 400;
    # added 1.50 ms, 2.0x the direct p50, 0.40x its throughput.
    row = next(line for line in table.splitlines() if line.startswith("sqlite        1 |"))
    assert " ".join(row.split()) == "sqlite 1 | 1.50 3.00 1,000 | 3.00 6.00 400 2.0 | 1.50 2.0 0.40"
    assert "one durable commit p50 0.40 ms" in table


def test_a_backend_not_measured_prints_its_reason_not_figures() -> None:
    table = _table()
    assert "postgres   not available: cannot reach Redis: refused" in table
    assert "postgres   skipped: over budget: needs up to 50 s, 3 s left" in table
    assert "postgres   failed: RuntimeError: boom" in table


def test_opa_server_is_not_available_and_the_standin_is_labelled() -> None:
    table = _table()
    assert "OPA server client path" in table
    assert "not available: no OPA server answered at http://127.0.0.1:8181" in table
    assert "client path vs stand-in, not OPA" in table


def test_targets_print_their_verdicts() -> None:
    table = _table()
    assert "MISSED    sqlite: p50 broker <= direct + 1 commit + 1 ms (c=1)" in table
    assert "MET       sqlite: context, direct + 2 commits + 1 ms" in table
    assert "NO FIGURE postgres: exchange targets" in table


def test_append_table_has_both_group_commit_columns() -> None:
    table = _table()
    row = next(line for line in table.splitlines() if line.startswith("sqlite          32"))
    # off: 500 entries/s, one per commit; on: 16 000 entries/s, 32 per commit.
    assert "500 / 500 / 1.0" in row
    assert "16,000 / 500 / 32.0" in row


def test_micro_costs_print_in_microseconds() -> None:
    table = _table()
    line = next(line for line in table.splitlines() if line.startswith("access_token_verify"))
    assert line.split() == ["access_token_verify", "200", "300"]


def test_results_are_written_stamped_and_as_latest(tmp_path: Path) -> None:
    document = sample_document()
    path = write_results(document, tmp_path / "results", "20261121T220000Z")
    assert path.name == "bench-20261121T220000Z.json"
    latest = tmp_path / "results" / "latest.json"
    assert json.loads(path.read_text()) == document
    assert latest.read_text() == path.read_text()


def test_scale_out_table_shows_each_worker_count_and_the_ratio_to_the_fewest() -> None:
    lines = _table().splitlines()
    rows = [" ".join(line.split()) for line in lines if line.startswith(("      1 ", "      2 "))]
    # The fewest workers have nothing to be compared with.
    assert "1 8 | 150.00 300.00 50 | - -" in rows
    assert "2 32 | 150.00 300.00 60 | 1.50 x 0.75" in rows
    skipped = next(line for line in lines if line.startswith("      4 "))
    assert "skipped: over budget: needs up to 95 s, 7 s left" in skipped
