"""Sender-constrained tokens (RFC 9449 DPoP), over HTTP: every defect refused and logged.

The probe app of tests/auth/conftest.py carries the real token endpoint and
the real security dependency. A token is bound at the token endpoint to the
key of the proof that came with the request (§5); every API call must bring
a proof for that request, signed by that key, with the broker's nonce (§7.1,
§9). Each refusal answers the right error, with its challenge and, for a
nonce, a fresh `DPoP-Nonce`, and leaves exactly one security_event.

The attacker's view, row by row: a proof made for another request (method,
URL, time, token), a proof from another key (the stolen-token case), a
proof that brings its own private key, algorithms and types that must never
pass, a replayed proof (also raced from eight threads against a real server
and both replay caches), and bearer tokens where the convenant wants DPoP.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from adapters.runner import start_server
from adapters.sdk.client import BrokerClient, TokenRequestError
from broker.auth.dpop import (
    MAX_PROOF_AGE_SECONDS,
    MAX_PROOF_FUTURE_SECONDS,
    DpopNonces,
    InvalidDpopProofError,
    UseDpopNonceError,
    access_token_hash,
    key_thumbprint,
    replay_ttl_seconds,
    verify_dpop_proof,
)
from broker.auth.replay import MemoryReplayCache, RedisReplayCache
from broker.auth.tokens import verify_access_token
from broker.convenant import Convenant
from broker.errors import InvalidTokenError
from broker.keys import KeyStore, generate_signing_key
from tests.auth.conftest import (
    AuthServices,
    DpopCaller,
    TestClient,
    build_app,
    security_events,
)
from tests.auth.forgeries import ISSUER, OTHER_PARTNER, TOKEN_ENDPOINT, VICTIM, Forge
from tests.auth.helpers import (
    JWT_BEARER,
    REMOVE,
    ProofKey,
    SteppingClock,
    b64url,
    hs256_token,
    json_segment,
    unsigned_token,
)

ALGS = 'algs="EdDSA ES256"'
PROBE = "/probe/exchange"
PROBE_URL = ISSUER + PROBE
RACERS = 8
# A partner whose convenant row says bearer_allowed in the variant built below.
BEARER_PARTNER = OTHER_PARTNER


def token_form(forge: Forge, client_id: str = VICTIM) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": forge.assertion(client_id=client_id),
    }


def bound_token(client: TestClient, forge: Forge, dpop: DpopCaller) -> str:
    """A token from the endpoint, bound to `dpop`'s key (RFC 9449 §5)."""
    response = client.post(
        "/oauth/token", data=token_form(forge), headers={"DPoP": dpop.token_request_proof()}
    )
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"
    token: str = response.json()["access_token"]
    return token


def only_event(services: AuthServices) -> dict[str, Any]:
    events = security_events(services)
    assert len(events) == 1, events
    return events[0]


def assert_api_refused(
    response: httpx.Response, services: AuthServices, *, code: str, reason: str
) -> dict[str, Any]:
    """401, the RFC 9449 §7.1 challenge for `code`, the problem document, one log entry."""
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == f'DPoP error="{code}", {ALGS}'
    assert response.json()["code"] == code
    event = only_event(services)
    assert event["event"] == f"GET {PROBE}"
    assert event["reasons"][0]["code"] == code
    assert reason in event["reasons"][0]["detail"], event["reasons"][0]["detail"]
    # The token and the proof are credentials: never in the log.
    assert "eyJ" not in event["reasons"][0]["detail"]
    return event


def assert_token_refused(
    response: httpx.Response, services: AuthServices, *, error: str, reason: str
) -> dict[str, Any]:
    """RFC 9449 §5 / §8: 400 with the error, a fresh nonce, one log entry."""
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["dpop-nonce"]
    event = only_event(services)
    assert event["event"] == "token_refused"
    assert event["reasons"][0]["code"] == error
    assert reason in event["reasons"][0]["detail"], event["reasons"][0]["detail"]
    return event


def with_bearer_allowed(convenant: Convenant, principal: str) -> Convenant:
    """The example convenant, with `bearer_allowed: true` for one partner."""
    document = convenant.model_dump(mode="json")
    for partner in document["partners"]:
        if partner["id"] == principal:
            partner["bearer_allowed"] = True
    return Convenant.model_validate(document)


# --- the example convenant and the happy path --------------------------------------


def test_example_convenant_allows_nobody_bearer_tokens(convenant: Convenant) -> None:
    assert not any(p.bearer_allowed for p in convenant.partners)
    assert not any(a.bearer_allowed for a in convenant.auditors)
    assert not convenant.bearer_allowed("onbekende-partner")  # strangers: fail closed


def test_token_request_with_a_proof_binds_the_token_to_its_key(
    client: TestClient, forge: Forge, dpop: DpopCaller, keystore: KeyStore
) -> None:
    token = bound_token(client, forge, dpop)
    claims = verify_access_token(
        token, keys=keystore.public_keyset("broker"), issuer=ISSUER, now=forge.now
    )
    # RFC 9449 §6.1: cnf.jkt is the RFC 7638 thumbprint of the proof's key.
    assert claims.jkt == dpop.key.jkt == key_thumbprint(dpop.key.key.public_key)
    assert jwt.decode(token, options={"verify_signature": False})["cnf"] == {"jkt": dpop.key.jkt}


def test_bound_token_with_its_proof_opens_the_api(
    client: TestClient, services: AuthServices, forge: Forge, dpop: DpopCaller
) -> None:
    token = bound_token(client, forge, dpop)
    response = client.get(PROBE, headers=dpop.headers(token, PROBE))
    assert response.status_code == 200, response.text
    assert response.json()["principal"] == VICTIM
    assert security_events(services) == []


def test_es256_proof_key_is_accepted_too(
    client: TestClient, forge: Forge, nonces: DpopNonces, clock: SteppingClock
) -> None:
    dpop = DpopCaller(key=ProofKey(generate_signing_key("ES256")), nonces=nonces, clock=clock)
    token = bound_token(client, forge, dpop)
    assert client.get(PROBE, headers=dpop.headers(token, PROBE)).status_code == 200


def test_htu_comes_from_the_issuer_not_the_host_header(
    client: TestClient, services: AuthServices, forge: Forge, dpop: DpopCaller
) -> None:
    # A proxy (or the client) picks the Host header; the proof is for the issuer's URL.
    token = bound_token(client, forge, dpop)
    headers = {**dpop.headers(token, PROBE), "Host": "broker.internal:8080"}
    assert client.get(PROBE, headers=headers).status_code == 200
    attacker = dpop.proof(htm="GET", htu="http://broker.internal:8080" + PROBE, access_token=token)
    response = client.get(PROBE, headers={**headers, "DPoP": attacker})
    assert_api_refused(response, services, code="invalid_dpop_proof", reason="expected htu")


# --- the token endpoint (RFC 9449 §5, §8) ------------------------------------------


def test_token_request_without_a_proof_is_refused_and_logged(
    client: TestClient, services: AuthServices, forge: Forge
) -> None:
    response = client.post("/oauth/token", data=token_form(forge))
    event = assert_token_refused(
        response, services, error="invalid_dpop_proof", reason="expected a DPoP proof"
    )
    assert event["requester"] == {"partner": VICTIM}
    assert "access_token" not in response.text


def test_token_request_with_two_proofs_is_refused(
    client: TestClient, services: AuthServices, forge: Forge, dpop: DpopCaller
) -> None:
    response = client.post(
        "/oauth/token",
        data=token_form(forge),
        headers=[("DPoP", dpop.token_request_proof()), ("DPoP", dpop.token_request_proof())],
    )
    assert_token_refused(response, services, error="invalid_dpop_proof", reason="got 2")


def test_token_request_without_a_nonce_is_challenged_then_served(
    client: TestClient, services: AuthServices, forge: Forge, dpop: DpopCaller
) -> None:
    form = token_form(forge)
    first = client.post(
        "/oauth/token", data=form, headers={"DPoP": dpop.token_request_proof(nonce=None)}
    )
    assert_token_refused(first, services, error="use_dpop_nonce", reason="expected a nonce claim")
    # RFC 9449 §8: the client retries with the nonce it was given. The
    # challenge happened before the assertion's jti was spent, so the very
    # same request (with a new proof) now succeeds.
    retry = client.post(
        "/oauth/token",
        data=form,
        headers={"DPoP": dpop.token_request_proof(nonce=first.headers["dpop-nonce"])},
    )
    assert retry.status_code == 200, retry.text
    assert retry.json()["token_type"] == "DPoP"


@pytest.mark.parametrize(
    ("nonce", "reason"),
    [
        # Issued 300 s ago: exactly the lifetime, so no longer valid.
        (lambda n, c: n.issue(now=c.now() - timedelta(seconds=300)), "at most 300 s old"),
        # Made with another broker's key: the MAC does not verify.
        (
            lambda _n, c: DpopNonces.from_signing_key(generate_signing_key()).issue(now=c.now()),
            "does not verify",
        ),
        # Random bytes of the right length.
        (lambda _n, _c: b64url(b"\x00" * 32), "does not verify"),
        # Not even the format.
        (lambda _n, _c: "made-up-nonce", "another format"),
        # "Issued" ten minutes from now: not by us.
        (lambda n, c: n.issue(now=c.now() + timedelta(minutes=10)), "ahead"),
    ],
    ids=["stale", "other-broker", "forged", "malformed", "future"],
)
def test_token_request_with_a_bad_nonce_is_challenged(
    client: TestClient,
    services: AuthServices,
    forge: Forge,
    dpop: DpopCaller,
    nonces: DpopNonces,
    clock: SteppingClock,
    nonce: Callable[[DpopNonces, SteppingClock], str],
    reason: str,
) -> None:
    proof = dpop.token_request_proof(nonce=nonce(nonces, clock))
    response = client.post("/oauth/token", data=token_form(forge), headers={"DPoP": proof})
    assert_token_refused(response, services, error="use_dpop_nonce", reason=reason)
    # The challenge hands out a nonce that works.
    nonces.verify(response.headers["dpop-nonce"], now=clock.now())


def test_replayed_token_request_proof_is_refused(
    client: TestClient, services: AuthServices, forge: Forge, dpop: DpopCaller
) -> None:
    proof = dpop.token_request_proof()
    first = client.post("/oauth/token", data=token_form(forge), headers={"DPoP": proof})
    assert first.status_code == 200, first.text
    second = client.post("/oauth/token", data=token_form(forge), headers={"DPoP": proof})
    assert_token_refused(second, services, error="invalid_dpop_proof", reason="already presented")


def test_forged_assertion_with_a_good_proof_is_still_invalid_client(
    client: TestClient, services: AuthServices, forge: Forge, dpop: DpopCaller
) -> None:
    # Client authentication comes first: the proof never decides who the client is.
    form = {**token_form(forge), "client_assertion": "a.b.c"}
    response = client.post("/oauth/token", data=form, headers={"DPoP": dpop.token_request_proof()})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert only_event(services)["reasons"][0]["code"] == "invalid_client"


# --- proof defects, at the API and at the token endpoint -----------------------------

Defect = Callable[[DpopCaller, str, str, str], str]
"""(caller, method, url, token) -> the proof to send."""


def _signed_by_header_only(dpop: DpopCaller, method: str, url: str, token: str) -> str:
    # The header names one key, another key signs: the signature does not verify.
    return dpop.proof(htm=method, htu=url, access_token=token, signer=generate_signing_key())


def _private_jwk(dpop: DpopCaller, method: str, url: str, token: str) -> str:
    # The key with its private scalar `d` (what a careless client serialises).
    raw = dpop.key.key.private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    jwk = {**dpop.key.jwk, "d": b64url(raw)}
    return dpop.proof(htm=method, htu=url, access_token=token, headers={"jwk": jwk})


def _by_hand(alg: str) -> Defect:
    """alg none or HS256, assembled byte by byte (pyjwt rightly refuses to make them)."""

    def build(dpop: DpopCaller, method: str, url: str, token: str) -> str:
        header = {"typ": "dpop+jwt", "alg": alg, "jwk": dpop.key.jwk}
        payload = {
            "jti": "hand-made",
            "htm": method,
            "htu": url,
            "iat": int(dpop.clock.now().timestamp()),
            "ath": access_token_hash(token),
            "nonce": dpop.nonce(),
        }
        if alg == "none":
            return unsigned_token(header, payload)
        # HMAC keyed with the public key's x: the classic confusion attempt.
        return hs256_token(header, payload, secret=dpop.key.jwk["x"].encode())

    return build


def _p(defect: Defect, reason: str, id_: str) -> Any:
    return pytest.param(defect, reason, id=id_)


def _claims(**claims: Any) -> Defect:
    return lambda d, m, u, t: d.proof(htm=m, htu=u, access_token=t, claims=claims)


def _headers(**headers: Any) -> Defect:
    return lambda d, m, u, t: d.proof(htm=m, htu=u, access_token=t, headers=headers)


def _ts(dpop: DpopCaller, offset: int) -> int:
    return int(dpop.clock.now().timestamp()) + offset


# Defects of the proof itself: refused alike at the token endpoint and the API.
PROOF_DEFECTS = [
    # The wrong method: a proof for a GET replayed on a POST (RFC 9449 §4.3 step 8).
    _p(lambda d, _m, u, t: d.proof(htm="PUT", htu=u, access_token=t), "expected htm", "wrong-htm"),
    # htm in lower case: methods are case-sensitive.
    _p(
        lambda d, m, u, t: d.proof(htm=m.lower(), htu=u, access_token=t),
        "expected htm",
        "htm-lower-case",
    ),
    # Another host: a proof made for some other server (step 9).
    _p(
        lambda d, m, u, t: d.proof(
            htm=m, htu=u.replace("127.0.0.1", "evil.example"), access_token=t
        ),
        "expected htu",
        "htu-other-host",
    ),
    # Another port on the same host.
    _p(
        lambda d, m, u, t: d.proof(htm=m, htu=u.replace(":8400", ":8401"), access_token=t),
        "expected htu",
        "htu-other-port",
    ),
    # https where the issuer is http.
    _p(
        lambda d, m, u, t: d.proof(htm=m, htu=u.replace("http:", "https:"), access_token=t),
        "expected htu",
        "htu-other-scheme",
    ),
    # Another path on the right host.
    _p(
        lambda d, m, u, t: d.proof(htm=m, htu=u + "/other", access_token=t),
        "expected htu",
        "htu-other-path",
    ),
    # The right URL with a query: RFC 9449 §4.2 says htu has none.
    _p(
        lambda d, m, u, t: d.proof(htm=m, htu=u + "?case=1", access_token=t),
        "without query",
        "htu-with-query",
    ),
    # An empty query still is one.
    _p(
        lambda d, m, u, t: d.proof(htm=m, htu=u + "?", access_token=t),
        "without query",
        "htu-with-empty-query",
    ),
    # A fragment.
    _p(
        lambda d, m, u, t: d.proof(htm=m, htu=u + "#x", access_token=t),
        "without query",
        "htu-with-fragment",
    ),
    # Not a URL at all.
    _p(_claims(htu="/relative/path"), "absolute URL", "htu-relative"),
    # Made 61 s ago: one second past the window (step 11).
    _p(lambda d, m, u, t: _claims(iat=_ts(d, -61))(d, m, u, t), "s ago", "stale-iat"),
    # Made 6 s in the future: one second past the forward skew.
    _p(lambda d, m, u, t: _claims(iat=_ts(d, 6))(d, m, u, t), "ahead", "future-iat"),
    # iat as a string.
    _p(_claims(iat="now"), "NumericDate", "iat-string"),
    # RFC 9449 §4.2 makes jti, htm, htu and iat REQUIRED.
    _p(_claims(jti=REMOVE), "expected claim 'jti'", "no-jti"),
    _p(_claims(htm=REMOVE), "expected claim 'htm'", "no-htm"),
    _p(_claims(htu=REMOVE), "expected claim 'htu'", "no-htu"),
    _p(_claims(iat=REMOVE), "expected claim 'iat'", "no-iat"),
    # A jti longer than any random identifier.
    _p(_claims(jti="j" * 201), "jti of 1 to 200", "jti-too-long"),
    # The header's key did not sign it.
    _p(_signed_by_header_only, "does not verify", "signature-by-other-key"),
    # The proof brings its private key (step 7): refused, whatever else holds.
    _p(_private_jwk, "private members ['d']", "jwk-with-private-d"),
    # Symmetric key material as the proof key.
    _p(_headers(jwk={"kty": "oct", "k": "c2VjcmV0"}), "private members ['k']", "jwk-symmetric"),
    # No key at all.
    _p(_headers(jwk=REMOVE), "expected a jwk object", "no-jwk"),
    # A key found elsewhere: never fetched.
    _p(_headers(jku="https://evil.example/jwks.json"), "jwk only", "jku-header"),
    _p(_headers(x5c=["MIIB"]), "jwk only", "x5c-header"),
    # An extension we do not understand, marked critical.
    _p(_headers(crit=["exp"], exp=1), "critical", "crit-header"),
    # The wrong typ: a plain JWT, or an access token's (step 4).
    _p(_headers(typ="JWT"), "expected typ 'dpop+jwt'", "typ-jwt"),
    _p(_headers(typ="at+jwt"), "expected typ 'dpop+jwt'", "typ-at-jwt"),
    _p(_headers(typ=REMOVE), "expected typ 'dpop+jwt'", "no-typ"),
    # alg none and HS256 (step 5).
    _p(_by_hand("none"), "expected alg in", "alg-none"),
    _p(_by_hand("HS256"), "expected alg in", "alg-hs256"),
    # An EdDSA key whose header claims ES256.
    _p(
        lambda d, m, u, t: d.proof(
            htm=m, htu=u, access_token=t, signer=generate_signing_key("ES256")
        ),
        "expected alg 'EdDSA'",
        "alg-not-the-keys",
    ),
    # 9 KiB: bigger than any genuine proof.
    _p(_claims(pad="p" * 9000), "at most 8192 bytes", "oversized"),
    # Not a JWS.
    _p(lambda *_: "not-a-proof", "three parts", "not-a-jws"),
    _p(lambda *_: "a.b.c", "does not parse", "garbage-jws"),
]

# Defects that only an API call can have: the proof against the token (RFC 9449 §7.1).
API_DEFECTS = [
    # ath of another token: a proof made for a different token.
    _p(
        lambda d, m, u, t: d.proof(htm=m, htu=u, access_token=t + "x"),
        "expected ath",
        "ath-of-another-token",
    ),
    # No ath at all.
    _p(lambda d, m, u, _t: d.proof(htm=m, htu=u), "expected an ath claim", "no-ath"),
    # A perfect proof by another key: the stolen-token case (§4.3 step 12).
    _p(
        lambda d, m, u, t: ProofKey().proof(
            htm=m, htu=u, now=d.clock.now(), access_token=t, nonce=d.nonce()
        ),
        "expected a proof signed by the token's key",
        "proof-by-another-key",
    ),
]


@pytest.mark.parametrize(("defect", "reason"), PROOF_DEFECTS + API_DEFECTS)
def test_api_call_with_a_defective_proof_is_refused_and_logged(
    client: TestClient,
    services: AuthServices,
    forge: Forge,
    dpop: DpopCaller,
    defect: Defect,
    reason: str,
) -> None:
    token = bound_token(client, forge, dpop)
    proof = defect(dpop, "GET", PROBE_URL, token)
    response = client.get(PROBE, headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    event = assert_api_refused(response, services, code="invalid_dpop_proof", reason=reason)
    # The presenter is not proven to be the token's principal: none is named.
    assert event["requester"] == {"partner": None}


@pytest.mark.parametrize(("defect", "reason"), PROOF_DEFECTS)
def test_token_request_with_a_defective_proof_is_refused_and_logged(
    client: TestClient,
    services: AuthServices,
    forge: Forge,
    dpop: DpopCaller,
    defect: Defect,
    reason: str,
) -> None:
    proof = defect(dpop, "POST", TOKEN_ENDPOINT, "")
    response = client.post("/oauth/token", data=token_form(forge), headers={"DPoP": proof})
    assert_token_refused(response, services, error="invalid_dpop_proof", reason=reason)
    assert "access_token" not in response.text


def test_api_call_without_a_proof_is_refused(
    client: TestClient, services: AuthServices, forge: Forge, dpop: DpopCaller
) -> None:
    token = bound_token(client, forge, dpop)
    response = client.get(PROBE, headers={"Authorization": f"DPoP {token}"})
    assert_api_refused(response, services, code="invalid_dpop_proof", reason="got 0")


def test_api_call_with_two_proofs_is_refused(
    client: TestClient, services: AuthServices, forge: Forge, dpop: DpopCaller
) -> None:
    # Which one a proxy checked and which one we read could differ (§4.3 step 1).
    token = bound_token(client, forge, dpop)
    headers = dpop.headers(token, PROBE)
    response = client.get(
        PROBE,
        headers=[
            ("Authorization", headers["Authorization"]),
            ("DPoP", headers["DPoP"]),
            ("DPoP", dpop.headers(token, PROBE)["DPoP"]),
        ],
    )
    assert_api_refused(response, services, code="invalid_dpop_proof", reason="got 2")


def test_replayed_proof_is_refused_and_logged(
    client: TestClient, services: AuthServices, forge: Forge, dpop: DpopCaller
) -> None:
    token = bound_token(client, forge, dpop)
    headers = dpop.headers(token, PROBE)
    assert client.get(PROBE, headers=headers).status_code == 200
    response = client.get(PROBE, headers=headers)
    assert_api_refused(response, services, code="invalid_dpop_proof", reason="already presented")


def test_forged_proof_does_not_burn_the_genuine_jti(
    client: TestClient, services: AuthServices, forge: Forge, dpop: DpopCaller
) -> None:
    # An attacker who learns a jti in advance signs with another key: it must
    # fail before the cache, or the genuine proof would be refused.
    token = bound_token(client, forge, dpop)
    genuine = dpop.headers(token, PROBE)
    jti = jwt.decode(genuine["DPoP"], options={"verify_signature": False})["jti"]
    forged = ProofKey().proof(
        htm="GET",
        htu=PROBE_URL,
        now=dpop.clock.now(),
        access_token=token,
        nonce=dpop.nonce(),
        claims={"jti": jti},
    )
    refused = client.get(PROBE, headers={**genuine, "DPoP": forged})
    assert refused.status_code == 401
    assert client.get(PROBE, headers=genuine).status_code == 200


def test_iat_window_edges_are_exact(client: TestClient, forge: Forge, dpop: DpopCaller) -> None:
    token = bound_token(client, forge, dpop)
    for offset in (-MAX_PROOF_AGE_SECONDS, MAX_PROOF_FUTURE_SECONDS):
        proof = dpop.proof(
            htm="GET", htu=PROBE_URL, access_token=token, claims={"iat": _ts(dpop, offset)}
        )
        response = client.get(PROBE, headers={"Authorization": f"DPoP {token}", "DPoP": proof})
        assert response.status_code == 200, (offset, response.text)


# --- server nonces on the API (RFC 9449 §9) -----------------------------------------


def test_api_call_without_a_nonce_is_challenged_with_a_fresh_one(
    client: TestClient, services: AuthServices, forge: Forge, dpop: DpopCaller
) -> None:
    token = bound_token(client, forge, dpop)
    response = client.get(PROBE, headers=dpop.headers(token, PROBE, nonce=None))
    assert_api_refused(response, services, code="use_dpop_nonce", reason="expected a nonce claim")
    nonce = response.headers["dpop-nonce"]
    retry = client.get(PROBE, headers=dpop.headers(token, PROBE, nonce=nonce))
    assert retry.status_code == 200, retry.text


@pytest.mark.parametrize(
    ("age", "admitted"),
    [
        (299, True),  # the last second of its life
        (300, False),  # the lifetime is up
    ],
)
def test_nonce_lifetime_is_exact(
    client: TestClient,
    services: AuthServices,
    forge: Forge,
    dpop: DpopCaller,
    nonces: DpopNonces,
    clock: SteppingClock,
    age: int,
    admitted: bool,
) -> None:
    token = bound_token(client, forge, dpop)  # lives 300 s, +30 s leeway
    nonce = nonces.issue(now=clock.now())
    clock.advance(age)
    response = client.get(PROBE, headers=dpop.headers(token, PROBE, nonce=nonce))
    if admitted:
        assert response.status_code == 200, response.text
    else:
        assert_api_refused(response, services, code="use_dpop_nonce", reason="at most 300 s old")


def _tampered(nonce: str) -> str:
    """One character of the MAC changed."""
    return nonce[:-2] + ("A" if nonce[-2] != "A" else "B") + nonce[-1]


@pytest.mark.parametrize(
    "nonce",
    [
        # Made with another broker's key.
        lambda _n, c: DpopNonces.from_signing_key(generate_signing_key()).issue(now=c.now()),
        # A genuine nonce with one character changed.
        lambda n, c: _tampered(n.issue(now=c.now())),
        # 65 characters: beyond the bound, refused unparsed.
        lambda _n, _c: "n" * 65,
    ],
    ids=["other-broker", "tampered", "oversized"],
)
def test_api_call_with_a_forged_nonce_is_challenged(
    client: TestClient,
    services: AuthServices,
    forge: Forge,
    dpop: DpopCaller,
    nonces: DpopNonces,
    clock: SteppingClock,
    nonce: Callable[[DpopNonces, SteppingClock], str],
) -> None:
    token = bound_token(client, forge, dpop)
    response = client.get(PROBE, headers=dpop.headers(token, PROBE, nonce=nonce(nonces, clock)))
    assert_api_refused(response, services, code="use_dpop_nonce", reason="expected a nonce")
    assert response.headers["dpop-nonce"]


# --- tokens and schemes (RFC 9449 §7.1, §7.2) ---------------------------------------


def test_bound_token_as_a_bearer_token_is_refused(
    client: TestClient, services: AuthServices, forge: Forge, dpop: DpopCaller
) -> None:
    # A bound token leaked into a log: without the key it is worth nothing,
    # also not by calling it a bearer token.
    token = bound_token(client, forge, dpop)
    response = client.get(PROBE, headers={"Authorization": f"Bearer {token}"})
    assert_api_refused(response, services, code="invalid_token", reason="DPoP-bound token")


def test_bearer_token_is_refused_for_a_partner_without_bearer_allowed(
    client: TestClient, services: AuthServices
) -> None:
    token = services.token_issuer.issue(
        principal=VICTIM,
        role="gemeente",
        function=None,
        scopes=frozenset({"exchange"}),
        now=services.clock.now(),
    ).access_token
    response = client.get(PROBE, headers={"Authorization": f"Bearer {token}"})
    # The challenge names the scheme the convenant wants (the lead's contract).
    assert response.headers["www-authenticate"].startswith('DPoP error="invalid_token"')
    assert_api_refused(response, services, code="invalid_token", reason="no bearer tokens")


def test_unbound_token_with_the_dpop_scheme_is_refused(
    client: TestClient, services: AuthServices, dpop: DpopCaller
) -> None:
    token = services.token_issuer.issue(
        principal=VICTIM,
        role="gemeente",
        function=None,
        scopes=frozenset({"exchange"}),
        now=services.clock.now(),
    ).access_token
    response = client.get(PROBE, headers=dpop.headers(token, PROBE))
    assert_api_refused(response, services, code="invalid_token", reason="unbound token")


@pytest.mark.parametrize(
    "cnf",
    [
        {"jkt": "short"},  # not a SHA-256 thumbprint
        {"jkt": "A" * 43, "x5t#S256": "A" * 43},  # a second confirmation method
        {"x5t#S256": "A" * 43},  # certificate binding: not ours
        "A" * 43,  # not an object
    ],
)
def test_token_with_a_foreign_cnf_is_refused(
    client: TestClient, services: AuthServices, keystore: KeyStore, dpop: DpopCaller, cnf: Any
) -> None:
    # Signed by the broker's key with a cnf the broker never writes: refused,
    # not read as "unbound" (which would make it a bearer token).
    token = services.token_issuer.issue(
        principal=VICTIM,
        role="gemeente",
        function=None,
        scopes=frozenset({"exchange"}),
        now=services.clock.now(),
        jkt=dpop.key.jkt,
    ).access_token
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["cnf"] = cnf
    broker = keystore.signing_key("broker")
    token = jwt.encode(
        claims,
        broker.private_key,
        algorithm=broker.alg,
        headers={"typ": "at+jwt", "kid": broker.kid},
    )
    response = client.get(PROBE, headers=dpop.headers(token, PROBE))
    assert_api_refused(response, services, code="invalid_token", reason="cnf")


# --- a convenant that allows one partner bearer tokens -------------------------------


@pytest.fixture
def bearer_services(services: AuthServices) -> AuthServices:
    return dataclasses.replace(
        services, convenant=with_bearer_allowed(services.convenant, BEARER_PARTNER)
    )


@pytest.fixture
def bearer_client(bearer_services: AuthServices) -> Iterator[TestClient]:
    with TestClient(build_app(bearer_services)) as test_client:
        yield test_client


def test_bearer_allowed_partner_gets_and_uses_a_bearer_token(
    bearer_client: TestClient, bearer_services: AuthServices, forge: Forge
) -> None:
    granted = bearer_client.post("/oauth/token", data=token_form(forge, BEARER_PARTNER))
    assert granted.status_code == 200, granted.text
    assert granted.json()["token_type"] == "Bearer"
    token = granted.json()["access_token"]
    assert "cnf" not in jwt.decode(token, options={"verify_signature": False})
    response = bearer_client.get(PROBE, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.json()["principal"] == BEARER_PARTNER
    assert security_events(bearer_services) == []


def test_bearer_allowed_partner_with_a_proof_still_gets_a_bound_token(
    bearer_client: TestClient, forge: Forge, dpop: DpopCaller
) -> None:
    # RFC 9449 §5: a proof with the request binds the token, whatever else is allowed.
    granted = bearer_client.post(
        "/oauth/token",
        data=token_form(forge, BEARER_PARTNER),
        headers={"DPoP": dpop.token_request_proof()},
    )
    assert granted.json()["token_type"] == "DPoP"
    token = granted.json()["access_token"]
    assert bearer_client.get(PROBE, headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert bearer_client.get(PROBE, headers=dpop.headers(token, PROBE)).status_code == 200


def test_bearer_allowance_is_per_partner(
    bearer_client: TestClient, bearer_services: AuthServices, forge: Forge
) -> None:
    # The variant convenant allows the police bearer tokens, not the gemeente.
    refused = bearer_client.post("/oauth/token", data=token_form(forge, VICTIM))
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_dpop_proof"


def test_bearer_caller_lacking_scope_is_challenged_as_bearer(
    bearer_client: TestClient, bearer_services: AuthServices
) -> None:
    token = bearer_services.token_issuer.issue(
        principal=BEARER_PARTNER,
        role="politie",
        function=None,
        scopes=frozenset({"cases:read"}),
        now=bearer_services.clock.now(),
    ).access_token
    response = bearer_client.get(PROBE, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    # RFC 6750 §3: the scheme the caller used, since the broker accepted it.
    assert (
        response.headers["www-authenticate"]
        == 'Bearer error="insufficient_scope", scope="exchange"'
    )


# --- the SDK client against the real edge --------------------------------------------


def sdk_client(
    client: TestClient, keystore: KeyStore, clock: SteppingClock, principal: str = VICTIM
) -> BrokerClient:
    """BrokerClient talking to the probe app through the TestClient (an httpx.Client)."""
    return BrokerClient(
        base_url=ISSUER,
        client_id=principal,
        signing_key=keystore.signing_key(principal),
        http=client,
        clock=clock,
    )


def test_sdk_client_binds_its_token_with_a_nonce_from_the_metadata(
    client: TestClient, services: AuthServices, keystore: KeyStore, clock: SteppingClock
) -> None:
    sdk = sdk_client(client, keystore, clock)
    assert sdk.get(PROBE).status_code == 200
    assert sdk.authorization()[0] == "DPoP"
    assert sdk.get(PROBE).status_code == 200
    # The metadata's nonce (RFC 9449 §8.2) made the first token request pass,
    # and the token answer's the API calls: no challenge, nothing refused.
    assert security_events(services) == []


def test_sdk_client_answers_the_token_endpoints_nonce_challenge(
    client: TestClient, services: AuthServices, keystore: KeyStore, clock: SteppingClock
) -> None:
    def no_nonce_in_metadata(response: httpx.Response) -> None:
        if response.request.url.path == "/.well-known/oauth-authorization-server":
            del response.headers["dpop-nonce"]

    client.event_hooks = {"request": [], "response": [no_nonce_in_metadata]}
    sdk = sdk_client(client, keystore, clock)
    assert sdk.get(PROBE).status_code == 200
    # Its first token request had no nonce: one challenge (§8), logged like
    # every refusal, then the retry with the nonce that came with it.
    (event,) = security_events(services)
    assert (event["event"], event["reasons"][0]["code"]) == ("token_refused", "use_dpop_nonce")


def test_metadata_answer_carries_a_live_nonce(
    client: TestClient, nonces: DpopNonces, clock: SteppingClock
) -> None:
    response = client.get("/.well-known/oauth-authorization-server")
    nonces.verify(response.headers["dpop-nonce"], now=clock.now())


@pytest.mark.parametrize(
    ("path", "params", "ref"),
    [
        # A query: not part of htu (RFC 9449 §4.2), on either side.
        ("/probe/items/plain", {"q": "1", "r": "two words"}, "plain"),
        # A path that must be percent-encoded: the proof's htu is what is sent.
        ("/probe/items/a b", None, "a b"),
        ("/probe/items/caf\u00e9", None, "caf\u00e9"),
        # An unreserved character the client chose to encode.
        ("/probe/items/%7Etilde", None, "~tilde"),
    ],
)
def test_sdk_proofs_fit_queries_and_encoded_paths(
    client: TestClient,
    services: AuthServices,
    keystore: KeyStore,
    clock: SteppingClock,
    path: str,
    params: dict[str, str] | None,
    ref: str,
) -> None:
    sdk = sdk_client(client, keystore, clock)
    response = sdk.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.json()["ref"] == ref


def test_sdk_client_retries_once_when_its_nonce_went_stale(
    client: TestClient, services: AuthServices, keystore: KeyStore, clock: SteppingClock
) -> None:
    client_clock = SteppingClock(clock.now())
    sdk = sdk_client(client, keystore, client_clock)
    assert sdk.get(PROBE).status_code == 200
    # The broker's time runs 301 s on (the nonce's lifetime is up, the token's
    # is not, with leeway); the client's 250 s (its token is not due for renewal).
    clock.advance(301)
    client_clock.advance(250)
    response = sdk.get(PROBE)
    assert response.status_code == 200, response.text
    codes = [e["reasons"][0]["code"] for e in security_events(services)]
    assert codes == ["use_dpop_nonce"]  # the API's challenge, answered by the one retry


def test_sdk_client_of_a_bearer_partner_sends_proofs_and_gets_dpop(
    bearer_client: TestClient, keystore: KeyStore, clock: SteppingClock
) -> None:
    # The SDK always proves possession; the broker then binds (§5).
    sdk = sdk_client(bearer_client, keystore, clock, BEARER_PARTNER)
    assert sdk.get(PROBE).status_code == 200
    assert sdk.authorization()[0] == "DPoP"


def test_sdk_client_retries_a_nonce_challenge_only_once(keystore: KeyStore) -> None:
    # A broker that challenges every time: the client retries once, with the
    # nonce it was given, then reports the refusal instead of looping.
    seen: list[tuple[str, str | None]] = []
    app = FastAPI()

    @app.post("/oauth/token")
    def token(request: Request) -> JSONResponse:
        proof = request.headers.get("dpop")
        seen.append(
            ("token", jwt.decode(proof or "", options={"verify_signature": False}).get("nonce"))
        )
        return JSONResponse(
            {"error": "use_dpop_nonce", "error_description": "x"},
            status_code=400,
            headers={"DPoP-Nonce": f"n{len(seen)}"},
        )

    with (
        TestClient(app) as http,
        sdk_client_on(http, keystore) as sdk,
        pytest.raises(TokenRequestError) as caught,
    ):
        sdk.token()
    assert caught.value.error == "use_dpop_nonce"
    assert seen == [("token", None), ("token", "n1")]


def test_sdk_client_retries_an_api_nonce_challenge_only_once(keystore: KeyStore) -> None:
    seen: list[str | None] = []
    app = FastAPI()

    @app.post("/oauth/token")
    def token() -> JSONResponse:
        body = {"access_token": "t0k3n", "token_type": "DPoP", "expires_in": 300, "scope": "x"}
        return JSONResponse(body, headers={"DPoP-Nonce": "n0"})

    @app.get("/v1/thing")
    def thing(request: Request) -> JSONResponse:
        proof = jwt.decode(request.headers["dpop"], options={"verify_signature": False})
        seen.append(proof.get("nonce"))
        return JSONResponse(
            {"code": "use_dpop_nonce"},
            status_code=401,
            headers={
                "WWW-Authenticate": f'DPoP error="use_dpop_nonce", {ALGS}',
                "DPoP-Nonce": f"n{len(seen)}",
            },
        )

    with TestClient(app) as http, sdk_client_on(http, keystore) as sdk:
        assert sdk.get("/v1/thing").status_code == 401
    # The nonce from the token answer, then the one from the challenge.
    assert seen == ["n0", "n1"]


def sdk_client_on(http: TestClient, keystore: KeyStore) -> BrokerClient:
    return BrokerClient(
        base_url=ISSUER, client_id=VICTIM, signing_key=keystore.signing_key(VICTIM), http=http
    )


# --- racing a replayed proof against a real server -----------------------------------


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def racing_services(request: pytest.FixtureRequest, services: AuthServices) -> AuthServices:
    if request.param == "memory":
        return dataclasses.replace(services, replay_cache=MemoryReplayCache(clock=services.clock))
    client: redis.Redis = request.getfixturevalue("redis_client")
    namespace: str = request.getfixturevalue("redis_namespace")
    return dataclasses.replace(services, replay_cache=RedisReplayCache(client, namespace=namespace))


def test_racing_replays_of_one_proof_admit_exactly_one(
    racing_services: AuthServices, forge: Forge, dpop: DpopCaller
) -> None:
    app = build_app(racing_services)
    with start_server(app) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        granted = http.post(
            "/oauth/token", data=token_form(forge), headers={"DPoP": dpop.token_request_proof()}
        )
        assert granted.status_code == 200, granted.text
        headers = dpop.headers(granted.json()["access_token"], PROBE)
        barrier = threading.Barrier(RACERS)
        statuses: list[int] = []
        lock = threading.Lock()

        def race() -> None:
            with httpx.Client(base_url=server.url, timeout=10) as own:
                barrier.wait()
                status = own.get(PROBE, headers=headers).status_code
            with lock:
                statuses.append(status)

        threads = [threading.Thread(target=race) for _ in range(RACERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
    assert sorted(statuses) == [200] + [401] * (RACERS - 1)
    events = security_events(racing_services)
    assert len(events) == RACERS - 1
    assert all("already presented" in e["reasons"][0]["detail"] for e in events)


@pytest.mark.redis
def test_proof_jti_is_remembered_past_the_acceptance_window(
    services: AuthServices,
    forge: Forge,
    dpop: DpopCaller,
    redis_client: redis.Redis,
    redis_namespace: str,
) -> None:
    racing = dataclasses.replace(
        services, replay_cache=RedisReplayCache(redis_client, namespace=redis_namespace)
    )
    with TestClient(build_app(racing)) as client:
        token = bound_token(client, forge, dpop)
        headers = dpop.headers(token, PROBE)
        assert client.get(PROBE, headers=headers).status_code == 200
    jti = jwt.decode(headers["DPoP"], options={"verify_signature": False})["jti"]
    remaining_ms = redis_client.pttl(f"{redis_namespace}:dpop:{VICTIM}:{jti}")
    # A proof verifies from iat - 5 s to iat + 60 s: the key must outlive the
    # 65 s left at most, by the 1 s margin (less this test's milliseconds).
    assert replay_ttl_seconds() == MAX_PROOF_FUTURE_SECONDS + MAX_PROOF_AGE_SECONDS + 1 == 66
    assert 65_000 < remaining_ms <= 66_000


# --- the pure verifier ------------------------------------------------------------


def test_thumbprint_matches_rfc8037_example() -> None:
    # RFC 8037 Appendix A.3: the RFC 7638 thumbprint of its Ed25519 example key.
    x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    key = ed25519.Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(x + "="))
    assert key_thumbprint(key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_access_token_hash_is_sha256_base64url() -> None:
    # RFC 9449 §4.2: ath = base64url(SHA-256(ASCII(token))), no padding.
    token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
    assert access_token_hash(token) == b64url(hashlib.sha256(token.encode()).digest())
    assert "=" not in access_token_hash(token)


@pytest.mark.parametrize(
    "htu",
    [
        # Scheme in upper case (RFC 3986 §6.2.2.1).
        "HTTP://127.0.0.1:8400" + PROBE,
        # The default port spelled out (§6.2.3).
        "http://127.0.0.1:8400" + PROBE,
        # An unreserved character percent-encoded (§6.2.2.2).
        "http://127.0.0.1:8400" + PROBE.replace("e", "%65"),
    ],
)
def test_htu_is_compared_after_rfc3986_normalisation(dpop: DpopCaller, htu: str) -> None:
    proof = dpop.proof(htm="GET", htu=htu, access_token="t")
    verified = verify_dpop_proof(
        proof,
        method="GET",
        url=PROBE_URL,
        access_token="t",
        expected_jkt=dpop.key.jkt,
        nonces=dpop.nonces,
        now=dpop.clock.now(),
    )
    assert verified.jkt == dpop.key.jkt


def test_default_port_is_the_same_url(clock: SteppingClock) -> None:
    key = ProofKey()
    proof = key.proof(htm="GET", htu="https://broker.example:443/v1/x", now=clock.now())
    verify_dpop_proof(
        proof,
        method="GET",
        url="https://broker.example/v1/x",
        access_token=None,
        expected_jkt=None,
        nonces=None,
        now=clock.now(),
    )


def test_errors_sit_under_invalid_token() -> None:
    # The API edge renders every DPoP refusal through the access-token handler.
    assert issubclass(InvalidDpopProofError, InvalidTokenError)
    assert issubclass(UseDpopNonceError, InvalidDpopProofError)
    assert UseDpopNonceError.code == "use_dpop_nonce"
    assert InvalidDpopProofError.code == "invalid_dpop_proof"


def test_nonce_needs_a_real_key() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        DpopNonces(key=b"short")


def test_proof_segments_are_never_echoed(
    client: TestClient, services: AuthServices, forge: Forge, dpop: DpopCaller
) -> None:
    token = bound_token(client, forge, dpop)
    proof = dpop.proof(htm="GET", htu=PROBE_URL + "/x", access_token=token)
    response = client.get(PROBE, headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    assert response.status_code == 401
    for segment in proof.split("."):
        assert segment not in response.text
    assert json_segment({"typ": "dpop+jwt"})[:8] not in only_event(services)["reasons"][0]["detail"]
