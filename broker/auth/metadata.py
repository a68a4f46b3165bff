"""The broker's OAuth 2.0 authorization-server metadata (RFC 8414) and its URLs.

What it does: builds the metadata document from the issuer URL and checks
it with authlib's RFC 8414 validator, so a misconfigured issuer (plain http
to a non-loopback host, a query or fragment) fails loudly instead of being
published. It also names the endpoint URLs the token service accepts as a
client assertion's audience, so the two can never disagree.

What it does not: serve HTTP (`broker.api.routes.oauth`) or hold keys.

Why authlib here and nowhere else: its RFC 8414 validator is a ready check
of the published document; verification, where every option must be ours
to see, stays with pyjwt and cryptography.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

from broker.keys import ALLOWED_ALGORITHMS

TOKEN_PATH = "/oauth/token"  # noqa: S105  # a URL path, not a secret
JWKS_PATH = "/.well-known/jwks.json"
METADATA_PATH = "/.well-known/oauth-authorization-server"


def token_endpoint_url(issuer: str) -> str:
    return issuer.rstrip("/") + TOKEN_PATH


def jwks_url(issuer: str) -> str:
    return issuer.rstrip("/") + JWKS_PATH


def assertion_audiences(issuer: str) -> frozenset[str]:
    """What a client assertion's `aud` may name: the issuer or the token endpoint (RFC 7523 §3)."""
    return frozenset({issuer, token_endpoint_url(issuer)})


class _ClientCredentialsMetadata(AuthorizationServerMetadata):  # type: ignore[misc]  # authlib ships no types
    def validate_response_types_supported(self) -> None:
        # RFC 8414 §2 makes the member REQUIRED, but a server with only the
        # client_credentials grant has no authorization endpoint and so no
        # response types: the honest value is [], which authlib's own check
        # treats as missing. Present and an array is what we can promise.
        if not isinstance(self.get("response_types_supported"), list):
            # ValueError like every authlib validator, so callers catch one type.
            raise ValueError('"response_types_supported" MUST be a JSON array')  # noqa: TRY004


def authorization_server_metadata(*, issuer: str, scopes: Sequence[str]) -> dict[str, Any]:
    """The RFC 8414 document; raises ValueError when the issuer makes it invalid."""
    metadata = _ClientCredentialsMetadata(
        {
            "issuer": issuer,
            "token_endpoint": token_endpoint_url(issuer),
            "jwks_uri": jwks_url(issuer),
            "scopes_supported": list(scopes),
            "response_types_supported": [],
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": list(ALLOWED_ALGORITHMS),
        }
    )
    metadata.validate()
    return dict(metadata)
