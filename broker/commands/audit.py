"""`ketenbroker audit ...`: check an audit export or a receipt offline.

    ketenbroker audit verify FILE --jwks JWKS [--trusted-checkpoint FILE] [--workers N]
    ketenbroker audit verify-receipt --receipt FILE --proof FILE --jwks JWKS
        [--later-checkpoint FILE --consistency-proof FILE]

What it does: reads the files, loads the broker's public keys, hands both to
the pure verifier (`broker.audit.offline`) and prints one verdict line on
stdout: `OK: ...` (exit 0) or `TAMPERED: <what, where, expected, found>`
(exit 1). When the check cannot be made at all (a file is missing, a
document is not JSON, the JWKS holds no usable key) it prints `ERROR: ...`
on stderr and exits 2: never 0 unless every check held. `verify` reports
its progress on stderr every 100 000 entries, and its rate at the end;
`--workers N` spreads the hashing over N processes.

What it does not: talk to the broker. The DPO fetches the export with any
HTTP client (`curl -H "Authorization: Bearer ..." .../v1/audit/export`);
FILE `-` reads it from stdin.

Where the keys come from matters. `--jwks` should name a file obtained out
of band (the broker's `keys/<dir>/public/broker.jwks.json`, or a copy the
convenant partners exchanged): a verifier is only as good as its keys. An
`http://` or `https://` URL (the broker's `/.well-known/jwks.json`) is
accepted for convenience, and then the verdict trusts whoever answers at
that URL: whoever controls it, or the network path of a plain-http URL, can
substitute a key and make a forged export verify. The command says so on
stderr when it fetches.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from broker.audit.checkpoint import Checkpoint, CheckpointFormatError
from broker.audit.offline import (
    PROGRESS_EVERY,
    ExportTamperedError,
    ExportVerification,
    ReceiptTamperedError,
    bounded_lines,
    loads_strict,
    parse_receipt,
    proof_from_document,
    verify_export,
    verify_export_file,
    verify_receipt,
)
from broker.audit.parallel import MAX_WORKERS
from broker.errors import InputError, TrustError
from broker.keys import PublicKeySet, keyset_from_jwks
from broker.settings import Settings

# A JWKS with a handful of keys is about 1 KiB; receipts, checkpoints and
# proof documents (at most 128 hashes) are smaller still. 1 MiB bounds what
# a wrong or hostile file can make the command read into memory.
MAX_DOCUMENT_BYTES = 1 << 20
JWKS_FETCH_TIMEOUT_SECONDS = 10.0

EXIT_OK = 0
EXIT_TAMPERED = 1
EXIT_CANNOT_VERIFY = 2

Handler = Callable[[argparse.Namespace, Settings], int]


class CannotVerifyError(InputError):
    """The verification could not be made: an input is missing or unreadable."""


# ---- inputs --------------------------------------------------------------------------


def _read_document(path: str, what: str) -> Any:
    """A small JSON file, parsed strictly (no duplicate members, no NaN)."""
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as e:
        raise CannotVerifyError(f"cannot read the {what} {path!r}: {e.strerror or e}") from e
    if len(data) > MAX_DOCUMENT_BYTES:
        raise CannotVerifyError(f"the {what} {path!r} is larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        return loads_strict(data)
    except ValueError as e:
        raise CannotVerifyError(f"the {what} {path!r} is not valid JSON: {e}") from e


def _fetch_jwks(url: str) -> Any:
    # The caller chose to trust this URL; say so where the verdict is read.
    print(f"fetching keys from {url}: the verdict trusts whoever answers there", file=sys.stderr)
    try:
        with httpx.stream(
            "GET", url, timeout=JWKS_FETCH_TIMEOUT_SECONDS, follow_redirects=False
        ) as response:
            if response.status_code != 200:
                raise CannotVerifyError(f"expected 200 from {url}, got {response.status_code}")
            data = b""
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > MAX_DOCUMENT_BYTES:
                    raise CannotVerifyError(
                        f"the JWKS at {url} is larger than {MAX_DOCUMENT_BYTES} bytes"
                    )
    except httpx.HTTPError as e:
        raise CannotVerifyError(f"cannot fetch the JWKS from {url}: {e}") from e
    try:
        return loads_strict(data)
    except ValueError as e:
        raise CannotVerifyError(f"the JWKS at {url} is not valid JSON: {e}") from e


def load_keys(source: str) -> PublicKeySet:
    """The broker's public keys from a JWKS file or (trusting it) an http(s) URL."""
    if source.startswith(("http://", "https://")):
        document = _fetch_jwks(source)
    else:
        document = _read_document(source, "JWKS")
    members = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(members, list) or not all(isinstance(k, dict) for k in members):
        raise CannotVerifyError(f"expected a JWKS ({{'keys': [...]}}) in {source!r}")
    try:
        keys = keyset_from_jwks(document)
    except (TrustError, KeyError, TypeError, ValueError) as e:
        # keyset_from_jwks indexes members and decodes points: a malformed
        # JWK surfaces as any of these.
        raise CannotVerifyError(f"the JWKS in {source!r} holds an unusable key: {e!r}") from e
    if len(keys) == 0:  # fail closed on emptiness (style.md §13)
        raise CannotVerifyError(f"the JWKS in {source!r} holds no keys")
    return keys


def _checkpoint_document(path: str, what: str) -> Checkpoint:
    """A checkpoint file: `GET /v1/audit/checkpoint`, or an export's last line."""
    document = _read_document(path, what)
    if isinstance(document, dict) and set(document) == {"checkpoint"}:
        document = document["checkpoint"]
    if not isinstance(document, dict):
        raise CannotVerifyError(f"expected a checkpoint object in the {what} {path!r}")
    try:
        return Checkpoint.from_dict(document)
    except CheckpointFormatError as e:
        raise CannotVerifyError(f"the {what} {path!r} is not a checkpoint: {e}") from e


# ---- commands ------------------------------------------------------------------------


class _Progress:
    """Entries checked so far and the rate, on stderr (issue 4, point 7)."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def rate(self, count: int) -> float:
        elapsed = time.monotonic() - self.started
        return count / elapsed if elapsed > 0 else float("inf")

    def __call__(self, count: int) -> None:
        print(
            f"verified {count:,} entries ({self.rate(count):,.0f} entries/s)",
            file=sys.stderr,
            flush=True,
        )


def _verify(args: argparse.Namespace, _settings: Settings) -> int:
    keys = load_keys(args.jwks)
    trusted = (
        _checkpoint_document(args.trusted_checkpoint, "trusted checkpoint")
        if args.trusted_checkpoint
        else None
    )
    progress = _Progress()

    try:
        result: ExportVerification
        if args.file == "-":
            # A stream cannot be split into ranges: stdin is hashed here.
            result = verify_export(
                bounded_lines(sys.stdin.buffer),
                keys=keys,
                trusted_checkpoint=trusted,
                progress=progress,
                progress_every=args.progress_every,
            )
        else:
            result = verify_export_file(
                Path(args.file),
                keys=keys,
                trusted_checkpoint=trusted,
                progress=progress,
                progress_every=args.progress_every,
                workers=args.workers,
            )
    except ExportTamperedError as e:
        print(f"TAMPERED: {e}")
        return EXIT_TAMPERED
    except OSError as e:
        raise CannotVerifyError(f"cannot read the export {args.file!r}: {e}") from e
    elapsed = time.monotonic() - progress.started
    print(
        f"verified {result.size:,} entries in {elapsed:.1f} s"
        f" ({progress.rate(result.size):,.0f} entries/s); checkpoint signed at"
        f" {result.checkpoint.time} by key {result.checkpoint.key_id}",
        file=sys.stderr,
    )
    if trusted is not None:
        print(f"extends the trusted checkpoint of size {trusted.size}", file=sys.stderr)
    print(f"OK: {result.size} entries, root {result.root_hash}")
    return EXIT_OK


def _verify_receipt(args: argparse.Namespace, _settings: Settings) -> int:
    if (args.later_checkpoint is None) != (args.consistency_proof is None):
        raise CannotVerifyError("--later-checkpoint and --consistency-proof go together")
    keys = load_keys(args.jwks)
    document = _read_document(args.receipt, "receipt")
    # An exchange answer saved whole carries its receipt as a member.
    if isinstance(document, dict) and "receipt" in document:
        document = document["receipt"]
    proof_document = _read_document(args.proof, "inclusion proof")
    later: tuple[Checkpoint, Any] | None = None
    if args.later_checkpoint is not None:
        later = (
            _checkpoint_document(args.later_checkpoint, "later checkpoint"),
            _read_document(args.consistency_proof, "consistency proof"),
        )
    try:
        receipt = parse_receipt(document)
        proof = proof_from_document(
            proof_document,
            expect={
                "index": receipt.log_index,
                "size": receipt.checkpoint.size,
                "leaf_hash": receipt.leaf_hash,
            },
        )
        consistency = None
        if later is not None:
            later_checkpoint, consistency_document = later
            consistency = (
                later_checkpoint,
                proof_from_document(
                    consistency_document,
                    expect={"first": receipt.checkpoint.size, "second": later_checkpoint.size},
                ),
            )
        verify_receipt(receipt=receipt, proof=proof, keys=keys, consistency=consistency)
    except ReceiptTamperedError as e:
        print(f"TAMPERED: {e}")
        return EXIT_TAMPERED
    message = (
        f"OK: entry {receipt.log_index} (leaf {receipt.leaf_hash}) is in the log of size"
        f" {receipt.checkpoint.size}, root {receipt.checkpoint.root_hash}"
    )
    if later is not None:
        extended = later[0]
        message += f"; the log of size {extended.size}, root {extended.root_hash}, extends it"
    print(message)
    return EXIT_OK


def _guarded(handler: Handler) -> Handler:
    """Run a handler; a verification that cannot be made exits 2 with `ERROR: ...`."""

    def run(args: argparse.Namespace, settings: Settings) -> int:
        try:
            return handler(args, settings)
        except CannotVerifyError as e:
            print(f"ERROR: {e}", file=sys.stderr)
            return EXIT_CANNOT_VERIFY

    return run


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _worker_count(text: str) -> int:
    value = _positive_int(text)
    if value > MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_WORKERS} workers, got {text!r}")
    return value


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `audit verify` and `audit verify-receipt`."""
    audit = commands.add_parser(
        "audit", help="check an audit export or a receipt offline"
    ).add_subparsers(dest="audit_command", required=True)
    jwks_help = (
        "the broker's JWKS: a file (preferred), or an http(s) URL of /.well-known/jwks.json,"
        " in which case the verdict trusts that URL"
    )
    verdicts = "Exit 0: OK. Exit 1: TAMPERED. Exit 2: the check could not be made."

    verify = audit.add_parser(
        "verify",
        help="check every entry, the root and the checkpoint signature of an export",
        description=verdicts,
    )
    verify.add_argument("file", metavar="FILE", help="export (JSON Lines); - for stdin")
    verify.add_argument("--jwks", required=True, metavar="JWKS", help=jwks_help)
    verify.add_argument(
        "--trusted-checkpoint",
        metavar="FILE",
        help="a checkpoint kept from before (or an earlier export's last line):"
        " the export's history must start with that tree",
    )
    verify.add_argument(
        "--progress-every",
        type=_positive_int,
        default=PROGRESS_EVERY,
        metavar="N",
        help=f"report progress on stderr every N entries (default {PROGRESS_EVERY})",
    )
    verify.add_argument(
        "--workers",
        type=_worker_count,
        default=1,
        metavar="N",
        help="hash entries in N processes (default 1; the number of cores is a good choice"
        " for a long export: the verdict is the same, only faster; FILE - is read in one)",
    )
    verify.set_defaults(handler=_guarded(_verify))

    receipt = audit.add_parser(
        "verify-receipt",
        help="check a receipt and its inclusion proof (and optionally a consistency proof)",
        description=verdicts,
    )
    receipt.add_argument(
        "--receipt", required=True, metavar="FILE", help="the receipt, or the whole answer"
    )
    receipt.add_argument(
        "--proof",
        required=True,
        metavar="FILE",
        help="JSON of GET /v1/audit/proofs/inclusion?index=<log_index>&size=<checkpoint size>",
    )
    receipt.add_argument("--jwks", required=True, metavar="JWKS", help=jwks_help)
    receipt.add_argument(
        "--later-checkpoint", metavar="FILE", help="JSON of GET /v1/audit/checkpoint, later on"
    )
    receipt.add_argument(
        "--consistency-proof",
        metavar="FILE",
        help="JSON of GET /v1/audit/proofs/consistency?first=<receipt size>&second=<later size>",
    )
    receipt.set_defaults(handler=_guarded(_verify_receipt))
