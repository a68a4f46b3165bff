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
from broker.auth.replay import MemoryReplayCache, ReplayCache
from broker.auth.tokens import AccessTokenIssuer
from broker.clock import Clock
from broker.convenant import Convenant
from broker.errors import InsufficientScopeError, InvalidTokenError
from broker.keys import KeyStore
from broker.settings import Settings
from tests.auth.forgeries import ISSUER, Forge
from tests.auth.helpers import SteppingClock

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

__all__ = ["START", "AuthServices", "TestClient", "build_app", "security_events"]

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
