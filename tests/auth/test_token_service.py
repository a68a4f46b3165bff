"""The token pipeline without HTTP: ordering, scopes, and the replay window.

Requests carry a fresh DPoP proof with the broker's nonce, as every client of
the example convenant must (RFC 9449 §5); `Proving` adds it. The proof's own
defects are tests/auth/test_dpop.py's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

import pytest
import redis

from broker.auth.dpop import DpopNonces
from broker.auth.oauth_errors import OAuthError
from broker.auth.replay import MemoryReplayCache, RedisReplayCache, ReplayCache
from broker.auth.token_service import TokenService
from broker.auth.tokens import AccessTokenIssuer, IssuedToken, verify_access_token
from broker.convenant import Convenant
from broker.errors import ReplayedAssertionError
from broker.keys import KeyStore, generate_signing_key
from tests.auth.conftest import DpopCaller
from tests.auth.forgeries import ISSUER, OTHER_PARTNER, STRANGER, VICTIM, Forge
from tests.auth.helpers import JWT_BEARER, ProofKey, SteppingClock, payload_of, unsigned_token

RACERS = 16


class Proving:
    """The token service as a DPoP client meets it: each request with a fresh proof."""

    def __init__(self, service: TokenService, dpop: DpopCaller) -> None:
        self.raw = service
        self.dpop = dpop

    def exchange(self, form: Mapping[str, str]) -> IssuedToken:
        return self.raw.exchange(form, dpop_proofs=[self.dpop.token_request_proof()])


def token_service(
    keystore: KeyStore, convenant: Convenant, clock: SteppingClock, cache: ReplayCache
) -> Proving:
    nonces = DpopNonces.from_signing_key(keystore.signing_key("broker"))
    service = TokenService(
        convenant=convenant,
        keys=keystore,
        replay_cache=cache,
        issuer_service=AccessTokenIssuer(
            signing_key=keystore.signing_key("broker"), issuer=ISSUER, ttl_seconds=300
        ),
        issuer_url=ISSUER,
        clock=clock,
        nonces=nonces,
    )
    return Proving(service, DpopCaller(key=ProofKey(), nonces=nonces, clock=clock))


def form(assertion: str, *, client_id: str = VICTIM, scope: str | None = None) -> Mapping[str, str]:
    fields = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
    }
    if scope is not None:
        fields["scope"] = scope
    return fields


@pytest.fixture
def service(keystore: KeyStore, convenant: Convenant, clock: SteppingClock) -> Proving:
    return token_service(keystore, convenant, clock, MemoryReplayCache(clock=clock))


@pytest.fixture
def redis_service(
    keystore: KeyStore,
    convenant: Convenant,
    clock: SteppingClock,
    redis_client: redis.Redis,
    redis_namespace: str,
) -> Proving:
    cache = RedisReplayCache(redis_client, namespace=redis_namespace)
    return token_service(keystore, convenant, clock, cache)


def test_replayed_assertion_is_rejected(service: Proving, forge: Forge) -> None:
    assertion = forge.assertion()
    service.exchange(form(assertion))
    with pytest.raises(OAuthError) as caught:
        service.exchange(form(assertion))
    assert caught.value.error == "invalid_client"
    assert isinstance(caught.value.__cause__, ReplayedAssertionError)


def test_replay_after_the_cache_forgot_is_still_refused_as_expired(
    service: Proving, forge: Forge, clock: SteppingClock
) -> None:
    # The jti is kept until exp + leeway + 1 s; one second after that the
    # cache may forget it, because the assertion itself no longer verifies.
    assertion = forge.assertion(lifetime_seconds=300)
    service.exchange(form(assertion))
    clock.advance(300 + 30 + 1)
    with pytest.raises(OAuthError, match="expected exp after") as caught:
        service.exchange(form(assertion))
    assert caught.value.error == "invalid_client"


def test_forged_assertion_does_not_burn_the_genuine_jti(service: Proving, forge: Forge) -> None:
    # An attacker who learns a jti in advance (say, from a log) signs with
    # their own key: it must fail before the cache, or the real one would.
    genuine = forge.assertion()
    jti = payload_of(genuine)["jti"]
    forged = forge.assertion(key=forge.key(OTHER_PARTNER), claims={"jti": jti})
    with pytest.raises(OAuthError):
        service.exchange(form(forged))
    assert service.exchange(form(genuine)).access_token


def test_assertion_spent_on_a_refused_scope_cannot_be_replayed(
    service: Proving, forge: Forge
) -> None:
    assertion = forge.assertion()
    with pytest.raises(OAuthError) as first:
        service.exchange(form(assertion, scope="audit:read"))
    assert first.value.error == "invalid_scope"
    with pytest.raises(OAuthError) as second:
        service.exchange(form(assertion, scope="exchange"))
    assert second.value.error == "invalid_client"


@pytest.mark.parametrize(
    ("client_id", "scope", "granted"),
    [
        # No scope asked: everything the gemeente's role allows.
        (VICTIM, None, "audit:own cases:read cases:write exchange"),
        # Blank scope: the same as none.
        (VICTIM, "", "audit:own cases:read cases:write exchange"),
        # A subset: exactly that subset, nothing more.
        (VICTIM, "exchange", "exchange"),
        # Extra spaces between tokens are tolerated (RFC 6749 §3.3 delimiter).
        (VICTIM, "cases:read  exchange", "cases:read exchange"),
        # The DPO gets audit:read and nothing else.
        ("fg-lekstroom", None, "audit:read"),
        # A care partner's full set.
        ("ggd-lekstroom", None, "audit:own cases:read exchange"),
    ],
)
def test_granted_scopes_follow_the_convenant(
    service: Proving,
    forge: Forge,
    client_id: str,
    scope: str | None,
    granted: str,
) -> None:
    issued = service.exchange(
        form(forge.assertion(client_id=client_id), client_id=client_id, scope=scope)
    )
    assert issued.scope == granted
    claims = verify_access_token(
        issued.access_token,
        keys=forge.keystore.public_keyset("broker"),
        issuer=ISSUER,
        now=forge.now,
    )
    assert claims.scopes == frozenset(granted.split(" "))
    assert claims.principal == client_id


@pytest.mark.parametrize(
    ("client_id", "scope"),
    [
        # A care partner may not write to the case register.
        ("ggd-lekstroom", "cases:write"),
        # A partner may not read the whole audit log (the DPO's scope).
        (VICTIM, "audit:read"),
        # The DPO may not exchange data.
        ("fg-lekstroom", "exchange"),
        # One allowed scope does not carry a forbidden one along (care: no cases:write).
        ("buurtteam-lekstroom", "cases:read cases:write"),
        # A scope nobody has.
        (VICTIM, "admin"),
        # Case games: scopes are case-sensitive (RFC 6749 §3.3).
        (VICTIM, "Exchange"),
    ],
)
def test_scope_beyond_the_role_is_refused(
    service: Proving, forge: Forge, convenant: Convenant, client_id: str, scope: str
) -> None:
    allowed = convenant.scopes_for(client_id)
    assert not set(scope.split(" ")) <= allowed, (
        "the example convenant now allows this; pick another row"
    )
    with pytest.raises(OAuthError) as caught:
        service.exchange(
            form(forge.assertion(client_id=client_id), client_id=client_id, scope=scope)
        )
    assert caught.value.error == "invalid_scope"
    assert caught.value.status == 400


@pytest.mark.redis
def test_racing_replays_of_one_assertion_yield_exactly_one_token(
    redis_service: Proving, forge: Forge
) -> None:
    assertion = forge.assertion()
    barrier = threading.Barrier(RACERS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def race() -> None:
        barrier.wait()
        try:
            redis_service.exchange(form(assertion))
            outcome = "token"
        except OAuthError as e:
            outcome = e.error
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=race) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(outcomes) == ["invalid_client"] * (RACERS - 1) + ["token"]


@pytest.mark.redis
@pytest.mark.parametrize(
    "lifetime",
    [
        60,  # a typical assertion
        330,  # the longest one accepted: 300 s plus leeway
    ],
)
def test_jti_is_remembered_past_the_assertions_acceptance_window(
    redis_service: Proving,
    forge: Forge,
    redis_client: redis.Redis,
    redis_namespace: str,
    lifetime: int,
) -> None:
    assertion = forge.assertion(lifetime_seconds=lifetime)
    redis_service.exchange(form(assertion))
    key = f"{redis_namespace}:assertion:{VICTIM}:{payload_of(assertion)['jti']}"
    remaining_ms = redis_client.pttl(key)
    # The assertion verifies until exp + 30 s of leeway: the key must outlive
    # that (by the 1 s margin, less the milliseconds this test took).
    assert (lifetime + 30) * 1000 < remaining_ms <= (lifetime + 31) * 1000
    assert remaining_ms <= 361_000


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        # No grant_type at all.
        ({"grant_type": None}, "invalid_request"),
        # The password grant: never.
        ({"grant_type": "password"}, "unsupported_grant_type"),
        # The authorization-code grant: no such endpoint here.
        ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
        # The JWT-bearer grant (RFC 7523 §2.1) is not client authentication.
        ({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer"}, "unsupported_grant_type"),
        # No client_id.
        ({"client_id": None}, "invalid_request"),
        # A SAML assertion type: unsupported client authentication (RFC 6749 §5.2).
        (
            {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"},
            "invalid_client",
        ),
        # No assertion type: no client authentication at all.
        ({"client_assertion_type": None}, "invalid_client"),
        # No assertion.
        ({"client_assertion": None}, "invalid_client"),
        # An empty assertion.
        ({"client_assertion": ""}, "invalid_client"),
    ],
)
def test_malformed_token_request_is_refused_with_its_rfc6749_code(
    service: Proving, forge: Forge, fields: dict[str, str | None], error: str
) -> None:
    request = dict(form(forge.assertion()))
    for name, value in fields.items():
        if value is None:
            request.pop(name)
        else:
            request[name] = value
    with pytest.raises(OAuthError) as caught:
        service.exchange(request)
    assert caught.value.error == error


@pytest.mark.parametrize(
    "kind",
    [
        "alg-none",  # refused at the header, before any key is used
        # The victim's kid, signed by a stranger's key: for the victim a bad
        # signature, for an unknown client an unknown kid (and a decoy check).
        "bad-signature",
    ],
)
def test_unknown_client_answers_in_the_time_a_known_one_does(
    service: Proving, forge: Forge, kind: str
) -> None:
    """Timing must not reveal which client ids exist (style.md §18).

    The minimum over many runs is robust against scheduler noise. Without
    the decoy key-file read, the alg-none row measured 10 µs for a stranger
    against 22 µs for a known client.
    """
    stranger_key = generate_signing_key()

    def attempt(client_id: str) -> str:
        if kind == "alg-none":
            return unsigned_token({"alg": "none"}, forge.claims(client_id))
        return forge.assertion(
            key=stranger_key, client_id=client_id, headers={"kid": forge.victim_kid()}
        )

    def fastest(client_id: str) -> float:
        request = form(attempt(client_id), client_id=client_id)
        samples = []
        for _ in range(400):
            started = time.perf_counter()
            with pytest.raises(OAuthError):
                # No proof: the assertion fails first, and a proof's signing
                # would only add the same noise to both sides.
                service.raw.exchange(request)
            samples.append(time.perf_counter() - started)
        return min(samples[50:])  # the first runs warm caches up

    ratio = fastest(STRANGER) / fastest(VICTIM)
    assert 0.67 < ratio < 1.5, ratio
