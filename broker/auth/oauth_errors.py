"""The error a token request ends in, in the shape RFC 6749 §5.2 prescribes.

What it does: one exception, `OAuthError`, carrying the RFC 6749 §5.2 `error`
code, a fixed `error_description` safe to show any caller, and the HTTP
status. The cause (an `InvalidClientError`, a `CacheUnavailableError`, ...)
is chained as `__cause__`, and the internal detail, expected versus got, is
the exception's message: for the audit log, never for the caller.

What it does not: render HTTP; `broker.api.routes.oauth` does.

Why a separate exception: the token endpoint speaks RFC 6749, not RFC 9457
problem documents, and every refusal there must map to exactly one of its
codes whatever the broker-internal cause was.
"""

from __future__ import annotations

from broker.errors import KetenbrokerError

# RFC 6749 §5.2 codes with their status and a description that leaks nothing:
# the same text for an unknown client as for a bad signature (style.md §18).
INVALID_REQUEST = "invalid_request"
INVALID_CLIENT = "invalid_client"
UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"
INVALID_SCOPE = "invalid_scope"
# Not in §5.2 (RFC 6749 §4.1.2.1 defines it for the authorization endpoint);
# widely used at the token endpoint for "try again later", with 503.
TEMPORARILY_UNAVAILABLE = "temporarily_unavailable"

_STATUS_AND_DESCRIPTION = {
    INVALID_REQUEST: (400, "The token request is malformed."),
    # §5.2 allows 400 or 401 for invalid_client; 401 is what clients expect.
    INVALID_CLIENT: (401, "Client authentication failed."),
    UNSUPPORTED_GRANT_TYPE: (400, "Only the client_credentials grant is supported."),
    INVALID_SCOPE: (400, "The requested scope is not allowed for this client."),
    TEMPORARILY_UNAVAILABLE: (503, "The token service is temporarily unavailable."),
}


class OAuthError(KetenbrokerError):
    """A refused token request: `error`, public `description`, HTTP `status`.

    `str(exc)` is the internal detail (expected versus got) for the audit log.
    """

    def __init__(self, error: str, detail: str) -> None:
        status, description = _STATUS_AND_DESCRIPTION[error]
        super().__init__(detail)
        self.error = error
        self.description = description
        self.status = status
        self.code = error
        self.public_detail = description
