"""Rate limits on the whole stack: 429 with Retry-After, logged, nothing disclosed."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.sdk.client import BrokerClient
from broker.keys import KeyStore
from broker.ratelimit.policy import MAX_LIMIT, RateLimits
from broker.stack import LocalStack, start_local_stack
from tests.e2e.conftest import DE_LINGE, FG, GEMEENTE, audit_entries, case_body, exchange_body

pytestmark = pytest.mark.e2e

USER_PER_MINUTE = 3


@pytest.fixture(scope="module")
def tight_stack(
    keystore: KeyStore, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    limits = dict.fromkeys(RateLimits.model_fields, MAX_LIMIT)
    limits["user_requests_per_minute"] = USER_PER_MINUTE
    workdir: Path = tmp_path_factory.mktemp("tight")
    base = {
        "keys_dir": keystore.root,
        "sqlite_path": workdir / "kb.sqlite3",
        "storage_backend": "sqlite",
        "cache_backend": "memory",
        "policy_engine": "embedded",
        "redis_namespace": f"kbtest:{secrets.token_hex(6)}",
        "rate_limits": limits,
    }
    with start_local_stack(base=base) as running:
        yield running


def test_acting_user_over_the_limit_gets_429_and_nothing(
    tight_stack: LocalStack, keystore: KeyStore
) -> None:
    def client(principal: str) -> BrokerClient:
        return BrokerClient(
            base_url=tight_stack.broker_url,
            client_id=principal,
            signing_key=keystore.signing_key(principal),
        )

    gemeente, linge, dpo = client(GEMEENTE), client(DE_LINGE), client(FG)
    case_id = gemeente.post("/v1/cases", json=case_body()).json()["id"]
    linge.post(f"/v1/cases/{case_id}/consent", json={"decision": "granted"})
    gemeente.post(f"/v1/cases/{case_id}/transitions", json={"to": "in_behandeling"})
    answers = [
        gemeente.post("/v1/exchanges", json=exchange_body(case_id))
        for _ in range(USER_PER_MINUTE + 1)
    ]
    assert [a.status_code for a in answers[:USER_PER_MINUTE]] == [200] * USER_PER_MINUTE
    limited = answers[-1]
    assert limited.status_code == 429, limited.text
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["code"] == "rate_limited"
    assert "data" not in limited.json()
    refusals = [
        e
        for e in audit_entries(dpo)
        if e.get("kind") == "security_event"
        and any(r["code"] == "rate_limited" for r in e["reasons"])
    ]
    assert len(refusals) == 1
    assert refusals[0]["requester"]["partner"] == GEMEENTE
    for c in (gemeente, linge, dpo):
        c.close()
