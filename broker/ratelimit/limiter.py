"""Sliding-window rate limiters: count what a key did in the last N seconds.

What it does: `hit` counts one request against a key and says whether it
fits `limit` requests in any `window_seconds`; `hit_distinct` counts a
*member* (a case, a case-subject pair) against a key and says whether it
fits `limit` distinct members in the window, so asking about one subject a
hundred times costs one slot and asking about a hundred subjects costs a
hundred. Both answer a `Decision` with the seconds until the next request
would fit (RFC 9110 §10.2.3 `Retry-After`). Two backends, the same
contract: `MemoryRateLimiter` for the embedded profile (one process) and
`RedisRateLimiter` for production (shared by every broker process).

What it does not: choose keys, limits or windows (`broker.ratelimit.policy`)
or turn a refusal into an HTTP answer (`broker.ratelimit.guard`, the edge).

How it counts: an exact sliding log. Each key holds the moments of its
admitted hits (or, for distinct counting, each member's last moment) in a
sorted set; a hit first drops the entries older than the window, then is
admitted only while fewer than `limit` remain. So no window of
`window_seconds`, wherever it starts, ever admits more than `limit`; a
fixed window would admit up to twice that across a boundary, and the
two-bucket approximation nearly twice it when the previous window's hits
came at its end: exactly the burst an enumeration script would use. The
price is memory: up to `limit` entries per key, which `RateLimits` bounds
(at most 10 000 per key).
Refused hits are not recorded, so a client that keeps hammering while
refused is admitted again as soon as the window has room.

Why fail closed: an unreachable Redis, an answer of the wrong shape, or an
in-process limiter full of live keys raises `CacheUnavailableError`; the
edge answers 503 and discloses nothing. Answering "allowed" instead would
switch off the abuse protection for as long as an attacker could keep Redis
unreachable or the in-process limiter full.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

import redis

from broker.errors import CacheUnavailableError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class Decision:
    """One hit's outcome.

    `retry_after_seconds` is 0 when allowed and at least 1 when refused: the
    whole seconds until the oldest entry that must leave the window has left
    it. `remaining` is how many more hits the window admits now (0 when
    refused).
    """

    allowed: bool
    retry_after_seconds: int
    remaining: int


class RateLimiter(Protocol):
    def hit(self, key: str, *, limit: int, window_seconds: int, now: datetime) -> Decision:
        """Count one request against `key`; allowed while fewer than `limit` in the window.

        Raise CacheUnavailableError when the answer cannot be given.
        """
        ...

    def hit_distinct(
        self, key: str, *, member: str, limit: int, window_seconds: int, now: datetime
    ) -> Decision:
        """Count `member` against `key`; a member already in the window is always allowed.

        A new member is allowed while fewer than `limit` distinct members were
        seen in the window. Seeing a member again restarts its window.
        Raise CacheUnavailableError when the answer cannot be given.
        """
        ...


def _check(key: str, member: str, limit: int, window_seconds: int, now: datetime) -> int:
    """Validate a hit's arguments; return `now` in whole milliseconds since the epoch."""
    if not key or not member:
        raise ValueError(f"expected a non-empty key and member, got {key!r} and {member!r}")
    # A bool is an int in Python; neither True nor 0 is a meaningful limit or
    # window, and 0 would make every hit a refusal with no moment to retry at.
    for name, value in (("limit", limit), ("window_seconds", window_seconds)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"expected {name} to be a positive whole number, got {value!r}")
    if now.tzinfo is None:
        raise ValueError("expected a timezone-aware now, got a naive datetime")
    return (now - _EPOCH) // _MS


def _retry_after_seconds(free_at_ms: int, now_ms: int) -> int:
    # Round up: a client that waits the advertised whole seconds must find
    # room; and at least 1, since Retry-After: 0 would invite an instant retry.
    return max(1, -(-(free_at_ms - now_ms) // 1000))


@dataclass
class _Log:
    """One key's live entries: member -> moment, and the same sorted by moment."""

    expires_at_ms: int
    moments: dict[str, int] = field(default_factory=dict)
    ordered: list[tuple[int, str]] = field(default_factory=list)


class MemoryRateLimiter:
    """An in-process rate limiter for one broker process (the embedded profile).

    Bounded by `max_keys` live keys. When full it refuses with
    CacheUnavailableError rather than dropping a live key, because a dropped
    key is a counter reset to zero for whoever owns it. Keys leave once their
    newest entry is older than their window.

    Time comes only from each hit's `now` (style.md §5), so it takes no
    clock: a second source of time could disagree with the first.
    """

    def __init__(self, *, max_keys: int = 100_000) -> None:
        if max_keys < 1:
            raise ValueError(f"expected max_keys >= 1, got {max_keys!r}")
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._logs: dict[str, _Log] = {}
        # (expires_at_ms, key) for every key, stale rows included: a key whose
        # log was refreshed has a later row too, so a popped row counts only
        # if it still matches the log. Purging costs O(log n) per expired key.
        self._expiry: list[tuple[int, str]] = []
        self._serial = itertools.count()

    def hit(self, key: str, *, limit: int, window_seconds: int, now: datetime) -> Decision:
        # A plain hit is a distinct hit by a member never seen before.
        member = f"hit-{next(self._serial)}"
        return self._admit(key, member, limit=limit, window_seconds=window_seconds, now=now)

    def hit_distinct(
        self, key: str, *, member: str, limit: int, window_seconds: int, now: datetime
    ) -> Decision:
        return self._admit(key, member, limit=limit, window_seconds=window_seconds, now=now)

    def _admit(
        self, key: str, member: str, *, limit: int, window_seconds: int, now: datetime
    ) -> Decision:
        now_ms = _check(key, member, limit, window_seconds, now)
        window_ms = window_seconds * 1000
        with self._lock:
            self._purge_keys(now_ms)
            log = self._logs.get(key)
            if log is None:
                if len(self._logs) >= self._max_keys:
                    raise CacheUnavailableError(
                        f"expected room for one more rate-limit key, got {len(self._logs)}"
                        f" live keys (max {self._max_keys}); refusing rather than forgetting one"
                    )
                # -1: not yet in the expiry heap; the first _record puts it there.
                log = _Log(expires_at_ms=-1)
                self._logs[key] = log
            # An entry at moment t counts for hits in [t, t + window).
            cut = bisect.bisect_right(log.ordered, now_ms - window_ms, key=lambda e: e[0])
            for _, gone in log.ordered[:cut]:
                del log.moments[gone]
            del log.ordered[:cut]
            seen = log.moments.get(member)
            if seen is not None:
                # Seen again: move it forward, never back (another process's
                # clock may lag; Redis's ZADD GT does the same).
                if now_ms > seen:
                    log.ordered.remove((seen, member))
                    self._record(key, log, member, now_ms, window_ms)
                return Decision(True, 0, max(0, limit - len(log.ordered)))
            count = len(log.ordered)
            if count < limit:
                self._record(key, log, member, now_ms, window_ms)
                return Decision(True, 0, limit - count - 1)
            # Room comes when the (count - limit + 1) oldest entries have left.
            free_at_ms = log.ordered[count - limit][0] + window_ms
            return Decision(False, _retry_after_seconds(free_at_ms, now_ms), 0)

    def _record(self, key: str, log: _Log, member: str, now_ms: int, window_ms: int) -> None:
        log.moments[member] = now_ms
        bisect.insort(log.ordered, (now_ms, member))
        expires_at_ms = max(log.expires_at_ms, now_ms + window_ms)
        if expires_at_ms != log.expires_at_ms:
            log.expires_at_ms = expires_at_ms
            heapq.heappush(self._expiry, (expires_at_ms, key))

    def _purge_keys(self, now_ms: int) -> None:
        while self._expiry and self._expiry[0][0] <= now_ms:
            expires_at_ms, key = heapq.heappop(self._expiry)
            log = self._logs.get(key)
            if log is not None and log.expires_at_ms == expires_at_ms:
                del self._logs[key]


# One script for both kinds of hit. Atomic because Redis runs a script to
# completion before it serves any other command (EVAL: "Redis guarantees the
# script's atomic execution"): no other client can add to the set between
# the ZCARD that counts and the ZADD that records, so sixteen racing hits on
# a set with one slot left admit exactly one. A MULTI transaction could not
# do this: its commands cannot branch on ZCARD's answer.
#
# Timestamps go in as strings and reach Redis as those same strings: Lua
# never formats one, because Lua 5.1 formats numbers with %.14g, which
# rounds anything longer without a word. The one sum done in Lua (the retry
# delay) is on whole milliseconds, exact as doubles below 2^53.
#
# KEYS[1] the sorted set. ARGV: now_ms, cutoff_ms (now - window), limit,
# member, window_ms. Returns {allowed 1|0, retry_after_ms, remaining}.
_ADMIT_SCRIPT = """
local key = KEYS[1]
local limit = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[2])
if redis.call('ZSCORE', key, ARGV[4]) then
  redis.call('ZADD', key, 'GT', ARGV[1], ARGV[4])
  redis.call('PEXPIRE', key, ARGV[5])
  return {1, 0, math.max(0, limit - redis.call('ZCARD', key))}
end
local count = redis.call('ZCARD', key)
if count < limit then
  redis.call('ZADD', key, ARGV[1], ARGV[4])
  redis.call('PEXPIRE', key, ARGV[5])
  return {1, 0, limit - count - 1}
end
local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
return {0, tonumber(oldest[2]) + tonumber(ARGV[5]) - tonumber(ARGV[1]), 0}
"""


class RedisRateLimiter:
    """A rate limiter in Redis, shared by every broker process (production).

    Each key is a sorted set under `{namespace}:`, member -> moment in
    milliseconds. Each admitted hit sets the key to expire one window later
    by Redis's clock, so an idle key leaves by itself; that expiry bounds
    memory and plays no part in the count. The moments are the callers'
    `now`, not Redis's clock: tests can pass time in, and broker hosts'
    clocks differ by far less than the shortest window (60 s).
    """

    def __init__(self, client: redis.Redis, *, namespace: str) -> None:
        if not namespace:
            raise ValueError("expected a non-empty key namespace, got ''")
        self._client = client
        self._namespace = namespace
        # redis-py runs EVALSHA and loads the script on NOSCRIPT (after a
        # Redis restart or failover), so the script text is sent once.
        self._admit_script = client.register_script(_ADMIT_SCRIPT)

    def hit(self, key: str, *, limit: int, window_seconds: int, now: datetime) -> Decision:
        # A fresh random member never matches one in the set: 128 bits, so a
        # collision (which would let one hit go uncounted) is out of reach.
        member = f"hit-{secrets.token_hex(16)}"
        return self._admit(key, member, limit=limit, window_seconds=window_seconds, now=now)

    def hit_distinct(
        self, key: str, *, member: str, limit: int, window_seconds: int, now: datetime
    ) -> Decision:
        return self._admit(key, member, limit=limit, window_seconds=window_seconds, now=now)

    def _admit(
        self, key: str, member: str, *, limit: int, window_seconds: int, now: datetime
    ) -> Decision:
        now_ms = _check(key, member, limit, window_seconds, now)
        window_ms = window_seconds * 1000
        try:
            answer = self._admit_script(
                keys=[f"{self._namespace}:{key}"],
                args=[str(now_ms), str(now_ms - window_ms), str(limit), member, str(window_ms)],
            )
        except redis.RedisError as e:
            raise CacheUnavailableError(
                f"expected Redis to run the rate-limit script, got {e!r}"
            ) from e
        match answer:
            case [int(allowed), int(retry_after_ms), int(remaining)] if allowed in {0, 1}:
                pass
            case _:
                # Fail closed on a reply we do not understand (style.md §13).
                raise CacheUnavailableError(
                    f"expected [allowed, retry_after_ms, remaining] from Redis, got {answer!r}"
                )
        if allowed:
            return Decision(True, 0, remaining)
        return Decision(False, _retry_after_seconds(now_ms + retry_after_ms, now_ms), 0)
