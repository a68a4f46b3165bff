"""The attacker's toolbox: client assertions that must never buy a token.

One table, used twice: against the pure verifier (test_assertions.py) and
over HTTP against the token endpoint (test_oauth_routes.py), so a defence
that exists in one place but not the other shows up as a failing row.

Each row builds `(client_id, assertion)` from a `Forge`, which holds the test
key folder and the moment of the attempt, and names a fragment of the
rejection message: a row must fail for its own reason, not an incidental
one. The victim is the gemeente (the casusregisseur, the most valuable
identity to steal).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import pytest
from cryptography.hazmat.primitives import serialization

from broker.keys import KeyStore, SigningKey, generate_signing_key
from tests.auth.helpers import (
    REMOVE,
    assertion_claims,
    b64url,
    hs256_token,
    json_segment,
    make_assertion,
    swap_payload,
    unsigned_token,
)

ISSUER = "http://127.0.0.1:8400"
TOKEN_ENDPOINT = ISSUER + "/oauth/token"
VICTIM = "gemeente-lekstroom"
OTHER_PARTNER = "politie-lekstroom"
STRANGER = "onbekende-partner"


@dataclass(frozen=True)
class Forge:
    keystore: KeyStore
    now: datetime

    def key(self, principal: str = VICTIM) -> SigningKey:
        return self.keystore.signing_key(principal)

    def ts(self, offset_seconds: int) -> int:
        return int(self.now.timestamp()) + offset_seconds

    def claims(self, client_id: str = VICTIM) -> dict[str, object]:
        return assertion_claims(client_id=client_id, audience=ISSUER, now=self.now)

    def assertion(
        self,
        *,
        key: SigningKey | None = None,
        client_id: str = VICTIM,
        audience: str | list[str] = ISSUER,
        lifetime_seconds: int = 60,
        claims: Mapping[str, object] | None = None,
        headers: Mapping[str, object] | None = None,
    ) -> str:
        return make_assertion(
            key or self.key(client_id),
            client_id=client_id,
            audience=audience,
            now=self.now,
            lifetime_seconds=lifetime_seconds,
            claims=claims,
            headers=headers,
        )

    def victim_kid(self) -> str:
        return self.key().kid

    def victim_public_pem(self) -> bytes:
        return self.key().public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


Build = Callable[[Forge], tuple[str, str]]


def _stranger(f: Forge) -> tuple[str, str]:
    """A client the convenant does not know, with a perfectly good key of its own."""
    return STRANGER, f.assertion(key=generate_signing_key(), client_id=STRANGER)


def _v(build: Callable[[Forge], str]) -> Build:
    """A forgery presented under the victim's client_id."""
    return lambda f: (VICTIM, build(f))


FORGED_ASSERTIONS = [
    # Expired a minute ago, far past the 30 s leeway (RFC 7523 §3 item 4).
    pytest.param(
        _v(lambda f: f.assertion(claims={"iat": f.ts(-120), "exp": f.ts(-60)})),
        "expected exp after",
        id="expired",
    ),
    # Expired 31 s ago: one second past the leeway.
    pytest.param(
        _v(lambda f: f.assertion(claims={"iat": f.ts(-90), "exp": f.ts(-31)})),
        "expected exp after",
        id="expired-past-leeway",
    ),
    # exp ten minutes ahead: a long-lived assertion is a reusable password (contract: 5 min).
    pytest.param(
        _v(lambda f: f.assertion(lifetime_seconds=600)), "at most 300 s", id="exp-ten-minutes-ahead"
    ),
    # exp 300 s + 30 s leeway + 1 s ahead: the first second too far.
    pytest.param(
        _v(lambda f: f.assertion(lifetime_seconds=331)),
        "at most 300 s",
        id="exp-just-past-five-minutes",
    ),
    # iat two minutes ahead: minted for later, to outlive its window.
    pytest.param(
        _v(lambda f: f.assertion(claims={"iat": f.ts(120)})),
        "expected iat at most",
        id="future-iat",
    ),
    # nbf two minutes ahead: not valid yet, and nbf is honoured when present.
    pytest.param(
        _v(lambda f: f.assertion(claims={"nbf": f.ts(120)})),
        "expected nbf at most",
        id="future-nbf",
    ),
    # aud names another server: an assertion for someone else, replayed here (item 3).
    pytest.param(
        _v(lambda f: f.assertion(audience="https://idp.example.org/token")),
        "expected aud",
        id="wrong-aud",
    ),
    # Look-alike: trailing slash (a prefix or normalising compare would pass it).
    pytest.param(
        _v(lambda f: f.assertion(audience=ISSUER + "/")),
        "expected aud",
        id="lookalike-aud-trailing-slash",
    ),
    # Look-alike: the issuer as a prefix of an attacker's host name.
    pytest.param(
        _v(lambda f: f.assertion(audience=ISSUER + ".evil.example")),
        "expected aud",
        id="lookalike-aud-suffix-host",
    ),
    # Look-alike: another path under the issuer.
    pytest.param(
        _v(lambda f: f.assertion(audience=TOKEN_ENDPOINT + "s")),
        "expected aud",
        id="lookalike-aud-path",
    ),
    # Look-alike: upper case (URLs compare byte for byte here, RFC 7519 §4.1.3).
    pytest.param(
        _v(lambda f: f.assertion(audience=ISSUER.upper())), "expected aud", id="lookalike-aud-case"
    ),
    # A list of look-alikes, none exact.
    pytest.param(
        _v(lambda f: f.assertion(audience=[ISSUER + "/", "http://127.0.0.1:8401"])),
        "expected aud",
        id="lookalike-aud-list",
    ),
    # No aud at all: valid for "anyone" would mean valid here.
    pytest.param(
        _v(lambda f: f.assertion(claims={"aud": REMOVE})), "claim 'aud'", id="missing-aud"
    ),
    # alg none, no signature (RFC 8725 §2.1).
    pytest.param(
        _v(lambda f: unsigned_token({"alg": "none", "kid": f.victim_kid()}, f.claims())),
        "expected alg in",
        id="alg-none",
    ),
    # alg "None": case games with the same trick.
    pytest.param(
        _v(lambda f: unsigned_token({"alg": "None", "kid": f.victim_kid()}, f.claims())),
        "expected alg in",
        id="alg-None-capitalised",
    ),
    # HS256 keyed with the victim's public key: the classic key-confusion attack.
    pytest.param(
        _v(
            lambda f: hs256_token(
                {"alg": "HS256", "kid": f.victim_kid()}, f.claims(), secret=f.victim_public_pem()
            )
        ),
        "expected alg in",
        id="hs256-with-public-key-as-secret",
    ),
    # ES256 header on the victim's EdDSA kid, signed with the attacker's P-256 key.
    pytest.param(
        _v(
            lambda f: f.assertion(
                key=generate_signing_key("ES256"), headers={"kid": f.victim_kid()}
            )
        ),
        "expected alg 'EdDSA' for kid",
        id="es256-header-on-eddsa-key",
    ),
    # The victim's key, but a kid that is not pinned.
    pytest.param(
        _v(lambda f: f.assertion(headers={"kid": "not-a-pinned-kid"})),
        "kid pinned",
        id="unknown-kid",
    ),
    # No kid: never "try every key".
    pytest.param(
        _v(lambda f: f.assertion(headers={"kid": REMOVE})), "kid pinned", id="missing-kid"
    ),
    # A client the convenant does not know, with a perfectly good key of its own.
    pytest.param(
        lambda f: (STRANGER, f.assertion(key=generate_signing_key(), client_id=STRANGER)),
        "kid pinned",
        id="unknown-client",
    ),
    # Another partner's key, under its own kid, claiming to be the victim.
    pytest.param(
        _v(lambda f: f.assertion(key=f.key(OTHER_PARTNER))),
        "kid pinned",
        id="other-partners-key-own-kid",
    ),
    # Another partner's key, under the victim's kid: a bad signature.
    pytest.param(
        _v(lambda f: f.assertion(key=f.key(OTHER_PARTNER), headers={"kid": f.victim_kid()})),
        "does not verify",
        id="other-partners-key-victim-kid",
    ),
    # Another partner's own valid assertion, presented as the victim's.
    pytest.param(
        _v(lambda f: f.assertion(key=f.key(OTHER_PARTNER), client_id=OTHER_PARTNER)),
        "kid pinned",
        id="other-partners-assertion",
    ),
    # iss is another partner, sub the victim (RFC 7523 §3 items 1-2: both the client_id).
    pytest.param(
        _v(lambda f: f.assertion(claims={"iss": OTHER_PARTNER})), "expected iss", id="iss-not-sub"
    ),
    # sub another partner, iss the victim.
    pytest.param(
        _v(lambda f: f.assertion(claims={"sub": OTHER_PARTNER})), "expected sub", id="sub-not-iss"
    ),
    # The attacker's key embedded as jwk, signed by it (CVE-2018-0114 style).
    pytest.param(
        _v(lambda f: embedded_key_assertion(f, "jwk")), "key-carrying", id="embedded-jwk-header"
    ),
    # A jku pointing at the attacker's JWKS.
    pytest.param(_v(lambda f: embedded_key_assertion(f, "jku")), "key-carrying", id="jku-header"),
    # An x5u pointing at the attacker's certificate.
    pytest.param(_v(lambda f: embedded_key_assertion(f, "x5u")), "key-carrying", id="x5u-header"),
    # An x5c chain carried in the header.
    pytest.param(_v(lambda f: embedded_key_assertion(f, "x5c")), "key-carrying", id="x5c-header"),
    # A crit extension we do not understand (RFC 7515 §4.1.11: must refuse).
    pytest.param(
        _v(lambda f: f.assertion(headers={"crit": ["kb-ext"], "kb-ext": True})),
        "critical extension",
        id="crit-header",
    ),
    # Even crit naming a registered claim-like name is refused.
    pytest.param(
        _v(lambda f: f.assertion(headers={"crit": ["exp"]})),
        "critical extension",
        id="crit-header-registered-name",
    ),
    # 9 KiB of padding: refused before any parsing.
    pytest.param(
        _v(lambda f: f.assertion(claims={"pad": "x" * 9000})), "at most 8192 bytes", id="oversized"
    ),
    # Not base64url at all.
    pytest.param(_v(lambda _: "!!!.@@@.###"), "does not parse", id="malformed-base64"),
    # Base64url with a bad character inside an otherwise good token.
    pytest.param(
        _v(lambda f: "*" + f.assertion()[1:]), "does not parse", id="malformed-base64-one-char"
    ),
    # Two segments: no signature part.
    pytest.param(
        _v(lambda f: f.assertion().rsplit(".", 1)[0]), "does not parse", id="two-segments"
    ),
    # Header that is JSON but not an object.
    pytest.param(
        _v(lambda f: f"{b64url(b'[1]')}.{json_segment(f.claims())}.AAAA"),
        "does not parse",
        id="header-not-an-object",
    ),
    # No jti: nothing to stop a replay (item 7).
    pytest.param(
        _v(lambda f: f.assertion(claims={"jti": REMOVE})), "claim 'jti'", id="missing-jti"
    ),
    # Empty jti.
    pytest.param(_v(lambda f: f.assertion(claims={"jti": ""})), "jti of 1 to 200", id="empty-jti"),
    # A 201-character jti: past the bound on what the replay cache stores.
    pytest.param(
        _v(lambda f: f.assertion(claims={"jti": "j" * 201})), "jti of 1 to 200", id="jti-too-long"
    ),
    # A numeric jti.
    pytest.param(
        _v(lambda f: f.assertion(claims={"jti": 12345})),
        "JWT ID must be a string",
        id="jti-not-a-string",
    ),
    # No exp: an assertion valid forever.
    pytest.param(
        _v(lambda f: f.assertion(claims={"exp": REMOVE})), "claim 'exp'", id="missing-exp"
    ),
    # exp as a string.
    pytest.param(
        _v(lambda f: f.assertion(claims={"exp": str(f.ts(60))})), "NumericDate", id="exp-as-string"
    ),
    # exp as JSON true (a bool is an int in Python).
    pytest.param(_v(lambda f: f.assertion(claims={"exp": True})), "NumericDate", id="exp-as-bool"),
    # No iat.
    pytest.param(
        _v(lambda f: f.assertion(claims={"iat": REMOVE})), "claim 'iat'", id="missing-iat"
    ),
    # A genuine assertion with its payload swapped for a longer-lived one.
    pytest.param(
        _v(lambda f: swap_payload(f.assertion(), {**f.claims(), "exp": f.ts(290)})),
        "does not verify",
        id="tampered-payload",
    ),
    # A genuine header and payload with random signature bytes.
    pytest.param(
        _v(lambda f: f.assertion().rsplit(".", 1)[0] + "." + b64url(secrets.token_bytes(64))),
        "does not verify",
        id="random-signature",
    ),
]


def embedded_key_assertion(f: Forge, member: str) -> str:
    attacker = generate_signing_key()
    value: object = {
        "jwk": attacker.public_jwk(),
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
        "x5c": ["MIIBszCCAVmgAwIBAgIUQ"],
    }[member]
    return f.assertion(key=attacker, headers={member: value})
