"""`ketenbroker restore-check`: is a restored audit database the log a checkpoint signed?

    ketenbroker restore-check --checkpoint FILE --jwks JWKS [--sqlite PATH | --postgres DSN]

What it does: checks the checkpoint's signature under the broker's public
keys, opens the audit database (the one named, or the settings' one),
recomputes the Merkle tree from every stored entry, and compares the root
at the checkpoint's size with the checkpoint's root (`AuditLog.verify`).
It prints `OK: ...` and exits 0 only when the signature holds, every
entry hashes to its stored leaf, the indexes run without a gap, and the
root matches; `TAMPERED: ...` (exit 1) when any of that fails; `ERROR:
...` on stderr (exit 2) when the check cannot be made (no such file, the
database does not answer, an unreadable checkpoint or key set).

What it does not: write. No entry is appended and nothing is signed (the
log object it opens needs a signing key; it gets a throw-away one that
never leaves memory). Nor does it restore anything: docs/operations.md
says how to back up and restore, this says whether it worked.

Why a checkpoint and not a row count or a file hash: a checkpoint is what
the broker signed and the DPO kept. A restored database whose entries give
the same root at that size holds exactly those entries in that order
(RFC 9162 §2.1); a byte-for-byte file comparison would fail for a
PostgreSQL dump restored into a new cluster that holds the same log.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from broker.audit.checkpoint import (
    Checkpoint,
    CheckpointFormatError,
    CheckpointSignatureError,
    verify_checkpoint,
)
from broker.audit.log import AuditLog
from broker.audit.postgres_store import PostgresAuditStore
from broker.audit.sqlite_store import SqliteAuditStore
from broker.audit.store import AuditStore
from broker.clock import SystemClock
from broker.commands.audit import EXIT_CANNOT_VERIFY, EXIT_OK, EXIT_TAMPERED, load_keys
from broker.errors import BackendUnavailableError, InputError
from broker.keys import generate_signing_key
from broker.settings import Settings

# A checkpoint document is about 300 bytes; an export's last line the same.
MAX_CHECKPOINT_BYTES = 64 * 1024


class RestoreCheckError(InputError):
    """The check could not be made: a file, the database or the keys are unusable."""


def read_checkpoint(path: Path) -> Checkpoint:
    """A checkpoint: `GET /v1/audit/checkpoint`, a receipt's, or an export's last line."""
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_CHECKPOINT_BYTES + 1)
    except OSError as e:
        raise RestoreCheckError(f"cannot read the checkpoint {str(path)!r}: {e}") from e
    if len(raw) > MAX_CHECKPOINT_BYTES:
        raise RestoreCheckError(f"expected at most {MAX_CHECKPOINT_BYTES} bytes in {str(path)!r}")
    try:
        document = json.loads(raw)
    except ValueError as e:
        raise RestoreCheckError(f"expected JSON in {str(path)!r}: {e}") from e
    if isinstance(document, dict) and set(document) == {"checkpoint"}:
        document = document["checkpoint"]
    if not isinstance(document, dict):
        raise RestoreCheckError(f"expected a checkpoint object in {str(path)!r}")
    try:
        return Checkpoint.from_dict(document)
    except CheckpointFormatError as e:
        raise RestoreCheckError(f"{str(path)!r} is not a checkpoint: {e}") from e


def open_store(
    settings: Settings, *, sqlite_path: Path | None, postgres_dsn: str | None
) -> AuditStore:
    """The restored database: the one named on the command line, else the settings' one."""
    if postgres_dsn is None and sqlite_path is None:
        if settings.storage_backend == "postgres":
            postgres_dsn = settings.postgres_dsn
        else:
            sqlite_path = settings.sqlite_path
    try:
        if postgres_dsn is not None:
            return PostgresAuditStore(postgres_dsn)
        # Opening a missing SQLite file would create an empty log, and the
        # check would blame the restore for a typo in the path.
        if sqlite_path is None or not sqlite_path.is_file():
            raise RestoreCheckError(f"no SQLite database at {str(sqlite_path)!r}")
        return SqliteAuditStore(sqlite_path)
    except BackendUnavailableError as e:
        raise RestoreCheckError(f"cannot open the audit database: {e}") from e


def check_restore(store: AuditStore, checkpoint: Checkpoint) -> list[str]:
    """What is wrong with `store` as the log `checkpoint` signed; empty when nothing is."""
    log = AuditLog(store=store, signing_key=generate_signing_key(), clock=SystemClock())
    return log.verify(trusted=[checkpoint]).problems


def _run(args: argparse.Namespace, settings: Settings) -> int:
    keys = load_keys(args.jwks)
    checkpoint = read_checkpoint(Path(args.checkpoint))
    try:
        verify_checkpoint(checkpoint, keys=keys)
    except CheckpointSignatureError as e:
        print(f"TAMPERED: the checkpoint's signature does not hold: {e}")
        return EXIT_TAMPERED
    store = open_store(
        settings,
        sqlite_path=Path(args.sqlite) if args.sqlite else None,
        postgres_dsn=args.postgres,
    )
    try:
        problems = check_restore(store, checkpoint)
        size = store.size()
    except BackendUnavailableError as e:
        raise RestoreCheckError(f"the audit database could not be read: {e}") from e
    finally:
        store.close()
    if problems:
        for problem in problems:
            print(f"TAMPERED: {problem}")
        return EXIT_TAMPERED
    print(
        f"OK: the restored log holds {size} entries; at size {checkpoint.size} its root is"
        f" {checkpoint.root_hash}, as the checkpoint signed at {checkpoint.time}"
        f" by key {checkpoint.key_id} says"
    )
    return EXIT_OK


def run(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return _run(args, settings)
    except InputError as e:  # RestoreCheckError, and the audit commands' CannotVerifyError
        print(f"ERROR: {e}", file=sys.stderr)
        return EXIT_CANNOT_VERIFY


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `restore-check`."""
    parser = commands.add_parser(
        "restore-check",
        help="prove a restored audit database holds the log a saved checkpoint signed",
        description="Exit 0: OK. Exit 1: TAMPERED. Exit 2: the check could not be made.",
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        metavar="FILE",
        help="a checkpoint kept from before the backup (GET /v1/audit/checkpoint,"
        " or an export's last line)",
    )
    parser.add_argument(
        "--jwks",
        required=True,
        metavar="JWKS",
        help="the broker's public keys: a file (preferred) or an http(s) URL",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--sqlite", metavar="PATH", help="the restored SQLite file")
    where.add_argument("--postgres", metavar="DSN", help="the restored PostgreSQL database")
    parser.set_defaults(handler=run)
