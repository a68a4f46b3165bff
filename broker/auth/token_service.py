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
4. the DPoP proof (RFC 9449 §5), when the request brings one, is verified
   for `POST` at the token endpoint, with a live server nonce (§8); a
   request without a proof is refused unless the convenant allows the
   client bearer tokens (`bearer_allowed`). A defective proof is
   `invalid_dpop_proof`, a missing or stale nonce `use_dpop_nonce` (§8,
   the route adds a fresh `DPoP-Nonce`). This is still pure: a nonce
   challenge leaves the assertion's `jti` unspent, so the client may retry
   the same request with the nonce, as §8 describes;
5. only then are the assertion's and the proof's `jti`s stored in the
   replay cache: a forged assertion or proof never reaches the cache, so it
   cannot burn a genuine `jti` (a replay is `invalid_client` or
   `invalid_dpop_proof`; an unreachable cache is `temporarily_unavailable`);
6. the requested scopes must lie within what the convenant gives the
   client's role (else `invalid_scope`); none requested means all of them;
7. the token is bound to the proof's key (`cnf.jkt`, token_type `DPoP`),
   or, without a proof, is a bearer token.

An unknown client takes the same path as a known one with a bad signature:
one key-file read, an empty key set, one decoy signature check, the same
`invalid_client` answer (style.md §18). Its id never names a file.

What it does not: parse HTTP or write the audit log; the route does both.

Why this order: nothing an unauthenticated caller sends may change state
(the replay cache) or learn anything (which scopes a client has, whether it
must use DPoP); so the signature comes first, the proof second, the cache
third, the scope answer last.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime

from broker.auth.assertions import VerifiedAssertion, verify_client_assertion
from broker.auth.dpop import (
    DpopNonces,
    InvalidDpopProofError,
    ReplayedDpopProofError,
    UseDpopNonceError,
    VerifiedDpopProof,
    replay_ttl_seconds,
    verify_dpop_proof,
)
from broker.auth.jose import LEEWAY_SECONDS
from broker.auth.metadata import assertion_audiences, token_endpoint_url
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
    KetenbrokerError,
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

# RFC 9449 §5 and §8: the token endpoint's DPoP error codes. RFC 6749 §5.2
# does not list them, so `broker.auth.oauth_errors` has no row for them yet.
INVALID_DPOP_PROOF = "invalid_dpop_proof"
USE_DPOP_NONCE = "use_dpop_nonce"
_DPOP_DESCRIPTIONS = {
    INVALID_DPOP_PROOF: "The DPoP proof is missing or invalid.",
    USE_DPOP_NONCE: "Authorization server requires nonce in DPoP proof.",
}


class DpopTokenRequestError(OAuthError):
    """A token request refused for its DPoP proof (RFC 9449 §5, §8): 400, like invalid_request.

    `use_dpop_nonce` answers must carry a fresh `DPoP-Nonce` header; the
    route adds it, seeing `error`.
    """

    def __init__(self, error: str, detail: str) -> None:
        # OAuthError's table holds the RFC 6749 codes only; these two are RFC
        # 9449's, both with status 400 (§5: "invalid_dpop_proof"; §8).
        KetenbrokerError.__init__(self, detail)
        self.error = error
        self.description = _DPOP_DESCRIPTIONS[error]
        self.status = 400
        self.code = error
        self.public_detail = self.description


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
        nonces: DpopNonces | None,
    ) -> None:
        """`nonces` None: token requests need no server nonce (RFC 9449 §8 makes it optional)."""
        self._convenant = convenant
        self._keys = keys
        self._replay_cache = replay_cache
        self._issuer_service = issuer_service
        self._audiences = assertion_audiences(issuer_url)
        # RFC 9449 §4.3 step 9: the proof's htu is this URL, built from the
        # issuer, never from the Host header a proxy may rewrite.
        self._token_endpoint = token_endpoint_url(issuer_url)
        self._clock = clock
        self._nonces = nonces

    def exchange(self, form: Mapping[str, str], *, dpop_proofs: Sequence[str] = ()) -> IssuedToken:
        """Answer one token request; raise OAuthError (detail in its message) on refusal.

        `dpop_proofs` are the values of the request's `DPoP` header fields
        (RFC 9449 §4.1): none, or exactly one.
        """
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
        proof = self._verify_proof(client_id, dpop_proofs, now=now)
        self._store_jti(verified, now=now)
        if proof is not None:
            self._store_proof_jti(client_id, proof)
        scopes = self._grant_scopes(client_id, form.get("scope"))
        partner = self._convenant.partner(client_id)
        return self._issuer_service.issue(
            principal=client_id,
            role=self._convenant.role_of(client_id) or "",  # known: _authenticate checked
            function=partner.function if partner is not None else None,
            scopes=scopes,
            now=now,
            # RFC 9449 §5: a proof with the request binds the token to its key.
            jkt=proof.jkt if proof is not None else None,
        )

    def _verify_proof(
        self, client_id: str, proofs: Sequence[str], *, now: datetime
    ) -> VerifiedDpopProof | None:
        if len(proofs) > 1:
            # RFC 9449 §4.3 step 1: not more than one DPoP header field.
            raise DpopTokenRequestError(
                INVALID_DPOP_PROOF, f"expected one DPoP header, got {len(proofs)}"
            )
        if not proofs:
            if self._convenant.bearer_allowed(client_id):
                return None
            # RFC 9449 §5.2 (dpop_bound_access_tokens): the server "MUST
            # reject token requests from this client that do not contain
            # the DPoP header"; the convenant says so for every client not
            # marked bearer_allowed.
            raise DpopTokenRequestError(
                INVALID_DPOP_PROOF,
                f"expected a DPoP proof (RFC 9449 §5), got none; the convenant allows"
                f" {client_id!r} no bearer tokens",
            )
        try:
            return verify_dpop_proof(
                proofs[0],
                method="POST",
                url=self._token_endpoint,
                # No token yet, so no ath; and no binding to compare with:
                # the proof's key is what the new token will be bound to.
                access_token=None,
                expected_jkt=None,
                nonces=self._nonces,
                now=now,
            )
        except UseDpopNonceError as e:
            raise DpopTokenRequestError(USE_DPOP_NONCE, str(e)) from e
        except InvalidDpopProofError as e:
            raise DpopTokenRequestError(INVALID_DPOP_PROOF, str(e)) from e

    def _store_proof_jti(self, client_id: str, proof: VerifiedDpopProof) -> None:
        # RFC 9449 §11.1: one use per proof. The TTL outlives the proof's
        # acceptance window (dpop.replay_ttl_seconds: 5 + 60 + 1 = 66 s).
        # Keyed by the client, like assertions (client ids hold no ':').
        key = f"dpop:{client_id}:{proof.jti}"
        try:
            new = self._replay_cache.store_jti(key, ttl_seconds=replay_ttl_seconds())
        except CacheUnavailableError as e:
            raise OAuthError(TEMPORARILY_UNAVAILABLE, str(e)) from e
        if not new:
            replay = ReplayedDpopProofError(
                f"expected a fresh DPoP proof jti, got {proof.jti!r} already presented"
                f" by {client_id!r}"
            )
            raise DpopTokenRequestError(INVALID_DPOP_PROOF, str(replay)) from replay

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
