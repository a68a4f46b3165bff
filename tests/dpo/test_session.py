"""The DPO's session token: only a live broker token with audit:read opens the dashboard."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from broker.auth.tokens import AccessTokenIssuer
from broker.convenant import Convenant
from broker.dpo.session import (
    CONTENT_SECURITY_POLICY,
    SECURITY_HEADERS,
    MissingSessionError,
    verify_dpo_token,
)
from broker.errors import InsufficientScopeError, InvalidTokenError
from broker.keys import PublicKeySet, SigningKey, TrustedKey, generate_signing_key

ISSUER = "https://broker.lekstroom.test"
NOW = datetime(2026, 11, 4, 12, 0, tzinfo=UTC)
FG = "fg-lekstroom"
GEMEENTE = "gemeente-lekstroom"
FOREIGN_KEY = generate_signing_key()  # a key the broker never pinned


@pytest.fixture(scope="module")
def broker_key() -> SigningKey:
    return generate_signing_key()


@pytest.fixture(scope="module")
def keys(broker_key: SigningKey) -> PublicKeySet:
    return PublicKeySet([TrustedKey(broker_key.kid, broker_key.alg, broker_key.public_key)])


def token(
    key: SigningKey,
    *,
    principal: str = FG,
    role: str = "fg",
    scopes: frozenset[str] = frozenset({"audit:read"}),
    issued: datetime = NOW,
    issuer: str = ISSUER,
    ttl: int = 300,
) -> str:
    issuer_ = AccessTokenIssuer(signing_key=key, issuer=issuer, ttl_seconds=ttl)
    return issuer_.issue(
        principal=principal, role=role, function=None, scopes=scopes, now=issued
    ).access_token


def test_dpo_token_gives_a_session_that_ends_with_the_token(
    broker_key: SigningKey, keys: PublicKeySet, convenant: Convenant
) -> None:
    session = verify_dpo_token(
        token(broker_key, issued=NOW - timedelta(seconds=100)),
        keys=keys,
        issuer=ISSUER,
        convenant=convenant,
        now=NOW,
    )
    assert session.principal == FG
    assert session.remaining_seconds(now=NOW) == 200


@pytest.mark.parametrize("value", [None, ""])
def test_no_session_is_refused(value: str | None, keys: PublicKeySet, convenant: Convenant) -> None:
    with pytest.raises(MissingSessionError):
        verify_dpo_token(value, keys=keys, issuer=ISSUER, convenant=convenant, now=NOW)


def test_partner_token_with_audit_own_is_refused(
    broker_key: SigningKey, keys: PublicKeySet, convenant: Convenant
) -> None:
    partner = token(
        broker_key,
        principal=GEMEENTE,
        role="gemeente",
        scopes=frozenset({"audit:own", "cases:read"}),
    )
    with pytest.raises(InsufficientScopeError, match="audit:read"):
        verify_dpo_token(partner, keys=keys, issuer=ISSUER, convenant=convenant, now=NOW)


@pytest.mark.parametrize(
    ("case", "make"),
    [
        # expired: issued six minutes ago with a five-minute life
        ("expired", lambda k: token(k, issued=NOW - timedelta(minutes=6))),
        # forged: the same claims signed with a key the broker never pinned
        ("forged", lambda _k: token(FOREIGN_KEY)),
        # another broker's token
        ("wrong issuer", lambda k: token(k, issuer="https://elsewhere.test")),
        # the role in the token is not the principal's role in the convenant
        ("role changed", lambda k: token(k, role="gemeente")),
        # a principal the convenant does not know
        ("stranger", lambda k: token(k, principal="fg-elders")),
        # a tampered signature
        ("tampered", lambda k: token(k)[:-4] + "AAAA"),
        # not a JWT at all, with markup in it
        ("garbage", lambda _k: "<script>alert(1)</script>"),
        # longer than any token the broker issues
        ("oversized", lambda _k: "a." * 5000 + "a"),
    ],
)
def test_invalid_tokens_are_refused(
    case: str,
    make: Callable[[SigningKey], str],
    broker_key: SigningKey,
    keys: PublicKeySet,
    convenant: Convenant,
) -> None:
    value = make(broker_key)
    with pytest.raises(InvalidTokenError):
        verify_dpo_token(value, keys=keys, issuer=ISSUER, convenant=convenant, now=NOW)


def test_headers_allow_no_script_and_no_framing() -> None:
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert SECURITY_HEADERS["Cache-Control"] == "no-store"
    assert SECURITY_HEADERS["X-Frame-Options"] == "DENY"
