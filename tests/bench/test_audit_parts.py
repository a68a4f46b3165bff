"""Audit append and verification benchmarks, small: commits are counted, logs verify."""

from __future__ import annotations

import pytest

from bench.audit_append import CountingStore, append_run, entry_pool, has_group_commit, open_store
from bench.audit_verify import run_backend as verify_backend
from broker.keys import generate_signing_key


@pytest.fixture(scope="module")
def pool() -> list[dict[str, object]]:
    return entry_pool(200)


def test_counting_store_counts_one_commit_per_append(pool: list[dict[str, object]]) -> None:
    with open_store("sqlite") as inner:
        store = CountingStore(inner)
        store.append(pool[:3])
        store.append(pool[3:4])
        assert (store.commits, store.entries) == (2, 4)
        assert store.size() == 4
        store.reset()
        assert (store.commits, store.entries) == (0, 0)


def test_append_run_stops_at_its_entry_cap_and_every_entry_is_stored(
    pool: list[dict[str, object]],
) -> None:
    with open_store("sqlite") as inner:
        store = CountingStore(inner)
        row = append_run(
            store,
            threads=4,
            group_commit=False,
            pool=list(pool),
            key=generate_signing_key(),
            seconds=30.0,
            max_entries=40,
        )
        assert row["status"] == "measured", row
        assert row["count"] == 40
        assert inner.size() == 40
        assert store.entries == 40
        # Without group commit every record is its own commit.
        if not has_group_commit():
            assert row["entries_per_commit"] == 1.0


@pytest.mark.postgres
def test_verification_rates_on_both_backends_come_from_a_log_that_verifies() -> None:
    for backend in ("sqlite", "postgres"):
        result = verify_backend(backend, size=300)
        assert result["status"] == "measured", result
        verifiers = [key for key in result if key.endswith(("_verify", "_verify_parallel"))]
        assert {"log_verify", "offline_verify"} <= set(verifiers)
        for key in [*verifiers, "export_write"]:
            assert result[key]["status"] == "measured", (backend, key)
            assert result[key]["size"] == 300, (backend, key)
            assert result[key]["entries_per_s"] > 0
