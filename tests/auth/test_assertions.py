"""The client-assertion verifier (RFC 7523 §3), as a pure function.

No HTTP, no cache, no clock: each test passes `now`. The same forgery table
runs over HTTP in test_oauth_routes.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta

import pytest

from broker.auth.assertions import VerifiedAssertion, verify_client_assertion
from broker.auth.metadata import assertion_audiences
from broker.convenant import Convenant
from broker.errors import InvalidClientError
from broker.keys import KeyStore, PublicKeySet, TrustedKey, generate_signing_key
from tests.auth.forgeries import (
    FORGED_ASSERTIONS,
    ISSUER,
    OTHER_PARTNER,
    TOKEN_ENDPOINT,
    VICTIM,
    Build,
    Forge,
)
from tests.auth.helpers import unsigned_token

AUDIENCES = assertion_audiences(ISSUER)


def verify(
    forge: Forge, client_id: str, assertion: str, *, keys: PublicKeySet | None = None
) -> VerifiedAssertion:
    return verify_client_assertion(
        assertion,
        client_id=client_id,
        keys=keys if keys is not None else forge.keystore.public_keyset(client_id),
        audiences=AUDIENCES,
        now=forge.now,
    )


@pytest.mark.parametrize(
    "audience",
    [
        ISSUER,  # the issuer identifier
        TOKEN_ENDPOINT,  # the token endpoint URL (RFC 7523 §3 item 3 allows either)
        [TOKEN_ENDPOINT, "https://elsewhere.example"],  # a list naming one of them
    ],
)
def test_genuine_assertion_is_accepted(forge: Forge, audience: str | list[str]) -> None:
    assertion = forge.assertion(audience=audience, lifetime_seconds=120)
    verified = verify(forge, VICTIM, assertion)
    assert verified.client_id == VICTIM
    assert verified.expires_at == forge.now + timedelta(seconds=120)
    assert len(verified.jti) > 10


def test_es256_client_key_is_accepted(forge: Forge) -> None:
    key = generate_signing_key("ES256")
    keys = PublicKeySet([TrustedKey(kid=key.kid, alg="ES256", public_key=key.public_key)])
    assert verify(forge, VICTIM, forge.assertion(key=key), keys=keys).client_id == VICTIM


@pytest.mark.parametrize(
    ("lifetime", "skew"),
    [
        (300, 0),  # exp exactly five minutes ahead: the contract's maximum
        (330, 0),  # five minutes plus the 30 s leeway for the partner's clock
        (60, 30),  # iat 30 s ahead of us: the partner's clock runs fast, within leeway
    ],
)
def test_edges_of_the_acceptance_window_are_accepted(
    forge: Forge, lifetime: int, skew: int
) -> None:
    claims = {"iat": forge.ts(skew), "exp": forge.ts(lifetime)}
    assert verify(forge, VICTIM, forge.assertion(claims=claims)).client_id == VICTIM


def test_assertion_expired_within_leeway_is_still_accepted(forge: Forge) -> None:
    assertion = forge.assertion(claims={"iat": forge.ts(-90), "exp": forge.ts(-29)})
    assert verify(forge, VICTIM, assertion).client_id == VICTIM


@pytest.mark.parametrize(("build", "reason"), FORGED_ASSERTIONS)
def test_forged_assertion_is_rejected(
    forge: Forge, convenant: Convenant, build: Build, reason: str
) -> None:
    client_id, assertion = build(forge)
    # An unknown client has no pinned keys; the verifier sees an empty set.
    known = convenant.role_of(client_id) is not None
    keys = forge.keystore.public_keyset(client_id) if known else PublicKeySet([])
    with pytest.raises(InvalidClientError, match=re.escape(reason)):
        verify(forge, client_id, assertion, keys=keys)


@pytest.mark.parametrize(
    ("build", "expected", "got"),
    [
        # The aud check names both the audiences and the look-alike it got.
        (lambda f: f.assertion(audience=ISSUER + "/"), ISSUER, repr(ISSUER + "/")),
        # The iss check names the client and the impostor.
        (lambda f: f.assertion(claims={"iss": OTHER_PARTNER}), repr(VICTIM), repr(OTHER_PARTNER)),
        # The alg check names the allow-list and the algorithm tried.
        (lambda f: unsigned_token({"alg": "HS256"}, f.claims()), "EdDSA", "'HS256'"),
    ],
)
def test_rejection_says_expected_and_got(
    forge: Forge, build: Callable[[Forge], str], expected: str, got: str
) -> None:
    with pytest.raises(InvalidClientError) as caught:
        verify(forge, VICTIM, build(forge))
    message = str(caught.value)
    assert expected in message
    assert got in message


def test_empty_audience_set_fails_closed(forge: Forge) -> None:
    with pytest.raises(ValueError, match="audience"):
        verify_client_assertion(
            forge.assertion(),
            client_id=VICTIM,
            keys=forge.keystore.public_keyset(VICTIM),
            audiences=frozenset(),
            now=forge.now,
        )


def test_unknown_kid_costs_as_much_as_a_bad_signature(forge: Forge, keystore: KeyStore) -> None:
    """Timing must not tell an unknown client or key from a known one (style.md §18).

    The minimum over many runs is robust against scheduler noise; without the
    decoy verification the unknown-kid path is several times faster.
    """
    keys = keystore.public_keyset(VICTIM)
    unknown_kid = forge.assertion(key=generate_signing_key())
    bad_signature = forge.assertion(
        key=forge.key(OTHER_PARTNER), headers={"kid": forge.victim_kid()}
    )

    def fastest(assertion: str) -> float:
        samples = []
        for _ in range(300):
            started = time.perf_counter()
            with pytest.raises(InvalidClientError):
                verify(forge, VICTIM, assertion, keys=keys)
            samples.append(time.perf_counter() - started)
        return min(samples[50:])  # the first runs warm caches up

    ratio = fastest(unknown_kid) / fastest(bad_signature)
    assert 0.5 < ratio < 2.0, ratio
