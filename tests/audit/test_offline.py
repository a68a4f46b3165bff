"""Offline verification: every way of tampering with an export or a receipt is caught.

The exports are made the way the broker makes them: a real `AuditLog` on a
real SQLite store, written line by line exactly as `GET /v1/audit/export`
writes them (`export_lines`). Each tamper case edits those bytes as an
attacker with the file (or the database) would, and names the message the
verifier must give: which line, what was expected, what was found.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.audit import (
    AuditLog,
    Checkpoint,
    MerkleAccumulator,
    Receipt,
    SqliteAuditStore,
    leaf_hash,
    offline,
    sign_checkpoint,
)
from broker.audit.entries import exchange_entry, security_event
from broker.audit.merkle import EMPTY_ROOT
from broker.audit.offline import (
    MAX_LINE_BYTES,
    MAX_PROOF_HASHES,
    ExportTamperedError,
    ReceiptTamperedError,
    bounded_lines,
    loads_strict,
    parse_receipt,
    proof_from_document,
    verify_export,
    verify_export_file,
    verify_receipt,
)
from broker.audit.store import AuditQuery
from broker.canonical import canonical_json
from broker.keys import SigningKey, generate_signing_key
from tests.audit.conftest import T0, FixedClock, keyset_of

SIZE = 300  # "a few hundred" entries: several levels of tree, three progress reports
KEPT = 200  # the size of the checkpoint the DPO kept from before
PARTNERS = ["gemeente-lekstroom", "politie-lekstroom", "woonstichting-de-linge", "ggd-lekstroom"]
QUERIES = ["politie.meldingen", "corporatie.huurgedrag", "ggd.bekendheid"]


# ---- building exports the way the broker does ------------------------------------------


def realistic_entries(count: int, *, start: int = 0) -> list[dict[str, Any]]:
    """Exchange entries of every decision, with a refused login every seventh entry."""
    entries = []
    for n in range(start, start + count):
        moment = T0 + timedelta(seconds=17 * n)
        if n % 7 == 6:
            entries.append(
                security_event(
                    time=moment,
                    event="token_request",
                    code="invalid_client",
                    principal=PARTNERS[n % len(PARTNERS)],
                    trace_id=f"{n:032x}",
                    detail="client assertion signature does not verify",
                )
            )
            continue
        decision = ["permit", "partial", "deny"][n % 3]
        entries.append(
            exchange_entry(
                time=moment,
                exchange_id=f"ex_{n:032x}",
                trace_id=f"{n + 1:032x}",
                convenant={"id": "lekstroom-woonoverlast", "version": "2026.1"},
                processing_activity="VA-WO-03",
                legal_basis={"law": "Wet politiegegevens", "article": "art. 16"},
                requester={
                    "partner": PARTNERS[n % len(PARTNERS)],
                    "user": "j.devries",
                    "function": "casusregisseur",
                },
                provider=PARTNERS[(n + 1) % len(PARTNERS)],
                case=f"case-{n % 11}",
                subject=f"ps_{n % 13:016x}",
                query=QUERIES[n % len(QUERIES)],
                purpose="aanpak_woonoverlast",
                decision=decision,
                reasons=[] if decision == "permit" else [{"code": "field_not_needed"}],
                fields_disclosed=[] if decision == "deny" else ["adres", "meldingen"],
                fields_withheld=[] if decision == "permit" else [{"field": "antecedenten"}],
                policy_version="sha256:" + "ab" * 32,
                payload_hash=None if decision == "deny" else f"{n:064x}",
            )
        )
    return entries


def export_lines(log: AuditLog, checkpoint: Checkpoint) -> list[bytes]:
    """The export as broker/api/routes/audit.py writes it: JCS entries, then the checkpoint."""
    lines = []
    cursor = -1
    while cursor + 1 < checkpoint.size:
        page = log.entries(AuditQuery(after_index=cursor, before_index=checkpoint.size, limit=1000))
        for stored in page:
            lines.append(canonical_json(stored.entry) + b"\n")
            cursor = stored.index
    lines.append(json.dumps({"checkpoint": checkpoint.to_dict()}).encode() + b"\n")
    return lines


@dataclass
class BuiltLog:
    key: SigningKey
    log: AuditLog
    receipts: list[Receipt]
    checkpoint: Checkpoint
    lines: list[bytes]


def record_log(
    path: Path, key: SigningKey, entries: list[dict[str, Any]], stores: list[SqliteAuditStore]
) -> BuiltLog:
    """A log made entry by entry through `AuditLog.record`, with every receipt kept."""
    store = SqliteAuditStore(path)
    stores.append(store)
    clock = FixedClock()
    log = AuditLog(store=store, signing_key=key, clock=clock)
    receipts = []
    for entry in entries:
        receipts.append(log.record(entry))
        clock.advance(1)
    checkpoint = log.checkpoint()
    return BuiltLog(key, log, receipts, checkpoint, export_lines(log, checkpoint))


def appended_log(
    path: Path, key: SigningKey, entries: list[dict[str, Any]], stores: list[SqliteAuditStore]
) -> BuiltLog:
    """The same, appended in one transaction: how a rewritten log is made in bulk."""
    store = SqliteAuditStore(path)
    stores.append(store)
    if entries:
        store.append(entries)
    clock = FixedClock(T0 + timedelta(days=30))
    log = AuditLog(store=store, signing_key=key, clock=clock)
    checkpoint = log.checkpoint()
    return BuiltLog(key, log, [], checkpoint, export_lines(log, checkpoint))


@dataclass
class World:
    """The broker's true log, a rewrite of it re-signed with the broker's key, and an outsider."""

    broker_key: SigningKey
    other_key: SigningKey
    true: BuiltLog
    rewritten: BuiltLog  # entry 17 turned from a refusal into a disclosure, re-signed
    shrunk: BuiltLog  # only the first KEPT entries, re-signed


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    folder = tmp_path_factory.mktemp("offline")
    broker_key, other_key = generate_signing_key("EdDSA"), generate_signing_key("EdDSA")
    stores: list[SqliteAuditStore] = []
    entries = realistic_entries(SIZE)
    assert entries[17]["decision"] == "deny"
    rewritten_entries = [dict(e) for e in entries]
    rewritten_entries[17] = {
        **entries[17],
        "decision": "permit",
        "reasons": [],
        "fields_withheld": [],
    }
    try:
        yield World(
            broker_key=broker_key,
            other_key=other_key,
            true=record_log(folder / "true.sqlite3", broker_key, entries, stores),
            rewritten=appended_log(
                folder / "rewritten.sqlite3", broker_key, rewritten_entries, stores
            ),
            shrunk=appended_log(folder / "shrunk.sqlite3", broker_key, entries[:KEPT], stores),
        )
    finally:
        for store in stores:
            store.close()


def kept_checkpoint(world: World, size: int = KEPT) -> Checkpoint:
    """The checkpoint the DPO kept when the true log had `size` entries."""
    return world.true.receipts[size - 1].checkpoint


# ---- editing exports as an attacker would ----------------------------------------------


def entry_of(line: bytes) -> dict[str, Any]:
    entry: dict[str, Any] = json.loads(line)
    return entry


def line_of(document: dict[str, Any]) -> bytes:
    return canonical_json(document) + b"\n"


def checkpoint_of(lines: list[bytes]) -> dict[str, Any]:
    checkpoint: dict[str, Any] = json.loads(lines[-1])["checkpoint"]
    return checkpoint


def with_checkpoint(lines: list[bytes], **changes: Any) -> list[bytes]:
    checkpoint = {**checkpoint_of(lines), **changes}
    return [*lines[:-1], json.dumps({"checkpoint": checkpoint}).encode() + b"\n"]


def with_entry(lines: list[bytes], k: int, **changes: Any) -> list[bytes]:
    edited = list(lines)
    edited[k] = line_of({**entry_of(lines[k]), **changes})
    return edited


def resigned(lines: list[bytes], key: SigningKey, *, key_id: str | None = None) -> list[bytes]:
    """A fresh checkpoint over whatever entries `lines` holds, signed by `key`."""
    entries = [entry_of(line) for line in lines[:-1]]
    tree = MerkleAccumulator.from_leaves(leaf_hash(e) for e in entries)
    checkpoint = sign_checkpoint(key=key, size=tree.size, root_hash=tree.root(), now=T0)
    document = checkpoint.to_dict()
    if key_id is not None:
        document["key_id"] = key_id
    return [*lines[:-1], json.dumps({"checkpoint": document}).encode() + b"\n"]


def flipped(decision: str) -> str:
    return "permit" if decision == "deny" else "deny"


def renumbered(lines: list[bytes], start: int) -> list[bytes]:
    """Give the entries from `start` on the index of their new position."""
    return [
        line_of({**entry_of(line), "index": n}) if n >= start else line
        for n, line in enumerate(lines[:-1])
    ] + [lines[-1]]


def forged(index: int | None) -> bytes:
    entry = realistic_entries(1, start=1000)[0]
    if index is not None:
        entry["index"] = index
    return line_of(entry)


def cut_in_half(line: bytes) -> bytes:
    return line[: len(line) // 2]


def flip_first_char(text: str) -> str:
    return ("B" if text[0] == "A" else "A") + text[1:]


Tamper = Callable[[list[bytes], World], list[bytes]]

# (id, what the attacker does, the message the verifier must give). Lines count
# from 1, entries from 0: entry k is on line k + 1 and the checkpoint on 301.
TAMPERS: list[tuple[str, Tamper, str]] = [
    # a refusal turned into a disclosure: no line says so, the root does
    (
        "altered_field",
        lambda ls, _w: with_entry(ls, 17, decision=flipped(entry_of(ls[17])["decision"])),
        r"^line 301: the 300 entries hash to root [0-9a-f]{64}, the checkpoint signs root"
        r" [0-9a-f]{64} \(an entry was altered",
    ),
    # a subject pseudonym swapped in an old entry
    (
        "altered_subject",
        lambda ls, _w: with_entry(ls, 3, subject="ps_" + "0" * 16),
        r"^line 301: the 300 entries hash to root .* \(an entry was altered",
    ),
    # an embarrassing entry deleted
    (
        "dropped_entry",
        lambda ls, _w: ls[:42] + ls[43:],
        r"^line 43: expected index 42, found 43 \(entry 42 is missing",
    ),
    # several entries deleted
    (
        "dropped_range",
        lambda ls, _w: ls[:42] + ls[45:],
        r"^line 43: expected index 42, found 45 \(entries 42 to 44 are missing",
    ),
    # two entries swapped, so a disclosure seems to come before its consent
    (
        "swapped_entries",
        lambda ls, _w: [*ls[:100], ls[101], ls[100], *ls[102:]],
        r"^line 101: expected index 100, found 101",
    ),
    # an entry moved to the end
    (
        "moved_to_end",
        lambda ls, _w: [*ls[:10], *ls[11:-1], ls[10], ls[-1]],
        r"^line 11: expected index 10, found 11",
    ),
    # a forged entry slipped in, taking the index of the one it precedes
    (
        "inserted_entry",
        lambda ls, _w: [*ls[:50], forged(50), *ls[50:]],
        r"^line 52: expected index 51, found 50 \(entry 50 appears again",
    ),
    # a forged entry slipped in and every later entry renumbered to match
    (
        "inserted_entry_renumbered",
        lambda ls, _w: renumbered([*ls[:50], forged(50), *ls[50:]], 50),
        r"^line 302: the checkpoint signs size 300, the export holds 301 entries"
        r" \(entries were added after the checkpoint was signed\)",
    ),
    # a forged entry replacing a true one at the same index
    (
        "replaced_entry",
        lambda ls, _w: [*ls[:50], forged(50), *ls[51:]],
        r"^line 301: the 300 entries hash to root .* \(an entry was altered",
    ),
    # a forged entry without an index
    (
        "inserted_entry_without_index",
        lambda ls, _w: [*ls[:50], forged(None), *ls[50:]],
        r"^line 51: expected an entry \(with an index\) or the checkpoint line, found members",
    ),
    # an entry repeated
    (
        "duplicated_entry",
        lambda ls, _w: [*ls[:43], ls[42], *ls[43:]],
        r"^line 44: expected index 43, found 42 \(entry 42 appears again",
    ),
    # the last entry removed, the checkpoint left alone
    (
        "last_entry_removed",
        lambda ls, _w: [*ls[:299], ls[-1]],
        r"^line 300: the checkpoint signs size 300, the export holds 299 entries"
        r" \(entries were removed from the end\)",
    ),
    # the file cut off in the middle of the last entry
    (
        "last_entry_cut",
        lambda ls, _w: [*ls[:299], cut_in_half(ls[299])],
        r"^line 300: expected one strict JSON value, found: ",
    ),
    # the file cut off after the last entry: the checkpoint is gone
    (
        "checkpoint_removed",
        lambda ls, _w: ls[:-1],
        r"^expected a checkpoint line after line 300, the export ends there",
    ),
    # everything removed
    ("emptied", lambda _ls, _w: [], r"^expected at least the checkpoint line, the export is empty"),
    # the checkpoint's size lowered to hide the last entry
    (
        "checkpoint_size_changed",
        lambda ls, _w: with_checkpoint(ls[:299] + ls[300:], size=299),
        r"^line 300: checkpoint signature: signature by .* does not hold over size=299 ",
    ),
    # the checkpoint's root replaced by the root of an altered log
    (
        "checkpoint_root_changed",
        lambda ls, _w: with_checkpoint(ls, root_hash="0" * 64),
        r"^line 301: checkpoint signature: .* does not hold over size=300 root_hash=0{64} ",
    ),
    # the checkpoint's time moved
    (
        "checkpoint_time_changed",
        lambda ls, _w: with_checkpoint(ls, time="2020-01-01T00:00:00.000000Z"),
        r"^line 301: checkpoint signature: .* time='2020-01-01T00:00:00.000000Z'",
    ),
    # the signature itself changed
    (
        "checkpoint_signature_changed",
        lambda ls, _w: with_checkpoint(
            ls, signature=flip_first_char(checkpoint_of(ls)["signature"])
        ),
        r"^line 301: checkpoint signature: signature by .* does not hold",
    ),
    # the checkpoint's member set changed
    (
        "checkpoint_extra_member",
        lambda ls, _w: with_checkpoint(ls, note="trust me"),
        r"^line 301: checkpoint is malformed: expected members",
    ),
    # the checkpoint signed by a key the verifier does not pin
    (
        "checkpoint_signed_by_another_key",
        lambda ls, w: resigned(ls, w.other_key),
        r"^line 301: checkpoint signature: expected a pinned key id, got ",
    ),
    # another key's signature under the broker's key id
    (
        "checkpoint_signed_by_another_key_under_broker_kid",
        lambda ls, w: resigned(ls, w.other_key, key_id=w.broker_key.kid),
        r"^line 301: checkpoint signature: signature by .* does not hold",
    ),
    # an entry altered and the whole export re-signed by an outsider
    (
        "altered_and_resigned_by_another_key",
        lambda ls, w: resigned(with_entry(ls, 17, decision="permit"), w.other_key),
        r"^line 301: checkpoint signature: expected a pinned key id",
    ),
    # a line after the checkpoint
    (
        "line_after_checkpoint",
        lambda ls, _w: [*ls, ls[0]],
        r"^line 302: expected the export to end with the checkpoint on line 301,"
        r" found another line",
    ),
    # a second checkpoint appended (say, one with a bigger size)
    (
        "second_checkpoint",
        lambda ls, _w: [*ls, ls[-1]],
        r"^line 302: expected the export to end with the checkpoint on line 301",
    ),
    # a line that is not JSON
    (
        "not_json",
        lambda ls, _w: [*ls[:9], b"index 9\n", *ls[10:]],
        r"^line 10: expected one strict JSON value, found: Expecting value",
    ),
    # duplicate members: one reader sees "deny", another "permit"
    (
        "duplicate_json_keys",
        lambda ls, _w: [*ls[:9], b'{"decision":"permit",' + ls[9][1:], *ls[10:]],
        r"^line 10: expected one strict JSON value, found: duplicate member 'decision'",
    ),
    # NaN is not JSON, and JCS cannot hash it
    (
        "nan",
        lambda ls, _w: [*ls[:9], b'{"score":NaN,' + ls[9][1:], *ls[10:]],
        r"^line 10: expected one strict JSON value, found: NaN is not a JSON number",
    ),
    # a number that parses as infinity
    (
        "infinite_number",
        lambda ls, _w: [*ls[:9], b'{"score":1e400,' + ls[9][1:], *ls[10:]],
        r"^line 10: expected one strict JSON value, found: number '1e400' is out of range",
    ),
    # an integer JCS refuses (beyond 2**53)
    (
        "integer_beyond_jcs",
        lambda ls, _w: [*ls[:9], b'{"score":1152921504606846976,' + ls[9][1:], *ls[10:]],
        r"^line 10: entry 9 cannot be canonicalised \(RFC 8785\)",
    ),
    # bytes that are not UTF-8
    (
        "not_utf8",
        lambda ls, _w: [*ls[:9], b'{"x":"\xff",' + ls[9][1:], *ls[10:]],
        r"^line 10: expected one strict JSON value, found: 'utf-8' codec can't decode",
    ),
    # a line that is JSON but not an object
    (
        "array_line",
        lambda ls, _w: [*ls[:9], b"[9]\n", *ls[10:]],
        r"^line 10: expected a JSON object, found list",
    ),
    # deep nesting meant to crash the parser
    (
        "deep_nesting",
        lambda ls, _w: [*ls[:9], b"[" * 100_000 + b"]" * 100_000 + b"\n", *ls[10:]],
        r"^line 10: expected one strict JSON value, found: nested too deeply",
    ),
    # an empty line
    ("empty_line", lambda ls, _w: [*ls[:10], b"\n", *ls[10:]], r"^line 11: .* found an empty line"),
    # an index that is a string
    (
        "index_as_string",
        lambda ls, _w: with_entry(ls, 5, index="5"),
        r"^line 6: expected index 5, found '5'",
    ),
    # an index that is a boolean (True == 1 in Python)
    (
        "index_as_bool",
        lambda ls, _w: with_entry(ls, 1, index=True),
        r"^line 2: expected index 1, found True",
    ),
    # a line too long to be one of the broker's entries
    (
        "over_long_line",
        lambda ls, _w: with_entry(ls, 3, padding="x" * MAX_LINE_BYTES),
        rf"^line 4: expected at most {MAX_LINE_BYTES} bytes, found a longer line",
    ),
]


def test_untampered_export_verifies_and_reports_progress(world: World) -> None:
    reports: list[int] = []
    result = verify_export(
        iter(world.true.lines),
        keys=keyset_of(world.broker_key),
        progress=reports.append,
        progress_every=100,
    )
    assert (result.size, result.root_hash) == (SIZE, world.true.log.checkpoint().root_hash)
    assert result.checkpoint == world.true.checkpoint
    assert reports == [100, 200, 300]


@pytest.mark.parametrize(
    ("tamper", "message"), [(t, m) for _, t, m in TAMPERS], ids=[name for name, _, _ in TAMPERS]
)
def test_tampered_export_is_caught(world: World, tamper: Tamper, message: str) -> None:
    lines = tamper(list(world.true.lines), world)
    assert lines != world.true.lines
    with pytest.raises(ExportTamperedError, match=message):
        verify_export(lines, keys=keyset_of(world.broker_key))


def test_export_signed_with_es256_verifies(tmp_path: Path) -> None:
    key = generate_signing_key("ES256")
    stores: list[SqliteAuditStore] = []
    try:
        built = record_log(tmp_path / "es256.sqlite3", key, realistic_entries(9), stores)
    finally:
        for store in stores:
            store.close()
    assert verify_export(built.lines, keys=keyset_of(key)).size == 9
    with pytest.raises(ExportTamperedError, match="line 10: checkpoint signature"):
        verify_export(with_checkpoint(built.lines, size=8), keys=keyset_of(key))


def test_empty_log_export_verifies_with_the_empty_root(world: World, tmp_path: Path) -> None:
    stores: list[SqliteAuditStore] = []
    try:
        built = appended_log(tmp_path / "empty.sqlite3", world.broker_key, [], stores)
    finally:
        for store in stores:
            store.close()
    assert len(built.lines) == 1
    result = verify_export(built.lines, keys=keyset_of(world.broker_key))
    assert (result.size, result.root_hash) == (0, EMPTY_ROOT.hex())


def test_export_that_does_not_end_in_a_newline_still_verifies(world: World) -> None:
    lines = [*world.true.lines[:-1], world.true.lines[-1].rstrip(b"\n")]
    assert verify_export(lines, keys=keyset_of(world.broker_key)).size == SIZE


# ---- history against a kept checkpoint -------------------------------------------------


@pytest.mark.parametrize("kept_size", [1, KEPT, SIZE])
def test_export_extending_a_kept_checkpoint_verifies(world: World, kept_size: int) -> None:
    result = verify_export(
        world.true.lines,
        keys=keyset_of(world.broker_key),
        trusted_checkpoint=kept_checkpoint(world, kept_size),
    )
    assert result.size == SIZE


def test_rewritten_history_resigned_by_the_broker_is_caught_by_a_kept_checkpoint(
    world: World,
) -> None:
    keys = keyset_of(world.broker_key)
    # Alone, a rewrite signed with the broker's own key is a valid export:
    # this is why a DPO keeps checkpoints.
    assert verify_export(world.rewritten.lines, keys=keys).size == SIZE
    with pytest.raises(
        ExportTamperedError,
        match=r"^line 200: the first 200 entries hash to root [0-9a-f]{64}, the trusted"
        r" checkpoint of .* signed root [0-9a-f]{64} \(history before that checkpoint was"
        r" rewritten\)",
    ):
        verify_export(world.rewritten.lines, keys=keys, trusted_checkpoint=kept_checkpoint(world))


def test_forked_log_of_the_same_size_as_the_kept_checkpoint_is_caught(world: World) -> None:
    with pytest.raises(ExportTamperedError, match=r"^line 300: the first 300 entries hash to"):
        verify_export(
            world.rewritten.lines,
            keys=keyset_of(world.broker_key),
            trusted_checkpoint=world.true.checkpoint,
        )


def test_shrunk_log_resigned_by_the_broker_is_caught_by_a_kept_checkpoint(world: World) -> None:
    keys = keyset_of(world.broker_key)
    assert verify_export(world.shrunk.lines, keys=keys).size == KEPT
    with pytest.raises(
        ExportTamperedError,
        match=rf"the trusted checkpoint of .* has size {SIZE}, the export holds only {KEPT}"
        r" entries \(the log shrank\)",
    ):
        verify_export(world.shrunk.lines, keys=keys, trusted_checkpoint=world.true.checkpoint)


def test_kept_checkpoint_with_a_broken_signature_is_refused(world: World) -> None:
    kept = kept_checkpoint(world)
    forged_kept = Checkpoint.from_dict({**kept.to_dict(), "root_hash": "0" * 64})
    with pytest.raises(ExportTamperedError, match="the trusted checkpoint does not verify"):
        verify_export(
            world.true.lines, keys=keyset_of(world.broker_key), trusted_checkpoint=forged_kept
        )


# ---- reading lines with a bound ---------------------------------------------------------


def test_bounded_lines_cut_an_over_long_line_and_stop() -> None:
    stream = io.BytesIO(b"a\n" + b"x" * 25 + b"\nb\n")
    assert list(bounded_lines(stream, max_line_bytes=10)) == [b"a\n", b"x" * 11]


def test_bounded_lines_pass_a_line_of_exactly_the_bound() -> None:
    stream = io.BytesIO(b"x" * 10 + b"\n" + b"b\n")
    assert list(bounded_lines(stream, max_line_bytes=10)) == [b"x" * 10 + b"\n", b"b\n"]


def test_over_long_line_in_a_stream_is_caught_without_reading_it_whole(world: World) -> None:
    data = b"".join(world.true.lines[:3]) + b'{"index":3,"pad":"' + b"x" * (4 * MAX_LINE_BYTES)
    with pytest.raises(ExportTamperedError, match=r"^line 4: expected at most"):
        verify_export(bounded_lines(io.BytesIO(data)), keys=keyset_of(world.broker_key))


def test_strict_json_refuses_what_another_parser_might_read_differently() -> None:
    assert loads_strict(b'{"a":[1,2.5,"x"]}') == {"a": [1, 2.5, "x"]}
    for text in (b'{"a":1,"a":2}', b"[NaN]", b"[-Infinity]", b"[1e999]", b"\xef\xbb\xbf{}"):
        with pytest.raises(ValueError):  # noqa: PT011  # the messages are checked above
            loads_strict(text)


# ---- receipts ---------------------------------------------------------------------------


def inclusion(world: World, receipt: Receipt) -> list[str]:
    return world.true.log.inclusion_proof(receipt.log_index, receipt.checkpoint.size)


@pytest.mark.parametrize("index", [0, 1, 17, 127, 128, 250, SIZE - 1])
def test_receipt_with_its_inclusion_proof_verifies(world: World, index: int) -> None:
    receipt = world.true.receipts[index]
    keys = keyset_of(world.broker_key)
    verify_receipt(receipt=receipt, proof=inclusion(world, receipt), keys=keys)
    # ... and as the JSON a partner keeps.
    verify_receipt(receipt=receipt.to_dict(), proof=inclusion(world, receipt), keys=keys)


def other_leaf(world: World, receipt: Receipt) -> dict[str, Any]:
    return {**receipt.to_dict(), "leaf_hash": world.true.receipts[receipt.log_index - 1].leaf_hash}


def flipped_hash(value: str) -> str:
    return ("1" if value[0] == "0" else "0") + value[1:]


ReceiptTamper = Callable[[World, Receipt, list[str]], tuple[dict[str, Any], list[str]]]

# (id, what the attacker changes in the receipt or proof, the message)
RECEIPT_TAMPERS: list[tuple[str, ReceiptTamper, str]] = [
    # the receipt claims another place in the log
    (
        "wrong_index",
        lambda _w, r, p: ({**r.to_dict(), "log_index": r.log_index - 1}, p),
        r"^inclusion of leaf [0-9a-f]{64} at index 149 in the tree of size 151 signed at ",
    ),
    # the receipt carries another entry's leaf
    (
        "wrong_leaf",
        lambda w, r, p: (other_leaf(w, r), p),
        r"^inclusion of leaf .* at index 150 .*: expected root",
    ),
    # one hash of the proof changed
    (
        "proof_element_changed",
        lambda _w, r, p: (r.to_dict(), [*p[:2], flipped_hash(p[2]), *p[3:]]),
        r"^inclusion of leaf .*: expected root [0-9a-f]{64}, proof leads to",
    ),
    # the proof cut short
    (
        "proof_shortened",
        lambda _w, r, p: (r.to_dict(), p[:-1]),
        r"proof is shorter than a tree of size 151 needs",
    ),
    # the proof padded
    (
        "proof_lengthened",
        lambda _w, r, p: (r.to_dict(), [*p, p[0]]),
        r"proof is longer than a tree of size 151 needs",
    ),
    # an absurdly long proof
    (
        "proof_too_long",
        lambda _w, r, p: (r.to_dict(), [p[0]] * (MAX_PROOF_HASHES + 1)),
        rf"^inclusion proof: expected at most {MAX_PROOF_HASHES} hashes",
    ),
    # a proof element that is not a hash
    (
        "proof_element_not_hex",
        lambda _w, r, p: (r.to_dict(), ["zz", *p[1:]]),
        r"^inclusion proof: expected 64 lowercase hex digits as hash 0, found 'zz'",
    ),
    # the checkpoint's root replaced, so a forged tree would match
    (
        "checkpoint_root_changed",
        lambda _w, r, p: (
            {**r.to_dict(), "checkpoint": {**r.checkpoint.to_dict(), "root_hash": "0" * 64}},
            p,
        ),
        r"^receipt checkpoint: signature by .* does not hold over size=151 root_hash=0{64}",
    ),
    # the checkpoint's signature changed
    (
        "checkpoint_signature_changed",
        lambda _w, r, p: (
            {
                **r.to_dict(),
                "checkpoint": {
                    **r.checkpoint.to_dict(),
                    "signature": flip_first_char(r.checkpoint.signature),
                },
            },
            p,
        ),
        r"^receipt checkpoint: signature by .* does not hold",
    ),
    # a whole receipt made by another key
    (
        "checkpoint_signed_by_another_key",
        lambda w, r, p: (
            {
                **r.to_dict(),
                "checkpoint": sign_checkpoint(
                    key=w.other_key,
                    size=r.checkpoint.size,
                    root_hash=bytes.fromhex(r.checkpoint.root_hash),
                    now=T0,
                ).to_dict(),
            },
            p,
        ),
        r"^receipt checkpoint: expected a pinned key id",
    ),
    # a receipt with an extra member
    (
        "receipt_extra_member",
        lambda _w, r, p: ({**r.to_dict(), "note": "ok"}, p),
        r"^receipt: expected members \['checkpoint', 'leaf_hash', 'log_index'\]",
    ),
    # a boolean index
    (
        "index_as_bool",
        lambda _w, r, p: ({**r.to_dict(), "log_index": True}, p),
        r"^receipt: expected a non-negative integer log_index, found True",
    ),
]


@pytest.mark.parametrize(
    ("tamper", "message"),
    [(t, m) for _, t, m in RECEIPT_TAMPERS],
    ids=[name for name, _, _ in RECEIPT_TAMPERS],
)
def test_tampered_receipt_is_caught(world: World, tamper: ReceiptTamper, message: str) -> None:
    receipt = world.true.receipts[150]
    proof = inclusion(world, receipt)
    assert len(proof) >= 3
    document, bad_proof = tamper(world, receipt, proof)
    with pytest.raises(ReceiptTamperedError, match=message):
        verify_receipt(receipt=document, proof=bad_proof, keys=keyset_of(world.broker_key))


@pytest.mark.parametrize("index", [0, 17, KEPT - 1, SIZE - 1])
def test_consistency_from_the_receipts_checkpoint_to_a_later_one_verifies(
    world: World, index: int
) -> None:
    receipt = world.true.receipts[index]
    later = world.true.checkpoint
    proof = world.true.log.consistency_proof(receipt.checkpoint.size, later.size)
    verify_receipt(
        receipt=receipt,
        proof=inclusion(world, receipt),
        keys=keyset_of(world.broker_key),
        consistency=(later.to_dict(), proof),
    )


def test_later_checkpoint_of_a_rewritten_log_fails_consistency(world: World) -> None:
    # The partner's receipt for entry 30 came from the true log (size 31);
    # the broker now serves the rewritten log (entry 17 changed) and proves
    # "consistency" from it.
    receipt = world.true.receipts[30]
    later = world.rewritten.checkpoint
    proof = world.rewritten.log.consistency_proof(receipt.checkpoint.size, later.size)
    with pytest.raises(
        ReceiptTamperedError,
        match=r"^consistency from size 31 \(signed at .*\) to size 300 \(signed at .*\): "
        r"expected first root .* \(the later log does not extend the earlier one\)",
    ):
        verify_receipt(
            receipt=receipt,
            proof=inclusion(world, receipt),
            keys=keyset_of(world.broker_key),
            consistency=(later, proof),
        )


def test_later_checkpoint_of_a_shrunk_log_is_caught(world: World) -> None:
    receipt = world.true.receipts[SIZE - 1]
    with pytest.raises(
        ReceiptTamperedError, match=r"^later checkpoint: expected a size of at least 300, found 200"
    ):
        verify_receipt(
            receipt=receipt,
            proof=inclusion(world, receipt),
            keys=keyset_of(world.broker_key),
            consistency=(world.shrunk.checkpoint, []),
        )


def test_later_checkpoint_by_another_key_is_caught(world: World) -> None:
    receipt = world.true.receipts[10]
    later = world.true.checkpoint
    forged_later = sign_checkpoint(
        key=world.other_key, size=later.size, root_hash=bytes.fromhex(later.root_hash), now=T0
    )
    with pytest.raises(ReceiptTamperedError, match=r"^later checkpoint: expected a pinned key"):
        verify_receipt(
            receipt=receipt,
            proof=inclusion(world, receipt),
            keys=keyset_of(world.broker_key),
            consistency=(forged_later, world.true.log.consistency_proof(11, later.size)),
        )


def test_consistency_proof_element_changed_is_caught(world: World) -> None:
    receipt = world.true.receipts[10]
    later = world.true.checkpoint
    proof = world.true.log.consistency_proof(receipt.checkpoint.size, later.size)
    proof[0] = flipped_hash(proof[0])
    with pytest.raises(ReceiptTamperedError, match=r"^consistency from size 11 "):
        verify_receipt(
            receipt=receipt,
            proof=inclusion(world, receipt),
            keys=keyset_of(world.broker_key),
            consistency=(later, proof),
        )


# ---- proof documents --------------------------------------------------------------------


def test_proof_document_for_the_receipt_gives_its_proof(world: World) -> None:
    receipt = parse_receipt(world.true.receipts[5].to_dict())
    document = {
        "index": 5,
        "size": 6,
        "leaf_hash": receipt.leaf_hash,
        "proof": inclusion(world, receipt),
    }
    expect = {"index": 5, "size": 6, "leaf_hash": receipt.leaf_hash}
    assert proof_from_document(document, expect=expect) == document["proof"]


# (id, the change to the document, the message): a proof for something else
PROOF_DOCUMENT_TAMPERS = [
    ("other_index", {"index": 4}, r"^proof document: expected index=5, found 4"),
    ("other_size", {"size": 300}, r"^proof document: expected size=6, found 300"),
    ("index_as_bool", {"index": True}, r"^proof document: expected index=5, found True"),
    ("other_leaf", {"leaf_hash": "0" * 64}, r"^proof document: expected leaf_hash='"),
    ("missing_leaf", {"leaf_hash": None}, r"^proof document: expected leaf_hash=.*, found None"),
    ("proof_not_a_list", {"proof": "ab"}, r"^proof document: expected `proof` as a list"),
]


@pytest.mark.parametrize(
    ("change", "message"),
    [(c, m) for _, c, m in PROOF_DOCUMENT_TAMPERS],
    ids=[name for name, _, _ in PROOF_DOCUMENT_TAMPERS],
)
def test_proof_document_for_something_else_is_refused(
    world: World, change: dict[str, Any], message: str
) -> None:
    receipt = world.true.receipts[5]
    document = {"index": 5, "size": 6, "leaf_hash": receipt.leaf_hash, "proof": []}
    expect = {"index": 5, "size": 6, "leaf_hash": receipt.leaf_hash}
    with pytest.raises(ReceiptTamperedError, match=message):
        proof_from_document({**document, **change}, expect=expect)


@pytest.fixture
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    # Ranges of 3 000 bytes, about three entries: the export's ~300 lines
    # cross a hundred range borders, and lines cross the borders too.
    monkeypatch.setattr(offline, "RANGE_BYTES", 3000)


def _export_file(folder: Path, lines: list[bytes]) -> Path:
    path = folder / "export.jsonl"
    path.write_bytes(b"".join(lines))
    return path


@pytest.mark.usefixtures("small_ranges")
@pytest.mark.parametrize("workers", [1, 2, 3])
def test_export_file_verified_by_worker_processes_gives_the_same_result(
    world: World, tmp_path: Path, workers: int
) -> None:
    reports: list[int] = []
    result = verify_export_file(
        _export_file(tmp_path, world.true.lines),
        keys=keyset_of(world.broker_key),
        trusted_checkpoint=kept_checkpoint(world),
        progress=reports.append,
        progress_every=100,
        workers=workers,
    )
    assert (result.size, result.root_hash) == (SIZE, world.true.log.checkpoint().root_hash)
    assert result.checkpoint == world.true.checkpoint
    assert reports == [100, 200, 300]


@pytest.mark.usefixtures("small_ranges")
@pytest.mark.parametrize(
    ("tamper", "message"), [(t, m) for _, t, m in TAMPERS], ids=[name for name, _, _ in TAMPERS]
)
def test_tampering_is_caught_alike_by_worker_processes(
    world: World, tmp_path: Path, tamper: Tamper, message: str
) -> None:
    lines = tamper(list(world.true.lines), world)
    with pytest.raises(ExportTamperedError, match=message):
        verify_export_file(
            _export_file(tmp_path, lines), keys=keyset_of(world.broker_key), workers=2
        )


@pytest.mark.usefixtures("small_ranges")
def test_rewritten_history_is_caught_by_worker_processes_against_a_kept_checkpoint(
    world: World, tmp_path: Path
) -> None:
    with pytest.raises(ExportTamperedError, match="history before that checkpoint was rewritten"):
        verify_export_file(
            _export_file(tmp_path, world.rewritten.lines),
            keys=keyset_of(world.broker_key),
            trusted_checkpoint=kept_checkpoint(world),
            workers=2,
        )


@pytest.mark.usefixtures("small_ranges")
def test_worker_processes_started_from_a_threaded_process_give_the_same_result(
    world: World, tmp_path: Path
) -> None:
    # With a second thread running, workers are spawned rather than forked
    # (parallel.py): the other start path, same verdict.
    path = _export_file(tmp_path, world.true.lines)
    results: list[int] = []

    def check() -> None:
        results.append(verify_export_file(path, keys=keyset_of(world.broker_key), workers=2).size)

    thread = threading.Thread(target=check)
    thread.start()
    thread.join(120)
    assert results == [SIZE]
