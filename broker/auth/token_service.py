"""The token endpoint's pipeline: from a form to an access token, or an OAuthError.

What it does: implements contract.md's `POST /oauth/token`: the client
credentials grant (RFC 6749 §4.4) with client authentication by a signed
JWT (RFC 7523 §2.2, `private_key_jwt`). In order:

1. grant_type is `client_credentials` (else `unsupported_grant_type`);
2. the client authenticates with a JWT-bearer assertion, verified against
   the keys pinned for that client (else `invalid_client`);
3. only then is the `jti` stored in the replay cache: a forged assertion
   never reaches the cache, so it cannot burn a genuine `jti` (a replay is
   `invalid_client`; an unreachable cache is `temporarily_unavailable`);
4. the requested scopes must lie within what the convenant gives the
   client's role (else `invalid_scope`); none requested means all of them.

An unknown client takes the same path as a known one with a bad signature:
one key-file read, an empty key set, one decoy signature check, the same
`invalid_client` answer (style.md §18). Its id never names a file.

What it does not: parse HTTP or write the audit log; the route does both.

Why this order: nothing an unauthenticated caller sends may change state
(the replay cache) or learn anything (which scopes a client has); so the
signature comes first, the cache second, the scope answer last.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

from broker.auth.assertions import VerifiedAssertion, verify_client_assertion
from broker.auth.jose import LEEWAY_SECONDS
from broker.auth.metadata import assertion_audiences
from broker.auth.oauth_errors import (
    INVALID_CLIENT,
    INVALID_REQUEST,
    INVALID_SCOPE,
    TEMPORARILY_UNAVAILABLE,
    UNSUPPORTED_GRANT_TYPE,
    OAuthError,
)
from broker.auth.replay import ReplayCache
from broker.auth.tokens import AccessTokenIssuer, IssuedToken
from broker.clock import Clock
from broker.convenant.model import Convenant
from broker.errors import (
    CacheUnavailableError,
    InvalidClientError,
    ReplayedAssertionError,
    TrustError,
)
from broker.keys import KeyStore, PublicKeySet

CLIENT_CREDENTIALS = "client_credentials"
# RFC 7523 §2.2: the only client authentication method the broker accepts.
JWT_BEARER_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

_NO_KEYS = PublicKeySet([])
# A principal whose key file always exists: the broker's own.
DECOY_KEY_PRINCIPAL = "broker"


class TokenService:
    def __init__(
        self,
        *,
        convenant: Convenant,
        keys: KeyStore,
        replay_cache: ReplayCache,
        issuer_service: AccessTokenIssuer,
        issuer_url: str,
        clock: Clock,
    ) -> None:
        self._convenant = convenant
        self._keys = keys
        self._replay_cache = replay_cache
        self._issuer_service = issuer_service
        self._audiences = assertion_audiences(issuer_url)
        self._clock = clock

    def exchange(self, form: Mapping[str, str]) -> IssuedToken:
        """Answer one token request; raise OAuthError (detail in its message) on refusal."""
        now = self._clock.now()
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError(INVALID_REQUEST, "expected grant_type, got none")
        if grant_type != CLIENT_CREDENTIALS:
            raise OAuthError(
                UNSUPPORTED_GRANT_TYPE,
                f"expected grant_type {CLIENT_CREDENTIALS!r}, got {grant_type!r}",
            )
        client_id = form.get("client_id")
        if not client_id:
            raise OAuthError(INVALID_REQUEST, "expected client_id, got none")
        assertion_type = form.get("client_assertion_type")
        if assertion_type != JWT_BEARER_ASSERTION_TYPE:
            # RFC 6749 §5.2: no or an unsupported client authentication is invalid_client.
            raise OAuthError(
                INVALID_CLIENT,
                f"expected client_assertion_type {JWT_BEARER_ASSERTION_TYPE!r},"
                f" got {assertion_type!r}",
            )
        assertion = form.get("client_assertion")
        if not assertion:
            raise OAuthError(INVALID_CLIENT, "expected client_assertion, got none")

        verified = self._authenticate(client_id, assertion, now=now)
        self._store_jti(verified, now=now)
        scopes = self._grant_scopes(client_id, form.get("scope"))
        partner = self._convenant.partner(client_id)
        return self._issuer_service.issue(
            principal=client_id,
            role=self._convenant.role_of(client_id) or "",  # known: _authenticate checked
            function=partner.function if partner is not None else None,
            scopes=scopes,
            now=now,
        )

    def _authenticate(self, client_id: str, assertion: str, *, now: datetime) -> VerifiedAssertion:
        known = self._convenant.role_of(client_id) is not None
        if known:
            keys = self._pinned_keys(client_id)
        else:
            # Same work as for a known client, so timing does not reveal which
            # ids exist (style.md §18): read one key file (the broker's own;
            # the untrusted id never reaches the file system), then verify
            # against an empty set, where the verifier spends a decoy
            # signature check and fails as a bad signature would. Measured:
            # without the read, a malformed assertion for an unknown client
            # answered in half the time of one for a known client.
            self._pinned_keys(DECOY_KEY_PRINCIPAL)
            keys = _NO_KEYS
        try:
            return verify_client_assertion(
                assertion, client_id=client_id, keys=keys, audiences=self._audiences, now=now
            )
        except InvalidClientError as e:
            detail = str(e) if known else f"expected a client of the convenant, got {client_id!r}"
            raise OAuthError(INVALID_CLIENT, detail) from e

    def _pinned_keys(self, client_id: str) -> PublicKeySet:
        try:
            return self._keys.public_keyset(client_id)
        except TrustError:
            # A principal without a key file cannot authenticate: same path as no key.
            return _NO_KEYS

    def _store_jti(self, verified: VerifiedAssertion, *, now: datetime) -> None:
        # The assertion verifies until exp + leeway; remember its jti one
        # second beyond that. exp <= now + 300 s + leeway (verified), so the
        # TTL is at most 330 + 31 = 361 s (see RedisReplayCache.store_jti).
        remaining = math.ceil((verified.expires_at - now).total_seconds())
        ttl_seconds = max(1, remaining + LEEWAY_SECONDS + 1)
        # Client ids match the convenant's identifier pattern (no ':'), so
        # the key cannot be forged across clients by a jti holding ':'.
        key = f"assertion:{verified.client_id}:{verified.jti}"
        try:
            new = self._replay_cache.store_jti(key, ttl_seconds=ttl_seconds)
        except CacheUnavailableError as e:
            raise OAuthError(TEMPORARILY_UNAVAILABLE, str(e)) from e
        if not new:
            # RFC 7523 §3 item 7: a jti is good for one use.
            replay = ReplayedAssertionError(
                f"expected a fresh jti, got {verified.jti!r} already presented"
                f" by {verified.client_id!r}"
            )
            raise OAuthError(INVALID_CLIENT, str(replay)) from replay

    def _grant_scopes(self, client_id: str, requested: str | None) -> frozenset[str]:
        allowed = self._convenant.scopes_for(client_id)
        if not allowed:
            # No scopes in the convenant means no token (style.md §13).
            raise OAuthError(INVALID_SCOPE, f"expected {client_id!r} to have scopes, got none")
        # RFC 6749 §3.3: space-delimited, case-sensitive scope tokens.
        asked = frozenset(token for token in (requested or "").split(" ") if token)
        if not asked:
            return allowed
        refused = sorted(asked - allowed)
        if refused:
            raise OAuthError(
                INVALID_SCOPE,
                f"expected scopes within {sorted(allowed)!r} for {client_id!r}, got {refused!r}",
            )
        return asked
