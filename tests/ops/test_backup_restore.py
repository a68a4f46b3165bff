"""Back up the audit database, restore it, prove the restored log is the same.

The procedure of docs/operations.md ("Backup and restore of the audit
log"), run for real: fill a log, keep a signed checkpoint, let the log grow
on, take an online backup (SQLite's backup API or `VACUUM INTO`;
`pg_dump` for PostgreSQL), restore it elsewhere (a copied file; `pg_restore`
into a fresh database), and run `ketenbroker restore-check` against the
restored copy with the kept checkpoint. A faithful restore passes; a
restore from before the checkpoint, or with one entry edited, does not.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.audit.checkpoint import Checkpoint
from broker.audit.entries import security_event
from broker.audit.log import AuditLog
from broker.audit.postgres_store import PostgresAuditStore
from broker.audit.sqlite_store import SqliteAuditStore
from broker.audit.store import AuditStore
from broker.cli import main
from broker.clock import SystemClock
from broker.commands.restore_check import check_restore
from broker.keys import KeyStore
from tests.conftest import throwaway_database

ENTRIES_BEFORE_CHECKPOINT = 40
ENTRIES_AFTER_CHECKPOINT = 7
# Bounds the external tools; a dump of a few dozen rows takes well under a second.
TOOL_TIMEOUT_SECONDS = 60


def fill(log: AuditLog, count: int) -> None:
    for n in range(count):
        log.record(
            security_event(
                time=datetime.now(UTC),
                event="POST /v1/exchanges",
                code="not_case_partner",
                principal="woongoed-lekstroom",
                trace_id=secrets.token_hex(16),
                detail=f"refusal {n}",
            )
        )


def keep_checkpoint(log: AuditLog, workdir: Path, keystore: KeyStore) -> tuple[Path, Path]:
    """What the DPO keeps: a checkpoint (as GET /v1/audit/checkpoint gives it) and the JWKS."""
    checkpoint = workdir / "checkpoint.json"
    checkpoint.write_text(json.dumps(log.checkpoint().to_dict()))
    jwks = workdir / "broker.jwks.json"
    jwks.write_text(json.dumps(keystore.public_keyset("broker").to_jwks()))
    return checkpoint, jwks


def restore_check(checkpoint: Path, jwks: Path, *where: str) -> int:
    return main(["restore-check", "--checkpoint", str(checkpoint), "--jwks", str(jwks), *where])


def open_log(store: AuditStore, keystore: KeyStore) -> AuditLog:
    return AuditLog(store=store, signing_key=keystore.signing_key("broker"), clock=SystemClock())


# --- SQLite -----------------------------------------------------------------------------


def backup_api(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as live, sqlite3.connect(target) as copy:
        live.backup(copy)
    live.close()
    copy.close()


def vacuum_into(source: Path, target: Path) -> None:
    live = sqlite3.connect(source)
    try:
        live.execute("VACUUM INTO ?", (str(target),))
    finally:
        live.close()


@pytest.mark.parametrize("backup", [backup_api, vacuum_into], ids=["backup-api", "vacuum-into"])
def test_restored_sqlite_log_matches_the_kept_checkpoint(
    backup: Callable[[Path, Path], None],
    keystore: KeyStore,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    live_path = tmp_path / "live.sqlite3"
    store = SqliteAuditStore(live_path)
    log = open_log(store, keystore)
    fill(log, ENTRIES_BEFORE_CHECKPOINT)
    checkpoint, jwks = keep_checkpoint(log, tmp_path, keystore)
    fill(log, ENTRIES_AFTER_CHECKPOINT)
    # Online: the broker's store stays open and keeps its connection.
    backup_file = tmp_path / "backup.sqlite3"
    backup(live_path, backup_file)
    store.close()

    restored = tmp_path / "restored" / "ketenbroker.sqlite3"
    restored.parent.mkdir()
    shutil.copyfile(backup_file, restored)
    assert restore_check(checkpoint, jwks, "--sqlite", str(restored)) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK:"), out
    assert f"holds {ENTRIES_BEFORE_CHECKPOINT + ENTRIES_AFTER_CHECKPOINT} entries" in out

    reopened = SqliteAuditStore(restored)
    try:
        assert check_restore(reopened, json_checkpoint(checkpoint)) == []
        # The restored broker goes on from where the backup ended.
        grown = open_log(reopened, keystore)
        fill(grown, 1)
        assert grown.verify().ok
    finally:
        reopened.close()


def json_checkpoint(path: Path) -> Checkpoint:
    return Checkpoint.from_dict(json.loads(path.read_text()))


def test_restore_from_before_the_checkpoint_is_refused(
    keystore: KeyStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live_path = tmp_path / "live.sqlite3"
    store = SqliteAuditStore(live_path)
    log = open_log(store, keystore)
    fill(log, 5)
    old_backup = tmp_path / "old.sqlite3"
    backup_api(live_path, old_backup)
    fill(log, 5)
    checkpoint, jwks = keep_checkpoint(log, tmp_path, keystore)
    store.close()
    assert restore_check(checkpoint, jwks, "--sqlite", str(old_backup)) == 1
    out = capsys.readouterr().out
    assert "TAMPERED:" in out and "has size 10, the store holds only 5 entries" in out


def test_restore_with_an_edited_entry_is_refused(
    keystore: KeyStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live_path = tmp_path / "live.sqlite3"
    store = SqliteAuditStore(live_path)
    log = open_log(store, keystore)
    fill(log, 12)
    checkpoint, jwks = keep_checkpoint(log, tmp_path, keystore)
    store.close()
    restored = tmp_path / "restored.sqlite3"
    backup_api(live_path, restored)
    # Whoever edits the copy must first drop the append-only trigger.
    with sqlite3.connect(restored) as db:
        db.execute("DROP TRIGGER audit_entries_no_update")
        db.execute(
            "UPDATE audit_entries SET entry = replace(entry, 'woongoed-lekstroom',"
            " 'politie-lekstroom') WHERE \"index\" = 3"
        )
    db.close()
    assert restore_check(checkpoint, jwks, "--sqlite", str(restored)) == 1
    assert "TAMPERED:" in capsys.readouterr().out


def test_a_checkpoint_under_a_foreign_key_is_refused(
    keystore: KeyStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    live_path = tmp_path / "live.sqlite3"
    store = SqliteAuditStore(live_path)
    log = open_log(store, keystore)
    fill(log, 3)
    checkpoint, _ = keep_checkpoint(log, tmp_path, keystore)
    store.close()
    # The gemeente's keys did not sign it: the checkpoint proves nothing.
    other = tmp_path / "other.jwks.json"
    other.write_text(json.dumps(keystore.public_keyset("gemeente-lekstroom").to_jwks()))
    assert restore_check(checkpoint, other, "--sqlite", str(live_path)) == 1
    assert "signature does not hold" in capsys.readouterr().out


def test_a_missing_database_cannot_be_checked(
    keystore: KeyStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = SqliteAuditStore(tmp_path / "live.sqlite3")
    log = open_log(store, keystore)
    checkpoint, jwks = keep_checkpoint(log, tmp_path, keystore)
    store.close()
    missing = tmp_path / "typo.sqlite3"
    assert restore_check(checkpoint, jwks, "--sqlite", str(missing)) == 2
    assert "ERROR:" in capsys.readouterr().err
    assert not missing.exists()  # the check created no empty log in its place


# --- PostgreSQL -------------------------------------------------------------------------


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """An empty database to restore into, dropped afterwards."""
    with throwaway_database("ketenbroker_restore") as dsn:
        yield dsn


def run_tool(*argv: str) -> None:
    done = subprocess.run(  # noqa: S603  # fixed tools, arguments from this test
        argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_SECONDS, check=False
    )
    assert done.returncode == 0, f"{argv[0]} failed: {done.stderr}"


@pytest.mark.postgres
def test_restored_postgres_log_matches_the_kept_checkpoint(
    postgres_dsn: str,
    fresh_database: str,
    keystore: KeyStore,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = PostgresAuditStore(postgres_dsn)
    log = open_log(store, keystore)
    fill(log, ENTRIES_BEFORE_CHECKPOINT)
    checkpoint, jwks = keep_checkpoint(log, tmp_path, keystore)
    fill(log, ENTRIES_AFTER_CHECKPOINT)
    dump = tmp_path / "audit.dump"
    # Online: pg_dump reads one consistent snapshot while the broker writes.
    run_tool("pg_dump", "--format=custom", "--no-owner", f"--file={dump}", postgres_dsn)
    store.close()
    run_tool("pg_restore", "--no-owner", "--exit-on-error", f"--dbname={fresh_database}", str(dump))

    assert restore_check(checkpoint, jwks, "--postgres", fresh_database) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK:"), out
    restored = PostgresAuditStore(fresh_database)
    try:
        assert restored.size() == ENTRIES_BEFORE_CHECKPOINT + ENTRIES_AFTER_CHECKPOINT
        assert open_log(restored, keystore).verify().ok
    finally:
        restored.close()
