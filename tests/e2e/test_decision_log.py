"""The decision log: every decision is kept, masked, and replays to the same result."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from adapters.sdk.client import BrokerClient
from broker.policy.decision_log import unmask_input
from broker.stack import LocalStack
from tests.e2e.conftest import FG, GEMEENTE, WOONGOED, exchange_body

pytestmark = pytest.mark.e2e

Clients = Callable[[str], BrokerClient]


def _decisions(client_for: Clients, exchange_id: str) -> list[dict[str, object]]:
    response = client_for(FG).get("/v1/audit/decisions", params={"exchange": exchange_id})
    assert response.status_code == 200, response.text
    decisions: list[dict[str, object]] = response.json()["decisions"]
    return decisions


@pytest.mark.parametrize("query", ["politie.meldingen", "buurtteam.bekendheid"])
def test_logged_decisions_replay_to_the_same_result(
    stack: LocalStack, client_for: Clients, active_case: str, query: str
) -> None:
    answer = client_for(GEMEENTE).post(
        "/v1/exchanges", json=exchange_body(active_case, query=query)
    )
    assert answer.status_code == 200, answer.text
    records = _decisions(client_for, answer.json()["exchange"])
    assert [r["entrypoint"] for r in records] == [
        "ketenbroker/exchange/decision",
        "ketenbroker/disclosure/decision",
    ]
    data_key = stack.services.cases.data_key(active_case)
    assert data_key is not None
    for record in records:
        assert record["policy_version"] == stack.services.policy.version
        masked = record["input"]
        assert isinstance(masked, dict)
        original = unmask_input(masked, case_id=active_case, data_key=data_key)
        replayed = stack.services.policy.evaluate(str(record["entrypoint"]), original)
        assert replayed == record["result"]


def test_logged_input_holds_no_readable_free_text(client_for: Clients, active_case: str) -> None:
    answer = client_for(GEMEENTE).post("/v1/exchanges", json=exchange_body(active_case))
    assert answer.status_code == 200
    records = _decisions(client_for, answer.json()["exchange"])
    disclosure = json.dumps(records[-1]["input"])
    # The police fixture's descriptions mention these words; the log must not.
    for word in ("geluidsoverlast", "drugs", "muziek", "Marco", "1979-03-14"):
        assert word not in disclosure


def test_refused_exchange_keeps_its_decision(client_for: Clients, active_case: str) -> None:
    refused = client_for(WOONGOED).post("/v1/exchanges", json=exchange_body(active_case))
    assert refused.status_code == 404
    entries = client_for(FG).get(
        "/v1/audit/entries", params={"case": active_case, "decision": "deny"}
    )
    [entry] = [e for e in entries.json()["entries"] if e["requester"]["partner"] == WOONGOED]
    records = _decisions(client_for, entry["exchange"])
    assert len(records) == 1
    result = records[0]["result"]
    assert isinstance(result, dict)
    assert result["allow"] is False
    assert "not_case_partner" in {r["code"] for r in result["refusals"]}


def test_partners_cannot_read_the_decision_log(client_for: Clients, active_case: str) -> None:
    answer = client_for(GEMEENTE).post("/v1/exchanges", json=exchange_body(active_case))
    response = client_for(GEMEENTE).get(
        "/v1/audit/decisions", params={"exchange": answer.json()["exchange"]}
    )
    assert response.status_code == 403
