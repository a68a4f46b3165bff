"""`ketenbroker audit verify` and `verify-receipt`, run in-process on real exports.

Exit codes are the contract a DPO's script relies on: 0 only when every
check held, 1 with `TAMPERED: ...` when something does not, 2 with
`ERROR: ...` when the check could not be made at all.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from broker.audit import SqliteAuditStore
from broker.cli import main
from broker.keys import SigningKey, generate_signing_key
from tests.audit.test_offline import (
    BuiltLog,
    appended_log,
    entry_of,
    line_of,
    realistic_entries,
    record_log,
    resigned,
    with_checkpoint,
)

SIZE = 250
KEPT = 120


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands read Settings from KETENBROKER_* variables; start from none."""
    for name in list(os.environ):
        if name.upper().startswith("KETENBROKER_"):
            monkeypatch.delenv(name)


@dataclass
class Files:
    folder: Path
    key: SigningKey
    other_key: SigningKey
    true: BuiltLog
    rewritten: BuiltLog
    jwks: Path

    def export(self, name: str, lines: list[bytes]) -> str:
        path = self.folder / name
        path.write_bytes(b"".join(lines))
        return str(path)

    def document(self, name: str, document: Any) -> str:
        path = self.folder / name
        path.write_text(json.dumps(document))
        return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Files]:
    folder = tmp_path_factory.mktemp("cli-audit")
    key, other_key = generate_signing_key(), generate_signing_key()
    entries = realistic_entries(SIZE)
    rewritten = [*entries[:5], {**entries[5], "decision": "permit"}, *entries[6:]]
    assert rewritten[5] != entries[5]
    stores: list[SqliteAuditStore] = []
    jwks = folder / "broker.jwks.json"
    jwks.write_text(json.dumps({"keys": [key.public_jwk()]}))
    try:
        yield Files(
            folder=folder,
            key=key,
            other_key=other_key,
            true=record_log(folder / "true.sqlite3", key, entries, stores),
            rewritten=appended_log(folder / "rewritten.sqlite3", key, rewritten, stores),
            jwks=jwks,
        )
    finally:
        for store in stores:
            store.close()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---- audit verify -----------------------------------------------------------------------


def test_verify_good_export_prints_ok_and_exits_0(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    export = files.export("good.jsonl", files.true.lines)
    code, out, err = run(["audit", "verify", export, "--jwks", str(files.jwks)], capsys)
    assert (code, out) == (0, f"OK: {SIZE} entries, root {files.true.checkpoint.root_hash}\n")
    assert re.search(rf"verified {SIZE} entries in [0-9.]+ s \([0-9,]+ entries/s\)", err)


def test_verify_with_worker_processes_prints_the_same_verdict(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    export = files.export("good.jsonl", files.true.lines)
    argv = ["audit", "verify", export, "--jwks", str(files.jwks), "--workers", "2"]
    code, out, _ = run(argv, capsys)
    assert (code, out) == (0, f"OK: {SIZE} entries, root {files.true.checkpoint.root_hash}\n")


@pytest.mark.parametrize("workers", ["0", "65", "two"])
def test_verify_refuses_a_worker_count_out_of_bounds(
    files: Files, workers: str, capsys: pytest.CaptureFixture[str]
) -> None:
    export = files.export("good.jsonl", files.true.lines)
    with pytest.raises(SystemExit) as exited:
        main(["audit", "verify", export, "--jwks", str(files.jwks), "--workers", workers])
    assert exited.value.code == 2
    assert "--workers" in capsys.readouterr().err


def test_verify_reports_progress_on_stderr(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    export = files.export("good.jsonl", files.true.lines)
    argv = ["audit", "verify", export, "--jwks", str(files.jwks), "--progress-every", "100"]
    code, _, err = run(argv, capsys)
    assert code == 0
    progress = re.findall(r"^verified ([0-9,]+) entries \([0-9,]+ entries/s\)$", err, re.M)
    assert progress == ["100", "200"]


def test_verify_reads_the_export_from_stdin(
    files: Files, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"".join(files.true.lines))))
    code, out, _ = run(["audit", "verify", "-", "--jwks", str(files.jwks)], capsys)
    assert (code, out) == (0, f"OK: {SIZE} entries, root {files.true.checkpoint.root_hash}\n")


Edit = Callable[[list[bytes], Files], list[bytes]]

# (id, what the attacker does to the file, the start of the verdict)
TAMPERED_EXPORTS: list[tuple[str, Edit, str]] = [
    # an entry deleted
    (
        "dropped_entry",
        lambda ls, _f: ls[:42] + ls[43:],
        "TAMPERED: line 43: expected index 42, found 43",
    ),
    # a refusal turned into a disclosure
    (
        "altered_entry",
        lambda ls, _f: [*ls[:5], line_of({**entry_of(ls[5]), "decision": "permit"}), *ls[6:]],
        f"TAMPERED: line {SIZE + 1}: the {SIZE} entries hash to root",
    ),
    # two entries swapped
    (
        "swapped_entries",
        lambda ls, _f: [*ls[:7], ls[8], ls[7], *ls[9:]],
        "TAMPERED: line 8: expected index 7, found 8",
    ),
    # the checkpoint cut off
    (
        "checkpoint_removed",
        lambda ls, _f: ls[:-1],
        f"TAMPERED: expected a checkpoint line after line {SIZE}",
    ),
    # the checkpoint's size lowered
    (
        "checkpoint_size_changed",
        lambda ls, _f: with_checkpoint(ls, size=SIZE - 1),
        f"TAMPERED: line {SIZE + 1}: checkpoint signature: signature by",
    ),
    # everything re-signed by an outsider's key
    (
        "resigned_by_another_key",
        lambda ls, f: resigned(ls, f.other_key),
        f"TAMPERED: line {SIZE + 1}: checkpoint signature: expected a pinned key id",
    ),
]


@pytest.mark.parametrize(
    ("edit", "verdict"),
    [(e, v) for _, e, v in TAMPERED_EXPORTS],
    ids=[name for name, _, _ in TAMPERED_EXPORTS],
)
def test_verify_tampered_export_prints_tampered_and_exits_1(
    files: Files, capsys: pytest.CaptureFixture[str], edit: Edit, verdict: str
) -> None:
    export = files.export("tampered.jsonl", edit(list(files.true.lines), files))
    code, out, _ = run(["audit", "verify", export, "--jwks", str(files.jwks)], capsys)
    assert code == 1
    assert out.startswith(verdict), out
    assert "OK" not in out


def test_verify_rewritten_history_against_a_kept_checkpoint_exits_1(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    export = files.export("rewritten.jsonl", files.rewritten.lines)
    # The DPO kept an earlier checkpoint, as an export's last line.
    kept = files.document(
        "kept.json", {"checkpoint": files.true.receipts[KEPT - 1].checkpoint.to_dict()}
    )
    code, out, _ = run(["audit", "verify", export, "--jwks", str(files.jwks)], capsys)
    assert code == 0, "re-signed by the broker's key, the rewrite verifies on its own"
    argv = ["audit", "verify", export, "--jwks", str(files.jwks), "--trusted-checkpoint", kept]
    code, out, _ = run(argv, capsys)
    assert code == 1
    assert out.startswith(f"TAMPERED: line {KEPT}: the first {KEPT} entries hash to root")


def test_verify_with_keys_that_did_not_sign_exits_1(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    export = files.export("good.jsonl", files.true.lines)
    jwks = files.document("other.jwks.json", {"keys": [files.other_key.public_jwk()]})
    code, out, _ = run(["audit", "verify", export, "--jwks", jwks], capsys)
    assert code == 1
    assert out.startswith(f"TAMPERED: line {SIZE + 1}: checkpoint signature: expected a pinned")


# (id, the JWKS file's bytes, what the error says): the check cannot be made
UNUSABLE_JWKS = [
    ("empty_key_list", b'{"keys": []}', "holds no keys"),
    ("not_json", b"-----BEGIN PUBLIC KEY-----", "is not valid JSON"),
    ("not_a_jwks", b'{"kty": "OKP"}', "expected a JWKS"),
    ("rsa_key", b'{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}', "unusable key"),
    ("key_without_x", b'{"keys": [{"kty": "OKP", "crv": "Ed25519"}]}', "unusable key"),
]


@pytest.mark.parametrize(
    ("content", "error"),
    [(c, e) for _, c, e in UNUSABLE_JWKS],
    ids=[name for name, _, _ in UNUSABLE_JWKS],
)
def test_verify_with_unusable_jwks_exits_2(
    files: Files, capsys: pytest.CaptureFixture[str], content: bytes, error: str
) -> None:
    export = files.export("good.jsonl", files.true.lines)
    jwks = files.folder / "bad.jwks.json"
    jwks.write_bytes(content)
    code, out, err = run(["audit", "verify", export, "--jwks", str(jwks)], capsys)
    assert (code, out) == (2, "")
    assert err.startswith("ERROR: ") and error in err


def test_verify_missing_export_exits_2(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(files.folder / "missing.jsonl")
    code, out, err = run(["audit", "verify", missing, "--jwks", str(files.jwks)], capsys)
    assert (code, out) == (2, "")
    assert err.startswith("ERROR: cannot read the export")


def test_verify_refuses_a_progress_interval_below_one(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["audit", "verify", "x", "--jwks", str(files.jwks), "--progress-every", "0"])
    assert exited.value.code == 2
    assert "expected a positive integer" in capsys.readouterr().err


# ---- audit verify-receipt ---------------------------------------------------------------


def receipt_files(files: Files, index: int, *, wrap: bool = False) -> tuple[str, str]:
    receipt = files.true.receipts[index]
    size = receipt.checkpoint.size
    document = {"exchange": "ex_1", "receipt": receipt.to_dict()} if wrap else receipt.to_dict()
    proof = {
        "index": index,
        "size": size,
        "leaf_hash": receipt.leaf_hash,
        "proof": files.true.log.inclusion_proof(index, size),
    }
    return (
        files.document(f"receipt-{index}.json", document),
        files.document(f"proof-{index}.json", proof),
    )


@pytest.mark.parametrize("wrap", [False, True], ids=["receipt", "whole_answer"])
def test_verify_receipt_good_prints_ok_and_exits_0(
    files: Files, capsys: pytest.CaptureFixture[str], wrap: bool
) -> None:
    receipt, proof = receipt_files(files, 77, wrap=wrap)
    argv = ["audit", "verify-receipt", "--receipt", receipt, "--proof", proof]
    code, out, _ = run([*argv, "--jwks", str(files.jwks)], capsys)
    assert code == 0
    checkpoint = files.true.receipts[77].checkpoint
    assert out == (
        f"OK: entry 77 (leaf {files.true.receipts[77].leaf_hash}) is in the log of size 78,"
        f" root {checkpoint.root_hash}\n"
    )


def test_verify_receipt_with_a_changed_proof_exits_1(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    receipt, proof = receipt_files(files, 77)
    document = json.loads(Path(proof).read_text())
    document["proof"][1] = "0" * 64
    Path(proof).write_text(json.dumps(document))
    argv = ["audit", "verify-receipt", "--receipt", receipt, "--proof", proof]
    code, out, _ = run([*argv, "--jwks", str(files.jwks)], capsys)
    assert code == 1
    assert out.startswith("TAMPERED: inclusion of leaf ")


def test_verify_receipt_with_the_proof_of_another_entry_exits_1(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    receipt, _ = receipt_files(files, 77)
    _, proof = receipt_files(files, 76)
    argv = ["audit", "verify-receipt", "--receipt", receipt, "--proof", proof]
    code, out, _ = run([*argv, "--jwks", str(files.jwks)], capsys)
    assert (code, out) == (1, "TAMPERED: proof document: expected index=77, found 76\n")


def consistency_files(files: Files, index: int, log: BuiltLog) -> tuple[str, str]:
    first = files.true.receipts[index].checkpoint.size
    later = log.checkpoint
    proof = {
        "first": first,
        "second": later.size,
        "proof": log.log.consistency_proof(first, later.size),
    }
    return (
        files.document("later.json", later.to_dict()),
        files.document("consistency.json", proof),
    )


def test_verify_receipt_with_consistency_to_a_later_checkpoint_exits_0(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    receipt, proof = receipt_files(files, 10)
    later, consistency = consistency_files(files, 10, files.true)
    argv = ["audit", "verify-receipt", "--receipt", receipt, "--proof", proof]
    argv += ["--jwks", str(files.jwks), "--later-checkpoint", later]
    code, out, _ = run([*argv, "--consistency-proof", consistency], capsys)
    assert code == 0
    assert out.endswith(
        f"the log of size {SIZE}, root {files.true.checkpoint.root_hash}, extends it\n"
    )


def test_verify_receipt_against_a_rewritten_later_log_exits_1(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    receipt, proof = receipt_files(files, 10)
    later, consistency = consistency_files(files, 10, files.rewritten)
    argv = ["audit", "verify-receipt", "--receipt", receipt, "--proof", proof]
    argv += ["--jwks", str(files.jwks), "--later-checkpoint", later]
    code, out, _ = run([*argv, "--consistency-proof", consistency], capsys)
    assert code == 1
    assert out.startswith("TAMPERED: consistency from size 11 (signed at ")
    assert out.rstrip().endswith("(the later log does not extend the earlier one)")


def test_verify_receipt_with_half_a_consistency_check_exits_2(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    receipt, proof = receipt_files(files, 10)
    later, _ = consistency_files(files, 10, files.true)
    argv = ["audit", "verify-receipt", "--receipt", receipt, "--proof", proof]
    code, out, err = run([*argv, "--jwks", str(files.jwks), "--later-checkpoint", later], capsys)
    assert (code, out) == (2, "")
    assert err == "ERROR: --later-checkpoint and --consistency-proof go together\n"
