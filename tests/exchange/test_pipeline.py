"""The order of an exchange's audit entries (log before disclose), on real parts.

Each test is named after the invariant it defends: the intent is durable
before the provider is asked; every intent is closed by exactly one entry
that points back at it; a provider that fails, lies or dawdles after the
intent closes it as refused, and nothing is disclosed.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import httpx
import pytest

from broker.adapter_protocol import ANSWER_SIGNATURE_HEADER
from broker.audit.merkle import leaf_hash
from broker.errors import (
    AdapterTrustError,
    AdapterUnavailableError,
    AuditWriteError,
    PolicyUnavailableError,
)
from broker.exchange.answer_signature import disclosure_signature_digest, verify_disclosure
from broker.exchange.pipeline import ExchangeRefusedError
from broker.exchange.reconcile import reconcile
from broker.keys import KeyStore
from broker.policy.engine import PolicyEngine
from tests.exchange.conftest import IN_FLIGHT_LIMIT, POLITIE, Rig, rebuilt

# --- the happy path ------------------------------------------------------------------


def test_intent_is_durable_before_the_provider_is_asked(rig: Rig) -> None:
    seen: list[dict[str, Any]] = []

    def look_at_the_log(request: httpx.Request) -> None:
        # Read the store through a connection of its own, as a crash would
        # leave it: what is not committed is not there.
        with sqlite3.connect(rig.sqlite_path) as conn:
            rows = conn.execute('SELECT entry FROM audit_entries ORDER BY "index"').fetchall()
        seen.extend(json.loads(row[0]) for row in rows)
        assert json.loads(request.content)["exchange"] == seen[-1]["exchange"]

    rig.wire.on_request = look_at_the_log
    outcome = rig.run()
    assert rig.wire.calls == 1
    assert [e["decision"] for e in seen] == ["intent"]
    assert seen[-1]["exchange"] == outcome.exchange_id


def test_disclosure_closes_its_intent_and_carries_the_receipt(rig: Rig, keystore: KeyStore) -> None:
    outcome = rig.run()
    intent, final = rig.exchange_entries()
    assert (intent["decision"], final["decision"]) == ("intent", outcome.decision)
    assert outcome.decision in {"permit", "partial"}
    assert intent["exchange"] == final["exchange"] == outcome.exchange_id
    assert final["intent_index"] == intent["index"]
    # The intent describes the exchange and discloses nothing yet.
    for member in ("requester", "provider", "query", "purpose", "case", "subject"):
        assert intent[member] == final[member], member
    assert intent["provider"] == {"partner": POLITIE}
    assert intent["legal_basis"] == final["legal_basis"] is not None
    assert intent["policy_version"] == final["policy_version"]
    assert intent["subject"].startswith("ps_")
    assert (intent["fields_disclosed"], intent["payload_hash"]) == ([], None)
    assert "intent_index" not in intent and "disclosure_signature_digest" not in intent
    # The receipt is the closing entry's, and that entry binds the signature.
    assert outcome.receipt.log_index == final["index"]
    assert outcome.receipt.leaf_hash == leaf_hash(final).hex()
    assert set(final["fields_disclosed"]) == set(outcome.disclosure.data)
    assert final["answer_signature_digest"].startswith("sha256:")
    assert final["disclosure_signature_digest"] == disclosure_signature_digest(outcome.signature)
    verify_disclosure(
        outcome.to_response(),
        signature=outcome.signature,
        jwks=keystore.public_keyset("broker").to_jwks(),
    )
    assert rig.audit.verify().ok


def test_refusal_before_fetch_stays_a_single_entry(rig: Rig) -> None:
    with pytest.raises(ExchangeRefusedError) as refused:
        rig.run(purpose="opsporing")
    assert refused.value.code == "purpose_mismatch"
    [entry] = rig.exchange_entries()
    assert entry["decision"] == "deny"
    assert "intent_index" not in entry
    assert rig.wire.calls == 0, "nothing may be fetched for a refused exchange"


def test_every_intent_is_closed_exactly_once_over_many_exchanges(rig: Rig) -> None:
    for _ in range(5):
        rig.run()
    entries = rig.exchange_entries()
    intents = {e["index"] for e in entries if e["decision"] == "intent"}
    closers = [e["intent_index"] for e in entries if "intent_index" in e]
    assert len(intents) == 5
    assert sorted(closers) == sorted(intents)
    assert reconcile(rig.audit, now=rig.clock.now(), grace=IN_FLIGHT_LIMIT * 0).closed == []


# --- failures after the intent --------------------------------------------------------


def _unsigned(response: httpx.Response) -> httpx.Response:
    return rebuilt(response, content=response.content, drop=(ANSWER_SIGNATURE_HEADER,))


def _tampered(response: httpx.Response) -> httpx.Response:
    document = json.loads(response.content)
    # The attacker on the path promotes every category to an innocent one.
    for field in document["fields"].values():
        field["category"] = "nuisance"
    return rebuilt(response, content=json.dumps(document).encode())


def _server_error(_response: httpx.Response) -> httpx.Response:
    return httpx.Response(500, content=b"{}")


FAILURES = [
    # (how the wire misbehaves, the error raised, the reason code in the closing entry)
    # the adapter cannot be reached
    ("drop", AdapterUnavailableError, "provider_unavailable"),
    # the adapter answers with an error
    (_server_error, AdapterUnavailableError, "provider_unavailable"),
    # the answer arrives without its signature
    (_unsigned, AdapterTrustError, "adapter_untrusted"),
    # the answer was altered after the adapter signed it
    (_tampered, AdapterTrustError, "adapter_untrusted"),
]


@pytest.mark.parametrize(
    ("misbehave", "error", "code"), FAILURES, ids=["unreachable", "500", "unsigned", "tampered"]
)
def test_adapter_failure_after_the_intent_closes_it_as_refused(
    rig: Rig, misbehave: Any, error: type[Exception], code: str
) -> None:
    if misbehave == "drop":
        rig.wire.drop = True
    else:
        rig.wire.tamper = misbehave
    with pytest.raises(error):
        rig.run()
    intent, closing = rig.exchange_entries()
    assert intent["decision"] == "intent"
    assert closing["decision"] == "deny"
    assert closing["intent_index"] == intent["index"]
    assert closing["exchange"] == intent["exchange"]
    assert [r["code"] for r in closing["reasons"]] == [code]
    assert closing["fields_disclosed"] == [] and closing["payload_hash"] is None
    assert "disclosure_signature_digest" not in closing
    # Closed already: a restart has nothing to do.
    assert reconcile(rig.audit, now=rig.clock.now(), grace=IN_FLIGHT_LIMIT * 0).closed == []


class _DisclosurePolicyDown:
    """The real engine, except that the disclosure decision cannot be had."""

    def __init__(self, engine: PolicyEngine) -> None:
        self._engine = engine
        self.version = engine.version

    def evaluate(self, entrypoint: str, policy_input: dict[str, Any]) -> Any:
        if entrypoint == "ketenbroker/disclosure/decision":
            raise PolicyUnavailableError("expected a decision, got a timeout")
        return self._engine.evaluate(entrypoint, policy_input)

    def ping(self) -> None:
        self._engine.ping()


def test_policy_failure_after_the_intent_closes_it_as_refused(
    rig: Rig, policy: PolicyEngine
) -> None:
    rig.use_policy(_DisclosurePolicyDown(policy))
    with pytest.raises(PolicyUnavailableError):
        rig.run()
    intent, closing = rig.exchange_entries()
    assert (closing["decision"], closing["intent_index"]) == ("deny", intent["index"])
    assert [r["code"] for r in closing["reasons"]] == ["policy_unavailable"]


def test_exchange_past_the_in_flight_limit_is_not_disclosed(rig: Rig) -> None:
    """A peer's reconciliation may have closed an intent this old: never disclose after it."""

    def dawdle(response: httpx.Response) -> httpx.Response:
        rig.clock.advance(IN_FLIGHT_LIMIT.total_seconds() + 1)
        return response

    rig.wire.tamper = dawdle
    with pytest.raises(AdapterUnavailableError):
        rig.run()
    intent, closing = rig.exchange_entries()
    assert (closing["decision"], closing["intent_index"]) == ("deny", intent["index"])
    assert closing["fields_disclosed"] == []


def test_failed_disclosure_write_leaves_the_intent_to_reconciliation(rig: Rig) -> None:
    """The closing write failed: nothing is disclosed, and the restart closes the intent."""

    def disk_fills_up(_request: httpx.Request) -> None:
        with sqlite3.connect(rig.sqlite_path) as conn:
            conn.execute(
                "CREATE TRIGGER refuse_all BEFORE INSERT ON audit_entries"
                " BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
            )

    rig.wire.on_request = disk_fills_up
    with pytest.raises(AuditWriteError):
        rig.run()
    with sqlite3.connect(rig.sqlite_path) as conn:
        conn.execute("DROP TRIGGER refuse_all")
    [intent] = rig.exchange_entries()
    assert intent["decision"] == "intent"
    report = reconcile(rig.audit, now=rig.clock.now(), grace=IN_FLIGHT_LIMIT * 0)
    assert report.closed == [intent["exchange"]]
    intent_again, closing = rig.exchange_entries()
    assert intent_again == intent
    assert (closing["decision"], closing["intent_index"]) == ("not_disclosed", intent["index"])
    assert rig.audit.verify().ok
