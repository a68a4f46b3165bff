"""Attacks on the tokens: forged, bent and replayed JWTs at the token endpoint and the API.

Access tokens are forged with the broker's own signing key (the test holds
the key folder), so each row's defect is the only thing wrong with the
token: if it is refused, the check under test refused it. Client assertions
reuse tests/auth/forgeries.py's table, here over real HTTP against the
whole network. Every refusal must be a 401 with nothing disclosed, and
exactly one `security_event` naming the right code in the audit log.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from broker.keys import KeyStore, SigningKey, generate_signing_key
from broker.stack import LocalStack
from tests.auth.forgeries import FORGED_ASSERTIONS, Build, _v
from tests.auth.helpers import (
    REMOVE,
    b64url,
    hs256_token,
    json_segment,
    swap_payload,
    unsigned_token,
)
from tests.security.conftest import (
    FG,
    GEMEENTE,
    POLITIE,
    Attempt,
    Clients,
    DpopKey,
    StackForge,
    access_claims,
    assert_refused,
    attempt,
    dpop_headers,
    entries_after,
    fetch_nonce,
    log_size,
    request_token,
    sign_compact,
    signed_access_token,
    token_form,
)

pytestmark = pytest.mark.e2e

PROBE = "/v1/convenant"  # any authenticated principal may read it; nothing else is checked


def call_api(stack: LocalStack, headers: dict[str, str], *, params: Any = None) -> Attempt:
    url = stack.settings.issuer + PROBE
    return attempt(stack, lambda trace: httpx.get(url, headers={**trace, **headers}, params=params))


@dataclass
class Bound:
    """Forged access tokens bound to a DPoP key of ours, presented with a valid proof.

    Since bearer tokens are refused for every partner the convenant does not
    mark `bearer_allowed`, a forged token is presented the way a genuine one
    is (RFC 9449 §7.1): `Authorization: DPoP`, a proof by the bound key
    carrying `ath` and a live server nonce. The token's defect is then the
    only thing wrong with the request.
    """

    stack: LocalStack
    keystore: KeyStore
    dpop: DpopKey
    nonce: str

    def token(
        self,
        principal: str = FG,
        *,
        claims: dict[str, Any] | None = None,
        headers: dict[str, Any] | None = None,
        key: SigningKey | None = None,
    ) -> str:
        bound = {"cnf": {"jkt": self.dpop.jkt}, **(claims or {})}
        return signed_access_token(
            self.stack, self.keystore, principal, claims=bound, headers=headers, key=key
        )

    def call(self, token: str) -> Attempt:
        url = self.stack.settings.issuer + PROBE
        headers = dpop_headers(self.dpop, token, method="GET", url=url, nonce=self.nonce)
        return call_api(self.stack, headers)


@pytest.fixture
def bound(stack: LocalStack, keystore: KeyStore) -> Bound:
    return Bound(stack=stack, keystore=keystore, dpop=DpopKey(), nonce=fetch_nonce(stack))


TOKEN_REFUSALS = frozenset({"invalid_token", "invalid_dpop_proof"})


def assert_token_refused(
    result: Attempt, *, codes: frozenset[str] = frozenset({"invalid_token"}), also: Any = ()
) -> dict[str, Any]:
    """401 with a DPoP or Bearer challenge, one security_event, nothing echoed."""
    body = assert_refused(result.response, status=401, also=also)
    assert body["code"] in codes, body
    challenge = result.response.headers["www-authenticate"]
    assert challenge.split(" ", 1)[0] in {"DPoP", "Bearer"}, challenge
    record = result.assert_logged(body["code"], kind="security_event", principal=None)
    assert record["event"] == f"GET {PROBE}"
    return record


def broker_kid(keystore: KeyStore) -> str:
    return keystore.signing_key("broker").kid


# --- the control: the forger makes tokens the broker accepts --------------------------------


def test_hand_forged_token_without_a_defect_is_accepted(bound: Bound, client_for: Clients) -> None:
    """Without this, every refusal below could be the forger's fault."""
    assert client_for(GEMEENTE).get(PROBE).status_code == 200
    result = bound.call(bound.token())
    assert result.response.status_code == 200, result.response.text
    assert not result.records


# --- how the token is presented ----------------------------------------------------------


def test_missing_authorization_is_refused(stack: LocalStack) -> None:
    result = call_api(stack, {})
    assert_token_refused(result)
    # RFC 6750 §3.1 (and RFC 9449 §7.1): no credentials at all, so no error is named.
    assert "error=" not in result.response.headers["www-authenticate"]


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic Z2VtZWVudGUtbGVrc3Ryb29tOmdlaGVpbQ==",  # a password where a token belongs
        'Digest username="gemeente-lekstroom", realm="broker"',  # another challenge scheme
        "Token {token}",  # the right token under a made-up scheme
        "JWT {token}",  # another made-up scheme
        "Negotiate YIIBhwYGKwYBBQUCoIIBezCCAXeg",  # Kerberos
        "Bearer",  # the scheme alone
        "Bearer  {token}",  # two spaces: the token would start with a blank
        "Bearer\t{token}",  # a tab is not the separator
        "Bearer {token} extra",  # a second credential smuggled behind the first
        "Bearer {token},Bearer {token}",  # a list of credentials in one header
        "DPoP {token}",  # a DPoP scheme without the DPoP proof (RFC 9449 §7.1)
    ],
    ids=lambda v: v.split(" ")[0][:12] + f"-{len(v)}",
)
def test_wrong_auth_scheme_is_refused(
    stack: LocalStack, client_for: Clients, authorization: str
) -> None:
    token = client_for(GEMEENTE).token()
    result = call_api(stack, {"Authorization": authorization.format(token=token)})
    assert_token_refused(result, codes=TOKEN_REFUSALS, also=(token,))


def test_two_authorization_headers_are_refused(stack: LocalStack, client_for: Clients) -> None:
    # A proxy may check one and the broker read the other.
    token = client_for(GEMEENTE).token()
    result = attempt(
        stack,
        lambda trace: httpx.get(
            stack.broker_url + PROBE,
            headers=[
                *trace.items(),
                ("Authorization", f"Bearer {token}"),
                ("Authorization", "Bearer x.y.z"),
            ],
        ),
    )
    assert_token_refused(result, codes=TOKEN_REFUSALS, also=(token,))


@pytest.mark.parametrize(
    "with_header",
    [
        False,  # the token only in the URL
        True,  # even beside a good header: a token in a URL has leaked already (RFC 6750 §2.3)
    ],
)
def test_token_in_the_query_string_is_refused(
    stack: LocalStack, client_for: Clients, with_header: bool
) -> None:
    client = client_for(GEMEENTE)
    token = client.token()
    url = stack.settings.issuer + PROBE
    headers = {}
    if with_header:
        # A complete, valid DPoP request: only the copy in the URL is wrong.
        headers = {
            "Authorization": f"DPoP {token}",
            "DPoP": client.dpop_proof("GET", url, access_token=token),
        }
    result = call_api(stack, headers, params={"access_token": token})
    record = assert_token_refused(result, also=(token,))
    assert "query" in record["reasons"][0]["detail"]
    assert token not in str(result.records), "the log must not keep the leaked token"


# --- what the header says -------------------------------------------------------------


def _claims(bound: Bound, principal: str = FG) -> dict[str, Any]:
    return {**access_claims(bound.stack, principal), "cnf": {"jkt": bound.dpop.jkt}}


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_token_is_refused(bound: Bound, alg: str) -> None:
    header = {"alg": alg, "typ": "at+jwt", "kid": broker_kid(bound.keystore)}
    assert_token_refused(bound.call(unsigned_token(header, _claims(bound))))


def _public_key_secret(stack: LocalStack, keystore: KeyStore, form: str) -> bytes:
    """The broker's public key as an attacker finds it: PEM, raw bytes, or the JWKS document."""
    public_key = keystore.signing_key("broker").private_key.public_key()
    if form == "pem":
        return public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    if form == "raw":
        return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return httpx.get(stack.broker_url + "/.well-known/jwks.json").content


@pytest.mark.parametrize("form", ["pem", "raw", "jwks"])
def test_hs256_with_the_public_key_as_secret_is_refused(bound: Bound, form: str) -> None:
    """Key confusion: the broker's public key, which anyone can fetch, as an HMAC secret."""
    secret = _public_key_secret(bound.stack, bound.keystore, form)
    header = {"alg": "HS256", "typ": "at+jwt", "kid": broker_kid(bound.keystore)}
    assert_token_refused(bound.call(hs256_token(header, _claims(bound), secret=secret)))


def _foreign_key(alg: str) -> Any:
    if alg in {"RS256", "PS256", "RS512"}:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg.startswith("HS"):
        return secrets.token_bytes(64)
    curve = {"ES384": ec.SECP384R1(), "ES512": ec.SECP521R1(), "ES256K": ec.SECP256K1()}[alg]
    return ec.generate_private_key(curve)


@pytest.mark.parametrize("alg", ["RS256", "PS256", "RS512", "ES384", "ES512", "ES256K", "HS512"])
def test_algorithm_outside_the_allow_list_is_refused(bound: Bound, alg: str) -> None:
    """Only EdDSA and ES256; a token under the broker's kid with any other alg is refused."""
    header = {"alg": alg, "typ": "at+jwt", "kid": broker_kid(bound.keystore)}
    assert_token_refused(bound.call(sign_compact(header, _claims(bound), _foreign_key(alg), alg)))


def test_fully_specified_alg_name_is_not_an_alias(bound: Bound) -> None:
    # "Ed25519" (the fully specified name) is not on the allow-list, even over an Ed25519 key.
    key = bound.keystore.signing_key("broker")
    header = {"alg": "Ed25519", "typ": "at+jwt", "kid": key.kid}
    signed = sign_compact({**header, "alg": "EdDSA"}, _claims(bound), key.private_key, "EdDSA")
    _, payload, signature = signed.split(".")
    assert_token_refused(bound.call(f"{json_segment(header)}.{payload}.{signature}"))


@pytest.mark.parametrize("member", ["jwk", "jku", "x5u", "x5c"])
def test_embedded_key_in_the_header_is_refused(bound: Bound, member: str) -> None:
    """The token names its own key (CVE-2018-0114 style); keys are pinned, never carried."""
    attacker = generate_signing_key()
    value = {
        "jwk": attacker.public_jwk(),
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
        "x5c": ["MIIBszCCAVmgAwIBAgIUQ"],
    }[member]
    headers = {"kid": broker_kid(bound.keystore), member: value}
    assert_token_refused(bound.call(bound.token(headers=headers, key=attacker)))


HOSTILE_KIDS = [
    pytest.param("../../../../etc/passwd", id="path-traversal"),
    pytest.param("broker/../gemeente-lekstroom", id="path-to-another-principal"),
    pytest.param("' OR '1'='1", id="sql"),
    pytest.param("\u0000", id="nul"),
    pytest.param("kid\r\nX-Injected: 1", id="crlf"),
    pytest.param("*", id="wildcard"),
    pytest.param("https://attacker.example/jwks.json", id="url"),
    pytest.param("k" * 4000, id="4000-chars"),
    pytest.param("", id="empty"),
    pytest.param(None, id="null"),
    pytest.param(42, id="number"),
    pytest.param(True, id="bool"),
    pytest.param(["kid"], id="list"),
    pytest.param({"kid": "x"}, id="object"),
]


@pytest.mark.parametrize("kid", HOSTILE_KIDS)
def test_hostile_kid_in_an_access_token_is_refused(bound: Bound, kid: object) -> None:
    assert_token_refused(bound.call(bound.token(headers={"kid": kid})))


def test_kid_of_another_principal_is_refused(bound: Bound) -> None:
    # The gemeente's own key and kid: pinned for the gemeente, never for the broker's tokens.
    key = bound.keystore.signing_key(GEMEENTE)
    assert_token_refused(bound.call(bound.token(GEMEENTE, headers={"kid": key.kid}, key=key)))


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"crit": ["kb-ext"], "kb-ext": True}, id="unknown-extension"),
        pytest.param({"crit": ["exp"]}, id="registered-claim-name"),
        pytest.param({"crit": ["b64"], "b64": False}, id="unencoded-payload-rfc7797"),
        pytest.param({"crit": []}, id="empty-list"),
        pytest.param({"crit": "kb-ext"}, id="not-a-list"),
    ],
)
def test_unknown_crit_is_refused(bound: Bound, headers: dict[str, Any]) -> None:
    assert_token_refused(bound.call(bound.token(headers=headers)))


@pytest.mark.parametrize(
    "typ",
    [
        pytest.param("JWT", id="plain-jwt"),
        pytest.param(REMOVE, id="missing"),
        pytest.param("dpop+jwt", id="a-dpop-proof"),
        pytest.param("client-authentication+jwt", id="a-client-assertion"),
        pytest.param("", id="empty"),
        pytest.param(["at+jwt"], id="list"),
    ],
)
def test_wrong_typ_is_refused(bound: Bound, typ: object) -> None:
    assert_token_refused(bound.call(bound.token(headers={"typ": typ})))


# --- what the claims say --------------------------------------------------------------


def _now() -> int:
    return int(time.time())


@pytest.mark.parametrize(
    "exp",
    [
        pytest.param(REMOVE, id="missing"),
        pytest.param(lambda: _now() - 3600, id="expired-an-hour-ago"),
        pytest.param(lambda: _now() - 31, id="expired-just-past-the-leeway"),
        pytest.param(lambda: _now() + 86400 * 365, id="a-year-ahead"),
        # Well past 300 s + 30 s leeway: over real HTTP the broker's clock runs on
        # after ours, so a one-second margin could fall back inside the limit.
        pytest.param(lambda: _now() + 300 + 90, id="well-past-five-minutes"),
        pytest.param(2**33, id="year-2242"),
        pytest.param(2**64, id="beyond-64-bits"),
        pytest.param(lambda: str(_now() + 60), id="a-string"),
        pytest.param(True, id="a-bool"),
        pytest.param(None, id="null"),
        pytest.param(float("nan"), id="nan"),
        pytest.param(float("inf"), id="infinity"),
        pytest.param(-1, id="negative"),
    ],
)
def test_missing_expired_or_far_future_exp_is_refused(bound: Bound, exp: object) -> None:
    value = exp() if callable(exp) else exp
    assert_token_refused(bound.call(bound.token(claims={"exp": value})))


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param(lambda: {"iat": _now() + 120}, id="iat-two-minutes-ahead"),
        pytest.param(lambda: {"iat": _now() + 60, "exp": _now() + 120}, id="iat-past-leeway"),
        pytest.param(lambda: {"nbf": _now() + 120}, id="nbf-two-minutes-ahead"),
        pytest.param(lambda: {"nbf": 2**33}, id="nbf-year-2242"),
        pytest.param(lambda: {"iat": REMOVE}, id="iat-missing"),
        pytest.param(lambda: {"iat": "now"}, id="iat-a-string"),
        pytest.param(lambda: {"nbf": float("nan")}, id="nbf-nan"),
    ],
)
def test_future_iat_or_nbf_beyond_leeway_is_refused(
    bound: Bound, claims: Callable[[], dict[str, Any]]
) -> None:
    assert_token_refused(bound.call(bound.token(claims=claims())))


def _lookalikes(issuer: str) -> list[object]:
    host_port = issuer.removeprefix("http://")
    return [
        "https://idp.example.org",  # another server entirely
        issuer + "/",  # trailing slash: a normalising compare would pass it
        issuer.upper(),  # case: URLs compare byte for byte here
        issuer + ".evil.example",  # the issuer as a prefix of an attacker's host
        issuer + "/oauth/token",  # the token endpoint, not the resource server
        "https://" + host_port,  # another scheme
        "http://" + host_port.replace("1", "l", 1),  # a letter for a digit
        "http://" + host_port.replace("1", "\uff11", 1),  # a full-width digit
        "http://" + host_port.replace(".", "\u3002", 1),  # an ideographic full stop
        issuer + "\u200b",  # a zero-width space behind it
        [issuer, "https://other.example"],  # a list: the audience is one string (strict)
        [issuer],  # even a list of just the issuer
        "",
        REMOVE,
    ]


LOOKALIKE_IDS = [
    "other-server",
    "trailing-slash",
    "upper-case",
    "suffix-host",
    "token-endpoint",
    "https",
    "letter-for-digit",
    "full-width-digit",
    "ideographic-dot",
    "zero-width",
    "list-with-other",
    "list-of-one",
    "empty",
    "missing",
]


@pytest.mark.parametrize("which", range(len(LOOKALIKE_IDS)), ids=LOOKALIKE_IDS)
def test_wrong_or_lookalike_audience_is_refused(bound: Bound, which: int) -> None:
    aud = _lookalikes(bound.stack.settings.issuer)[which]
    assert_token_refused(bound.call(bound.token(claims={"aud": aud})))


@pytest.mark.parametrize("which", range(len(LOOKALIKE_IDS)), ids=LOOKALIKE_IDS)
def test_wrong_or_lookalike_issuer_is_refused(bound: Bound, which: int) -> None:
    iss = _lookalikes(bound.stack.settings.issuer)[which]
    assert_token_refused(bound.call(bound.token(claims={"iss": iss})))


@pytest.mark.parametrize(
    "edit",
    [
        # The police raise their own token to the DPO's scope.
        pytest.param({"scope": "audit:read"}, id="scope-to-audit-read"),
        # The police claim the gemeente's role (the regisseur's rights).
        pytest.param({"role": "gemeente"}, id="role-to-gemeente"),
        # The police become the gemeente.
        pytest.param({"sub": GEMEENTE, "client_id": GEMEENTE, "role": "gemeente"}, id="identity"),
        # A five-minute token made to last a day.
        pytest.param({"exp": 10**10}, id="exp-extended"),
        # A care function granted.
        pytest.param({"function": "ggd"}, id="function-added"),
        # Bound to another key: the thief's.
        pytest.param({"cnf": {"jkt": DpopKey().jkt}}, id="rebound-to-another-key"),
    ],
)
def test_payload_edited_under_a_kept_signature_is_refused(
    bound: Bound, edit: dict[str, Any]
) -> None:
    genuine = bound.token(POLITIE)
    edited = swap_payload(genuine, {**_claims(bound, POLITIE), **edit})
    assert_token_refused(bound.call(edited), also=(genuine,))


@pytest.mark.parametrize("kid_of", ["own", "broker"])
def test_token_signed_with_a_partner_key_is_refused(bound: Bound, kid_of: str) -> None:
    """A partner mints its own access token; the broker alone issues them."""
    key = bound.keystore.signing_key(POLITIE)
    kid = key.kid if kid_of == "own" else broker_kid(bound.keystore)
    token = bound.token(POLITIE, claims={"scope": "audit:read"}, headers={"kid": kid}, key=key)
    assert_token_refused(bound.call(token))


# --- size and shape ------------------------------------------------------------------


def test_oversized_token_is_refused_unparsed(bound: Bound) -> None:
    token = bound.token(claims={"pad": "x" * 9000})
    assert len(token) > 8192
    assert_token_refused(bound.call(token))


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Authorization": "DPoP " + "a" * 65536}, id="64KiB-authorization"),
        pytest.param({"Authorization": "DPoP " + "a" * (1 << 20)}, id="1MiB-authorization"),
        pytest.param({"DPoP": "a" * (1 << 20)}, id="1MiB-dpop-proof"),
        pytest.param({"X-Padding": "p" * (1 << 20)}, id="1MiB-other-header"),
        pytest.param({f"X-Pad-{n}": "p" * 100 for n in range(2000)}, id="2000-headers"),
    ],
)
def test_oversized_headers_are_refused(stack: LocalStack, headers: dict[str, str]) -> None:
    """Refused by the broker (401, logged) or by the HTTP server before it; never a 500."""
    try:
        result: Attempt | None = call_api(stack, headers)
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
        result = None  # the server closed the connection: refused before the application
    if result is not None and result.response.status_code == 401:
        assert_token_refused(result, codes=TOKEN_REFUSALS)
    elif result is not None:
        assert_refused(result.response, status={400, 413, 431}, problem=False)
    # Whatever happened, the broker still serves.
    assert httpx.get(stack.broker_url + "/healthz").status_code == 200


MALFORMED_TOKENS = [
    pytest.param("!!!.@@@.###", id="not-base64url"),
    pytest.param("a.b.c", id="short-garbage-segments"),
    pytest.param("e30.e30.e30", id="empty-header-object"),
    pytest.param(f"{b64url(b'[1]')}.e30.AAAA", id="header-not-an-object"),
    pytest.param(f"{b64url(b'{')}.e30.AAAA", id="header-truncated-json"),
    pytest.param(f"{b64url(b'{}' + bytes([0xFF]))}.e30.AAAA", id="header-not-utf8"),
    pytest.param("eyJh=bGciOiJFZERTQSJ9.e30.AAAA", id="padding-inside"),
    pytest.param("eyJhbGciOiJFZERTQSJ9", id="one-segment"),
    pytest.param("eyJhbGciOiJFZERTQSJ9.e30", id="two-segments"),
    pytest.param("a.b.c.d.e", id="five-segments-jwe-shape"),
    pytest.param("...", id="only-dots"),
    pytest.param("eyJ+bGciOiJFZERTQSJ9.e30/.AAAA", id="standard-base64-alphabet"),
]


@pytest.mark.parametrize("token", MALFORMED_TOKENS)
def test_malformed_base64_is_refused(bound: Bound, token: str) -> None:
    assert_token_refused(bound.call(token))


def test_signature_of_random_bytes_is_refused(bound: Bound) -> None:
    head_and_payload = bound.token().rsplit(".", 1)[0]
    assert_token_refused(bound.call(f"{head_and_payload}.{b64url(secrets.token_bytes(64))}"))


# --- the token endpoint ------------------------------------------------------------------


def assert_no_token(
    result: Attempt, *, client_id: str, stack: LocalStack, reason: str | tuple[str, ...]
) -> None:
    """invalid_client, no token, one token_refused record saying why."""
    assert_refused(result.response, status=401, code="invalid_client", problem=False)
    assert "access_token" not in result.response.text
    assert result.response.headers["cache-control"] == "no-store"
    known = client_id if stack.services.convenant.role_of(client_id) else None
    record = result.assert_logged("invalid_client", kind="security_event", principal=known)
    assert record["event"] == "token_refused"
    detail = record["reasons"][0]["detail"]
    # The log says why; for a stranger, that it is a stranger.
    reasons = (reason,) if isinstance(reason, str) else reason
    if not known:
        reasons = ("expected a client of the convenant",)
    assert any(r in detail for r in reasons), detail


# Over real HTTP the broker's clock runs on after the forger's: a row that sits
# one second past a time limit can fall back inside it under load. The exact
# boundaries are tested with a fixed clock in tests/auth (pure verifier); here
# the same attacks run with a margin no scheduling delay can cross.
_ONE_SECOND_BOUNDARIES = {"exp-just-past-five-minutes"}
FORGED_OVER_HTTP = [row for row in FORGED_ASSERTIONS if row.id not in _ONE_SECOND_BOUNDARIES] + [
    pytest.param(
        _v(lambda f: f.assertion(lifetime_seconds=400)),
        "at most 300 s",
        id="exp-well-past-five-minutes",
    ),
]


@pytest.mark.parametrize(("build", "reason"), FORGED_OVER_HTTP)
def test_forged_client_assertion_buys_no_token(
    stack: LocalStack, forge: StackForge, build: Build, reason: str
) -> None:
    """alg none, HS256 key confusion, jwk/jku/x5u/x5c, crit, exp/iat/nbf, aud look-alikes, ..."""
    client_id, assertion = build(forge)
    result = request_token(stack, client_id, assertion)
    assert_no_token(result, client_id=client_id, stack=stack, reason=reason)


@pytest.mark.parametrize("kid", HOSTILE_KIDS)
def test_hostile_kid_in_a_client_assertion_is_refused(
    stack: LocalStack, forge: StackForge, kid: object
) -> None:
    # By hand: pyjwt refuses to write a kid that is not a string.
    key = forge.key(GEMEENTE)
    assertion = sign_compact(
        {"alg": key.alg, "typ": "JWT", "kid": kid}, forge.claims(GEMEENTE), key.private_key, key.alg
    )
    result = request_token(stack, GEMEENTE, assertion)
    # pyjwt's own words for a kid that is not a string: "Key ID header parameter".
    assert_no_token(result, client_id=GEMEENTE, stack=stack, reason=("kid", "Key ID"))


def test_replayed_assertion_jti_is_refused(stack: LocalStack, forge: StackForge) -> None:
    assertion = forge.assertion()
    first = request_token(stack, GEMEENTE, assertion)
    assert first.response.status_code == 200, first.response.text
    replay = request_token(stack, GEMEENTE, assertion)
    assert_no_token(replay, client_id=GEMEENTE, stack=stack, reason="already presented")


def test_replayed_assertion_jti_raced_by_parallel_requests_buys_one_token(
    stack: LocalStack, forge: StackForge
) -> None:
    """Eight requests with one assertion, released at once: one token, seven logged refusals.

    A check-then-set replay cache lets two racers both see "new"; the
    atomic SET NX (Redis) and the locked dict (in-process) must not.
    """
    racers = 8
    form = token_form(GEMEENTE, forge.assertion())
    endpoint = stack.settings.issuer + "/oauth/token"
    nonce = fetch_nonce(stack)
    # One assertion, but a proof of its own for each racer: a shared proof
    # would be refused for its own replayed jti, hiding the check under test.
    proofs = [DpopKey().proof("POST", endpoint, nonce=nonce) for _ in range(racers)]
    trace_ids = [secrets.token_hex(16) for _ in range(racers)]
    answers: list[httpx.Response | None] = [None] * racers
    start = threading.Barrier(racers)
    clients = [httpx.Client(timeout=10.0) for _ in range(racers)]

    def race(n: int) -> None:
        headers = {
            "traceparent": f"00-{trace_ids[n]}-{secrets.token_hex(8)}-01",
            "DPoP": proofs[n],
        }
        start.wait()
        answers[n] = clients[n].post(endpoint, data=form, headers=headers)

    before = log_size(stack)
    threads = [threading.Thread(target=race, args=(n,)) for n in range(racers)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        for client in clients:
            client.close()
    appended = entries_after(stack, before)

    statuses = [a.status_code if a is not None else None for a in answers]
    assert statuses.count(200) == 1, f"expected exactly one token, got statuses {statuses}"
    # Losers are refused; a rate limit (429) is a refusal too.
    assert set(statuses) <= {200, 401, 429}, statuses
    for n, answer in enumerate(answers):
        assert answer is not None
        if answer.status_code == 200:
            continue
        assert_refused(answer, status={401, 429}, problem=False)
        if answer.status_code == 401:
            Attempt(answer, trace_ids[n], appended).assert_logged(
                "invalid_client", kind="security_event", principal=GEMEENTE
            )
