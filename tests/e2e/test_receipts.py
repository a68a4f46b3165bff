"""Receipts partners can check (issue 4, point 2), over real HTTP against a running broker.

A partner keeps the receipt from its exchange answer, later fetches an
inclusion proof and a consistency proof, and checks both offline with only
the broker's JWKS. The DPO downloads the export and checks it offline,
holding the partner's receipt checkpoint as an earlier, trusted tree head.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.sdk.client import BrokerClient
from broker.audit.checkpoint import Checkpoint
from broker.audit.merkle import leaf_hash
from broker.audit.offline import (
    ExportTamperedError,
    ReceiptTamperedError,
    proof_from_document,
    verify_export,
    verify_receipt,
)
from broker.canonical import canonical_json
from broker.cli import main
from broker.keys import keyset_from_jwks
from broker.stack import LocalStack
from tests.e2e.conftest import FG, GEMEENTE, exchange_body, jwks

pytestmark = pytest.mark.e2e

Clients = Callable[[str], BrokerClient]


def exchange_receipt(client: BrokerClient, case_id: str) -> dict[str, Any]:
    answer = client.post("/v1/exchanges", json=exchange_body(case_id))
    assert answer.status_code == 200, answer.text
    receipt: dict[str, Any] = answer.json()["receipt"]
    return receipt


def fetched(client: BrokerClient, path: str, **params: int) -> dict[str, Any]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def inclusion_proof(client: BrokerClient, receipt: dict[str, Any]) -> list[str]:
    size = receipt["checkpoint"]["size"]
    document = fetched(client, "/v1/audit/proofs/inclusion", index=receipt["log_index"], size=size)
    return proof_from_document(
        document,
        expect={"index": receipt["log_index"], "size": size, "leaf_hash": receipt["leaf_hash"]},
    )


def test_partner_checks_its_receipt_and_that_the_log_only_grew(
    stack: LocalStack, client_for: Clients, active_case: str
) -> None:
    gemeente = client_for(GEMEENTE)
    keys = keyset_from_jwks(jwks(stack))  # all the partner trusts
    receipt = exchange_receipt(gemeente, active_case)
    proof = inclusion_proof(gemeente, receipt)
    verify_receipt(receipt=receipt, proof=proof, keys=keys)

    for _ in range(3):
        exchange_receipt(gemeente, active_case)
    later = fetched(gemeente, "/v1/audit/checkpoint")
    first = receipt["checkpoint"]["size"]
    assert later["size"] >= first + 3
    consistency = proof_from_document(
        fetched(gemeente, "/v1/audit/proofs/consistency", first=first, second=later["size"]),
        expect={"first": first, "second": later["size"]},
    )
    verify_receipt(receipt=receipt, proof=proof, keys=keys, consistency=(later, consistency))


def test_receipt_with_another_exchanges_leaf_fails_against_the_real_log(
    stack: LocalStack, client_for: Clients, active_case: str
) -> None:
    gemeente = client_for(GEMEENTE)
    keys = keyset_from_jwks(jwks(stack))
    mine = exchange_receipt(gemeente, active_case)
    other = exchange_receipt(gemeente, active_case)
    claimed = {**mine, "leaf_hash": other["leaf_hash"]}
    with pytest.raises(ReceiptTamperedError, match=r"^inclusion of leaf .*: expected root"):
        verify_receipt(receipt=claimed, proof=inclusion_proof(gemeente, mine), keys=keys)


def test_dpo_export_verifies_offline_and_extends_the_partners_receipt(
    stack: LocalStack, client_for: Clients, active_case: str
) -> None:
    receipt = exchange_receipt(client_for(GEMEENTE), active_case)
    exchange_receipt(client_for(GEMEENTE), active_case)
    response = client_for(FG).get("/v1/audit/export")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/jsonl")
    lines = response.content.splitlines(keepends=True)
    keys = keyset_from_jwks(jwks(stack))
    reports: list[int] = []
    result = verify_export(
        lines,
        keys=keys,
        trusted_checkpoint=Checkpoint.from_dict(receipt["checkpoint"]),
        progress=reports.append,
        progress_every=1,
    )
    assert result.size > receipt["log_index"] + 1
    assert reports == list(range(1, result.size + 1))
    # The partner's own entry sits at its index with the leaf its receipt names.
    entry = json.loads(lines[receipt["log_index"]])
    assert leaf_hash(entry).hex() == receipt["leaf_hash"]
    # One field changed in the downloaded file is caught.
    entry["decision"] = "deny" if entry["decision"] != "deny" else "permit"
    tampered = list(lines)
    tampered[receipt["log_index"]] = canonical_json(entry) + b"\n"
    with pytest.raises(ExportTamperedError, match=r"\(an entry was altered"):
        verify_export(tampered, keys=keys)


def test_cli_verifies_a_real_receipt_and_export_with_the_jwks_url(
    stack: LocalStack,
    client_for: Clients,
    active_case: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gemeente = client_for(GEMEENTE)
    answer = gemeente.post("/v1/exchanges", json=exchange_body(active_case))
    assert answer.status_code == 200, answer.text
    receipt = answer.json()["receipt"]
    (tmp_path / "answer.json").write_text(answer.text)
    proof = fetched(
        gemeente,
        "/v1/audit/proofs/inclusion",
        index=receipt["log_index"],
        size=receipt["checkpoint"]["size"],
    )
    (tmp_path / "proof.json").write_text(json.dumps(proof))
    export = client_for(FG).get("/v1/audit/export")
    assert export.status_code == 200, export.text
    (tmp_path / "export.jsonl").write_bytes(export.content)
    jwks_url = stack.broker_url + "/.well-known/jwks.json"

    code = main(
        [
            "audit",
            "verify-receipt",
            "--receipt",
            str(tmp_path / "answer.json"),
            "--proof",
            str(tmp_path / "proof.json"),
            "--jwks",
            jwks_url,
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured
    assert captured.out.startswith(f"OK: entry {receipt['log_index']} ")
    assert "the verdict trusts whoever answers there" in captured.err

    code = main(["audit", "verify", str(tmp_path / "export.jsonl"), "--jwks", jwks_url])
    captured = capsys.readouterr()
    assert code == 0, captured
    size = len(export.content.splitlines()) - 1
    assert captured.out.startswith(f"OK: {size} entries, root ")
