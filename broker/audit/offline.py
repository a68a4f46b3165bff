"""Offline verification of audit exports and receipts, with only the broker's public key.

What it does: `verify_export` reads an export (`GET /v1/audit/export`: JSON
Lines, one entry a line in index order, then `{"checkpoint": {...}}`) as a
stream, recomputes every leaf and the root, and checks them against the
checkpoint and its signature; given a checkpoint the verifier kept from
before, it also checks that the export's history starts with that tree.
`verify_receipt` checks the receipt an exchange answer carries: the
checkpoint's signature, the RFC 9162 inclusion proof of the receipt's leaf,
and optionally a consistency proof to a later checkpoint (the log only grew).

What it does not: fetch anything, read files or print. The caller hands in
lines, documents and a `PublicKeySet` (`broker.commands.audit` does the I/O
for `ketenbroker audit verify` and `verify-receipt`). It does not locate an
altered entry either: an export carries no per-entry leaf hashes, so a
changed field shows only as a root that differs from the signed one.

Why: a partner or the DPO must not have to trust the broker's word that the
log is whole. Everything here is a pure function of its inputs, so a check
made on an air-gapped machine gives the same verdict (style.md §1).

Errors, both `TrustError`s (broker/errors.py) and each message names the
line or member, what was expected and what was found::

    TrustError
    ├── ExportTamperedError    an export does not hash to its signed checkpoint
    └── ReceiptTamperedError   a receipt, proof or checkpoint does not hold

Foreign exceptions (JSON, JCS, signature and proof errors) are wrapped into
these with `raise ... from e` (style.md §11).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

from broker.audit.checkpoint import (
    Checkpoint,
    CheckpointFormatError,
    CheckpointSignatureError,
    verify_checkpoint,
)
from broker.audit.export_ranges import hash_range
from broker.audit.log import Receipt
from broker.audit.merkle import (
    LEAF_PREFIX,
    ConsistencyProofError,
    InclusionProofError,
    MerkleAccumulator,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from broker.audit.parallel import ordered_pool
from broker.canonical import canonical_index
from broker.errors import TrustError
from broker.keys import PublicKeySet

# The broker clips every untrusted string in an entry to 200 characters
# (entries.MAX_UNTRUSTED_CHARS) and its largest entries are a few KiB; 1 MiB
# leaves room for long reason lists while bounding what one line may cost.
MAX_LINE_BYTES = 1 << 20
# A tree of at most 2**64 leaves needs at most 64 hashes in an inclusion
# proof and fewer than 2 * 64 in a consistency proof (RFC 9162 §2.1.3, §2.1.4).
MAX_PROOF_HASHES = 128
PROGRESS_EVERY = 100_000  # entries between progress reports (issue 4, point 7)
RANGE_BYTES = 4 << 20  # bytes of export a worker hashes at once (~3 500 entries)
# As much of an untrusted value as goes into a message (style.md §12).
MAX_SHOWN_CHARS = 80

_HASH_HEX = re.compile(r"[0-9a-f]{64}")


class ExportTamperedError(TrustError):
    """An export does not hash to its signed checkpoint, or is not an export at all."""


class ReceiptTamperedError(TrustError):
    """A receipt, its proof, or a checkpoint it is checked against does not hold."""


@dataclass(frozen=True)
class ExportVerification:
    """A verified export: `size` entries hashing to `root_hash` (hex), as `checkpoint` signs."""

    size: int
    root_hash: str
    checkpoint: Checkpoint


# ---- strict JSON ---------------------------------------------------------------------


class _DuplicateMemberError(ValueError):
    pass


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Python keeps the last of two equal keys; another reader may keep the
    # first. A line that means two things to two verifiers is refused.
    document: dict[str, Any] = {}
    for name, value in pairs:
        if name in document:
            raise _DuplicateMemberError(f"duplicate member {_shown(name)}")
        document[name] = value
    return document


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number (RFC 8259 §6)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # "1e400" parses as infinity, which JCS cannot hash
        raise ValueError(f"number {_shown(text)} is out of range")
    return value


def loads_strict(data: bytes) -> Any:
    """Parse UTF-8 JSON, refusing duplicate members, NaN/Infinity and out-of-range numbers.

    Raises ValueError for those and for any malformed input (UnicodeDecodeError
    and JSONDecodeError are ValueErrors; absurd nesting is turned into one).
    """
    text = data.decode("utf-8")  # strict: json.loads would also guess UTF-16/32
    try:
        return json.loads(
            text,
            object_pairs_hook=_unique_members,
            parse_constant=_no_constant,
            parse_float=_finite_float,
        )
    except RecursionError as e:
        raise ValueError("nested too deeply") from e


def _shown(value: object) -> str:
    """`repr` of an untrusted value, clipped for a message."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "...[clipped]"


def bounded_lines(stream: IO[bytes], *, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The lines of a binary stream, reading at most `max_line_bytes` + 1 bytes per line.

    A longer line is yielded cut at that length (without its newline), so
    `verify_export` refuses it without the whole line ever being in memory.
    """
    while line := stream.readline(max_line_bytes + 1):
        yield line
        if len(line) > max_line_bytes and not line.endswith(b"\n"):
            return  # the rest of an over-long line would be read as lines of its own


# ---- exports -------------------------------------------------------------------------


def _parse_line(raw: bytes, line_no: int) -> dict[str, Any]:
    body = raw.removesuffix(b"\n")
    if len(body) > MAX_LINE_BYTES:
        raise ExportTamperedError(
            f"line {line_no}: expected at most {MAX_LINE_BYTES} bytes, found a longer line"
        )
    if not body.strip():
        raise ExportTamperedError(
            f"line {line_no}: expected an entry or the checkpoint, found an empty line"
        )
    try:
        document = loads_strict(body)
    except ValueError as e:
        raise ExportTamperedError(
            f"line {line_no}: expected one strict JSON value, found: {e}"
        ) from e
    if not isinstance(document, dict):
        raise ExportTamperedError(
            f"line {line_no}: expected a JSON object, found {type(document).__name__}"
        )
    return document


def _check_position(index: object, *, line_no: int, position: int) -> None:
    """Raise unless `index`, an entry line's index, is `position`, the next one."""
    if not isinstance(index, int) or isinstance(index, bool):
        raise ExportTamperedError(
            f"line {line_no}: expected index {position}, found {_shown(index)}"
        )
    if index != position:
        # The index is inside the hashed entry, so an attacker cannot make a
        # moved entry claim its new place without changing its leaf.
        if index == position + 1:
            why = f"entry {position} is missing, or entries were reordered"
        elif index > position:
            why = f"entries {position} to {index - 1} are missing, or entries were reordered"
        else:
            why = f"entry {index} appears again, or entries were reordered"
        raise ExportTamperedError(
            f"line {line_no}: expected index {position}, found {index} ({why})"
        )


def _entry_leaf(entry: dict[str, Any], *, line_no: int, position: int) -> bytes:
    """The leaf hash of the entry at `position`, once its index says it belongs there."""
    index = entry["index"]
    _check_position(index, line_no=line_no, position=position)
    try:
        return leaf_hash(entry)
    except (ValueError, RecursionError) as e:
        # JCS refuses integers beyond 2**53 and lone surrogates: never written by the broker.
        raise ExportTamperedError(
            f"line {line_no}: entry {index} cannot be canonicalised (RFC 8785):"
            f" {str(e)[:MAX_SHOWN_CHARS]}"
        ) from e


def _export_checkpoint(document: Any, line_no: int) -> Checkpoint:
    if not isinstance(document, dict):
        raise ExportTamperedError(
            f"line {line_no}: expected a checkpoint object, found {type(document).__name__}"
        )
    try:
        return Checkpoint.from_dict(document)
    except CheckpointFormatError as e:
        raise ExportTamperedError(f"line {line_no}: checkpoint is malformed: {e}") from e


def _check_trusted(tree: MerkleAccumulator, trusted: Checkpoint, *, line_no: int) -> None:
    root = tree.root().hex()
    if root != trusted.root_hash:
        where = f"line {line_no}" if line_no else "before line 1"
        raise ExportTamperedError(
            f"{where}: the first {trusted.size} entries hash to root {root},"
            f" the trusted checkpoint of {trusted.time} signed root {trusted.root_hash}"
            " (history before that checkpoint was rewritten)"
        )


def _verify_trusted_signature(trusted: Checkpoint, keys: PublicKeySet) -> None:
    # A kept checkpoint is only a claim until its signature holds: a damaged
    # or swapped file must not decide what counts as the true history.
    try:
        verify_checkpoint(trusted, keys=keys)
    except CheckpointSignatureError as e:
        raise ExportTamperedError(
            f"the trusted checkpoint does not verify under the given keys: {e}"
        ) from e


def _missing_checkpoint(line_no: int) -> NoReturn:
    if line_no == 0:
        raise ExportTamperedError("expected at least the checkpoint line, the export is empty")
    raise ExportTamperedError(
        f"expected a checkpoint line after line {line_no}, the export ends there"
        " (it was cut short, or its checkpoint removed)"
    )


class _ExportCheck:
    """The state of `verify_export` between lines: the tree, and the checkpoint once seen."""

    def __init__(
        self,
        *,
        keys: PublicKeySet,
        trusted: Checkpoint | None,
        progress: Callable[[int], None] | None,
        progress_every: int,
    ) -> None:
        if progress_every < 1:
            raise ValueError(f"expected progress_every >= 1, got {progress_every}")
        self.keys = keys
        self.trusted = trusted
        self.progress = progress
        self.progress_every = progress_every
        self.tree = MerkleAccumulator()
        self.checkpoint: Checkpoint | None = None
        self.checkpoint_line = 0
        self.line_no = 0
        if trusted is not None:
            _verify_trusted_signature(trusted, keys)
            if trusted.size == 0:
                _check_trusted(self.tree, trusted, line_no=0)

    def _grown(self, line_no: int) -> None:
        """After the tree grew to its size with the entry on `line_no`."""
        size = self.tree.size
        if self.trusted is not None and size == self.trusted.size:
            _check_trusted(self.tree, self.trusted, line_no=line_no)
        if self.progress is not None and size % self.progress_every == 0:
            self.progress(size)

    def line(self, raw: bytes, line_no: int) -> None:
        self.line_no = line_no
        if self.checkpoint is not None:
            raise ExportTamperedError(
                f"line {line_no}: expected the export to end with the checkpoint on line"
                f" {self.checkpoint_line}, found another line"
            )
        body = raw.removesuffix(b"\n")
        # The export's lines are the entries' RFC 8785 bytes: a line that
        # shows itself a canonical entry is hashed as it stands. Anything
        # else takes the strict path, which names what is wrong with it.
        index = canonical_index(body) if len(body) <= MAX_LINE_BYTES else None
        if index is not None:
            _check_position(index, line_no=line_no, position=self.tree.size)
            self.tree.append(hashlib.sha256(LEAF_PREFIX + body).digest())
            self._grown(line_no)
            return
        document = _parse_line(raw, line_no)
        if "index" in document:
            self.tree.append(_entry_leaf(document, line_no=line_no, position=self.tree.size))
            self._grown(line_no)
        elif set(document) == {"checkpoint"}:
            self.checkpoint = _export_checkpoint(document["checkpoint"], line_no)
            self.checkpoint_line = line_no
        else:
            raise ExportTamperedError(
                f"line {line_no}: expected an entry (with an index) or the checkpoint line,"
                f" found members {_shown(sorted(document))}"
            )

    def leaves_from(self, leaves: list[bytes], *, first_index: int | None, line_no: int) -> int:
        """Take leaves a worker computed for the lines from `line_no`; how many were taken.

        All or none: the worker checked that its indexes run on from its
        first one; they are this export's only if that first one is the
        position the next entry must have, and no checkpoint came before.
        """
        if self.checkpoint is not None or not leaves or first_index != self.tree.size:
            return 0
        for taken, leaf in enumerate(leaves):
            self.tree.append(leaf)
            self._grown(line_no + taken)
        self.line_no = line_no + len(leaves) - 1
        return len(leaves)

    def finish(self) -> ExportVerification:
        if self.checkpoint is None:
            _missing_checkpoint(self.line_no)
        return _verified_end(
            self.tree, self.checkpoint, self.checkpoint_line, self.keys, self.trusted
        )


def verify_export(
    lines: Iterable[bytes],
    *,
    keys: PublicKeySet,
    trusted_checkpoint: Checkpoint | None = None,
    progress: Callable[[int], None] | None = None,
    progress_every: int = PROGRESS_EVERY,
) -> ExportVerification:
    """Check an export line by line; raise ExportTamperedError at the first thing that fails.

    Checks, in stream order: every line is one strict JSON object; every
    entry's `index` is its position (0, 1, 2, ...), which catches dropped,
    reordered, repeated and inserted entries where they happen; every entry
    can be hashed into its leaf. If `trusted_checkpoint` is given (one the
    verifier kept, its signature checked here too), the root of the first
    `trusted_checkpoint.size` leaves must be its root: that catches a history
    rewritten and then re-signed with the broker's key. The last line must
    be the checkpoint: its signature must hold under `keys`, its size must
    be the number of entries and its root the recomputed root.

    Memory stays constant apart from the Merkle accumulator (O(log n)
    hashes). `progress`, when given, is called with the number of entries
    checked every `progress_every` entries.
    """
    check = _ExportCheck(
        keys=keys, trusted=trusted_checkpoint, progress=progress, progress_every=progress_every
    )
    for line_no, raw in enumerate(lines, start=1):
        check.line(raw, line_no)
    return check.finish()


def verify_export_file(
    path: Path,
    *,
    keys: PublicKeySet,
    trusted_checkpoint: Checkpoint | None = None,
    progress: Callable[[int], None] | None = None,
    progress_every: int = PROGRESS_EVERY,
    workers: int = 1,
) -> ExportVerification:
    """`verify_export` of the export in `path`, its hashing spread over `workers` processes.

    Same checks, same verdict, same messages. Each worker hashes the entry
    lines of one byte range of the file (`export_ranges.hash_range`); the
    leaves come back in file order and are taken while every range holds
    only canonical entry lines that continue the index sequence. From the
    first line that is anything else (normally the closing checkpoint, or
    whatever was tampered with) the file is read on here, line by line.
    OSError if the file cannot be read.
    """
    check = _ExportCheck(
        keys=keys, trusted=trusted_checkpoint, progress=progress, progress_every=progress_every
    )
    resume = line_no = 0
    if workers > 1:
        size = path.stat().st_size
        jobs = (
            (path, start, min(start + RANGE_BYTES, size), MAX_LINE_BYTES)
            for start in range(0, size, RANGE_BYTES)
        )
        resume = size
        with ordered_pool(hash_range, workers) as hashed:
            for _, got in hashed(jobs):
                taken = check.leaves_from(
                    got.leaves, first_index=got.first_index, line_no=line_no + 1
                )
                line_no += taken
                if taken < len(got.leaves):
                    resume = got.first_offset
                    break
                if got.stopped_at is not None:
                    resume = got.stopped_at
                    break
    check.line_no = line_no
    with path.open("rb") as stream:
        stream.seek(resume)
        for number, raw in enumerate(bounded_lines(stream), start=line_no + 1):
            check.line(raw, number)
    return check.finish()


def _verified_end(
    tree: MerkleAccumulator,
    checkpoint: Checkpoint,
    line_no: int,
    keys: PublicKeySet,
    trusted: Checkpoint | None,
) -> ExportVerification:
    # The signature first: a checkpoint that is not the broker's says nothing
    # about size or root, and "the signature does not hold" is the precise cause.
    try:
        verify_checkpoint(checkpoint, keys=keys)
    except CheckpointSignatureError as e:
        raise ExportTamperedError(f"line {line_no}: checkpoint signature: {e}") from e
    if checkpoint.size != tree.size:
        if checkpoint.size > tree.size:
            why = "entries were removed from the end"
        else:
            why = "entries were added after the checkpoint was signed"
        raise ExportTamperedError(
            f"line {line_no}: the checkpoint signs size {checkpoint.size},"
            f" the export holds {tree.size} entries ({why})"
        )
    root = tree.root().hex()
    if root != checkpoint.root_hash:
        raise ExportTamperedError(
            f"line {line_no}: the {tree.size} entries hash to root {root},"
            f" the checkpoint signs root {checkpoint.root_hash}"
            " (an entry was altered, or entries were replaced)"
        )
    if trusted is not None and trusted.size > tree.size:
        raise ExportTamperedError(
            f"the trusted checkpoint of {trusted.time} has size {trusted.size},"
            f" the export holds only {tree.size} entries (the log shrank)"
        )
    return ExportVerification(size=tree.size, root_hash=root, checkpoint=checkpoint)


# ---- receipts ------------------------------------------------------------------------


def _checkpoint_of(value: Checkpoint | Mapping[str, Any], what: str) -> Checkpoint:
    if isinstance(value, Checkpoint):
        return value
    if not isinstance(value, Mapping):
        raise ReceiptTamperedError(
            f"{what}: expected a checkpoint object, found {type(value).__name__}"
        )
    try:
        return Checkpoint.from_dict(value)
    except CheckpointFormatError as e:
        raise ReceiptTamperedError(f"{what} is malformed: {e}") from e


def parse_receipt(document: Mapping[str, Any]) -> Receipt:
    """A receipt document (`Receipt.to_dict`) as a `Receipt`; nothing is verified yet."""
    if not isinstance(document, Mapping):
        raise ReceiptTamperedError(
            f"receipt: expected a JSON object, found {type(document).__name__}"
        )
    expected = {"log_index", "leaf_hash", "checkpoint"}
    if set(document) != expected:
        raise ReceiptTamperedError(
            f"receipt: expected members {sorted(expected)}, found {_shown(sorted(document))}"
        )
    index, leaf = document["log_index"], document["leaf_hash"]
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise ReceiptTamperedError(
            f"receipt: expected a non-negative integer log_index, found {_shown(index)}"
        )
    if not isinstance(leaf, str) or not _HASH_HEX.fullmatch(leaf):
        raise ReceiptTamperedError(
            f"receipt: expected 64 lowercase hex digits as leaf_hash, found {_shown(leaf)}"
        )
    checkpoint = _checkpoint_of(document["checkpoint"], "receipt checkpoint")
    return Receipt(log_index=index, leaf_hash=leaf, checkpoint=checkpoint)


def _proof_bytes(proof: Sequence[str], what: str) -> list[bytes]:
    if isinstance(proof, str) or not isinstance(proof, Sequence):
        raise ReceiptTamperedError(f"{what}: expected a list of hex hashes, found {_shown(proof)}")
    if len(proof) > MAX_PROOF_HASHES:
        raise ReceiptTamperedError(
            f"{what}: expected at most {MAX_PROOF_HASHES} hashes, found {len(proof)}"
        )
    hashes = []
    for n, element in enumerate(proof):
        if not isinstance(element, str) or not _HASH_HEX.fullmatch(element):
            raise ReceiptTamperedError(
                f"{what}: expected 64 lowercase hex digits as hash {n}, found {_shown(element)}"
            )
        hashes.append(bytes.fromhex(element))
    return hashes


def proof_from_document(document: Mapping[str, Any], *, expect: Mapping[str, object]) -> list[str]:
    """The `proof` of a proof document, once its other members are what the caller asked for.

    For `GET /v1/audit/proofs/inclusion` pass `expect={"index": ..., "size":
    ..., "leaf_hash": ...}` from the receipt; for `.../consistency`,
    `{"first": ..., "second": ...}`. A proof for another entry or size is
    refused here with that cause, rather than later as a wrong root.
    """
    if not isinstance(document, Mapping):
        raise ReceiptTamperedError(
            f"proof document: expected a JSON object, found {type(document).__name__}"
        )
    for name, value in expect.items():
        found = document.get(name)
        # bool == int in Python: `true` is not index 1.
        if found != value or isinstance(found, bool) != isinstance(value, bool):
            raise ReceiptTamperedError(
                f"proof document: expected {name}={value!r}, found {_shown(found)}"
            )
    proof = document.get("proof")
    if not isinstance(proof, list) or not all(isinstance(h, str) for h in proof):
        raise ReceiptTamperedError(
            f"proof document: expected `proof` as a list of hex hashes, found {_shown(proof)}"
        )
    return proof


def verify_receipt(
    *,
    receipt: Receipt | Mapping[str, Any],
    proof: Sequence[str],
    keys: PublicKeySet,
    consistency: tuple[Checkpoint | Mapping[str, Any], Sequence[str]] | None = None,
) -> None:
    """Check a receipt with only the broker's public keys; raise ReceiptTamperedError if it fails.

    `proof` is the inclusion proof (hex hashes) of the receipt's entry in the
    tree its checkpoint signs. `consistency` is (a later checkpoint, the
    consistency proof from the receipt's tree size to the later one's): it
    shows the log that held the entry was only extended afterwards, never
    rewritten (RFC 9162 §2.1.4).
    """
    parsed = receipt if isinstance(receipt, Receipt) else parse_receipt(receipt)
    checkpoint = parsed.checkpoint
    try:
        verify_checkpoint(checkpoint, keys=keys)
    except CheckpointSignatureError as e:
        raise ReceiptTamperedError(f"receipt checkpoint: {e}") from e
    path = _proof_bytes(proof, "inclusion proof")
    try:
        verify_inclusion(
            leaf_hash=bytes.fromhex(parsed.leaf_hash),
            index=parsed.log_index,
            size=checkpoint.size,
            proof=path,
            root=bytes.fromhex(checkpoint.root_hash),
        )
    except InclusionProofError as e:
        raise ReceiptTamperedError(
            f"inclusion of leaf {parsed.leaf_hash} at index {parsed.log_index} in the tree of"
            f" size {checkpoint.size} signed at {checkpoint.time}: {e}"
        ) from e
    if consistency is not None:
        later_document, consistency_proof = consistency
        _verify_extends(
            checkpoint, _checkpoint_of(later_document, "later checkpoint"), consistency_proof, keys
        )


def _verify_extends(
    earlier: Checkpoint, later: Checkpoint, proof: Sequence[str], keys: PublicKeySet
) -> None:
    try:
        verify_checkpoint(later, keys=keys)
    except CheckpointSignatureError as e:
        raise ReceiptTamperedError(f"later checkpoint: {e}") from e
    if later.size < earlier.size:
        raise ReceiptTamperedError(
            f"later checkpoint: expected a size of at least {earlier.size}, found {later.size}"
            " (the log shrank)"
        )
    path = _proof_bytes(proof, "consistency proof")
    try:
        verify_consistency(
            first=earlier.size,
            second=later.size,
            first_root=bytes.fromhex(earlier.root_hash),
            second_root=bytes.fromhex(later.root_hash),
            proof=path,
        )
    except ConsistencyProofError as e:
        raise ReceiptTamperedError(
            f"consistency from size {earlier.size} (signed at {earlier.time}) to size"
            f" {later.size} (signed at {later.time}): {e}"
            " (the later log does not extend the earlier one)"
        ) from e
