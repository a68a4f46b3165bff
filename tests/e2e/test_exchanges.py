"""The exchange pipeline end to end: real HTTP from requester to broker to adapter.

Each test is named after the invariant it defends. The adapters answer
with everything their systems hold (criminal records, investigation data,
diagnoses, rent arrears); the broker must be what keeps those out.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from adapters.sdk.client import BrokerClient
from broker.audit.checkpoint import Checkpoint, verify_checkpoint
from broker.audit.merkle import leaf_hash, verify_inclusion
from broker.keys import keyset_from_jwks
from broker.stack import LocalStack
from tests.e2e.conftest import (
    BUURTTEAM,
    DE_LINGE,
    FG,
    GEMEENTE,
    POLITIE,
    WOONGOED,
    audit_entries,
    case_body,
    exchange_body,
    jwks,
)

pytestmark = pytest.mark.e2e

Clients = Callable[[str], BrokerClient]

# Words and values in the police and care fixtures that must never reach a requester.
NEVER_DISCLOSED = [
    "strafrechtelijke_antecedenten",
    "verdachten_derden",
    "onderzoeksgegevens",
    "lopend_onderzoek",
    "interne_notitie",
    "diagnose",
    "behandelplan",
    "medicatie",
    "huurachterstand",
    "inkomen",
]


def test_police_answer_holds_only_convenant_fields(
    stack: LocalStack, client_for: Clients, active_case: str
) -> None:
    response = client_for(GEMEENTE).post("/v1/exchanges", json=exchange_body(active_case))
    assert response.status_code == 200, response.text
    body = response.json()
    listed = set(stack.services.convenant.exchange("politie.meldingen").fields)  # type: ignore[union-attr]
    assert body["decision"] in {"permit", "partial"}
    assert body["data"], "the police know this subject; something must be disclosed"
    assert set(body["data"]) <= listed
    assert body["legal_basis"]["law"] == "Wet politiegegevens"
    assert body["policy_version"] == stack.services.policy.version
    text = response.text
    for forbidden in NEVER_DISCLOSED:
        assert forbidden not in text, f"{forbidden!r} leaked into the requester's answer"


def test_special_category_fields_never_reach_the_requester(
    client_for: Clients, active_case: str
) -> None:
    response = client_for(GEMEENTE).post(
        "/v1/exchanges", json=exchange_body(active_case, query="buurtteam.bekendheid")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body["data"]) <= {"bekend", "hulpverlener_naam"}
    assert body["data"].get("bekend") is True
    for forbidden in ("diagnose", "behandelplan", "verslaving", "notities"):
        assert forbidden not in response.text


def test_receipt_is_included_in_the_signed_log(
    stack: LocalStack, client_for: Clients, active_case: str
) -> None:
    response = client_for(GEMEENTE).post("/v1/exchanges", json=exchange_body(active_case))
    assert response.status_code == 200, response.text
    receipt = response.json()["receipt"]
    checkpoint = Checkpoint.from_dict(receipt["checkpoint"])
    verify_checkpoint(checkpoint, keys=keyset_from_jwks(jwks(stack)))
    proof = client_for(GEMEENTE).get(
        "/v1/audit/proofs/inclusion",
        params={"index": receipt["log_index"], "size": checkpoint.size},
    )
    assert proof.status_code == 200, proof.text
    verify_inclusion(
        leaf_hash=bytes.fromhex(receipt["leaf_hash"]),
        index=receipt["log_index"],
        size=checkpoint.size,
        proof=[bytes.fromhex(h) for h in proof.json()["proof"]],
        root=bytes.fromhex(checkpoint.root_hash),
    )


def test_every_answer_has_its_audit_entry_without_values(
    client_for: Clients, active_case: str
) -> None:
    response = client_for(GEMEENTE).post("/v1/exchanges", json=exchange_body(active_case))
    assert response.status_code == 200
    body = response.json()
    entries = audit_entries(client_for(FG), case=active_case)
    # Log before disclose: an intent before the adapter was asked, then the
    # disclosure that closes it; the receipt is the disclosure's.
    [intent, entry] = [e for e in entries if e.get("exchange") == body["exchange"]]
    assert intent["decision"] == "intent"
    assert intent["index"] < entry["index"]
    assert entry["intent_index"] == intent["index"]
    assert intent["fields_disclosed"] == [] and intent["payload_hash"] is None
    assert entry["index"] == body["receipt"]["log_index"]
    assert leaf_hash(entry).hex() == body["receipt"]["leaf_hash"]
    assert entry["answer_signature_digest"].startswith("sha256:")
    # The log holds the whole truth (partial when anything was held back);
    # the requester is told only what it may know.
    assert entry["decision"] in {"permit", "partial"}
    assert entry["fields_withheld"] or entry["decision"] == body["decision"]
    assert set(entry["fields_disclosed"]) == set(body["data"])
    assert entry["subject"].startswith("ps_"), "the log holds a pseudonym, never a name"
    serialized = json.dumps(entry)
    assert "Marco" not in serialized and "1979-03-14" not in serialized
    for value in body["data"].values():
        if isinstance(value, str) and len(value) > 3:
            assert value not in serialized, "the log must not hold disclosed values"


def test_traceparent_travels_into_the_audit_entry(client_for: Clients, active_case: str) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = client_for(GEMEENTE).post(
        "/v1/exchanges",
        json=exchange_body(active_case),
        headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
    )
    assert response.status_code == 200
    exchange_id = response.json()["exchange"]
    # Both the intent and the disclosure carry the trace.
    pair = [
        e
        for e in audit_entries(client_for(FG), case=active_case)
        if e.get("exchange") == exchange_id
    ]
    assert [e["decision"] == "intent" for e in pair] == [True, False]
    assert {e["trace_id"] for e in pair} == {trace_id}


# --- refusals: each code of contract.md, each logged -------------------------------


def _case_in_state(client_for: Clients, *, consent: str | None, status: str | None) -> str:
    gemeente = client_for(GEMEENTE)
    created = gemeente.post("/v1/cases", json=case_body())
    assert created.status_code == 201, created.text
    case_id: str = created.json()["id"]
    if consent:
        answer = client_for(DE_LINGE).post(
            f"/v1/cases/{case_id}/consent", json={"decision": consent}
        )
        assert answer.status_code == 200
    if status:
        answer = gemeente.post(f"/v1/cases/{case_id}/transitions", json={"to": status})
        assert answer.status_code == 200, answer.text
    return case_id


REFUSALS = [
    # (requester, consent, status, exchange overrides, expected status, expected code)
    # a corporation that is no partner of the case
    (WOONGOED, "granted", "in_behandeling", {}, 404, "not_case_partner"),
    # a corporation may never ask the police (seed 004 §5.3)
    (DE_LINGE, "granted", "in_behandeling", {}, 403, "exchange_not_allowed"),
    # the police may not ask the police, nor ask anything as casemanager
    (POLITIE, "granted", "in_behandeling", {}, 403, "exchange_not_allowed"),
    # investigation is not the convenant's purpose (seed 000, 002 §3.3.2)
    (GEMEENTE, "granted", "in_behandeling", {"purpose": "opsporing"}, 403, "purpose_mismatch"),
    # a subject who is not a party of this case
    (GEMEENTE, "granted", "in_behandeling", {"subject": "x-9"}, 403, "subject_not_in_case"),
    # nothing flows after the case turned out not complex
    (GEMEENTE, "granted", "geen_complexe_overlast", {}, 403, "case_closed"),
    # the owning corporation has not consented yet
    (GEMEENTE, None, None, {}, 403, "consent_pending"),
    # the owning corporation refused
    (GEMEENTE, "refused", None, {}, 403, "consent_pending"),
    # ten years of police data in one question
    (
        GEMEENTE,
        "granted",
        "in_behandeling",
        {"period": {"from": "2016-01-01", "to": "2026-01-01"}},
        403,
        "period_too_wide",
    ),
    # an exchange type the convenant does not know
    (
        GEMEENTE,
        "granted",
        "in_behandeling",
        {"query": "politie.strafblad"},
        403,
        "exchange_not_allowed",
    ),
]


@pytest.mark.parametrize(
    ("requester", "consent", "status", "overrides", "http_status", "code"),
    REFUSALS,
    ids=[f"{row[5]}-{n}" for n, row in enumerate(REFUSALS)],
)
def test_refusal_carries_its_code_and_is_logged(
    client_for: Clients,
    requester: str,
    consent: str | None,
    status: str | None,
    overrides: dict[str, object],
    http_status: int,
    code: str,
) -> None:
    case_id = _case_in_state(client_for, consent=consent, status=status)
    response = client_for(requester).post("/v1/exchanges", json=exchange_body(case_id, **overrides))
    assert response.status_code == http_status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == code
    assert problem["detail"], "every refusal says why"
    assert "data" not in problem
    assert isinstance(problem["receipt"]["log_index"], int), "a refusal carries its receipt"
    denials = [
        e
        for e in audit_entries(client_for(FG), case=case_id, decision="deny")
        if e.get("kind") == "exchange"
    ]
    assert len(denials) == 1
    assert code in {r["code"] for r in denials[0]["reasons"]}
    assert denials[0]["requester"]["partner"] == requester


def test_absent_and_foreign_cases_look_the_same(client_for: Clients, active_case: str) -> None:
    stranger = client_for(WOONGOED)
    foreign = stranger.post("/v1/exchanges", json=exchange_body(active_case))
    absent = stranger.post("/v1/exchanges", json=exchange_body("case_" + "0" * 32))
    assert foreign.status_code == absent.status_code == 404
    # Each refusal has its own receipt (its own log entry); nothing else differs.
    foreign_body, absent_body = foreign.json(), absent.json()
    assert foreign_body.pop("receipt")["log_index"] != absent_body.pop("receipt")["log_index"]
    assert foreign_body == absent_body


def test_unknown_request_fields_are_rejected(client_for: Clients, active_case: str) -> None:
    body = exchange_body(active_case)
    body["requester"] = {"partner": GEMEENTE}  # mass assignment of who is asking
    response = client_for(BUURTTEAM).post("/v1/exchanges", json=body)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


# --- log before disclose ------------------------------------------------------------


def test_failed_audit_write_discloses_nothing(
    stack: LocalStack, client_for: Clients, active_case: str, postgres_server_dsn: str
) -> None:
    """Make the real audit store refuse writes: the exchange must answer 503 without data."""
    with _audit_store_refusing_writes(stack, postgres_server_dsn):
        response = client_for(GEMEENTE).post("/v1/exchanges", json=exchange_body(active_case))
    assert response.status_code == 503, response.text
    problem = response.json()
    assert problem["code"] == "audit_unavailable"
    for leaked in ("meldingen", "politie_inzet", "geluidsoverlast"):
        assert leaked not in json.dumps(problem)
    # With the store healthy again, the same exchange goes through and is logged.
    again = client_for(GEMEENTE).post("/v1/exchanges", json=exchange_body(active_case))
    assert again.status_code == 200


class _audit_store_refusing_writes:  # noqa: N801  # reads as a sentence in the test
    def __init__(self, stack: LocalStack, dsn: str) -> None:
        self.stack = stack
        self.dsn = dsn

    def __enter__(self) -> None:
        if self.stack.settings.storage_backend == "sqlite":
            with sqlite3.connect(self.stack.settings.sqlite_path) as conn:
                conn.execute(
                    "CREATE TRIGGER refuse_all BEFORE INSERT ON audit_entries"
                    " BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
                )
        else:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(
                    "ALTER TABLE audit_entries ADD CONSTRAINT refuse_all CHECK (false) NOT VALID"
                )

    def __exit__(self, *exc: object) -> None:
        if self.stack.settings.storage_backend == "sqlite":
            with sqlite3.connect(self.stack.settings.sqlite_path) as conn:
                conn.execute("DROP TRIGGER refuse_all")
        else:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute("ALTER TABLE audit_entries DROP CONSTRAINT refuse_all")


def test_audit_time_filters_understand_offsets(client_for: Clients, active_case: str) -> None:
    response = client_for(GEMEENTE).post("/v1/exchanges", json=exchange_body(active_case))
    assert response.status_code == 200
    # The disclosure entry; its intent (same exchange) precedes it.
    [entry] = [
        e
        for e in audit_entries(client_for(FG), case=active_case)
        if e.get("exchange") == response.json()["exchange"] and e["decision"] != "intent"
    ]
    # The same instant written in UTC+01:00 must still include the entry.
    moment = datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
    local = moment.astimezone(timezone(timedelta(hours=1))).isoformat()
    found = audit_entries(client_for(FG), case=active_case, **{"from": local})
    assert entry["exchange"] in {e.get("exchange") for e in found}
    bad = client_for(FG).get("/v1/audit/entries", params={"from": "2026-01-01T00:00:00"})
    assert bad.status_code == 400


def test_dpo_can_have_the_log_verified_on_the_server(client_for: Clients, active_case: str) -> None:
    client_for(GEMEENTE).post("/v1/exchanges", json=exchange_body(active_case))
    response = client_for(FG).get("/v1/audit/verification")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True
    assert body["size"] == body["checkpoint"]["size"]
    assert body["root_hash"] == body["checkpoint"]["root_hash"]
    assert client_for(GEMEENTE).get("/v1/audit/verification").status_code == 403
