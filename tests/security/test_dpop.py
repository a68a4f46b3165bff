"""DPoP (RFC 9449): every defect of a proof, at the API and at the token endpoint.

A partner's token is bound to a DPoP key we hold (`BrokerClient(dpop_key=)`),
so each proof below is signed by the right key unless the row says
otherwise, and carries exactly one defect: wrong `htm` or `htu`, a stale or
future `iat`, a reused `jti`, a wrong `ath`, a key that is not the bound
one, a missing or forged nonce, or a broken header. Each must be a 401
(`invalid_dpop_proof`, or `use_dpop_nonce` with a fresh `DPoP-Nonce`) at
the API, a 400 at the token endpoint (RFC 9449 §5, §8), nothing disclosed,
and one `security_event` naming the code.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from adapters.sdk.client import BrokerClient
from broker.keys import KeyStore, generate_signing_key
from broker.stack import LocalStack
from tests.auth.helpers import REMOVE, b64url, hs256_token, json_segment, unsigned_token
from tests.security.conftest import (
    GEMEENTE,
    Attempt,
    DpopKey,
    StackForge,
    assert_refused,
    attempt,
    entries_after,
    fetch_nonce,
    log_size,
    sign_compact,
    signed_access_token,
    token_form,
    token_hash,
)

pytestmark = pytest.mark.e2e

PROBE = "/v1/convenant"
DPOP_REFUSALS = frozenset({"invalid_dpop_proof", "use_dpop_nonce"})


@dataclass
class Bound:
    """The gemeente's genuine DPoP-bound token, its key, a live nonce, and a way to call."""

    stack: LocalStack
    dpop: DpopKey
    token: str
    nonce: str

    @property
    def url(self) -> str:
        return self.stack.settings.issuer + PROBE

    def proof(self, **kw: Any) -> str:
        """A proof that is right in every respect unless `kw` says otherwise."""
        method = kw.pop("method", "GET")
        url = kw.pop("url", self.url)
        kw.setdefault("token", self.token)
        kw.setdefault("nonce", self.nonce)
        return self.dpop.proof(method, url, **kw)

    def call(
        self, proof: str | list[str] | None, *, scheme: str = "DPoP", token: str | None = None
    ) -> Attempt:
        headers: list[tuple[str, str]] = [("Authorization", f"{scheme} {token or self.token}")]
        proofs = [proof] if isinstance(proof, str) else (proof or [])
        headers += [("DPoP", p) for p in proofs]
        return attempt(
            self.stack, lambda trace: httpx.get(self.url, headers=[*trace.items(), *headers])
        )


@pytest.fixture
def bound(stack: LocalStack, keystore: KeyStore) -> Iterator[Bound]:
    dpop = DpopKey()
    with BrokerClient(
        base_url=stack.broker_url,
        client_id=GEMEENTE,
        signing_key=keystore.signing_key(GEMEENTE),
        dpop_key=dpop.key,
    ) as client:
        scheme, token = client.authorization()
        assert scheme == "DPoP", "the broker must bind the gemeente's token to its key"
        yield Bound(stack=stack, dpop=dpop, token=token, nonce=fetch_nonce(stack))


def assert_proof_refused(
    result: Attempt, *, codes: frozenset[str] = DPOP_REFUSALS, also: Any = ()
) -> dict[str, Any]:
    body = assert_refused(result.response, status=401, also=also)
    assert body["code"] in codes, body
    challenge = result.response.headers["www-authenticate"]
    assert challenge.startswith("DPoP "), challenge
    assert f'error="{body["code"]}"' in challenge, challenge
    if body["code"] == "use_dpop_nonce":
        # RFC 9449 §9: the challenge brings the nonce to use.
        assert result.response.headers.get("DPoP-Nonce"), result.response.headers
    return result.assert_logged(body["code"], kind="security_event", principal=None)


# --- the control ---------------------------------------------------------------------------


def test_a_proof_without_a_defect_is_accepted(bound: Bound) -> None:
    """Without this, every refusal below could be the proof-maker's fault."""
    result = bound.call(bound.proof())
    assert result.response.status_code == 200, result.response.text
    assert not result.records


# --- each defect of a proof -----------------------------------------------------------------


@pytest.mark.parametrize("htm", ["POST", "get", "PUT", "", "GET "])
def test_dpop_proof_with_wrong_htm_is_refused(bound: Bound, htm: str) -> None:
    assert_proof_refused(
        bound.call(bound.proof(method=htm)), codes=frozenset({"invalid_dpop_proof"})
    )


def _other_urls(issuer: str) -> list[str]:
    host_port = issuer.removeprefix("http://")
    host, port = host_port.split(":")
    return [
        issuer + "/v1/cases",  # another resource on the same server
        "http://evil.example" + PROBE,  # another host
        "https://" + host_port + PROBE,  # another scheme
        f"http://{host}:{int(port) + 1}{PROBE}",  # another port
        issuer + PROBE + "/",  # a trailing slash is another path
        issuer + PROBE.upper(),  # paths are case-sensitive
        issuer + "/oauth/token",  # the token endpoint's proof, replayed at the API
    ]


@pytest.mark.parametrize(
    "which", range(7), ids=["path", "host", "scheme", "port", "slash", "case", "token-endpoint"]
)
def test_dpop_proof_with_wrong_htu_is_refused(bound: Bound, which: int) -> None:
    url = _other_urls(bound.stack.settings.issuer)[which]
    assert_proof_refused(bound.call(bound.proof(url=url)), codes=frozenset({"invalid_dpop_proof"}))


@pytest.mark.parametrize(
    "iat",
    [
        pytest.param(lambda: int(time.time()) - 300, id="five-minutes-old"),
        pytest.param(lambda: int(time.time()) - 120, id="two-minutes-old"),
        pytest.param(lambda: int(time.time()) + 60, id="a-minute-ahead"),
        pytest.param(lambda: REMOVE, id="missing"),
        pytest.param(lambda: str(int(time.time())), id="a-string"),
        pytest.param(lambda: float("nan"), id="nan"),
    ],
)
def test_dpop_proof_with_stale_or_future_iat_is_refused(bound: Bound, iat: Any) -> None:
    proof = bound.proof(claims={"iat": iat()})
    assert_proof_refused(bound.call(proof), codes=frozenset({"invalid_dpop_proof"}))


def test_dpop_proof_reused_is_refused(bound: Bound) -> None:
    proof = bound.proof()
    assert bound.call(proof).response.status_code == 200
    record = assert_proof_refused(bound.call(proof), codes=frozenset({"invalid_dpop_proof"}))
    assert "already presented" in record["reasons"][0]["detail"]


def test_dpop_proof_reused_by_parallel_requests_is_accepted_once(bound: Bound) -> None:
    """Eight requests with one proof, released at once: one answer, seven refusals."""
    racers = 8
    proof = bound.proof()
    headers = {"Authorization": f"DPoP {bound.token}", "DPoP": proof}
    answers: list[httpx.Response | None] = [None] * racers
    start = threading.Barrier(racers)
    clients = [httpx.Client(timeout=10.0) for _ in range(racers)]

    def race(n: int) -> None:
        start.wait()
        answers[n] = clients[n].get(bound.url, headers=headers)

    size = log_size(bound.stack)
    threads = [threading.Thread(target=race, args=(n,)) for n in range(racers)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        for client in clients:
            client.close()
    statuses = [a.status_code if a is not None else None for a in answers]
    assert statuses.count(200) == 1, f"expected one answer, got {statuses}"
    assert set(statuses) <= {200, 401, 429}, statuses
    replays = [
        e
        for e in entries_after(bound.stack, size)
        if e.get("kind") == "security_event"
        and "already presented" in e["reasons"][0].get("detail", "")
    ]
    assert len(replays) == statuses.count(401)


@pytest.mark.parametrize(
    "ath",
    [
        pytest.param(lambda bound: token_hash(bound.token + "x"), id="another-tokens-hash"),
        pytest.param(lambda _: REMOVE, id="missing"),
        pytest.param(lambda bound: token_hash(bound.token) + "=", id="padded"),
        pytest.param(lambda bound: bound.token, id="the-token-itself"),
        pytest.param(lambda _: None, id="null"),
    ],
)
def test_dpop_proof_with_wrong_ath_is_refused(bound: Bound, ath: Any) -> None:
    proof = bound.proof(claims={"ath": ath(bound)})
    assert_proof_refused(
        bound.call(proof), codes=frozenset({"invalid_dpop_proof"}), also=(bound.token,)
    )


def test_dpop_proof_by_another_key_is_refused(bound: Bound) -> None:
    """A thief with the token but not the key signs a proof with a key of its own."""
    thief = DpopKey()
    proof = thief.proof("GET", bound.url, token=bound.token, nonce=bound.nonce)
    assert_proof_refused(bound.call(proof), codes=frozenset({"invalid_dpop_proof"}))


def test_dpop_proof_naming_the_bound_key_but_signed_by_another_is_refused(bound: Bound) -> None:
    """The bound key's public jwk in the header, the thief's signature under it."""
    proof = bound.proof(signer=generate_signing_key())
    assert_proof_refused(bound.call(proof), codes=frozenset({"invalid_dpop_proof"}))


@pytest.mark.parametrize(
    "nonce",
    [
        pytest.param(REMOVE, id="missing"),
        pytest.param("A" * 43, id="forged"),
        pytest.param("", id="empty"),
        pytest.param("n" * 5000, id="huge"),
        pytest.param(12345, id="a-number"),
    ],
)
def test_dpop_proof_without_a_live_nonce_is_challenged(bound: Bound, nonce: object) -> None:
    """RFC 9449 §9: the broker requires its nonce; the answer carries a fresh one."""
    result = bound.call(bound.proof(claims={"nonce": nonce}))  # REMOVE deletes the claim
    assert_proof_refused(result)


def test_dpop_scheme_without_a_proof_is_refused(bound: Bound) -> None:
    assert_proof_refused(bound.call(None), codes=frozenset({"invalid_dpop_proof"}))


def test_two_dpop_proofs_are_refused(bound: Bound) -> None:
    """RFC 9449 §4.3 step 1: one DPoP header; which of two was checked is the attack."""
    assert_proof_refused(
        bound.call([bound.proof(), bound.proof()]), codes=frozenset({"invalid_dpop_proof"})
    )


PROOF_HEADER_DEFECTS = [
    pytest.param({"typ": "JWT"}, id="typ-jwt"),
    pytest.param({"typ": REMOVE}, id="typ-missing"),
    pytest.param({"typ": "at+jwt"}, id="typ-access-token"),
    pytest.param({"alg": "ES256"}, id="alg-not-the-keys"),
    pytest.param({"jwk": REMOVE}, id="jwk-missing"),
    pytest.param({"jku": "https://attacker.example/jwks.json"}, id="jku"),
    pytest.param({"x5c": ["MIIBszCCAVmgAwIBAgIUQ"]}, id="x5c"),
    pytest.param({"crit": ["kb-ext"], "kb-ext": True}, id="crit"),
]


@pytest.mark.parametrize("headers", PROOF_HEADER_DEFECTS)
def test_dpop_proof_with_a_broken_header_is_refused(bound: Bound, headers: dict[str, Any]) -> None:
    proof = bound.proof(headers=headers)
    assert_proof_refused(bound.call(proof), codes=frozenset({"invalid_dpop_proof"}))


def test_dpop_proof_carrying_the_private_key_is_refused(bound: Bound) -> None:
    """RFC 9449 §4.3 step 6: a jwk with `d` means the client just published its secret."""
    private = bound.dpop.key.private_key.private_bytes_raw()
    jwk = {**bound.dpop.jwk, "d": b64url(private)}
    jwk = {k: v for k, v in jwk.items() if k not in {"kid", "alg", "use"}}
    result = bound.call(bound.proof(headers={"jwk": jwk}))
    assert_proof_refused(result, codes=frozenset({"invalid_dpop_proof"}), also=(jwk["d"],))


def test_dpop_proof_with_an_rsa_key_is_refused(bound: Bound) -> None:
    """A well-formed RS256 proof by an RSA key: outside the allow-list (EdDSA, ES256)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    modulus = key.public_key().public_numbers().n.to_bytes(256, "big")
    jwk = {"kty": "RSA", "n": b64url(modulus), "e": "AQAB"}
    header = {"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk}
    proof = sign_compact(header, _proof_claims(bound), key, "RS256")
    assert_proof_refused(bound.call(proof), codes=frozenset({"invalid_dpop_proof"}))


def _proof_claims(bound: Bound) -> dict[str, Any]:
    return {
        "jti": secrets.token_urlsafe(18),
        "htm": "GET",
        "htu": bound.url,
        "iat": int(time.time()),
        "ath": token_hash(bound.token),
        "nonce": bound.nonce,
    }


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_dpop_proof_unsigned_or_hmac_is_refused(bound: Bound, alg: str) -> None:
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": bound.dpop.jwk}
    claims = _proof_claims(bound)
    if alg == "none":
        proof = unsigned_token(header, claims)
    else:
        proof = hs256_token(header, claims, secret=json_segment(bound.dpop.jwk).encode())
    assert_proof_refused(bound.call(proof), codes=frozenset({"invalid_dpop_proof"}))


def test_oversized_dpop_proof_is_refused(bound: Bound) -> None:
    proof = bound.proof(claims={"pad": "p" * 9000})
    assert_proof_refused(bound.call(proof), codes=frozenset({"invalid_dpop_proof"}))


# --- downgrades -----------------------------------------------------------------------------


def test_dpop_bound_token_presented_as_bearer_is_refused(bound: Bound) -> None:
    """A stolen bound token, used without a proof under the Bearer scheme (RFC 9449 §7.1)."""
    result = bound.call(None, scheme="Bearer")
    body = assert_refused(result.response, status=401, code="invalid_token", also=(bound.token,))
    result.assert_logged(body["code"], kind="security_event", principal=None)


def test_bearer_token_of_a_partner_that_must_use_dpop_is_refused(
    stack: LocalStack, keystore: KeyStore
) -> None:
    """An unbound token (as the broker issued before DPoP) for a partner without bearer_allowed."""
    token = signed_access_token(stack, keystore, GEMEENTE)
    url = stack.settings.issuer + PROBE
    result = attempt(
        stack, lambda trace: httpx.get(url, headers={**trace, "Authorization": f"Bearer {token}"})
    )
    body = assert_refused(result.response, status=401, code="invalid_token")
    assert result.response.headers["www-authenticate"].startswith("DPoP")
    result.assert_logged(body["code"], kind="security_event", principal=None)


def test_unbound_token_with_a_dpop_proof_is_refused(bound: Bound, keystore: KeyStore) -> None:
    """A token without `cnf` has no key to check a proof against: not a DPoP token."""
    token = signed_access_token(bound.stack, keystore, GEMEENTE)
    proof = bound.dpop.proof("GET", bound.url, token=token, nonce=bound.nonce)
    result = bound.call(proof, token=token)
    body = assert_refused(result.response, status=401)
    assert body["code"] in {"invalid_token", "invalid_dpop_proof"}
    result.assert_logged(body["code"], kind="security_event", principal=None)


# --- the token endpoint ---------------------------------------------------------------------


def token_request(
    stack: LocalStack, forge: StackForge, proofs: list[str], *, client_id: str = GEMEENTE
) -> Attempt:
    form = token_form(client_id, forge.assertion(client_id=client_id))
    endpoint = stack.settings.issuer + "/oauth/token"
    return attempt(
        stack,
        lambda trace: httpx.post(
            endpoint, data=form, headers=[*trace.items(), *(("DPoP", p) for p in proofs)]
        ),
    )


def assert_token_refused(
    result: Attempt, *, codes: frozenset[str], client_id: str = GEMEENTE
) -> None:
    body = result.response.json()
    assert_refused(result.response, status=400, code=body.get("error"), problem=False)
    assert body["error"] in codes, body
    assert "access_token" not in result.response.text
    assert result.response.headers.get("DPoP-Nonce"), "every answer carries a nonce (RFC 9449 §8)"
    result.assert_logged(body["error"], kind="security_event", principal=client_id)


@pytest.mark.parametrize(
    "defect",
    [
        pytest.param({"method": "GET"}, id="wrong-htm"),
        pytest.param({"url": "{issuer}/v1/convenant"}, id="wrong-htu"),
        pytest.param({"url": "http://evil.example/oauth/token"}, id="other-host"),
        pytest.param({"claims": {"iat": "{stale}"}}, id="stale-iat"),
        pytest.param({"headers": {"typ": "JWT"}}, id="wrong-typ"),
        pytest.param({"nonce": None}, id="missing-nonce"),
    ],
)
def test_defective_proof_at_the_token_endpoint_buys_no_token(
    stack: LocalStack, forge: StackForge, defect: dict[str, Any]
) -> None:
    issuer = stack.settings.issuer
    dpop = DpopKey()
    kw: dict[str, Any] = {"nonce": fetch_nonce(stack)}
    method, url = "POST", issuer + "/oauth/token"
    for name, value in defect.items():
        if name == "method":
            method = value
        elif name == "url":
            url = value.format(issuer=issuer)
        elif name == "claims":
            kw["claims"] = {"iat": int(time.time()) - 300}
        else:
            kw[name] = value
    result = token_request(stack, forge, [dpop.proof(method, url, **kw)])
    assert_token_refused(result, codes=frozenset({"invalid_dpop_proof", "use_dpop_nonce"}))


def test_token_request_without_a_proof_is_refused(stack: LocalStack, forge: StackForge) -> None:
    """The convenant allows the gemeente no bearer tokens (RFC 9449 §5.2)."""
    assert_token_refused(token_request(stack, forge, []), codes=frozenset({"invalid_dpop_proof"}))


def test_proof_reused_at_the_token_endpoint_is_refused(
    stack: LocalStack, forge: StackForge
) -> None:
    """Two fresh assertions, one proof: the second request is a replay of the proof."""
    proof = DpopKey().proof(
        "POST", stack.settings.issuer + "/oauth/token", nonce=fetch_nonce(stack)
    )
    first = token_request(stack, forge, [proof])
    assert first.response.status_code == 200, first.response.text
    assert first.response.json()["token_type"] == "DPoP"
    assert_token_refused(
        token_request(stack, forge, [proof]), codes=frozenset({"invalid_dpop_proof"})
    )


def test_two_proofs_at_the_token_endpoint_are_refused(stack: LocalStack, forge: StackForge) -> None:
    endpoint = stack.settings.issuer + "/oauth/token"
    nonce = fetch_nonce(stack)
    proofs = [DpopKey().proof("POST", endpoint, nonce=nonce) for _ in range(2)]
    assert_token_refused(
        token_request(stack, forge, proofs), codes=frozenset({"invalid_dpop_proof"})
    )
