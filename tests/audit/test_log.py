"""AuditLog: receipts and proofs verify, tampering is caught, a failed write changes nothing."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from broker.audit import (
    AuditLog,
    AuditStore,
    Checkpoint,
    Receipt,
    verify_checkpoint,
    verify_consistency,
    verify_inclusion,
)
from broker.audit import log as audit_log
from broker.audit.log import MAX_REPORTED_PROBLEMS
from broker.audit.merkle import EMPTY_ROOT, leaf_hash
from broker.canonical import canonical_json
from broker.errors import AuditWriteError, InvalidRequestError
from broker.keys import SigningKey
from tests.audit.conftest import Backend, CountingStore, FixedClock, keyset_of, make_entry


def new_log(store: AuditStore, key: SigningKey, clock: FixedClock) -> AuditLog:
    return AuditLog(store=store, signing_key=key, clock=clock)


@pytest.fixture
def log(store: AuditStore, broker_key: SigningKey, clock: FixedClock) -> AuditLog:
    return new_log(store, broker_key, clock)


def unhex(hashes: list[str]) -> list[bytes]:
    return [bytes.fromhex(h) for h in hashes]


def assert_receipt_verifies(log: AuditLog, receipt: Receipt, key: SigningKey) -> None:
    verify_checkpoint(receipt.checkpoint, keys=keyset_of(key))
    proof = log.inclusion_proof(receipt.log_index, receipt.checkpoint.size)
    verify_inclusion(
        leaf_hash=bytes.fromhex(receipt.leaf_hash),
        index=receipt.log_index,
        size=receipt.checkpoint.size,
        proof=unhex(proof),
        root=bytes.fromhex(receipt.checkpoint.root_hash),
    )


def test_empty_log_checkpoint_signs_the_empty_root(log: AuditLog, broker_key: SigningKey) -> None:
    checkpoint = log.checkpoint()
    assert (checkpoint.size, checkpoint.root_hash) == (0, EMPTY_ROOT.hex())
    verify_checkpoint(checkpoint, keys=keyset_of(broker_key))


def test_receipt_inclusion_proof_verifies_against_its_checkpoint_root(
    log: AuditLog, store: AuditStore, broker_key: SigningKey
) -> None:
    receipts = [log.record(make_entry(n)) for n in range(11)]
    assert [r.log_index for r in receipts] == list(range(11))
    assert [r.checkpoint.size for r in receipts] == list(range(1, 12))
    for receipt in receipts:
        stored = store.get(receipt.log_index)
        assert stored is not None
        assert receipt.leaf_hash == leaf_hash(stored.entry).hex()
        assert_receipt_verifies(log, receipt, broker_key)
        # ... and the entry is also in every later tree.
        later = log.checkpoint()
        verify_inclusion(
            leaf_hash=bytes.fromhex(receipt.leaf_hash),
            index=receipt.log_index,
            size=later.size,
            proof=unhex(log.inclusion_proof(receipt.log_index, later.size)),
            root=bytes.fromhex(later.root_hash),
        )


def test_receipt_dict_has_the_contract_members(log: AuditLog) -> None:
    document = log.record(make_entry(0)).to_dict()
    assert set(document) == {"log_index", "leaf_hash", "checkpoint"}
    assert set(document["checkpoint"]) == {"size", "root_hash", "time", "key_id", "signature"}
    assert Checkpoint.from_dict(document["checkpoint"]).size == 1


@pytest.mark.parametrize(
    ("first_size", "second_size"), [(0, 5), (1, 5), (3, 11), (4, 11), (11, 11)]
)
def test_consistency_proof_between_two_checkpoints_verifies(
    log: AuditLog, first_size: int, second_size: int
) -> None:
    for n in range(first_size):
        log.record(make_entry(n))
    first = log.checkpoint()
    for n in range(first_size, second_size):
        log.record(make_entry(n))
    second = log.checkpoint()
    proof = unhex(log.consistency_proof(first.size, second.size))
    verify_consistency(
        first=first.size,
        second=second.size,
        first_root=bytes.fromhex(first.root_hash),
        second_root=bytes.fromhex(second.root_hash),
        proof=proof,
    )


def test_restarted_log_rebuilds_the_same_tree(
    backend: Backend, broker_key: SigningKey, clock: FixedClock
) -> None:
    before = new_log(backend.store(), broker_key, clock)
    for n in range(13):
        before.record(make_entry(n))
    checkpoint = before.checkpoint()
    after = new_log(backend.store(), broker_key, clock)
    # Ed25519 is deterministic and the clock fixed: the same tree signs the same bytes.
    assert after.checkpoint() == checkpoint
    assert after.verify().ok


def test_untampered_log_verifies_and_reports_the_checkpoint_root(log: AuditLog) -> None:
    for n in range(9):
        log.record(make_entry(n))
    report = log.verify(trusted=[log.checkpoint()])
    assert report.problems == []
    assert report.ok
    assert (report.size, report.root_hash) == (9, log.checkpoint().root_hash)


# Each row is what someone with write access to the database might do, and
# the problem verify() must name. The guard triggers are dropped first: they
# stop accidents, not an attacker.
TAMPERS = [
    # flip a refusal into a permission, leaving the leaf hash alone
    (
        """UPDATE audit_entries
           SET entry = replace(entry, '"decision":"deny"', '"decision":"permit"')
           WHERE "index" = 4""",
        "leaf hash of entry 4",
    ),
    # replace the stored leaf hash with another entry's
    (
        """UPDATE audit_entries
           SET leaf_hash = (SELECT leaf_hash FROM audit_entries WHERE "index" = 1)
           WHERE "index" = 4""",
        "leaf hash of entry 4",
    ),
    # remove an entry: a gap
    ("""DELETE FROM audit_entries WHERE "index" = 4""", "indexes 4 to 4 are missing"),
    # remove the last entry: the store is shorter than the tree this process signed
    ("""DELETE FROM audit_entries WHERE "index" = 8""", "the store holds only 8 entries"),
    # move two entries to other positions (they keep their own "index")
    (
        """UPDATE audit_entries SET "index" = 100 + "index" WHERE "index" IN (2, 3)""",
        "entry at index 102 says index 2",
    ),
]


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(("tamper", "problem"), TAMPERS)
def test_tampering_a_stored_row_is_caught_by_verify(
    backend: Backend, log: AuditLog, tamper: str, problem: str, workers: int
) -> None:
    for n in range(9):
        log.record(make_entry(n, decision="deny"))
    assert log.verify().ok
    backend.execute(backend.drop_append_only_guard)
    backend.execute(tamper)
    report = log.verify(workers=workers)
    assert not report.ok
    assert any(problem in p for p in report.problems), report.problems


def test_consistent_rewrite_is_caught_by_the_root_this_process_signed(
    backend: Backend, log: AuditLog
) -> None:
    """Entry and leaf hash rewritten together: every row checks out, the root does not."""
    for n in range(9):
        log.record(make_entry(n, decision="deny"))
    _rewrite_row(backend, 4, {**make_entry(4, decision="permit"), "index": 4})
    report = log.verify()
    assert not report.ok
    assert any("root at size 9" in p for p in report.problems)
    assert not any("leaf hash of entry" in p for p in report.problems)


def test_rewrite_before_restart_is_caught_by_a_kept_checkpoint(
    backend: Backend, broker_key: SigningKey, clock: FixedClock
) -> None:
    first = new_log(backend.store(), broker_key, clock)
    for n in range(9):
        first.record(make_entry(n, decision="deny"))
    kept = first.checkpoint()
    _rewrite_row(backend, 4, {**make_entry(4, decision="permit"), "index": 4})
    restarted = new_log(backend.store(), broker_key, clock)
    report = restarted.verify(trusted=[kept])
    assert not report.ok
    assert any("the checkpoint of" in p for p in report.problems)


def _rewrite_row(backend: Backend, index: int, entry: dict[str, Any]) -> None:
    """Rewrite a row with a forged entry and its correct leaf hash, as a careful forger would."""
    text = canonical_json(entry).decode().replace("'", "''")
    backend.execute(backend.drop_append_only_guard)
    backend.execute(
        f"""UPDATE audit_entries SET entry = '{text}',
            leaf_hash = {_hex_literal(backend, leaf_hash(entry))} WHERE "index" = {index}"""  # noqa: S608
    )


def _hex_literal(backend: Backend, data: bytes) -> str:
    return f"X'{data.hex()}'" if backend.name == "sqlite" else f"'\\x{data.hex()}'::bytea"


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("inclusion_proof", (3, 3)),  # index must be below size
        ("inclusion_proof", (0, 4)),  # size beyond the log
        ("inclusion_proof", (-1, 2)),  # negative index
        ("inclusion_proof", (0, 0)),  # the empty tree holds nothing
        ("inclusion_proof", (True, 2)),  # bool is not an index
        ("consistency_proof", (3, 2)),  # first after second
        ("consistency_proof", (1, 4)),  # second beyond the log
        ("consistency_proof", (-1, 2)),  # negative size
        ("consistency_proof", ("1", 2)),  # not an integer
    ],
)
def test_proof_requests_outside_the_log_are_invalid(
    log: AuditLog, method: str, args: tuple[Any, Any]
) -> None:
    for n in range(3):
        log.record(make_entry(n))
    with pytest.raises(InvalidRequestError):
        getattr(log, method)(*args)


def test_refused_write_raises_and_leaves_size_and_checkpoint_unchanged(
    backend: Backend, log: AuditLog, store: AuditStore, broker_key: SigningKey
) -> None:
    """The failure rule: no durable entry, no receipt; the log is as it was."""
    for n in range(3):
        log.record(make_entry(n))
    before = log.checkpoint()
    backend.execute(backend.refuse_inserts)
    with pytest.raises(AuditWriteError):
        log.record(make_entry(3))
    assert store.size() == 3
    assert log.checkpoint() == before
    # Once the disk recovers, the next entry takes the next index and all verifies.
    backend.execute(backend.allow_inserts)
    receipt = log.record(make_entry(4))
    assert receipt.log_index == 3
    assert_receipt_verifies(log, receipt, broker_key)
    assert log.verify().ok


def test_concurrent_records_give_receipts_that_all_verify(
    log: AuditLog, broker_key: SigningKey
) -> None:
    receipts: list[Receipt] = []
    guard = threading.Lock()
    start = threading.Barrier(8)

    def work(worker: int) -> None:
        start.wait()
        for n in range(10):
            receipt = log.record(make_entry(worker * 100 + n))
            with guard:
                receipts.append(receipt)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.log_index for r in receipts) == list(range(80))
    for receipt in receipts:
        assert_receipt_verifies(log, receipt, broker_key)
    assert log.verify().ok


def test_two_logs_on_one_database_keep_one_consistent_tree(
    backend: Backend, broker_key: SigningKey, clock: FixedClock
) -> None:
    """Two broker processes: each log catches up with the other's entries before signing."""
    a = new_log(backend.store(), broker_key, clock)
    b = new_log(backend.store(), broker_key, clock)
    receipts = []
    for n in range(12):
        writer = a if n % 3 else b
        receipts.append((writer, writer.record(make_entry(n))))
    assert [r.log_index for _, r in receipts] == list(range(12))
    for writer, receipt in receipts:
        assert_receipt_verifies(writer, receipt, broker_key)
    assert a.checkpoint() == b.checkpoint()
    first = receipts[4][1].checkpoint
    last = a.checkpoint()
    verify_consistency(
        first=first.size,
        second=last.size,
        first_root=bytes.fromhex(first.root_hash),
        second_root=bytes.fromhex(last.root_hash),
        proof=unhex(b.consistency_proof(first.size, last.size)),
    )
    assert a.verify().ok
    assert b.verify().ok


def test_verify_reports_an_undecodable_row_instead_of_raising(
    backend: Backend, log: AuditLog
) -> None:
    for n in range(3):
        log.record(make_entry(n))
    backend.execute(backend.drop_append_only_guard)
    backend.execute("""UPDATE audit_entries SET entry = 'not json' WHERE "index" = 1""")
    report = log.verify()
    assert not report.ok
    assert any("could not be read" in p for p in report.problems)


def test_verify_reports_an_entry_that_is_not_canonical_json(
    backend: Backend, log: AuditLog
) -> None:
    for n in range(3):
        log.record(make_entry(n))
    backend.execute(backend.drop_append_only_guard)
    backend.execute("""UPDATE audit_entries SET entry = '{"index":1,"n":1152921504606846976}'
                       WHERE "index" = 1""")
    report = log.verify()
    assert not report.ok
    assert any("cannot be canonicalised" in p for p in report.problems)


def test_verify_report_is_bounded_when_everything_was_rewritten(
    backend: Backend, log: AuditLog
) -> None:
    for n in range(MAX_REPORTED_PROBLEMS + 10):
        log.record(make_entry(n, decision="deny"))
    backend.execute(backend.drop_append_only_guard)
    backend.execute("UPDATE audit_entries SET entry = replace(entry, 'deny', 'permit')")
    report = log.verify()
    assert not report.ok
    assert len(report.problems) == MAX_REPORTED_PROBLEMS + 1
    assert report.problems[-1] == "... and 11 more problems"  # 110 leaves + 1 root


def test_restart_rebuilds_the_tree_across_read_batches(
    backend: Backend, broker_key: SigningKey, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = new_log(backend.store(), broker_key, clock)
    for n in range(10):
        before.record(make_entry(n))
    monkeypatch.setattr(audit_log, "LEAF_BATCH", 3)  # 10 leaves = 4 reads
    after = new_log(backend.store(), broker_key, clock)
    assert after.checkpoint() == before.checkpoint()


def test_verify_in_worker_processes_and_through_a_plain_store_reports_alike(
    backend: Backend,
    broker_key: SigningKey,
    clock: FixedClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fast path (raw rows, workers) and the plain one (`query`) find the same problems."""
    log = new_log(backend.store(), broker_key, clock)
    for n in range(9):
        log.record(make_entry(n, decision="deny"))
    kept = log.checkpoint()
    plain = new_log(CountingStore(backend.store()), broker_key, clock)  # no read_rows
    monkeypatch.setattr(audit_log, "ROW_PAGE", 4)  # 9 rows = 3 pages
    backend.execute(backend.drop_append_only_guard)
    backend.execute(TAMPERS[0][0])  # entry 4 flipped to permit, leaf left alone
    backend.execute("""DELETE FROM audit_entries WHERE "index" = 6""")
    reference = log.verify(trusted=[kept])
    assert not reference.ok
    assert any("leaf hash of entry 4" in p for p in reference.problems)
    assert any("indexes 6 to 6 are missing" in p for p in reference.problems)
    assert log.verify(trusted=[kept], workers=2) == reference
    assert plain.verify(trusted=[kept]) == reference
