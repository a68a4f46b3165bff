"""Building blocks for the authentication tests: a settable clock and JWT makers.

Assertions are made the way a partner's system makes them (pyjwt, the
partner's own key from the test key folder); hostile tokens that pyjwt
refuses to make (alg none, HS256 keyed with a public key) are assembled by
hand, byte by byte.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import jwt

from broker.keys import SigningKey, generate_signing_key, jwk_thumbprint, public_jwk_of

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
REMOVE = object()  # a claim override that deletes the claim


class SteppingClock:
    """A real `Clock` whose time only moves when the test says so."""

    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def json_segment(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def assertion_claims(
    *, client_id: str, audience: str | list[str], now: datetime, lifetime_seconds: int = 60
) -> dict[str, Any]:
    issued_at = int(now.timestamp())
    return {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": issued_at,
        "exp": issued_at + lifetime_seconds,
        "jti": secrets.token_urlsafe(16),
    }


def make_assertion(
    key: SigningKey,
    *,
    client_id: str,
    audience: str | list[str],
    now: datetime,
    lifetime_seconds: int = 60,
    claims: Mapping[str, Any] | None = None,
    headers: Mapping[str, Any] | None = None,
) -> str:
    """An RFC 7523 client assertion signed with `key`.

    `claims` and `headers` override the defaults; a value of REMOVE deletes the member.
    """
    payload = assertion_claims(
        client_id=client_id, audience=audience, now=now, lifetime_seconds=lifetime_seconds
    )
    for name, value in (claims or {}).items():
        if value is REMOVE:
            payload.pop(name, None)
        else:
            payload[name] = value
    header = {"kid": key.kid, **(headers or {})}
    header = {name: value for name, value in header.items() if value is not REMOVE}
    return jwt.encode(payload, key.private_key, algorithm=key.alg, headers=header)


def unsigned_token(header: dict[str, Any], payload: dict[str, Any]) -> str:
    """`alg: none` style: header and payload with an empty signature."""
    return f"{json_segment(header)}.{json_segment(payload)}."


def hs256_token(header: dict[str, Any], payload: dict[str, Any], *, secret: bytes) -> str:
    """HMAC-signed by hand: pyjwt rightly refuses a PEM public key as an HMAC secret."""
    signing_input = f"{json_segment(header)}.{json_segment(payload)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def swap_payload(token: str, payload: dict[str, Any]) -> str:
    """The same header and signature over a different payload (tampering)."""
    header, _, signature = token.split(".")
    return f"{header}.{json_segment(payload)}.{signature}"


def payload_of(token: str) -> dict[str, Any]:
    payload: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return payload


DPOP_TYP = "dpop+jwt"


class ProofKey:
    """A client's DPoP key and the proofs it signs (RFC 9449 §4.2), made as a client makes them.

    `claims` and `headers` override the defaults; a value of REMOVE deletes
    the member. `signer` signs with another key than the one the header's
    `jwk` names (a proof whose key does not match its signature).
    """

    def __init__(self, key: SigningKey | None = None) -> None:
        self.key = key if key is not None else generate_signing_key("EdDSA")

    @property
    def jwk(self) -> dict[str, str]:
        return public_jwk_of(self.key.public_key)

    @property
    def jkt(self) -> str:
        return jwk_thumbprint(self.jwk)

    def proof(
        self,
        *,
        htm: str,
        htu: str,
        now: datetime,
        access_token: str | None = None,
        nonce: str | None = None,
        claims: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        signer: SigningKey | None = None,
    ) -> str:
        payload: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": htm,
            "htu": htu,
            "iat": int(now.timestamp()),
        }
        if access_token is not None:
            digest = hashlib.sha256(access_token.encode("ascii")).digest()
            payload["ath"] = b64url(digest)
        if nonce is not None:
            payload["nonce"] = nonce
        payload.update(claims or {})
        payload = {name: value for name, value in payload.items() if value is not REMOVE}
        header: dict[str, Any] = {"typ": DPOP_TYP, "jwk": self.jwk, **(headers or {})}
        header = {name: value for name, value in header.items() if value is not REMOVE}
        key = signer if signer is not None else self.key
        # pyjwt adds `alg` (and `typ` unless given): both are ours to set here.
        return jwt.encode(payload, key.private_key, algorithm=key.alg, headers=header)
