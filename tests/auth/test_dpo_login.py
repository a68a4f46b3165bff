"""The DPO's dashboard login under DPoP (broker.dpo.session): proof once, then a sealed session.

A browser signs no DPoP proofs, so the binding is checked at login: the
login code is a DPoP-bound token and a proof for `POST {issuer}/dpo/session`
made with the bound key (`ketenbroker dpo login-code` prints one). The
cookie then holds a session value the broker seals itself. The attacks:
a token seen elsewhere pasted alone, a proof for another request or by
another key, an old or replayed code, a partner's token, and a forged,
tampered or outlived cookie.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from adapters.sdk.client import BrokerClient
from broker.auth.dpop import DpopNonces, InvalidDpopProofError, UseDpopNonceError
from broker.auth.replay import MemoryReplayCache
from broker.convenant import Convenant
from broker.dpo.session import (
    LOGIN_PROOF_MAX_AGE_SECONDS,
    SESSION_PATH,
    DpoLogin,
    DpoSession,
    DpoSessionSealer,
    MissingSessionError,
    NotAnAuditorError,
    spend_login_proof,
    verify_dpo_login,
)
from broker.errors import InvalidTokenError
from broker.keys import KeyStore, generate_signing_key
from tests.auth.conftest import AuthServices, TestClient
from tests.auth.forgeries import ISSUER, VICTIM
from tests.auth.helpers import ProofKey, SteppingClock

FG = "fg-lekstroom"
SESSION_URL = ISSUER + SESSION_PATH


class Login:
    """What the DPO's tool holds after `ketenbroker dpo login-code`: token, key, proofs."""

    def __init__(self, sdk: BrokerClient, clock: SteppingClock, nonces: DpopNonces) -> None:
        self.sdk = sdk
        self.clock = clock
        self.nonces = nonces  # the broker's: what anyone watching its answers sees
        self.token = sdk.token()

    def proof(self, *, method: str = "POST", url: str = SESSION_URL, **kw: Any) -> str:
        kw.setdefault("access_token", self.token)
        return self.sdk.dpop_proof(method, url, now=self.clock.now(), **kw)

    def code(self, **kw: Any) -> str:
        return f"{self.token} {self.proof(**kw)}"


def sdk_for(
    client: TestClient, keystore: KeyStore, clock: SteppingClock, principal: str
) -> BrokerClient:
    return BrokerClient(
        base_url=ISSUER,
        client_id=principal,
        signing_key=keystore.signing_key(principal),
        http=client,
        clock=clock,
    )


@pytest.fixture
def login(
    client: TestClient, keystore: KeyStore, clock: SteppingClock, nonces: DpopNonces
) -> Login:
    return Login(sdk_for(client, keystore, clock, FG), clock, nonces)


def verify(code: str | None, services: AuthServices, nonces: DpopNonces) -> DpoLogin:
    return verify_dpo_login(
        code,
        keys=services.keys.public_keyset("broker"),
        issuer=ISSUER,
        convenant=services.convenant,
        nonces=nonces,
        now=services.clock.now(),
    )


# --- the login code --------------------------------------------------------------------


def test_login_code_opens_a_session_that_ends_with_the_token(
    login: Login, services: AuthServices, nonces: DpopNonces
) -> None:
    verified = verify(login.code(), services, nonces)
    assert verified.session.principal == FG
    assert verified.session.remaining_seconds(now=services.clock.now()) == 300
    spend_login_proof(verified, replay_cache=services.replay_cache)


def test_login_code_is_good_once(login: Login, services: AuthServices, nonces: DpopNonces) -> None:
    code = login.code()
    spend_login_proof(verify(code, services, nonces), replay_cache=services.replay_cache)
    again = verify(code, services, nonces)  # still a valid proof, pure check
    with pytest.raises(InvalidDpopProofError, match="already used"):
        spend_login_proof(again, replay_cache=services.replay_cache)


def test_login_proof_may_be_two_minutes_old(
    login: Login, services: AuthServices, nonces: DpopNonces, clock: SteppingClock
) -> None:
    code = login.code()
    clock.advance(LOGIN_PROOF_MAX_AGE_SECONDS)
    verify(code, services, nonces)
    clock.advance(1)
    with pytest.raises(InvalidDpopProofError, match="s ago"):
        verify(code, services, nonces)


Code = Callable[[Login], str]


@pytest.mark.parametrize(
    ("code", "error", "reason"),
    [
        # A token seen elsewhere (a log, a clipboard), pasted alone.
        pytest.param(lambda lg: lg.token, InvalidTokenError, "got 1 parts", id="bare-token"),
        # Token, proof and something more.
        pytest.param(lambda lg: lg.code() + " x", InvalidTokenError, "got 3 parts", id="three"),
        # The proof of an API call replayed as a login.
        pytest.param(
            lambda lg: f"{lg.token} {lg.proof(method='GET', url=ISSUER + '/v1/audit/entries')}",
            InvalidDpopProofError,
            "expected htm",
            id="api-proof",
        ),
        # A proof for the logout form.
        pytest.param(
            lambda lg: f"{lg.token} {lg.proof(url=ISSUER + '/dpo/logout')}",
            InvalidDpopProofError,
            "expected htu",
            id="other-url",
        ),
        # A proof for another token.
        pytest.param(
            lambda lg: f"{lg.token} {lg.proof(access_token=lg.token + 'x')}",
            InvalidDpopProofError,
            "expected ath",
            id="other-token",
        ),
        # A perfect proof by a key the token is not bound to: the stolen token.
        pytest.param(
            lambda lg: (
                lg.token
                + " "
                + ProofKey().proof(
                    htm="POST",
                    htu=SESSION_URL,
                    now=lg.clock.now(),
                    access_token=lg.token,
                    nonce=lg.nonces.issue(now=lg.clock.now()),  # nonces are no secret
                )
            ),
            InvalidDpopProofError,
            "token's key",
            id="thief-key",
        ),
        # An empty nonce: not one the broker issued.
        pytest.param(
            lambda lg: f"{lg.token} {lg.proof(nonce='')}",
            UseDpopNonceError,
            "nonce",
            id="no-nonce",
        ),
        # Far too long.
        pytest.param(lambda _lg: "a " + "b" * 20_000, InvalidTokenError, "at most", id="oversized"),
    ],
)
def test_bad_login_code_is_refused(
    login: Login,
    services: AuthServices,
    nonces: DpopNonces,
    code: Code,
    error: type[Exception],
    reason: str,
) -> None:
    with pytest.raises(error, match=reason):
        verify(code(login), services, nonces)


def test_missing_login_code_is_no_session(services: AuthServices, nonces: DpopNonces) -> None:
    for code in (None, ""):
        with pytest.raises(MissingSessionError):
            verify(code, services, nonces)


def test_partner_token_with_its_proof_opens_no_dashboard(
    client: TestClient,
    keystore: KeyStore,
    clock: SteppingClock,
    services: AuthServices,
    nonces: DpopNonces,
) -> None:
    partner = Login(sdk_for(client, keystore, clock, VICTIM), clock, nonces)
    with pytest.raises(NotAnAuditorError) as caught:
        verify(partner.code(), services, nonces)
    assert caught.value.principal == VICTIM


def test_bearer_token_opens_no_dashboard(
    services: AuthServices, nonces: DpopNonces, clock: SteppingClock
) -> None:
    # Even for an auditor the convenant allowed bearer tokens: no key, no binding.
    token = services.token_issuer.issue(
        principal=FG, role="fg", function=None, scopes=frozenset({"audit:read"}), now=clock.now()
    ).access_token
    proof = ProofKey().proof(
        htm="POST",
        htu=SESSION_URL,
        now=clock.now(),
        access_token=token,
        nonce=nonces.issue(now=clock.now()),
    )
    with pytest.raises(InvalidTokenError, match="bearer token"):
        verify(f"{token} {proof}", services, nonces)


# --- the sealed session --------------------------------------------------------------


@pytest.fixture
def sealer(keystore: KeyStore) -> DpoSessionSealer:
    return DpoSessionSealer.from_signing_key(keystore.signing_key("broker"))


def session(clock: SteppingClock, principal: str = FG, seconds: int = 300) -> DpoSession:
    return DpoSession(principal=principal, expires_at=clock.now() + timedelta(seconds=seconds))


def test_sealed_session_opens_until_its_token_would_have_expired(
    sealer: DpoSessionSealer, convenant: Convenant, clock: SteppingClock
) -> None:
    value = sealer.seal(session(clock))
    opened = sealer.open(value, convenant=convenant, now=clock.now())
    assert opened.principal == FG
    assert opened.remaining_seconds(now=clock.now()) == 300
    clock.advance(299)
    assert sealer.open(value, convenant=convenant, now=clock.now()).principal == FG
    clock.advance(1)
    with pytest.raises(InvalidTokenError, match="live session"):
        sealer.open(value, convenant=convenant, now=clock.now())


def test_two_logins_get_two_session_values(sealer: DpoSessionSealer, clock: SteppingClock) -> None:
    assert sealer.seal(session(clock)) != sealer.seal(session(clock))


def _flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]


@pytest.mark.parametrize(
    ("forge", "error", "reason"),
    [
        # A byte of the body changed: another principal or expiry.
        (lambda v, _c: _flip(v, 3), InvalidTokenError, "sealed by this broker"),
        # A byte of the MAC changed.
        (lambda v, _c: _flip(v, len(v) - 3), InvalidTokenError, "sealed by this broker"),
        # Sealed by another broker's key.
        (
            lambda _v, c: DpoSessionSealer.from_signing_key(generate_signing_key()).seal(
                session(c)
            ),
            InvalidTokenError,
            "sealed by this broker",
        ),
        # An access token planted as the cookie (the pre-DPoP cookie).
        (lambda _v, _c: "eyJ.eyJ.sig", InvalidTokenError, "sealed by this broker"),
        # No dot at all.
        (lambda _v, _c: "garbage", InvalidTokenError, "sealed by this broker"),
        # Far too long.
        (lambda _v, _c: "a" * 300, InvalidTokenError, "at most 256"),
    ],
    ids=["body", "mac", "other-broker", "access-token", "garbage", "oversized"],
)
def test_forged_session_value_is_refused(
    sealer: DpoSessionSealer,
    convenant: Convenant,
    clock: SteppingClock,
    forge: Callable[[str, SteppingClock], str],
    error: type[Exception],
    reason: str,
) -> None:
    value = forge(sealer.seal(session(clock)), clock)
    with pytest.raises(error, match=reason):
        sealer.open(value, convenant=convenant, now=clock.now())


def test_session_of_someone_no_longer_an_auditor_is_refused(
    sealer: DpoSessionSealer, convenant: Convenant, clock: SteppingClock
) -> None:
    # The convenant now in force decides, at every page.
    value = sealer.seal(session(clock, principal=VICTIM))
    with pytest.raises(NotAnAuditorError):
        sealer.open(value, convenant=convenant, now=clock.now())


def test_missing_cookie_is_no_session(
    sealer: DpoSessionSealer, convenant: Convenant, clock: SteppingClock
) -> None:
    with pytest.raises(MissingSessionError):
        sealer.open(None, convenant=convenant, now=clock.now())


def test_spent_proof_is_kept_for_its_whole_window(
    login: Login, services: AuthServices, nonces: DpopNonces, clock: SteppingClock
) -> None:
    # 5 s ahead + 120 s back + 1: the jti outlives every moment the proof verifies.
    cache = MemoryReplayCache(clock=clock)
    verified = verify(login.code(), services, nonces)
    spend_login_proof(verified, replay_cache=cache)
    clock.advance(125)
    with pytest.raises(InvalidDpopProofError):
        spend_login_proof(verified, replay_cache=cache)
    clock.advance(1)
    spend_login_proof(verified, replay_cache=cache)  # forgotten, and the proof long dead
