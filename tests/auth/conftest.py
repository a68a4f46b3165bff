"""Fixtures for the authentication tests: real audit log, real caches, a small app.

The app holds only the OAuth router and three probe routes guarded by the
security dependencies; `app.state.services` carries exactly the attributes
those read. Everything in it is a real implementation: the SQLite audit log,
the in-process replay cache (Redis where a test asks for it), the key folder.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.exceptions import StarletteDeprecationWarning

from broker.api.routes import oauth
from broker.api.security import (
    AnyCaller,
    AuditAnyCaller,
    AuditReadCaller,
    Caller,
    ExchangeCaller,
    trust_error_handler,
)
from broker.audit.log import AuditLog
from broker.audit.sqlite_store import SqliteAuditStore
from broker.audit.store import AuditQuery
from broker.auth.dpop import DpopNonces
from broker.auth.replay import MemoryReplayCache, ReplayCache
from broker.auth.tokens import AccessTokenIssuer
from broker.clock import Clock
from broker.convenant import Convenant
from broker.errors import InsufficientScopeError, InvalidTokenError
from broker.keys import KeyStore
from broker.settings import Settings
from tests.auth.forgeries import ISSUER, TOKEN_ENDPOINT, Forge
from tests.auth.helpers import ProofKey, SteppingClock

with warnings.catch_warnings():
    # Starlette 1.x warns that its TestClient wants `httpx2`; the project pins
    # `httpx` (pyproject.toml), and the client works the same with it. Only
    # this one warning, only at this import; every other warning stays an error.
    warnings.filterwarnings(
        "ignore",
        message=r"Using `httpx` with `starlette.testclient`",
        category=StarletteDeprecationWarning,
    )
    from fastapi.testclient import TestClient

__all__ = [
    "AUTO",
    "START",
    "AuthServices",
    "DpopCaller",
    "TestClient",
    "build_app",
    "dpop_for",
    "security_events",
]

# A Monday morning inside the example convenant's validity.
START = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)


@dataclass
class AuthServices:
    """The attributes of broker.services.Services that the auth edge reads."""

    settings: Settings
    convenant: Convenant
    keys: KeyStore
    clock: Clock
    replay_cache: ReplayCache
    token_issuer: AccessTokenIssuer
    audit: AuditLog


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock(START)


@pytest.fixture
def audit_store(tmp_path: Path) -> Iterator[SqliteAuditStore]:
    store = SqliteAuditStore(tmp_path / "audit.sqlite3")
    yield store
    store.close()


@pytest.fixture
def services(
    keystore: KeyStore, convenant: Convenant, clock: SteppingClock, audit_store: SqliteAuditStore
) -> AuthServices:
    settings = Settings(issuer=ISSUER, access_token_ttl_seconds=300)
    broker_key = keystore.signing_key("broker")
    return AuthServices(
        settings=settings,
        convenant=convenant,
        keys=keystore,
        clock=clock,
        replay_cache=MemoryReplayCache(clock=clock),
        token_issuer=AccessTokenIssuer(signing_key=broker_key, issuer=ISSUER, ttl_seconds=300),
        audit=AuditLog(store=audit_store, signing_key=broker_key, clock=clock),
    )


AUTO: Any = object()  # "the broker's current nonce", as a well-behaved client sends


@dataclass
class DpopCaller:
    """A partner's DPoP side: its proof key, and the broker's nonces at the test clock's time."""

    key: ProofKey
    nonces: DpopNonces
    clock: SteppingClock

    def nonce(self) -> str:
        return self.nonces.issue(now=self.clock.now())

    def proof(
        self, *, htm: str, htu: str, access_token: str | None = None, nonce: Any = AUTO, **kw: Any
    ) -> str:
        return self.key.proof(
            htm=htm,
            htu=htu,
            now=self.clock.now(),
            access_token=access_token,
            nonce=self.nonce() if nonce is AUTO else nonce,
            **kw,
        )

    def token_request_proof(self, **kw: Any) -> str:
        """A proof for POST at the token endpoint (RFC 9449 §5)."""
        return self.proof(htm="POST", htu=TOKEN_ENDPOINT, **kw)

    def headers(self, token: str, path: str, *, method: str = "GET", **kw: Any) -> dict[str, str]:
        """Authorization and DPoP for one API call (RFC 9449 §7.1), htu from the issuer."""
        proof = self.proof(htm=method, htu=ISSUER + path, access_token=token, **kw)
        return {"Authorization": f"DPoP {token}", "DPoP": proof}


def dpop_for(client: TestClient, key: ProofKey | None = None) -> DpopCaller:
    """A DPoP caller of the app behind `client`, with its own (by default fresh) key."""
    services: AuthServices = client.app.state.services  # type: ignore[attr-defined]  # Starlette app
    return DpopCaller(
        key=key if key is not None else ProofKey(),
        nonces=DpopNonces.from_signing_key(services.keys.signing_key("broker")),
        clock=services.clock,  # type: ignore[arg-type]  # the SteppingClock of these fixtures
    )


@pytest.fixture
def nonces(keystore: KeyStore) -> DpopNonces:
    """The broker's nonces: derived from its key, so the same as the app's."""
    return DpopNonces.from_signing_key(keystore.signing_key("broker"))


@pytest.fixture
def dpop(nonces: DpopNonces, clock: SteppingClock) -> DpopCaller:
    return DpopCaller(key=ProofKey(), nonces=nonces, clock=clock)


def _caller_json(caller: Caller) -> dict[str, Any]:
    return {
        "principal": caller.principal,
        "role": caller.role,
        "function": caller.function,
        "scopes": sorted(caller.scopes),
        "token_jti": caller.token_jti,
    }


def build_app(services: AuthServices) -> FastAPI:
    app = FastAPI()
    app.state.services = services
    app.include_router(oauth.router)
    app.add_exception_handler(InvalidTokenError, trust_error_handler)
    app.add_exception_handler(InsufficientScopeError, trust_error_handler)

    @app.get("/probe/exchange")
    def probe_exchange(caller: ExchangeCaller) -> dict[str, Any]:
        return _caller_json(caller)

    @app.get("/probe/audit-read")
    def probe_audit_read(caller: AuditReadCaller) -> dict[str, Any]:
        return _caller_json(caller)

    @app.get("/probe/audit-any")
    def probe_audit_any(caller: AuditAnyCaller) -> dict[str, Any]:
        return _caller_json(caller)

    @app.get("/probe/any")
    def probe_any(caller: AnyCaller) -> dict[str, Any]:
        return _caller_json(caller)

    @app.get("/probe/items/{ref}")
    def probe_item(ref: str, caller: AnyCaller) -> dict[str, Any]:
        return {"ref": ref, **_caller_json(caller)}

    return app


@pytest.fixture
def client(services: AuthServices) -> Iterator[TestClient]:
    with TestClient(build_app(services)) as test_client:
        yield test_client


@pytest.fixture
def forge(keystore: KeyStore, clock: SteppingClock) -> Forge:
    return Forge(keystore=keystore, now=clock.now())


def security_events(services: AuthServices) -> list[dict[str, Any]]:
    """Every security_event the audit log holds, in order."""
    entries = services.audit.entries(AuditQuery(limit=1000))
    return [e.entry for e in entries if e.entry.get("kind") == "security_event"]
