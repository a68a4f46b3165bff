"""What an exchange reports to the metrics (issue 6 point 6), on real parts.

Every exchange is counted once, by the decision of its last audit entry
and a reason code from a closed set; the adapter's round trip is timed by
provider whether or not it answered. A label never carries free text, so
a policy that puts a sentence in a refusal code shows up as `other`.
"""

from __future__ import annotations

from typing import Any

import pytest

from broker.errors import AdapterUnavailableError
from broker.exchange.pipeline import ExchangeRefusedError
from broker.policy.engine import PolicyEngine
from tests.exchange.conftest import POLITIE, Rig


def _exchanges(rig: Rig, decision: str, reason: str) -> float:
    value = rig.metrics.registry.get_sample_value(
        "ketenbroker_exchanges_total", {"decision": decision, "reason": reason}
    )
    return value or 0.0


def _timed_exchanges(rig: Rig, decision: str) -> float:
    value = rig.metrics.registry.get_sample_value(
        "ketenbroker_exchange_seconds_count", {"decision": decision}
    )
    return value or 0.0


def _adapter_calls(rig: Rig, provider: str) -> float:
    value = rig.metrics.registry.get_sample_value(
        "ketenbroker_adapter_call_seconds_count", {"provider": provider}
    )
    return value or 0.0


def test_disclosure_is_counted_once_without_a_reason(rig: Rig) -> None:
    outcome = rig.run()
    assert _exchanges(rig, outcome.decision, "none") == 1
    assert _timed_exchanges(rig, outcome.decision) == 1
    assert _exchanges(rig, "deny", "internal_error") == 0
    assert _adapter_calls(rig, POLITIE) == 1


def test_policy_refusal_is_counted_with_its_reason_code(rig: Rig) -> None:
    with pytest.raises(ExchangeRefusedError):
        rig.run(purpose="opsporing")
    assert _exchanges(rig, "deny", "purpose_mismatch") == 1
    assert _timed_exchanges(rig, "deny") == 1
    assert _adapter_calls(rig, POLITIE) == 0, "a refused exchange calls no adapter"


def test_unreachable_adapter_counts_the_failed_call_and_its_problem_code(rig: Rig) -> None:
    rig.wire.drop = True
    with pytest.raises(AdapterUnavailableError):
        rig.run()
    assert _exchanges(rig, "deny", "provider_unavailable") == 1
    assert _adapter_calls(rig, POLITIE) == 1


class _ChattyRefusals:
    """The real engine, except that its refusal codes are sentences with a name in them."""

    def __init__(self, engine: PolicyEngine) -> None:
        self._engine = engine
        self.version = engine.version

    def evaluate(self, entrypoint: str, policy_input: dict[str, Any]) -> Any:
        result = self._engine.evaluate(entrypoint, policy_input)
        for refusal in result.get("refusals", []):
            refusal["code"] = "Marco de Wit mag dit niet zien"
        return result

    def ping(self) -> None:
        self._engine.ping()


def test_free_text_reason_never_becomes_a_label(rig: Rig, policy: PolicyEngine) -> None:
    rig.use_policy(_ChattyRefusals(policy))
    with pytest.raises(ExchangeRefusedError):
        rig.run(purpose="opsporing")
    assert _exchanges(rig, "deny", "other") == 1
    assert b"Marco" not in rig.metrics.render()
