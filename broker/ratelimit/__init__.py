"""Rate limits and quotas per partner and per acting user (issue 5, point 6).

Bulk probing of cases or subjects is an abuse pattern: a stolen partner key
or a curious employee looking people up. This package counts requests in
sliding windows and refuses, with 429 and `Retry-After`, what goes over.

    policy.py   which limits apply to a request, and their numbers (pure)
    limiter.py  the counters: in-process, or Redis shared by every process
    guard.py    runs the checks; raises RateLimitedError on the first refusal
"""

from broker.ratelimit.guard import RateLimitedError, enforce_rate_limits
from broker.ratelimit.limiter import Decision, MemoryRateLimiter, RateLimiter, RedisRateLimiter
from broker.ratelimit.policy import Check, RateLimits, checks_for

__all__ = [
    "Check",
    "Decision",
    "MemoryRateLimiter",
    "RateLimitedError",
    "RateLimiter",
    "RateLimits",
    "RedisRateLimiter",
    "checks_for",
    "enforce_rate_limits",
]
