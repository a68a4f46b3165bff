"""The broker's exception tree.

Every failure the broker can meet is one of three causes, and the API edge
maps each cause to one kind of answer::

    KetenbrokerError
    ├── TrustError                     credentials or signatures do not hold (401/403)
    │   ├── InvalidClientError         client assertion rejected (RFC 6749 §5.2)
    │   │   └── ReplayedAssertionError jti seen before
    │   ├── InvalidTokenError          access token rejected
    │   ├── InsufficientScopeError     token lacks the scope the call needs
    │   └── AdapterTrustError          adapter call or answer failed verification
    ├── InputError                     the request itself is wrong (400/404/409)
    │   ├── InvalidRequestError        malformed or unknown fields
    │   ├── ConvenantError             convenant file fails its schema
    │   ├── PayloadTooLargeError       a body beyond its bound (413)
    │   ├── NotFoundError              unknown, or not visible to the caller
    │   └── ConflictError              state does not allow the change (409)
    ├── RefusalError                   the policy said no; carries a contract `code`
    ├── RateLimitedError               over a rate limit or quota; carries `retry_after` (429)
    └── BackendUnavailableError        a dependency failed; fail closed (503)
        ├── AuditWriteError            the audit entry could not be made durable
        ├── PolicyUnavailableError     no usable policy decision
        ├── CacheUnavailableError      replay cache or rate limiter unreachable
        └── AdapterUnavailableError    provider adapter unreachable or broken

Messages say what was expected and what was got; they are for logs and the
audit trail. Partners receive a uniform problem document built from the
`code` and a fixed, data-free `public_detail` (style.md §12).
"""

from __future__ import annotations


class KetenbrokerError(Exception):
    """Root of every error the broker raises on purpose."""

    code: str = "internal_error"
    public_detail: str = "The request could not be completed."


class TrustError(KetenbrokerError):
    code = "unauthorized"
    public_detail = "Authentication failed."


class InvalidClientError(TrustError):
    code = "invalid_client"
    public_detail = "Client authentication failed."


class ReplayedAssertionError(InvalidClientError):
    """A client assertion's `jti` was presented before (RFC 7523 §3, item 7)."""


class InvalidTokenError(TrustError):
    code = "invalid_token"
    public_detail = "The access token is missing, invalid or expired."


class InsufficientScopeError(TrustError):
    code = "insufficient_scope"
    public_detail = "The access token does not carry the scope this call needs."


class AdapterTrustError(TrustError):
    code = "adapter_untrusted"
    public_detail = "The provider's answer could not be verified."


class InputError(KetenbrokerError):
    code = "invalid_request"
    public_detail = "The request is not valid."


class InvalidRequestError(InputError):
    pass


class ConvenantError(InputError):
    code = "invalid_convenant"
    public_detail = "The convenant file is not valid."


class PayloadTooLargeError(InputError):
    code = "payload_too_large"
    public_detail = "The request body is too large."


class NotFoundError(InputError):
    code = "not_found"
    public_detail = "The resource does not exist or is not visible to you."


class ConflictError(InputError):
    code = "conflict"
    public_detail = "The resource's state does not allow this change."


class RefusalError(KetenbrokerError):
    """The policy refused an exchange; `code` is one of contract.md's refusal codes."""

    def __init__(self, code: str, reason: str, *, status: int = 403) -> None:
        super().__init__(f"refused: {code}: {reason}")
        self.code = code
        self.reason = reason
        self.status = status
        self.public_detail = reason


class RateLimitedError(KetenbrokerError):
    """A partner or acting user went over a rate limit or quota (429).

    `retry_after` is the whole seconds until the request would fit, for the
    `Retry-After` header; `limit_name` names the `RateLimits` field.
    """

    code = "rate_limited"
    public_detail = "Too many requests; retry after the number of seconds in Retry-After."

    def __init__(self, message: str, *, retry_after: int, limit_name: str) -> None:
        super().__init__(message)
        if retry_after < 1:
            raise ValueError(f"expected retry_after >= 1 second, got {retry_after!r}")
        self.retry_after = retry_after
        self.limit_name = limit_name


class BackendUnavailableError(KetenbrokerError):
    code = "service_unavailable"
    public_detail = "A service the broker depends on is unavailable; nothing was disclosed."


class AuditWriteError(BackendUnavailableError):
    code = "audit_unavailable"
    public_detail = "The audit log could not record this request; nothing was disclosed."


class PolicyUnavailableError(BackendUnavailableError):
    code = "policy_unavailable"
    public_detail = "No policy decision could be made; nothing was disclosed."


class CacheUnavailableError(BackendUnavailableError):
    code = "cache_unavailable"
    public_detail = "A cache the broker depends on is unavailable; nothing was disclosed."


class AdapterUnavailableError(BackendUnavailableError):
    code = "provider_unavailable"
    public_detail = "The provider's system did not answer; nothing was disclosed."
