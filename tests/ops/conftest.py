"""Stacks and a few exchanges for the operations tests (metrics, logs, tracing).

`running_stack` starts the broker and every adapter on loopback, as the
end-to-end tests do (tests/e2e/conftest.py), with settings of the test's
choice; `play_story` runs the exchanges and refusals those tests then
observe from outside: through /metrics or the log.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from adapters.sdk.client import BrokerClient
from broker.keys import KeyStore
from broker.ratelimit.policy import MAX_LIMIT, RateLimits
from broker.stack import LocalStack, start_local_stack
from tests.e2e.conftest import DE_LINGE, GEMEENTE, WOONGOED, case_body, exchange_body


def stack_base(workdir: Path, keystore: KeyStore, **overrides: Any) -> dict[str, Any]:
    return {
        "keys_dir": keystore.root,
        "policy_engine": "embedded",
        "storage_backend": "sqlite",
        "cache_backend": "memory",
        "sqlite_path": workdir / "ketenbroker.sqlite3",
        "redis_namespace": f"kbtest:{secrets.token_hex(6)}",
        "rate_limits": dict.fromkeys(RateLimits.model_fields, MAX_LIMIT),
        **overrides,
    }


@contextmanager
def running_stack(workdir: Path, keystore: KeyStore, **overrides: Any) -> Iterator[LocalStack]:
    with start_local_stack(base=stack_base(workdir, keystore, **overrides)) as stack:
        yield stack


def client(stack: LocalStack, keystore: KeyStore, principal: str) -> BrokerClient:
    return BrokerClient(
        base_url=stack.broker_url,
        client_id=principal,
        signing_key=keystore.signing_key(principal),
    )


def active_case(stack: LocalStack, keystore: KeyStore, body: dict[str, Any]) -> str:
    """Register `body` as a case, have the corporation consent, start treatment."""
    with client(stack, keystore, GEMEENTE) as gemeente, client(stack, keystore, DE_LINGE) as owner:
        created = gemeente.post("/v1/cases", json=body)
        assert created.status_code == 201, created.text
        case_id: str = created.json()["id"]
        consent = owner.post(f"/v1/cases/{case_id}/consent", json={"decision": "granted"})
        assert consent.status_code == 200, consent.text
        moved = gemeente.post(f"/v1/cases/{case_id}/transitions", json={"to": "in_behandeling"})
        assert moved.status_code == 200, moved.text
    return case_id


def play_story(stack: LocalStack, keystore: KeyStore) -> list[httpx.Response]:
    """Permitted exchanges, policy refusals and edge refusals, as in the demo."""
    body = case_body()
    case_id = active_case(stack, keystore, body)
    answers = []
    with client(stack, keystore, GEMEENTE) as gemeente, client(stack, keystore, WOONGOED) as other:
        # U1: the police's meldingen about the overlastgever, and the melder's.
        answers.append(gemeente.post("/v1/exchanges", json=exchange_body(case_id)))
        answers.append(gemeente.post("/v1/exchanges", json=exchange_body(case_id, subject="m-1")))
        # Refused by the policy: a purpose outside the convenant.
        answers.append(
            gemeente.post("/v1/exchanges", json=exchange_body(case_id, purpose="handhaving"))
        )
        # Refused at the edge: not a partner of the case, an unknown case.
        answers.append(other.post("/v1/exchanges", json=exchange_body(case_id)))
        answers.append(gemeente.get("/v1/cases/case_doesnotexist"))
        # Refused as invalid: an unknown field carrying a name.
        answers.append(
            gemeente.post(
                "/v1/exchanges",
                json={**exchange_body(case_id), "note": body["subjects"][0]["name"]},
            )
        )
    # No token at all.
    answers.append(httpx.post(stack.broker_url + "/v1/exchanges", json=exchange_body(case_id)))
    return answers
