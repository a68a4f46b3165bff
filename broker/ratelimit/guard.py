"""The rate-limit guard: run a request's checks and refuse the first one that fails.

What it does: `enforce_rate_limits` asks `policy.checks_for` which limits
apply, counts the request against each through a `RateLimiter`, and raises
`RateLimitedError` (code `rate_limited`, with `retry_after` in seconds) at
the first refusal. It returns nothing when every check admits.

What it does not: write the audit entry or the HTTP answer. The app's
error handler maps `RateLimitedError` to 429 with `Retry-After` (RFC 6585
§4, RFC 9110 §10.2.3) and records a `security_event` with this error's
message, as it does for every refusal at the edge.

Why it raises rather than returns a decision: a forgotten check of a
returned value would let the request through; an exception cannot be
ignored by accident. A limiter that cannot answer raises
`CacheUnavailableError` through this function unchanged: 503, fail closed.
"""

from __future__ import annotations

from datetime import datetime

from broker.errors import RateLimitedError
from broker.ratelimit.limiter import RateLimiter
from broker.ratelimit.policy import RateLimits, checks_for

__all__ = ["RateLimitedError", "enforce_rate_limits"]


def enforce_rate_limits(
    *,
    limiter: RateLimiter,
    limits: RateLimits,
    caller_partner: str,
    acting_user: str | None,
    case: str,
    subject: str | None,
    now: datetime,
) -> None:
    """Count one request; raise RateLimitedError if any limit refuses it.

    An exchange passes `acting_user` and `subject`; a case read passes
    neither. Raises CacheUnavailableError when the limiter cannot answer.
    """
    for check in checks_for(
        limits, partner=caller_partner, acting_user=acting_user, case=case, subject=subject
    ):
        if check.member is None:
            decision = limiter.hit(
                check.key, limit=check.limit, window_seconds=check.window_seconds, now=now
            )
        else:
            decision = limiter.hit_distinct(
                check.key,
                member=check.member,
                limit=check.limit,
                window_seconds=check.window_seconds,
                now=now,
            )
        if not decision.allowed:
            # For the audit log (clipped there): who and which limit. Never
            # the case or subject: those are what a prober is fishing with.
            who = f"partner {caller_partner!r}"
            if acting_user is not None:
                who += f", acting user {acting_user!r}"
            raise RateLimitedError(
                f"expected at most {check.limit} per {check.window_seconds} s"
                f" ({check.limit_name}) from {who}, got one more;"
                f" retry after {decision.retry_after_seconds} s",
                retry_after=decision.retry_after_seconds,
                limit_name=check.limit_name,
            )
