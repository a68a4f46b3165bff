"""Access tokens (RFC 9068): what the broker issues, and what it refuses to accept."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
import pytest

from broker.auth.tokens import AccessTokenIssuer, verify_access_token
from broker.errors import InvalidTokenError
from broker.keys import KeyStore, SigningKey, generate_signing_key
from tests.auth.conftest import START
from tests.auth.forgeries import ISSUER, VICTIM
from tests.auth.helpers import REMOVE, payload_of, swap_payload, unsigned_token

SCOPES = frozenset({"cases:read", "exchange"})


@pytest.fixture
def broker_key(keystore: KeyStore) -> SigningKey:
    return keystore.signing_key("broker")


@pytest.fixture
def issuer(broker_key: SigningKey) -> AccessTokenIssuer:
    return AccessTokenIssuer(signing_key=broker_key, issuer=ISSUER, ttl_seconds=300)


def issue(issuer: AccessTokenIssuer, *, now: datetime = START, function: str | None = None) -> str:
    return issuer.issue(
        principal=VICTIM, role="gemeente", function=function, scopes=SCOPES, now=now
    ).access_token


def verify(keystore: KeyStore, token: str, *, now: datetime = START, issuer: str = ISSUER) -> Any:
    return verify_access_token(token, keys=keystore.public_keyset("broker"), issuer=issuer, now=now)


def broker_signed(broker_key: SigningKey, **overrides: Any) -> str:
    """A token the broker's key signed but the broker's issuer never would."""
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": VICTIM,
        "aud": ISSUER,
        "client_id": VICTIM,
        "role": "gemeente",
        "scope": "cases:read",
        "iat": int(START.timestamp()),
        "exp": int(START.timestamp()) + 300,
        "jti": "forged-jti",
    }
    headers = {"typ": "at+jwt", "kid": broker_key.kid, **overrides.pop("headers", {})}
    claims.update(overrides)
    claims = {name: value for name, value in claims.items() if value is not REMOVE}
    return jwt.encode(claims, broker_key.private_key, algorithm=broker_key.alg, headers=headers)


def test_issued_token_has_the_rfc9068_shape(issuer: AccessTokenIssuer, keystore: KeyStore) -> None:
    issued = issuer.issue(
        principal="buurtteam-lekstroom",
        role="zorg",
        function="buurtteam",
        scopes=SCOPES,
        now=START,
    )
    assert issued.token_type == "Bearer"
    assert issued.expires_in == 300
    assert issued.scope == "cases:read exchange"
    header = jwt.get_unverified_header(issued.access_token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "EdDSA"
    assert header["kid"] == keystore.signing_key("broker").kid
    claims = payload_of(issued.access_token)
    assert claims["iss"] == claims["aud"] == ISSUER
    assert claims["sub"] == claims["client_id"] == "buurtteam-lekstroom"
    assert claims["role"] == "zorg"
    assert claims["function"] == "buurtteam"
    assert claims["exp"] - claims["iat"] == 300


def test_issued_token_verifies_into_access_claims(
    issuer: AccessTokenIssuer, keystore: KeyStore
) -> None:
    claims = verify(keystore, issue(issuer), now=START + timedelta(seconds=299))
    assert claims.principal == VICTIM
    assert claims.role == "gemeente"
    assert claims.function is None
    assert claims.scopes == SCOPES
    assert claims.expires_at == START + timedelta(seconds=300)


def test_every_token_gets_its_own_jti(issuer: AccessTokenIssuer, keystore: KeyStore) -> None:
    jtis = {verify(keystore, issue(issuer)).jti for _ in range(20)}
    assert len(jtis) == 20


@pytest.mark.parametrize(
    "ttl",
    [
        301,  # past the contract's five minutes (RFC 9068 leaves it to us; contract.md says 300)
        3600,  # an hour: a stolen token's best friend
        0,  # a token dead on arrival is a configuration error
    ],
)
def test_issuer_refuses_a_lifetime_outside_the_contract(broker_key: SigningKey, ttl: int) -> None:
    with pytest.raises(ValueError, match="ttl"):
        AccessTokenIssuer(signing_key=broker_key, issuer=ISSUER, ttl_seconds=ttl)


@pytest.mark.parametrize(
    "scopes",
    [
        frozenset(),  # a token for nothing: upstream forgot to decide (fail closed)
        frozenset({"admin"}),  # a scope the broker does not know
    ],
)
def test_issuer_refuses_empty_or_unknown_scopes(
    issuer: AccessTokenIssuer, scopes: frozenset[str]
) -> None:
    with pytest.raises(ValueError, match="scope"):
        issuer.issue(principal=VICTIM, role="gemeente", function=None, scopes=scopes, now=START)


@dataclass(frozen=True)
class Mint:
    """What a token forger may hold: the broker's issuer and key, and the partners' keys."""

    issuer: AccessTokenIssuer
    broker_key: SigningKey
    keystore: KeyStore

    def genuine(self) -> str:
        return issue(self.issuer)

    def partner_key(self) -> SigningKey:
        return self.keystore.signing_key(VICTIM)

    def signed(self, key: SigningKey, payload: dict[str, Any], **headers: Any) -> str:
        return jwt.encode(payload, key.private_key, algorithm=key.alg, headers=headers)

    def broker_signed(self, **overrides: Any) -> str:
        return broker_signed(self.broker_key, **overrides)


Forgery = Callable[[Mint], str]

FORGED_TOKENS = [
    # typ JWT: a generic JWT signed by the broker is not an access token (RFC 9068 §4).
    pytest.param(
        lambda m: m.broker_signed(headers={"typ": "JWT"}), "expected typ 'at+jwt'", id="wrong-typ"
    ),
    # No typ at all: what a client assertion or ID token looks like.
    pytest.param(
        lambda m: m.signed(m.broker_key, payload_of(m.genuine()), kid=m.broker_key.kid),
        "expected typ",
        id="missing-typ",
    ),
    # The partner's own client assertion presented as an access token.
    pytest.param(
        lambda m: m.signed(
            m.partner_key(), {"iss": VICTIM, "sub": VICTIM, "aud": ISSUER}, kid=m.partner_key().kid
        ),
        "expected typ",
        id="client-assertion-as-token",
    ),
    # A partner signs its own at+jwt: its kid is not the broker's.
    pytest.param(
        lambda m: broker_signed(m.partner_key(), headers={"kid": m.partner_key().kid}),
        "kid pinned",
        id="signed-by-partner-key",
    ),
    # A partner's key under the broker's kid: bad signature.
    pytest.param(
        lambda m: m.signed(
            m.partner_key(), payload_of(m.genuine()), typ="at+jwt", kid=m.broker_key.kid
        ),
        "does not verify",
        id="partner-key-under-broker-kid",
    ),
    # Scope escalated in the payload, signature kept.
    pytest.param(
        lambda m: swap_payload(
            m.genuine(), {**payload_of(m.genuine()), "scope": "cases:read audit:read"}
        ),
        "does not verify",
        id="tampered-payload",
    ),
    # alg none with the broker's kid.
    pytest.param(
        lambda m: unsigned_token(
            {"alg": "none", "typ": "at+jwt", "kid": m.broker_key.kid}, payload_of(m.genuine())
        ),
        "expected alg in",
        id="alg-none",
    ),
    # Another issuer's token, signed with the broker's key (e.g. a staging broker sharing keys).
    pytest.param(
        lambda m: m.broker_signed(iss="https://staging.example"), "expected iss", id="wrong-issuer"
    ),
    # Right issuer, audience another service.
    pytest.param(
        lambda m: m.broker_signed(aud="https://adapter.example"), "expected aud", id="wrong-aud"
    ),
    # aud as a list holding the issuer: not what we issue (strict, single audience).
    pytest.param(
        lambda m: m.broker_signed(aud=[ISSUER, "https://other.example"]),
        "expected aud",
        id="aud-list",
    ),
    # A broker-signed token living an hour: more than we ever issue.
    pytest.param(
        lambda m: m.broker_signed(exp=int(START.timestamp()) + 3600),
        "at most 300 s",
        id="lifetime-too-long",
    ),
    # Issued in the future.
    pytest.param(
        lambda m: m.broker_signed(iat=int(START.timestamp()) + 120), "expected iat", id="future-iat"
    ),
    # sub and client_id disagree: whose token is it?
    pytest.param(
        lambda m: m.broker_signed(client_id="politie-lekstroom"),
        "expected client_id",
        id="sub-not-client-id",
    ),
    # A scope the broker does not define.
    pytest.param(
        lambda m: m.broker_signed(scope="cases:read admin"), "expected scopes", id="unknown-scope"
    ),
    # An empty scope string.
    pytest.param(lambda m: m.broker_signed(scope=""), "expected scopes", id="empty-scope"),
    # No role: the broker authorises on it.
    pytest.param(lambda m: m.broker_signed(role=REMOVE), "claim 'role'", id="missing-role"),
    # role of the wrong type.
    pytest.param(
        lambda m: m.broker_signed(role=["gemeente"]), "expected role", id="role-not-a-string"
    ),
    # 9 KiB of padding.
    pytest.param(lambda m: m.broker_signed(pad="x" * 9000), "at most 8192 bytes", id="oversized"),
]


@pytest.mark.parametrize(("forge", "reason"), FORGED_TOKENS)
def test_forged_access_token_is_rejected(
    issuer: AccessTokenIssuer, keystore: KeyStore, forge: Forgery, reason: str
) -> None:
    token = forge(Mint(issuer=issuer, broker_key=keystore.signing_key("broker"), keystore=keystore))
    with pytest.raises(InvalidTokenError, match=re.escape(reason)):
        verify(keystore, token)


@pytest.mark.parametrize(
    "seconds_later",
    [
        331,  # 300 s lifetime plus 30 s leeway, plus one
        3600,  # an hour later
    ],
)
def test_expired_access_token_is_rejected(
    issuer: AccessTokenIssuer, keystore: KeyStore, seconds_later: int
) -> None:
    token = issue(issuer)
    with pytest.raises(InvalidTokenError, match="expected exp after"):
        verify(keystore, token, now=START + timedelta(seconds=seconds_later))


def test_token_verified_for_another_issuer_is_rejected(
    issuer: AccessTokenIssuer, keystore: KeyStore
) -> None:
    with pytest.raises(InvalidTokenError, match="expected iss"):
        verify(keystore, issue(issuer), issuer="https://broker.other-region.example")


def test_token_signed_by_a_rotated_out_key_is_rejected(keystore: KeyStore) -> None:
    retired = generate_signing_key()
    token = AccessTokenIssuer(signing_key=retired, issuer=ISSUER, ttl_seconds=300).issue(
        principal=VICTIM, role="gemeente", function=None, scopes=SCOPES, now=START
    )
    with pytest.raises(InvalidTokenError, match="kid pinned"):
        verify(keystore, token.access_token)
