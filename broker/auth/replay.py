"""The replay cache: remembers client-assertion `jti`s until they expire.

What it does: `store_jti` records a key and says whether it was new, in one
atomic step, so two racing presentations of the same assertion cannot both
win (RFC 7523 §3, item 7: the server may keep a list of used `jti`s). Two
backends: `MemoryReplayCache` for the embedded profile (one process) and
`RedisReplayCache` for production (shared by every broker process).

What it does not: decide the key or the expiry. The token service builds the
key (`assertion:{client_id}:{jti}`) and computes a TTL that outlives the
assertion's acceptance window.

Why fail closed: an unreachable Redis, or an in-process cache full of
unexpired entries, raises `CacheUnavailableError` instead of answering
"new", because forgetting a `jti` early would reopen the replay window.
The token endpoint then answers 503 and issues nothing.
"""

from __future__ import annotations

import heapq
import threading
from datetime import datetime, timedelta
from typing import Protocol

import redis

from broker.clock import Clock
from broker.errors import CacheUnavailableError


class ReplayCache(Protocol):
    def store_jti(self, key: str, *, ttl_seconds: int) -> bool:
        """Remember `key` for `ttl_seconds`; True when it was new, False when seen before.

        Raise CacheUnavailableError when the answer cannot be given.
        """
        ...

    def ping(self) -> None:
        """Raise CacheUnavailableError when the cache cannot answer right now."""
        ...


def _check_ttl(ttl_seconds: int) -> None:
    # A zero or negative TTL would store nothing (or, in Redis, error out):
    # a caller bug that must not turn into "every jti is new".
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds < 1:
        raise ValueError(f"expected a positive whole number of seconds, got {ttl_seconds!r}")


class MemoryReplayCache:
    """An in-process replay cache for one broker process (the embedded profile).

    Bounded by `max_entries`: at most that many unexpired keys. When it is
    full it refuses (CacheUnavailableError) rather than evicting a live key,
    because an evicted key could be replayed.
    """

    def __init__(self, *, clock: Clock, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError(f"expected max_entries >= 1, got {max_entries!r}")
        self._clock = clock
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._expiry: dict[str, datetime] = {}
        # The same keys as (expires_at, key) in expiry order, so purging the
        # expired ones costs O(log n) each instead of a scan of the whole dict.
        self._heap: list[tuple[datetime, str]] = []

    def store_jti(self, key: str, *, ttl_seconds: int) -> bool:
        _check_ttl(ttl_seconds)
        now = self._clock.now()
        with self._lock:
            self._purge(now)
            if key in self._expiry:
                return False
            if len(self._expiry) >= self._max_entries:
                raise CacheUnavailableError(
                    f"expected room for one more jti, got {len(self._expiry)} unexpired entries"
                    f" (max {self._max_entries}); refusing rather than forgetting one"
                )
            expires_at = now + timedelta(seconds=ttl_seconds)
            self._expiry[key] = expires_at
            heapq.heappush(self._heap, (expires_at, key))
            return True

    def ping(self) -> None:
        return None

    def _purge(self, now: datetime) -> None:
        while self._heap and self._heap[0][0] <= now:
            _, key = heapq.heappop(self._heap)
            del self._expiry[key]


class RedisReplayCache:
    """A replay cache in Redis, shared by every broker process (production)."""

    def __init__(self, client: redis.Redis, *, namespace: str) -> None:
        if not namespace:
            raise ValueError("expected a non-empty key namespace, got ''")
        self._client = client
        self._namespace = namespace

    def store_jti(self, key: str, *, ttl_seconds: int) -> bool:
        _check_ttl(ttl_seconds)
        # One atomic command (style.md §16): SET ... NX sets only when absent
        # and answers OK, or nil when the key exists. A GET-then-SET would let
        # two racing requests both see "absent". EX makes Redis forget the key
        # after `ttl_seconds`, which must exceed the rest of the assertion's
        # acceptance window. An assertion verifies while now < exp + leeway
        # (30 s) and only if exp <= now + 300 s + leeway, so the token service
        # stores for ceil(exp - now) + 30 + 1 s: at most 330 + 31 = 361 s, and
        # always at least one second past the last moment it would verify.
        try:
            created = self._client.set(f"{self._namespace}:{key}", b"1", nx=True, ex=ttl_seconds)
        except redis.RedisError as e:
            raise CacheUnavailableError(f"expected Redis to answer SET NX, got {e!r}") from e
        return created is True

    def ping(self) -> None:
        try:
            self._client.ping()
        except redis.RedisError as e:
            raise CacheUnavailableError(f"expected Redis to answer PING, got {e!r}") from e
