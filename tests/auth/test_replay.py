"""The replay cache's contract, run against both backends (style.md §25).

Redis is the real server on 127.0.0.1:6379 (a namespace per test); the
in-process cache is the real embedded backend. Neither is a test double.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from broker.auth.replay import MemoryReplayCache, RedisReplayCache, ReplayCache
from broker.errors import CacheUnavailableError
from tests.auth.conftest import START
from tests.auth.helpers import SteppingClock

RACERS = 16


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def cache(request: pytest.FixtureRequest) -> ReplayCache:
    if request.param == "memory":
        return MemoryReplayCache(clock=SteppingClock(START))
    client: redis.Redis = request.getfixturevalue("redis_client")
    namespace: str = request.getfixturevalue("redis_namespace")
    return RedisReplayCache(client, namespace=namespace)


@pytest.fixture
def unreachable_redis() -> Iterator[redis.Redis]:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    # No retries, so the test measures the failure, not the backoff.
    client = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    yield client
    client.close()


def test_first_presentation_is_new_and_the_second_is_a_replay(cache: ReplayCache) -> None:
    assert cache.store_jti("assertion:gemeente-lekstroom:j1", ttl_seconds=60) is True
    assert cache.store_jti("assertion:gemeente-lekstroom:j1", ttl_seconds=60) is False


def test_same_jti_from_another_client_is_a_different_key(cache: ReplayCache) -> None:
    assert cache.store_jti("assertion:gemeente-lekstroom:j1", ttl_seconds=60) is True
    assert cache.store_jti("assertion:politie-lekstroom:j1", ttl_seconds=60) is True


def test_racing_replays_of_one_jti_admit_exactly_one(cache: ReplayCache) -> None:
    barrier = threading.Barrier(RACERS)
    results: list[bool] = []
    lock = threading.Lock()

    def race() -> None:
        barrier.wait()
        outcome = cache.store_jti("assertion:gemeente-lekstroom:raced", ttl_seconds=60)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=race) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(results) == RACERS
    assert results.count(True) == 1


@pytest.mark.parametrize(
    "ttl",
    [
        0,  # "remember for no time" would make every jti new
        -5,  # negative: a caller's arithmetic gone wrong
        True,  # a bool is an int in Python; not a duration
    ],
)
def test_nonpositive_ttl_is_a_caller_bug_not_a_new_jti(cache: ReplayCache, ttl: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        cache.store_jti("assertion:gemeente-lekstroom:j1", ttl_seconds=ttl)


def test_ping_answers_when_the_backend_is_up(cache: ReplayCache) -> None:
    cache.ping()


# --- the in-process backend -------------------------------------------------


def test_memory_cache_forgets_a_jti_only_after_its_ttl() -> None:
    clock = SteppingClock(START)
    cache = MemoryReplayCache(clock=clock)
    assert cache.store_jti("k", ttl_seconds=60) is True
    clock.advance(59)
    assert cache.store_jti("k", ttl_seconds=60) is False
    clock.advance(1)
    assert cache.store_jti("k", ttl_seconds=60) is True


def test_memory_cache_full_of_live_entries_refuses_rather_than_forgets() -> None:
    cache = MemoryReplayCache(clock=SteppingClock(START), max_entries=3)
    for n in range(3):
        assert cache.store_jti(f"k{n}", ttl_seconds=60) is True
    with pytest.raises(CacheUnavailableError, match="refusing rather than forgetting"):
        cache.store_jti("k3", ttl_seconds=60)
    # The live entries are all still there: nothing was evicted to make room.
    assert [cache.store_jti(f"k{n}", ttl_seconds=60) for n in range(3)] == [False] * 3


def test_memory_cache_makes_room_from_expired_entries_only() -> None:
    clock = SteppingClock(START)
    cache = MemoryReplayCache(clock=clock, max_entries=2)
    assert cache.store_jti("short", ttl_seconds=10) is True
    assert cache.store_jti("long", ttl_seconds=100) is True
    clock.advance(10)
    assert cache.store_jti("new", ttl_seconds=100) is True  # "short" expired: room
    assert cache.store_jti("long", ttl_seconds=100) is False  # still remembered


# --- the Redis backend ------------------------------------------------------


@pytest.mark.redis
def test_redis_key_carries_an_expiry_so_the_cache_cannot_grow_forever(
    redis_client: redis.Redis, redis_namespace: str
) -> None:
    cache = RedisReplayCache(redis_client, namespace=redis_namespace)
    assert cache.store_jti("assertion:gemeente-lekstroom:j1", ttl_seconds=361) is True
    ttl = redis_client.ttl(f"{redis_namespace}:assertion:gemeente-lekstroom:j1")
    assert 355 <= ttl <= 361


@pytest.mark.redis
def test_redis_cache_keeps_to_its_namespace(
    redis_client: redis.Redis, redis_namespace: str
) -> None:
    RedisReplayCache(redis_client, namespace=redis_namespace).store_jti("k", ttl_seconds=60)
    other = RedisReplayCache(redis_client, namespace=redis_namespace + "-other")
    try:
        assert other.store_jti("k", ttl_seconds=60) is True
    finally:
        redis_client.delete(f"{redis_namespace}-other:k")


def test_unreachable_redis_fails_closed_on_store(unreachable_redis: redis.Redis) -> None:
    cache = RedisReplayCache(unreachable_redis, namespace="kbtest-down")
    with pytest.raises(CacheUnavailableError, match="SET NX") as caught:
        cache.store_jti("assertion:gemeente-lekstroom:j1", ttl_seconds=60)
    assert isinstance(caught.value.__cause__, redis.ConnectionError)


def test_unreachable_redis_fails_closed_on_ping(unreachable_redis: redis.Redis) -> None:
    with pytest.raises(CacheUnavailableError, match="PING"):
        RedisReplayCache(unreachable_redis, namespace="kbtest-down").ping()


def test_empty_namespace_is_refused(redis_client: redis.Redis) -> None:
    # Without a prefix the cache would share a key space with everything else in Redis.
    with pytest.raises(ValueError, match="namespace"):
        RedisReplayCache(redis_client, namespace="")
