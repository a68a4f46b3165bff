"""A running exchange network for end-to-end tests: broker + every adapter, real HTTP.

`stack` runs once per module and backend: embedded (SQLite, in-process cache)
and production storage (the real PostgreSQL and Redis of this machine).
Each test registers its own case, so tests do not depend on each other.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.sdk.client import BrokerClient
from broker.convenant import load_convenant
from broker.keys import KeyStore
from broker.policy.engine import PolicyBundle
from broker.policy.inputs import convenant_data
from broker.policy.opa import OpaPolicyEngine
from broker.ratelimit.policy import MAX_LIMIT, RateLimits
from broker.settings import PROJECT_ROOT
from broker.stack import LocalStack, start_local_stack
from tests.conftest import EXAMPLE_CONVENANT
from tests.support.opa_standin import OpaStandIn

GEMEENTE = "gemeente-lekstroom"
POLITIE = "politie-lekstroom"
DE_LINGE = "woonstichting-de-linge"
WOONGOED = "woongoed-lekstroom"
BUURTTEAM = "buurtteam-lekstroom"
GGD = "ggd-lekstroom"
FG = "fg-lekstroom"
CASEMANAGER = {"user": "j.devries", "function": "casusregisseur"}


def case_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "reference": "WO-" + secrets.token_hex(3),
        "kind": "complex",
        "address": {"postcode": "4101 AB", "huisnummer": 12, "plaats": "Lekstroom"},
        "dwelling_owner": DE_LINGE,
        "subjects": [
            {
                "ref": "og-1",
                "role": "overlastgever",
                "name": "Marco de Wit",
                "birth_date": "1979-03-14",
            },
            {
                "ref": "m-1",
                "role": "melder",
                "name": "Fatima el Amrani",
                "birth_date": "1985-07-02",
            },
        ],
        "partners": [POLITIE, BUURTTEAM, GGD],
        "criteria": [1, 2, 6],
    }
    body.update(overrides)
    return body


def exchange_body(case_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "case": case_id,
        "subject": "og-1",
        "query": "politie.meldingen",
        "purpose": "aanpak_woonoverlast",
        "period": {"from": "2025-01-01", "to": "2026-11-01"},
        "on_behalf_of": CASEMANAGER,
    }
    body.update(overrides)
    return body


BACKENDS = {
    "embedded": {"storage_backend": "sqlite", "cache_backend": "memory"},
    "production": {"storage_backend": "postgres", "cache_backend": "redis"},
    # Production with the OPA-server client, against the stand-in that serves
    # the real bundle over OPA's REST API (tests/support/opa_standin.py).
    "production-opa": {"storage_backend": "postgres", "cache_backend": "redis"},
}


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def stack(
    request: pytest.FixtureRequest,
    keystore: KeyStore,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server_dsn: str,
) -> Iterator[LocalStack]:
    backend = BACKENDS[request.param]
    workdir = tmp_path_factory.mktemp(f"stack-{request.param}")
    base = {
        "keys_dir": keystore.root,
        "policy_engine": "embedded",
        "sqlite_path": workdir / "ketenbroker.sqlite3",
        "postgres_dsn": postgres_server_dsn,
        "redis_namespace": f"kbtest:{secrets.token_hex(6)}",
        # These stacks test behaviour, not limits: a module registers dozens of
        # cases, beyond the per-user cap on distinct (case, subject) pairs.
        # Limits are tested in tests/ratelimit and tests/e2e/test_rate_limits.py.
        "rate_limits": dict.fromkeys(RateLimits.model_fields, MAX_LIMIT),
        **backend,
    }
    if request.param != "production-opa":
        with start_local_stack(base=base) as running:
            yield running
        return
    bundle = PolicyBundle.from_directory(PROJECT_ROOT / "policies").with_data(
        convenant_data(load_convenant(EXAMPLE_CONVENANT))
    )
    with OpaStandIn() as opa:
        opa.serve_bundle(bundle, workdir / "bundle")
        engine = OpaPolicyEngine(url=opa.url, version=bundle.version, timeout_seconds=5.0)
        with start_local_stack(base=base, policy=engine) as running:
            yield running


@pytest.fixture(scope="module")
def client_for(stack: LocalStack, keystore: KeyStore) -> Iterator[Callable[[str], BrokerClient]]:
    clients: dict[str, BrokerClient] = {}

    def make(principal: str) -> BrokerClient:
        if principal not in clients:
            clients[principal] = BrokerClient(
                base_url=stack.broker_url,
                client_id=principal,
                signing_key=keystore.signing_key(principal),
            )
        return clients[principal]

    yield make
    for c in clients.values():
        c.close()


@pytest.fixture
def active_case(client_for: Callable[[str], BrokerClient]) -> str:
    """A complex case with consent granted and intake done: exchanges may flow."""
    gemeente = client_for(GEMEENTE)
    created = gemeente.post("/v1/cases", json=case_body())
    assert created.status_code == 201, created.text
    case_id: str = created.json()["id"]
    consent = client_for(DE_LINGE).post(
        f"/v1/cases/{case_id}/consent", json={"decision": "granted"}
    )
    assert consent.status_code == 200, consent.text
    moved = gemeente.post(f"/v1/cases/{case_id}/transitions", json={"to": "in_behandeling"})
    assert moved.status_code == 200, moved.text
    return case_id


def audit_entries(dpo: BrokerClient, **filters: str) -> list[dict[str, Any]]:
    response = dpo.get("/v1/audit/entries", params={**filters, "limit": "500"})
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


def sqlite_file(stack: LocalStack) -> Path:
    return stack.settings.sqlite_path


def jwks(stack: LocalStack) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(stack.broker_url + "/.well-known/jwks.json").json()
    return document
