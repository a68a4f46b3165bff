"""The guard against the abuse patterns it exists for, on both limiters."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import redis

from broker.errors import CacheUnavailableError, KetenbrokerError
from broker.ratelimit.guard import RateLimitedError, enforce_rate_limits
from broker.ratelimit.limiter import RateLimiter, RedisRateLimiter
from broker.ratelimit.policy import RateLimits
from tests.ratelimit.conftest import START

PARTNER = "gemeente-lekstroom"

# Generous everywhere except where a test sets a number: each test then
# meets exactly the limit it is about.
ROOMY = {
    "user_requests_per_minute": 1_000,
    "partner_requests_per_minute": 1_000,
    "user_distinct_pairs_per_hour": 1_000,
    "partner_distinct_pairs_per_hour": 1_000,
    "partner_distinct_cases_per_hour": 1_000,
    "partner_exchanges_per_day": 1_000,
}


def limits(**numbers: int) -> RateLimits:
    return RateLimits.model_validate({**ROOMY, **numbers})


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def exchange(
    limiter: RateLimiter,
    rate_limits: RateLimits,
    *,
    user: str = "j.jansen",
    case: str = "C-1",
    subject: str = "S-1",
    now: datetime = START,
    partner: str = PARTNER,
) -> None:
    enforce_rate_limits(
        limiter=limiter,
        limits=rate_limits,
        caller_partner=partner,
        acting_user=user,
        case=case,
        subject=subject,
        now=now,
    )


def case_read(limiter: RateLimiter, rate_limits: RateLimits, *, case: str, now: datetime) -> None:
    enforce_rate_limits(
        limiter=limiter,
        limits=rate_limits,
        caller_partner=PARTNER,
        acting_user=None,
        case=case,
        subject=None,
        now=now,
    )


def test_requests_within_every_limit_pass(limiter: RateLimiter) -> None:
    for n in range(5):
        exchange(limiter, RateLimits(), subject=f"S-{n % 2}", now=at(n * 10))
        case_read(limiter, RateLimits(), case="C-1", now=at(n * 10))


def test_a_user_over_the_rate_is_refused_with_retry_after(limiter: RateLimiter) -> None:
    rate_limits = limits(user_requests_per_minute=3)
    for second in range(3):
        exchange(limiter, rate_limits, now=at(second))
    with pytest.raises(RateLimitedError) as caught:
        exchange(limiter, rate_limits, now=at(10))
    error = caught.value
    assert isinstance(error, KetenbrokerError)
    assert (error.code, error.limit_name, error.retry_after) == (
        "rate_limited",
        "user_requests_per_minute",
        50,  # the hit at 0 leaves the minute at 60
    )
    # The audit detail names who and which limit, never the case or subject.
    assert "'j.jansen'" in str(error) and PARTNER in str(error)
    assert "C-1" not in str(error) and "S-1" not in str(error)
    exchange(limiter, rate_limits, now=at(60))


def test_one_user_hammering_does_not_lock_out_colleagues(limiter: RateLimiter) -> None:
    rate_limits = limits(user_requests_per_minute=2, partner_requests_per_minute=4)
    for _ in range(2):
        exchange(limiter, rate_limits, user="hammer")
    for _ in range(50):
        with pytest.raises(RateLimitedError):
            exchange(limiter, rate_limits, user="hammer")
    # The refused requests were stopped at the user's limit and did not
    # spend the partner's minute, which colleagues share.
    exchange(limiter, rate_limits, user="colleague-1")
    exchange(limiter, rate_limits, user="colleague-2")


def test_inventing_users_does_not_escape_the_partner_rate(limiter: RateLimiter) -> None:
    # on_behalf_of.user is the partner's claim: a fresh name per request.
    rate_limits = limits(user_requests_per_minute=1, partner_requests_per_minute=5)
    for n in range(5):
        exchange(limiter, rate_limits, user=f"invented-{n}")
    with pytest.raises(RateLimitedError) as caught:
        exchange(limiter, rate_limits, user="invented-5")
    assert caught.value.limit_name == "partner_requests_per_minute"


def test_slowly_enumerating_subjects_is_caught_by_the_distinct_cap(
    limiter: RateLimiter,
) -> None:
    # One new subject every 200 seconds passes every rate, and still is
    # enumeration: the 16th new pair within the hour is refused.
    rate_limits = limits(user_distinct_pairs_per_hour=15)
    for n in range(15):
        exchange(limiter, rate_limits, subject=f"bewoner-{n}", now=at(n * 200))
    with pytest.raises(RateLimitedError) as caught:
        exchange(limiter, rate_limits, subject="bewoner-15", now=at(15 * 200))
    assert caught.value.limit_name == "user_distinct_pairs_per_hour"
    assert caught.value.retry_after == 3600 - 15 * 200  # when bewoner-0 leaves the hour
    # Asking again about subjects already seen is ordinary work: allowed.
    exchange(limiter, rate_limits, subject="bewoner-3", now=at(15 * 200))


def test_inventing_users_does_not_escape_the_partner_pair_cap(limiter: RateLimiter) -> None:
    rate_limits = limits(user_distinct_pairs_per_hour=2, partner_distinct_pairs_per_hour=6)
    for n in range(6):
        exchange(limiter, rate_limits, user=f"invented-{n // 2}", subject=f"S-{n}")
    with pytest.raises(RateLimitedError) as caught:
        exchange(limiter, rate_limits, user="invented-9", subject="S-6")
    assert caught.value.limit_name == "partner_distinct_pairs_per_hour"


def test_a_request_refused_for_speed_takes_no_pair_slot(limiter: RateLimiter) -> None:
    rate_limits = limits(user_requests_per_minute=1, user_distinct_pairs_per_hour=2)
    exchange(limiter, rate_limits, subject="S-1", now=at(0))
    for n in range(10):
        with pytest.raises(RateLimitedError):
            exchange(limiter, rate_limits, subject=f"probe-{n}", now=at(1))
    # None of the ten probes reached the pair set: one slot is still free.
    exchange(limiter, rate_limits, subject="S-2", now=at(60))


def test_probing_case_ids_is_caught_by_the_distinct_case_cap(limiter: RateLimiter) -> None:
    rate_limits = limits(partner_distinct_cases_per_hour=10)
    for n in range(10):
        case_read(limiter, rate_limits, case=f"C-{n}", now=at(n * 30))
    with pytest.raises(RateLimitedError) as caught:
        case_read(limiter, rate_limits, case="C-10", now=at(300))
    assert caught.value.limit_name == "partner_distinct_cases_per_hour"
    # A dashboard rereading the cases it knows keeps working.
    for n in range(10):
        case_read(limiter, rate_limits, case=f"C-{n}", now=at(301))


def test_the_daily_quota_holds_over_a_rolling_day(limiter: RateLimiter) -> None:
    rate_limits = limits(partner_exchanges_per_day=3)
    for hour in range(3):
        exchange(limiter, rate_limits, now=at(hour * 3600))
    with pytest.raises(RateLimitedError) as caught:
        exchange(limiter, rate_limits, now=at(12 * 3600))
    assert caught.value.limit_name == "partner_exchanges_per_day"
    assert caught.value.retry_after == 12 * 3600  # the first leaves the day at 24:00
    exchange(limiter, rate_limits, now=at(24 * 3600))


def test_partners_are_limited_apart(limiter: RateLimiter) -> None:
    rate_limits = limits(partner_requests_per_minute=1)
    exchange(limiter, rate_limits, partner=PARTNER)
    exchange(limiter, rate_limits, partner="politie-lekstroom")
    with pytest.raises(RateLimitedError):
        exchange(limiter, rate_limits, partner=PARTNER)


def test_an_unreachable_limiter_fails_closed(unreachable_redis: redis.Redis) -> None:
    limiter = RedisRateLimiter(unreachable_redis, namespace="kbtest-down")
    with pytest.raises(CacheUnavailableError):
        exchange(limiter, RateLimits())
    with pytest.raises(CacheUnavailableError):
        case_read(limiter, RateLimits(), case="C-1", now=START)


def test_a_refusal_always_names_a_moment_to_retry() -> None:
    # Retry-After: 0 would invite an instant retry loop.
    with pytest.raises(ValueError, match="retry_after"):
        RateLimitedError("x", retry_after=0, limit_name="user_requests_per_minute")
