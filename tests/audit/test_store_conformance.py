"""The AuditStore contract (broker/audit/store.py), run against SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.audit import (
    AuditQuery,
    AuditReadError,
    AuditStore,
    CorruptEntryError,
    SqliteAuditStore,
)
from broker.audit.merkle import MerkleAccumulator, leaf_hash
from broker.audit.store import RowReader
from broker.canonical import canonical_json
from broker.errors import AuditWriteError, InvalidRequestError
from tests.audit.conftest import T0, Backend, make_entry

THREADS = 8
PER_THREAD = 15


def indexes(stored: list[Any]) -> list[int]:
    return [s.index for s in stored]


def test_append_assigns_consecutive_indexes_from_the_current_size(store: AuditStore) -> None:
    assert store.size() == 0
    first = store.append([make_entry(0), make_entry(1), make_entry(2)])
    second = store.append([make_entry(3), make_entry(4)])
    assert indexes(first) == [0, 1, 2]
    assert indexes(second) == [3, 4]
    assert [s.entry["index"] for s in first + second] == [0, 1, 2, 3, 4]
    assert store.size() == 5


def test_append_leaves_the_callers_entry_alone(store: AuditStore) -> None:
    entry = make_entry(0)
    before = dict(entry)
    store.append([entry])
    assert entry == before


def test_leaf_hash_is_the_merkle_leaf_hash_of_the_entry_with_its_index(store: AuditStore) -> None:
    stored = store.append([make_entry(n) for n in range(6)])
    for s in stored:
        fetched = store.get(s.index)
        assert fetched == s
        assert fetched.entry["index"] == s.index
        assert leaf_hash(fetched.entry) == fetched.leaf_hash
    assert store.leaf_hashes(0, 6) == [s.leaf_hash for s in stored]
    assert store.leaf_hashes(2, 4) == [stored[2].leaf_hash, stored[3].leaf_hash]


def test_caller_supplied_index_is_replaced_by_the_assigned_one(store: AuditStore) -> None:
    (stored,) = store.append([{**make_entry(0), "index": 41}])
    assert stored.index == 0
    assert stored.entry["index"] == 0
    assert stored.leaf_hash == leaf_hash({**make_entry(0), "index": 0})


def test_entry_is_stored_canonically_so_rehashing_reproduces_the_leaf(store: AuditStore) -> None:
    entry = {
        **make_entry(0),
        "reasons": [{"code": "ok", "detail": "straat ’t Hoogt — ✓"}],
        "score": 1.0,  # JCS writes 1
        "nested": {"z": 1, "a": [True, None]},
    }
    (stored,) = store.append([entry])
    fetched = store.get(0)
    assert fetched is not None
    assert fetched.entry == stored.entry
    assert canonical_json(fetched.entry) == canonical_json({**entry, "index": 0})
    assert leaf_hash(fetched.entry) == stored.leaf_hash


def test_get_beyond_the_end_is_none(store: AuditStore) -> None:
    store.append([make_entry(0)])
    assert store.get(1) is None
    assert store.get(-1) is None


# The entries the query table below searches, by index:
#   0 case-1 gemeente->politie permit   T0+0s
#   1 case-1 gemeente->woningcorp deny  T0+1s
#   2 case-2 politie->gemeente permit   T0+2s
#   3 case-2 woningcorp (no provider) partial T0+3s
#   4 no case, security event-like, requester None  deny T0+4s
QUERY_ENTRIES = [
    make_entry(0, case="case-1", requester="gemeente", provider="politie", decision="permit"),
    make_entry(1, case="case-1", requester="gemeente", provider="woningcorp", decision="deny"),
    make_entry(2, case="case-2", requester="politie", provider="gemeente", decision="permit"),
    make_entry(3, case="case-2", requester="woningcorp", provider=None, decision="partial"),
    make_entry(4, case=None, requester=None, provider=None, decision="deny"),
]


def ts(seconds: int) -> str:
    return (
        (T0 + timedelta(seconds=seconds)).isoformat(timespec="microseconds").replace("+00:00", "Z")
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (AuditQuery(), [0, 1, 2, 3, 4]),  # no filter: everything, in index order
        (AuditQuery(case="case-2"), [2, 3]),
        (AuditQuery(decision="deny"), [1, 4]),
        (AuditQuery(partner="gemeente"), [0, 1, 2]),  # as requester (0, 1) or provider (2)
        (AuditQuery(partner="woningcorp"), [1, 3]),  # provider (1) or requester (3)
        (AuditQuery(partner="politie", decision="permit"), [0, 2]),  # filters combine
        (AuditQuery(partner="onbekend"), []),  # an unknown partner sees nothing
        (AuditQuery(time_from=ts(2)), [2, 3, 4]),  # from is inclusive
        (AuditQuery(time_to=ts(2)), [0, 1]),  # to is exclusive
        (AuditQuery(time_from=ts(1), time_to=ts(3)), [1, 2]),
        (AuditQuery(after_index=1), [2, 3, 4]),  # cursor: the last index seen
        (AuditQuery(after_index=-1), [0, 1, 2, 3, 4]),  # -1: none seen yet
        (AuditQuery(before_index=3), [0, 1, 2]),  # pinned to a checkpoint size
        (AuditQuery(limit=2), [0, 1]),
        (AuditQuery(case="case-1", after_index=0, limit=5), [1]),
    ],
)
def test_query_filters_select_exactly_the_matching_entries(
    store: AuditStore, query: AuditQuery, expected: list[int]
) -> None:
    store.append(QUERY_ENTRIES)
    assert indexes(store.query(query)) == expected


def test_case_and_partner_are_found_in_either_shape(store: AuditStore) -> None:
    """A case may be {"id": ...} or a bare id; a party {"partner": ...} or a bare id."""
    store.append(
        [
            {**make_entry(0), "case": {"id": "case-9"}, "provider": "zorg"},
            {**make_entry(1), "case": "case-9", "requester": {"partner": "zorg"}},
            {**make_entry(2), "case": {"no-id": 1}, "provider": {"partner": 7}},
        ]
    )
    assert indexes(store.query(AuditQuery(case="case-9"))) == [0, 1]
    assert indexes(store.query(AuditQuery(partner="zorg"))) == [0, 1]


def test_cursor_pagination_visits_every_entry_once_in_order(store: AuditStore) -> None:
    store.append([make_entry(n, decision="deny" if n % 3 else "permit") for n in range(25)])
    seen: list[int] = []
    cursor = None
    while page := store.query(AuditQuery(decision="deny", after_index=cursor, limit=4)):
        seen += indexes(page)
        cursor = page[-1].index
    assert seen == [n for n in range(25) if n % 3]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 0},  # an empty page would loop a client forever
        {"limit": 1001},  # above MAX_QUERY_LIMIT
        {"limit": True},  # bool is not a count
        {"after_index": -2},  # cursors are indexes, or -1 for "none seen yet"
        {"before_index": -5},
        {"case": "x" * 201},  # unbounded untrusted text
        {"partner": 7},  # not a string
    ],
)
def test_query_refuses_out_of_bound_filters(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError):
        AuditQuery(**kwargs)


def test_reopened_store_sees_the_same_entries_and_root(backend: Backend) -> None:
    first = backend.store()
    stored = first.append([make_entry(n) for n in range(9)])
    first.close()
    again = backend.store()
    assert again.size() == 9
    assert [again.get(n) for n in range(9)] == stored
    assert (
        MerkleAccumulator.from_leaves(again.leaf_hashes(0, 9)).root()
        == MerkleAccumulator.from_leaves(s.leaf_hash for s in stored).root()
    )


def _append_from_threads(stores: list[AuditStore]) -> list[int]:
    """THREADS threads spread over `stores`, each appending PER_THREAD entries one by one."""
    got: list[int] = []
    errors: list[BaseException] = []
    guard = threading.Lock()
    start = threading.Barrier(THREADS)

    def work(worker: int) -> None:
        try:
            start.wait()
            for n in range(PER_THREAD):
                (s,) = stores[worker % len(stores)].append([make_entry(worker * 1000 + n)])
                with guard:
                    got.append(s.index)
        except BaseException as e:  # noqa: BLE001  # reported by the asserting thread below
            with guard:
                errors.append(e)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return got


def _assert_gap_free_and_verifying(store: AuditStore, expected: int) -> None:
    assert store.size() == expected
    entries = store.query(AuditQuery(limit=1000))
    assert indexes(entries) == list(range(expected))
    assert all(leaf_hash(s.entry) == s.leaf_hash for s in entries)
    assert all(s.entry["index"] == s.index for s in entries)


def test_concurrent_appends_from_eight_threads_give_gap_free_indexes(store: AuditStore) -> None:
    got = _append_from_threads([store])
    assert sorted(got) == list(range(THREADS * PER_THREAD))
    _assert_gap_free_and_verifying(store, THREADS * PER_THREAD)


def test_two_stores_on_one_database_appending_concurrently_give_one_sequence(
    backend: Backend,
) -> None:
    """Two broker processes share one database: each has its own store object and connection."""
    stores = [backend.store(), backend.store()]
    got = _append_from_threads(stores)
    assert sorted(got) == list(range(THREADS * PER_THREAD))
    _assert_gap_free_and_verifying(stores[0], THREADS * PER_THREAD)


@pytest.mark.parametrize(
    "batch",
    [
        [{"kind": "exchange"}],  # no time: the time filters could not see it
        [{"time": "2026-05-01T12:00:00.000000Z"}],  # no kind
        [make_entry(0), {**make_entry(1), "score": float("nan")}],  # JCS has no NaN
        [make_entry(0), {**make_entry(1), "n": 2**60}],  # beyond JCS's exact integers
        [make_entry(0), "not an entry"],  # not an object at all
    ],
)
def test_unloggable_batch_raises_audit_write_error_and_writes_nothing(
    store: AuditStore, batch: list[Any]
) -> None:
    store.append([make_entry(9)])
    with pytest.raises(AuditWriteError):
        store.append(batch)
    assert store.size() == 1
    assert indexes(store.query(AuditQuery())) == [0]


def test_database_refusing_the_insert_raises_audit_write_error_and_writes_nothing(
    backend: Backend, store: AuditStore
) -> None:
    store.append([make_entry(0)])
    backend.execute(backend.refuse_inserts)
    with pytest.raises(AuditWriteError) as raised:
        store.append([make_entry(1), make_entry(2)])
    assert raised.value.__cause__ is not None  # the database's own error, kept for the operator
    assert store.size() == 1
    backend.execute(backend.allow_inserts)
    assert indexes(store.append([make_entry(3)])) == [1]


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_entries SET decision = 'permit'",
        'DELETE FROM audit_entries WHERE "index" = 0',
    ],
)
def test_database_refuses_to_change_or_delete_entries(
    backend: Backend, store: AuditStore, sql: str
) -> None:
    store.append([make_entry(0, decision="deny")])
    with pytest.raises(Exception, match="append-only"):
        backend.execute(sql)
    assert store.get(0) is not None
    assert store.get(0).entry["decision"] == "deny"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "tamper",
    [
        # not JSON at all
        "UPDATE audit_entries SET entry = 'not json'",
        # JSON, but not an object
        "UPDATE audit_entries SET entry = '[1, 2]'",
        # a constant JCS never writes
        """UPDATE audit_entries SET entry = '{"index": 0, "x": NaN}'""",
    ],
)
def test_undecodable_row_raises_corrupt_entry_error(
    backend: Backend, store: AuditStore, tamper: str
) -> None:
    store.append([make_entry(0)])
    backend.execute(backend.drop_append_only_guard)
    backend.execute(tamper)
    with pytest.raises(CorruptEntryError):
        store.get(0)
    with pytest.raises(CorruptEntryError):
        store.query(AuditQuery())


def test_ping_passes_on_a_usable_store(store: AuditStore) -> None:
    store.ping()


def test_closed_store_refuses_every_call(store: AuditStore) -> None:
    store.append([make_entry(0)])
    store.close()
    with pytest.raises(AuditWriteError):
        store.append([make_entry(1)])
    with pytest.raises(AuditWriteError):
        store.ping()
    with pytest.raises(AuditReadError):
        store.size()
    with pytest.raises(AuditReadError):
        store.query(AuditQuery())
    store.close()  # closing twice is harmless


def test_ping_fails_when_the_table_is_gone(backend: Backend, store: AuditStore) -> None:
    backend.execute("DROP TABLE audit_entries")
    with pytest.raises(AuditWriteError):
        store.ping()
    with pytest.raises(AuditWriteError):
        store.append([make_entry(0)])


def test_sqlite_commits_are_fsynced_to_a_write_ahead_log(sqlite_path: Path) -> None:
    """synchronous=FULL in WAL mode: a returned append survives power loss (sqlite.org/wal)."""
    store = SqliteAuditStore(sqlite_path)
    try:
        raw = sqlite3.connect(sqlite_path)
        try:
            assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        finally:
            raw.close()
        # synchronous is per connection: ask the store's own.
        assert store._conn is not None
        assert store._conn.execute("PRAGMA synchronous").fetchone() == (2,)  # 2 = FULL
    finally:
        store.close()


def test_sqlite_store_creates_its_folder(tmp_path: Path) -> None:
    store = SqliteAuditStore(tmp_path / "var" / "deeper" / "audit.sqlite3")
    try:
        assert store.append([make_entry(0)])[0].index == 0
    finally:
        store.close()


def test_raw_rows_are_the_stored_canonical_bytes_in_index_order(store: AuditStore) -> None:
    """`read_rows` and a row source hand verifiers exactly what `append` stored."""
    stored = store.append([make_entry(n) for n in range(7)])
    expected = [(s.index, s.leaf_hash, canonical_json(s.entry)) for s in stored]
    assert isinstance(store, RowReader)
    assert store.read_rows(-1, 3) == expected[:3]
    assert store.read_rows(2, 100) == expected[3:]
    assert store.read_rows(6, 100) == []
    source = store.row_source()
    assert source.read_range(0, 7) == expected
    assert source.read_range(2, 5) == expected[2:5]
    assert source.read_range(7, 9) == []
    with pytest.raises(ValueError, match="limit"):
        store.read_rows(-1, 0)
