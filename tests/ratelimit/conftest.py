"""Fixtures for the rate-limit tests: both real limiters, and a Redis that is down.

Redis is the real server on 127.0.0.1:6379, one key namespace per test
(tests/conftest.py removes it afterwards); the in-process limiter is the
real embedded backend. Neither is a test double.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from broker.ratelimit.limiter import MemoryRateLimiter, RateLimiter, RedisRateLimiter

# A Monday morning inside the example convenant's validity (as tests/auth).
START = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def limiter(request: pytest.FixtureRequest) -> RateLimiter:
    if request.param == "memory":
        return MemoryRateLimiter()
    client: redis.Redis = request.getfixturevalue("redis_client")
    namespace: str = request.getfixturevalue("redis_namespace")
    return RedisRateLimiter(client, namespace=namespace)


@pytest.fixture
def unreachable_redis() -> Iterator[redis.Redis]:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    # No retries, so the test measures the failure, not the backoff.
    client = redis.Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0)
    )
    yield client
    client.close()
