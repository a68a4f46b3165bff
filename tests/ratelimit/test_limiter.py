"""The rate limiter's contract, run against both backends (style.md §25).

Time is passed in (`now`), so window roll-over is tested at exact moments
without sleeping; the Redis backend uses the same `now`, not its own clock.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
import redis

from broker.errors import CacheUnavailableError
from broker.ratelimit.limiter import Decision, MemoryRateLimiter, RateLimiter, RedisRateLimiter
from tests.conftest import REDIS_URL
from tests.ratelimit.conftest import START

RACERS = 16


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def test_a_window_admits_exactly_limit_hits_and_counts_down(limiter: RateLimiter) -> None:
    decisions = [limiter.hit("k", limit=3, window_seconds=60, now=at(0)) for _ in range(4)]
    assert decisions == [
        Decision(allowed=True, retry_after_seconds=0, remaining=2),
        Decision(allowed=True, retry_after_seconds=0, remaining=1),
        Decision(allowed=True, retry_after_seconds=0, remaining=0),
        Decision(allowed=False, retry_after_seconds=60, remaining=0),
    ]


def test_retry_after_is_exactly_when_room_returns(limiter: RateLimiter) -> None:
    limiter.hit("k", limit=2, window_seconds=60, now=at(0))
    limiter.hit("k", limit=2, window_seconds=60, now=at(20))
    refused = limiter.hit("k", limit=2, window_seconds=60, now=at(30.5))
    # The hit at 0 leaves the window at 60: 29.5 s away, rounded up to 30.
    assert refused == Decision(allowed=False, retry_after_seconds=30, remaining=0)
    # A second early is still refused; waiting the advertised time finds room.
    assert not limiter.hit("k", limit=2, window_seconds=60, now=at(30.5 + 29)).allowed
    assert limiter.hit("k", limit=2, window_seconds=60, now=at(30.5 + 30)).allowed


def test_window_rolls_over_one_entry_at_a_time(limiter: RateLimiter) -> None:
    assert limiter.hit("k", limit=2, window_seconds=60, now=at(0)).allowed
    assert limiter.hit("k", limit=2, window_seconds=60, now=at(30)).allowed
    # 1 ms before the first hit leaves: still full, and retry in (rounded up) 1 s.
    assert limiter.hit("k", limit=2, window_seconds=60, now=at(59.999)) == Decision(
        allowed=False, retry_after_seconds=1, remaining=0
    )
    # At 60 the hit at 0 has left; the hit at 30 has not, so one slot only.
    assert limiter.hit("k", limit=2, window_seconds=60, now=at(60)).allowed
    assert limiter.hit("k", limit=2, window_seconds=60, now=at(61)) == Decision(
        allowed=False, retry_after_seconds=29, remaining=0
    )


def test_no_burst_across_a_fixed_window_boundary(limiter: RateLimiter) -> None:
    # The attack on fixed windows: the whole budget at 0:59, again at 1:00.
    # A sliding window sees both bursts in one window and refuses the second.
    for _ in range(5):
        assert limiter.hit("k", limit=5, window_seconds=60, now=at(59)).allowed
    assert not limiter.hit("k", limit=5, window_seconds=60, now=at(60)).allowed
    assert not limiter.hit("k", limit=5, window_seconds=60, now=at(118.9)).allowed
    assert limiter.hit("k", limit=5, window_seconds=60, now=at(119)).allowed


def test_refused_hits_do_not_push_room_further_away(limiter: RateLimiter) -> None:
    limiter.hit("k", limit=1, window_seconds=60, now=at(0))
    # Hammering while refused: each refusal names the same moment of room.
    for second in range(1, 60):
        decision = limiter.hit("k", limit=1, window_seconds=60, now=at(second))
        assert decision == Decision(allowed=False, retry_after_seconds=60 - second, remaining=0)
    assert limiter.hit("k", limit=1, window_seconds=60, now=at(60)).allowed


def test_keys_are_counted_apart(limiter: RateLimiter) -> None:
    assert limiter.hit("partner:a", limit=1, window_seconds=60, now=at(0)).allowed
    assert limiter.hit("partner:b", limit=1, window_seconds=60, now=at(0)).allowed
    assert not limiter.hit("partner:a", limit=1, window_seconds=60, now=at(0)).allowed


def test_sliding_log_agrees_with_a_brute_force_count(limiter: RateLimiter) -> None:
    # 400 hits at random moments (fixed seed) against the definition: a hit
    # at t is admitted iff fewer than `limit` admitted hits lie in (t - W, t].
    rng = random.Random(20260302)  # noqa: S311 - a reproducible sequence, not a secret
    limit, window_ms = 7, 60_000
    admitted: list[int] = []
    moment_ms = 0
    for _ in range(400):
        moment_ms += rng.choice([0, 0, 1, 250, 999, 1_000, 4_000, 9_000, 20_000])
        live = sorted(t for t in admitted if t > moment_ms - window_ms)
        if len(live) < limit:
            expected = Decision(True, 0, limit - len(live) - 1)
            admitted.append(moment_ms)
        else:
            free_at = live[len(live) - limit] + window_ms
            expected = Decision(False, max(1, -(-(free_at - moment_ms) // 1000)), 0)
        got = limiter.hit(
            "k", limit=limit, window_seconds=60, now=START + timedelta(milliseconds=moment_ms)
        )
        assert got == expected, f"at {moment_ms} ms"
    # And the invariant itself: no window anywhere holds more than `limit`.
    for i, t in enumerate(admitted):
        assert sum(1 for u in admitted[i:] if u < t + window_ms) <= limit


def race(hit: Callable[[int], Decision]) -> list[Decision]:
    """Run `hit(n)` in RACERS threads released at once; every thread's decisions."""
    barrier = threading.Barrier(RACERS)
    results: list[Decision] = []
    lock = threading.Lock()

    def run(n: int) -> None:
        barrier.wait()
        outcomes = [hit(n) for _ in range(8)]
        with lock:
            results.extend(outcomes)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert len(results) == RACERS * 8
    return results


def test_racing_hits_never_admit_more_than_the_limit(limiter: RateLimiter) -> None:
    # 16 threads x 8 hits in one window: a count-then-add that is not atomic
    # would let several threads see "one slot left" and all take it.
    results = race(lambda _: limiter.hit("raced", limit=10, window_seconds=60, now=at(0)))
    assert sum(d.allowed for d in results) == 10
    assert sorted(d.remaining for d in results if d.allowed) == list(range(10))


def test_racing_new_members_never_exceed_the_distinct_cap(limiter: RateLimiter) -> None:
    results = race(
        lambda n: limiter.hit_distinct(
            "raced", member=f"pair-{n}", limit=5, window_seconds=3600, now=at(0)
        )
    )
    # Five threads got their member in (all 8 of their hits pass); the rest none.
    assert sum(d.allowed for d in results) == 5 * 8


# --- distinct members --------------------------------------------------------


def test_asking_again_about_a_known_pair_costs_nothing(limiter: RateLimiter) -> None:
    for _ in range(50):
        assert limiter.hit_distinct(
            "u", member="case-1/subject-1", limit=2, window_seconds=3600, now=at(0)
        ) == Decision(allowed=True, retry_after_seconds=0, remaining=1)


def test_enumerating_new_pairs_is_refused_at_the_cap(limiter: RateLimiter) -> None:
    for n in range(3):
        assert limiter.hit_distinct(
            "u", member=f"case-1/subject-{n}", limit=3, window_seconds=3600, now=at(n * 600)
        ).allowed
    # Slowly (ten minutes apart) does not help: the fourth new pair in the hour.
    refused = limiter.hit_distinct(
        "u", member="case-1/subject-3", limit=3, window_seconds=3600, now=at(1800)
    )
    # Room returns when subject-0 (seen at 0) leaves the hour: at 3600.
    assert refused == Decision(allowed=False, retry_after_seconds=1800, remaining=0)
    # Work on the pairs already seen goes on while new ones are refused.
    assert limiter.hit_distinct(
        "u", member="case-1/subject-1", limit=3, window_seconds=3600, now=at(1800)
    ).allowed
    assert limiter.hit_distinct(
        "u", member="case-1/subject-3", limit=3, window_seconds=3600, now=at(3600)
    ).allowed


def test_seeing_a_pair_again_restarts_its_hour(limiter: RateLimiter) -> None:
    def seen(member: str, second: float) -> Decision:
        return limiter.hit_distinct(
            "u", member=member, limit=2, window_seconds=3600, now=at(second)
        )

    assert seen("a", 0).allowed
    assert seen("b", 10).allowed
    assert seen("a", 3000).allowed  # "a" now counts until 6600, not 3600
    # Full: the oldest entry is now "b" (10), so room returns at 3610.
    assert seen("c", 3500) == Decision(allowed=False, retry_after_seconds=110, remaining=0)
    assert seen("c", 3610).allowed  # "b" left; "a" is still in
    assert not seen("d", 3700).allowed


def test_a_late_clock_does_not_move_a_pair_back(limiter: RateLimiter) -> None:
    # Another broker process whose clock lags must not shorten a pair's hour.
    assert limiter.hit_distinct("u", member="a", limit=1, window_seconds=60, now=at(30)).allowed
    assert limiter.hit_distinct("u", member="a", limit=1, window_seconds=60, now=at(0)).allowed
    assert not limiter.hit_distinct("u", member="b", limit=1, window_seconds=60, now=at(60)).allowed
    assert limiter.hit_distinct("u", member="b", limit=1, window_seconds=60, now=at(90)).allowed


# --- caller bugs -------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "window"),
    [
        (0, 60),  # a limit of nothing: every hit refused, with no moment to retry at
        (-1, 60),  # arithmetic gone wrong
        (True, 60),  # a bool is an int in Python; not a count
        (5, 0),  # a window of no time would count nothing: every hit allowed
        (5, -60),  # negative window: a caller's arithmetic gone wrong
        (5, 1.5),  # windows are whole seconds
    ],
)
def test_nonsensical_limits_are_caller_bugs(limiter: RateLimiter, limit: int, window: int) -> None:
    with pytest.raises(ValueError, match="positive whole number"):
        limiter.hit("k", limit=limit, window_seconds=window, now=at(0))
    with pytest.raises(ValueError, match="positive whole number"):
        limiter.hit_distinct("k", member="m", limit=limit, window_seconds=window, now=at(0))


def test_naive_now_is_refused(limiter: RateLimiter) -> None:
    # A naive datetime is "local time somewhere": windows would shift by hours.
    with pytest.raises(ValueError, match="timezone-aware"):
        limiter.hit("k", limit=1, window_seconds=60, now=datetime(2026, 3, 2, 9))


@pytest.mark.parametrize(("key", "member"), [("", "m"), ("k", "")])
def test_empty_key_or_member_is_refused(limiter: RateLimiter, key: str, member: str) -> None:
    with pytest.raises(ValueError, match="non-empty"):
        limiter.hit_distinct(key, member=member, limit=1, window_seconds=60, now=at(0))


# --- the in-process backend --------------------------------------------------


def test_memory_limiter_full_of_live_keys_refuses_rather_than_forgets() -> None:
    limiter = MemoryRateLimiter(max_keys=2)
    assert limiter.hit("a", limit=1, window_seconds=60, now=at(0)).allowed
    assert limiter.hit("b", limit=1, window_seconds=60, now=at(0)).allowed
    with pytest.raises(CacheUnavailableError, match="refusing rather than forgetting"):
        limiter.hit("c", limit=1, window_seconds=60, now=at(1))
    # Nothing was dropped to make room: "a" is still at its limit.
    assert not limiter.hit("a", limit=1, window_seconds=60, now=at(1)).allowed


def test_memory_limiter_makes_room_from_idle_keys_only() -> None:
    limiter = MemoryRateLimiter(max_keys=2)
    limiter.hit("short", limit=1, window_seconds=10, now=at(0))
    limiter.hit("long", limit=1, window_seconds=60, now=at(0))
    assert limiter.hit("new", limit=1, window_seconds=60, now=at(10)).allowed  # "short" left
    assert not limiter.hit("long", limit=1, window_seconds=60, now=at(10)).allowed


def test_memory_limiter_keeps_a_refreshed_key() -> None:
    # A key seen again lives one window past its newest entry, not its first.
    limiter = MemoryRateLimiter(max_keys=1)
    limiter.hit_distinct("u", member="a", limit=1, window_seconds=60, now=at(0))
    limiter.hit_distinct("u", member="a", limit=1, window_seconds=60, now=at(50))
    assert not limiter.hit_distinct(
        "u", member="b", limit=1, window_seconds=60, now=at(100)
    ).allowed
    with pytest.raises(CacheUnavailableError):
        limiter.hit("other", limit=1, window_seconds=60, now=at(100))


def test_memory_limiter_needs_room_for_one_key() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        MemoryRateLimiter(max_keys=0)


# --- the Redis backend -------------------------------------------------------


@pytest.mark.redis
def test_redis_key_expires_so_idle_keys_cannot_pile_up(
    redis_client: redis.Redis, redis_namespace: str
) -> None:
    limiter = RedisRateLimiter(redis_client, namespace=redis_namespace)
    limiter.hit("ratelimit:rate:partner:p", limit=5, window_seconds=60, now=at(0))
    ttl_ms = redis_client.pttl(f"{redis_namespace}:ratelimit:rate:partner:p")
    assert 55_000 <= ttl_ms <= 60_000


@pytest.mark.redis
def test_redis_limiters_in_two_processes_share_one_count(
    redis_client: redis.Redis, redis_namespace: str
) -> None:
    # Two broker processes: two clients, one Redis. The count is the sum.
    other_client = redis.Redis.from_url(REDIS_URL)
    try:
        first = RedisRateLimiter(redis_client, namespace=redis_namespace)
        second = RedisRateLimiter(other_client, namespace=redis_namespace)
        assert first.hit("k", limit=2, window_seconds=60, now=at(0)).allowed
        assert second.hit("k", limit=2, window_seconds=60, now=at(0)).allowed
        assert not first.hit("k", limit=2, window_seconds=60, now=at(0)).allowed
    finally:
        other_client.close()


@pytest.mark.redis
def test_redis_limiter_keeps_to_its_namespace(
    redis_client: redis.Redis, redis_namespace: str
) -> None:
    RedisRateLimiter(redis_client, namespace=redis_namespace).hit(
        "k", limit=1, window_seconds=60, now=at(0)
    )
    other = RedisRateLimiter(redis_client, namespace=redis_namespace + "-other")
    try:
        assert other.hit("k", limit=1, window_seconds=60, now=at(0)).allowed
    finally:
        redis_client.delete(f"{redis_namespace}-other:k")


@pytest.mark.redis
def test_redis_key_of_the_wrong_type_fails_closed(
    redis_client: redis.Redis, redis_namespace: str
) -> None:
    # Something else wrote a plain string where the sorted set should be:
    # Redis answers WRONGTYPE, and the limiter must not read that as "allowed".
    redis_client.set(f"{redis_namespace}:k", b"not a sorted set")
    limiter = RedisRateLimiter(redis_client, namespace=redis_namespace)
    with pytest.raises(CacheUnavailableError, match="rate-limit script") as caught:
        limiter.hit("k", limit=5, window_seconds=60, now=at(0))
    assert isinstance(caught.value.__cause__, redis.ResponseError)


def test_unreachable_redis_fails_closed(unreachable_redis: redis.Redis) -> None:
    limiter = RedisRateLimiter(unreachable_redis, namespace="kbtest-down")
    with pytest.raises(CacheUnavailableError, match="rate-limit script") as caught:
        limiter.hit("k", limit=5, window_seconds=60, now=at(0))
    assert isinstance(caught.value.__cause__, redis.ConnectionError)
    with pytest.raises(CacheUnavailableError):
        limiter.hit_distinct("k", member="m", limit=5, window_seconds=60, now=at(0))


def test_empty_namespace_is_refused(unreachable_redis: redis.Redis) -> None:
    # Without a prefix the limiter would share a key space with everything else.
    with pytest.raises(ValueError, match="namespace"):
        RedisRateLimiter(unreachable_redis, namespace="")
