"""The partner side of the broker's API: OAuth 2.0 client credentials with private_key_jwt.

What it does: `BrokerClient` signs an RFC 7523 client assertion with the
partner's own key, trades it at `POST {base_url}/oauth/token` for an access
token (contract.md, Authentication), caches that token until shortly before
it expires, and sends API calls with `Authorization: Bearer` and a W3C
`traceparent`.

What it does not: verify the broker's TLS setup or pin its keys (httpx and
the deployment do that), retry failed calls, or follow absolute URLs. Paths
are joined to `base_url` only, so a caller can never send the bearer token
to another host by passing a full URL.
"""

from __future__ import annotations

import secrets
import threading
from datetime import datetime, timedelta
from typing import Any

import httpx
import jwt

from adapters.sdk.tracing import new_traceparent
from broker.clock import Clock, SystemClock
from broker.errors import KetenbrokerError
from broker.keys import SigningKey

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
TOKEN_PATH = "/oauth/token"  # noqa: S105  # a URL path, not a secret
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
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self._signing_key = signing_key
        self._scopes = scopes
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=DEFAULT_TIMEOUT_SECONDS)
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._lock = threading.Lock()
        self._token: str | None = None
        self._token_renew_at: datetime | None = None

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

    def token(self) -> str:
        """A valid access token, from the cache or freshly requested."""
        with self._lock:
            now = self._clock.now()
            if (
                self._token is not None
                and self._token_renew_at is not None
                and now < self._token_renew_at
            ):
                return self._token
            token, expires_in = self._request_token(now=now)
            # Renew at expiry minus the margin, but never later than halfway
            # through a short-lived token's life.
            margin = min(TOKEN_REFRESH_MARGIN_SECONDS, expires_in // 2)
            self._token = token
            self._token_renew_at = now + timedelta(seconds=expires_in - margin)
            return token

    def _request_token(self, *, now: datetime) -> tuple[str, int]:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.client_assertion(now=now),
        }
        if self._scopes is not None:
            form["scope"] = self._scopes
        response = self._http.post(self.token_endpoint, data=form)
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
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise TokenRequestError(
                f"expected token_type 'Bearer', got {token_type!r}", status=200, error=None
            )
        if not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in <= 0:
            raise TokenRequestError(
                f"expected a positive integer expires_in, got {expires_in!r}",
                status=200,
                error=None,
            )
        return token, min(expires_in, MAX_ACCESS_TOKEN_TTL_SECONDS)

    def _url(self, path: str) -> str:
        if not path.startswith("/") or path.startswith("//"):
            raise ValueError(f"expected a path starting with one '/', got {path!r}")
        return self.base_url + path

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        merged = dict(headers or {})
        merged["Authorization"] = f"Bearer {self.token()}"
        if not any(name.lower() == "traceparent" for name in merged):
            merged["traceparent"] = new_traceparent()
        return merged

    def _after(self, response: httpx.Response) -> httpx.Response:
        # A 401 means the broker no longer honours our token (revoked, key
        # rotated): drop it so the next call fetches a fresh one.
        if response.status_code == 401:
            with self._lock:
                self._token = None
                self._token_renew_at = None
        return response

    def get(self, path: str, *, headers: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
        return self._after(self._http.get(self._url(path), headers=self._headers(headers), **kw))

    def post(
        self,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> httpx.Response:
        return self._after(
            self._http.post(self._url(path), json=json, headers=self._headers(headers), **kw)
        )

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> BrokerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
