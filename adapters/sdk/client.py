"""The partner side of the broker's API: client credentials with private_key_jwt, and DPoP.

What it does: `BrokerClient` signs an RFC 7523 client assertion with the
partner's own key and trades it at `POST {base_url}/oauth/token` for an
access token (contract.md, Authentication), caches that token until shortly
before it expires, and sends API calls with it and a W3C `traceparent`.

Sender-constrained tokens (RFC 9449): the client holds a DPoP key, its own
Ed25519 key pair made for this client object unless one is configured
(`dpop_key`), and signs a proof with it

* on the token request (`htm` POST, `htu` the token endpoint), which binds
  the token to that key (RFC 9449 §5): the broker answers token_type `DPoP`;
* on every API call (`htm` the method, `htu` the URL without its query,
  `ath` the token's hash, RFC 9449 §4.2), sent as `DPoP` next to
  `Authorization: DPoP <token>` (§7.1).

Server nonces (RFC 9449 §8, §9): the client keeps the latest `DPoP-Nonce`
the broker sent and puts it in every proof; before its first token request
it reads the broker's RFC 8414 metadata, whose answer carries one. When the
broker answers
`use_dpop_nonce` (400 at the token endpoint, 401 with that error in
`WWW-Authenticate` elsewhere), the client takes the new nonce and retries
that request once with a fresh proof.

A broker that answers token_type `Bearer` (a partner the convenant allows
bearer tokens, or a server without DPoP) gets `Authorization: Bearer` and no
proofs.

What it does not: verify the broker's TLS setup or pin its keys (httpx and
the deployment do that), retry failed calls other than that one nonce
retry, or follow absolute URLs. Paths are joined to `base_url` only, so a
caller can never send the token (or a proof for it) to another host by
passing a full URL. The DPoP private key never leaves the object.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from datetime import datetime, timedelta
from typing import Any

import httpx
import jwt

from adapters.sdk.tracing import new_traceparent
from broker.clock import Clock, SystemClock
from broker.errors import KetenbrokerError
from broker.keys import SigningKey, generate_signing_key, public_jwk_of

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_PATH = "/oauth/token"  # noqa: S105  # a URL path, not a secret
METADATA_PATH = "/.well-known/oauth-authorization-server"
# contract.md allows an assertion `exp` at most 5 minutes ahead; one minute is
# enough for one token request and keeps a leaked assertion nearly worthless.
ASSERTION_TTL_SECONDS = 60
# contract.md: access tokens live at most 300 s. A longer `expires_in` is a
# broker bug; the client trusts no more than this.
MAX_ACCESS_TOKEN_TTL_SECONDS = 300
# Renew this long before expiry so a token never expires in flight (and
# clock skew between partner and broker does not bite).
TOKEN_REFRESH_MARGIN_SECONDS = 30
DEFAULT_TIMEOUT_SECONDS = 10.0

# RFC 9449 §4.1, §8.1: the proof's and the server nonce's header fields, and
# the proof's media type (§4.2).
DPOP_HEADER = "DPoP"
DPOP_NONCE_HEADER = "DPoP-Nonce"
DPOP_TYP = "dpop+jwt"
# RFC 9449 §8: the error that asks for a (new) server nonce.
USE_DPOP_NONCE = "use_dpop_nonce"
# A nonce is an NQCHAR string (RFC 9449 §8.1); the broker's are 43 chars.
# A longer or odd one is not stored, so a hostile server cannot make the
# client carry megabytes in every proof.
MAX_NONCE_CHARS = 256


class TokenRequestError(KetenbrokerError):
    """The broker did not issue an access token; `error` is its RFC 6749 §5.2 code."""

    code = "token_request_failed"

    def __init__(self, message: str, *, status: int, error: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error


class BrokerClient:
    """A partner's authenticated session with the broker."""

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        signing_key: SigningKey,
        scopes: str | None = None,
        http: httpx.Client | None = None,
        clock: Clock | None = None,
        dpop_key: SigningKey | None = None,
    ) -> None:
        """`dpop_key`: the key tokens are bound to; by default a fresh Ed25519 key.

        A key made per client object lives only in its memory: a leaked token
        is bound to a key nobody else can read, and the next process makes a
        new one (RFC 9449 §2 leaves the choice of key to the client).
        """
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._signing_key = signing_key
        self._scopes = scopes
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=DEFAULT_TIMEOUT_SECONDS)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._dpop_key = dpop_key if dpop_key is not None else generate_signing_key("EdDSA")
        self._dpop_jwk = public_jwk_of(self._dpop_key.public_key)
        self._lock = threading.Lock()  # the token and its renewal
        self._nonce_lock = threading.Lock()  # the server nonce; taken inside _lock too
        self._token: str | None = None
        self._token_type: str = "DPoP"  # noqa: S105  # a token type, not a secret
        self._token_renew_at: datetime | None = None
        self._nonce: str | None = None

    @property
    def token_endpoint(self) -> str:
        return self.base_url + TOKEN_PATH

    def client_assertion(self, *, now: datetime) -> str:
        """An RFC 7523 §3 assertion: iss = sub = client_id, aud = the token endpoint."""
        issued_at = int(now.timestamp())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_endpoint,
            "jti": secrets.token_urlsafe(18),
            "iat": issued_at,
            "exp": issued_at + ASSERTION_TTL_SECONDS,
        }
        headers = {"kid": self._signing_key.kid, "typ": "JWT"}
        return jwt.encode(
            claims, self._signing_key.private_key, algorithm=self._signing_key.alg, headers=headers
        )

    def dpop_proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
        now: datetime | None = None,
    ) -> str:
        """An RFC 9449 §4.2 proof for `method` at `url`, signed with this client's DPoP key.

        `url` loses its query and fragment (the `htu` has none). With
        `access_token`, the proof carries its hash (`ath`); `nonce` defaults
        to the latest server nonce this client has seen.
        """
        moment = now if now is not None else self._clock.now()
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(18),  # 144 random bits (§4.2: at least 96)
            "htm": method,
            # As httpx sends it (percent-encoded), without query and fragment (§4.2).
            "htu": str(httpx.URL(url).copy_with(query=None, fragment=None)),
            "iat": int(moment.timestamp()),
        }
        if access_token is not None:
            digest = hashlib.sha256(access_token.encode("ascii")).digest()
            claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
        if nonce is None:
            with self._nonce_lock:
                nonce = self._nonce
        if nonce is not None:
            claims["nonce"] = nonce
        headers = {"typ": DPOP_TYP, "jwk": self._dpop_jwk}
        return jwt.encode(
            claims, self._dpop_key.private_key, algorithm=self._dpop_key.alg, headers=headers
        )

    def token(self) -> str:
        """A valid access token, from the cache or freshly requested."""
        return self.authorization()[1]

    def authorization(self) -> tuple[str, str]:
        """(scheme, token) for the Authorization header: ("DPoP", ...) or ("Bearer", ...)."""
        with self._lock:
            now = self._clock.now()
            if (
                self._token is not None
                and self._token_renew_at is not None
                and now < self._token_renew_at
            ):
                return self._token_type, self._token
            token, token_type, expires_in = self._request_token(now=now)
            # Renew at expiry minus the margin, but never later than halfway
            # through a short-lived token's life.
            margin = min(TOKEN_REFRESH_MARGIN_SECONDS, expires_in // 2)
            self._token = token
            self._token_type = token_type
            self._token_renew_at = now + timedelta(seconds=expires_in - margin)
            return token_type, token

    def _post_token_request(self, *, now: datetime) -> httpx.Response:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.client_assertion(now=now),
        }
        if self._scopes is not None:
            form["scope"] = self._scopes
        # RFC 9449 §5: the proof on the token request binds the token to our key.
        proof = self.dpop_proof("POST", self.token_endpoint, now=now)
        response = self._http.post(self.token_endpoint, data=form, headers={DPOP_HEADER: proof})
        self._remember_nonce(response)
        return response

    def _prime_nonce(self) -> None:
        """Read the broker's metadata once for a nonce (RFC 9449 §8.2), to skip a challenge.

        Best effort: a broker that sends none, or does not answer, leaves the
        first token request to the `use_dpop_nonce` challenge and its retry.
        """
        with self._nonce_lock:
            if self._nonce is not None:
                return
        try:
            self._remember_nonce(self._http.get(self.base_url + METADATA_PATH))
        except httpx.HTTPError:
            return

    def _request_token(self, *, now: datetime) -> tuple[str, str, int]:
        self._prime_nonce()
        response = self._post_token_request(now=now)
        if response.status_code == 400 and _oauth_error(response) == USE_DPOP_NONCE:
            # RFC 9449 §8: the broker wants a (newer) nonce; it came with the
            # answer. Once, with a fresh assertion and proof: a second
            # challenge means something else is wrong.
            response = self._post_token_request(now=self._clock.now())
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if response.status_code != 200:
            error = body.get("error") if isinstance(body, dict) else None
            raise TokenRequestError(
                f"expected 200 from the token endpoint, got {response.status_code}"
                f" (error={error!r})",
                status=response.status_code,
                error=error if isinstance(error, str) else None,
            )
        if not isinstance(body, dict):
            raise TokenRequestError(
                "expected a JSON object from the token endpoint", status=200, error=None
            )
        token, token_type, expires_in = (
            body.get("access_token"),
            body.get("token_type"),
            body.get("expires_in"),
        )
        if not isinstance(token, str) or not token:
            raise TokenRequestError("expected an access_token string", status=200, error=None)
        # RFC 9449 §5: "DPoP" when the broker bound the token to our key;
        # "Bearer" when it did not (a partner the convenant allows bearer
        # tokens). Token types are case-insensitive (RFC 6749 §5.1).
        kind = token_type.lower() if isinstance(token_type, str) else None
        if kind not in {"dpop", "bearer"}:
            raise TokenRequestError(
                f"expected token_type 'DPoP' or 'Bearer', got {token_type!r}",
                status=200,
                error=None,
            )
        if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0:
            raise TokenRequestError(
                f"expected a positive integer expires_in, got {expires_in!r}",
                status=200,
                error=None,
            )
        scheme = "DPoP" if kind == "dpop" else "Bearer"
        return token, scheme, min(expires_in, MAX_ACCESS_TOKEN_TTL_SECONDS)

    def _url(self, path: str) -> str:
        if not path.startswith("/") or path.startswith("//"):
            raise ValueError(f"expected a path starting with one '/', got {path!r}")
        return self.base_url + path

    def _headers(self, method: str, url: str, headers: dict[str, str] | None) -> dict[str, str]:
        # Ours win: a caller's own Authorization or DPoP would sit beside them.
        merged = {
            name: value
            for name, value in (headers or {}).items()
            if name.lower() not in {"authorization", "dpop"}
        }
        scheme, token = self.authorization()
        merged["Authorization"] = f"{scheme} {token}"
        if scheme == "DPoP":
            # RFC 9449 §7.1: a proof for this request and this token.
            merged[DPOP_HEADER] = self.dpop_proof(method, url, access_token=token)
        if not any(name.lower() == "traceparent" for name in merged):
            merged["traceparent"] = new_traceparent()
        return merged

    def _remember_nonce(self, response: httpx.Response) -> None:
        # RFC 9449 §8.2: any answer may bring the nonce to use from now on.
        nonce = response.headers.get(DPOP_NONCE_HEADER)
        if nonce and len(nonce) <= MAX_NONCE_CHARS and nonce.isascii() and nonce.isprintable():
            with self._nonce_lock:
                self._nonce = nonce

    def request(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx.Response:
        """Send `method` to `path` under `base_url`, authenticated (and DPoP-proven)."""
        method = method.upper()
        url = self._url(path)
        response = self._http.request(
            method, url, headers=self._headers(method, url, headers), **kw
        )
        self._remember_nonce(response)
        if response.status_code == 401 and _asks_for_nonce(response):
            # RFC 9449 §9: retry once, with the nonce that came with the challenge.
            response = self._http.request(
                method, url, headers=self._headers(method, url, headers), **kw
            )
            self._remember_nonce(response)
        return self._after(response)

    def _after(self, response: httpx.Response) -> httpx.Response:
        # A 401 means the broker no longer honours our token (revoked, key
        # rotated): drop it so the next call fetches a fresh one.
        if response.status_code == 401:
            with self._lock:
                self._token = None
                self._token_renew_at = None
        return response

    def get(self, path: str, *, headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        return self.request("GET", path, headers=headers, **kw)

    def post(
        self,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> httpx.Response:
        return self.request("POST", path, json=json, headers=headers, **kw)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> BrokerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _oauth_error(response: httpx.Response) -> str | None:
    """The RFC 6749 §5.2 `error` of a token-endpoint answer, if it has one."""
    try:
        body: Any = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, str) else None


def _asks_for_nonce(response: httpx.Response) -> bool:
    """A resource server's nonce challenge (RFC 9449 §9): the error and a nonce to use."""
    challenge = response.headers.get("www-authenticate", "")
    return (
        challenge.lower().startswith("dpop ")
        and f'error="{USE_DPOP_NONCE}"' in challenge
        and DPOP_NONCE_HEADER in response.headers
    )
