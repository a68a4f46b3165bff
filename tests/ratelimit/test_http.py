"""429 and `Retry-After` over HTTP, with the real Redis limiter and a real audit log.

A small FastAPI app stands in for the broker's edge until the lead wires the
guard into `broker/api`: two routes call `enforce_rate_limits` the way the
exchange and case routes will, and the error handlers do what the app's
handler will do for `RateLimitedError` (429, `Retry-After`, a
`security_event` in the audit log) and `CacheUnavailableError` (503). The
calling partner comes from an `X-Partner` header here, in place of the
bearer token's principal. Everything else is real: Redis on 127.0.0.1:6379,
the SQLite audit log, the problem documents of `broker.api.problems`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
import redis
from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import StarletteDeprecationWarning

from broker.api.problems import PROBLEM_MEDIA_TYPE, problem
from broker.audit.entries import security_event
from broker.audit.log import AuditLog
from broker.audit.sqlite_store import SqliteAuditStore
from broker.audit.store import AuditQuery
from broker.errors import CacheUnavailableError
from broker.keys import generate_signing_key
from broker.ratelimit import RateLimitedError, RateLimiter, RateLimits, RedisRateLimiter
from broker.ratelimit.guard import enforce_rate_limits
from broker.tracing import parse_traceparent
from tests.auth.helpers import SteppingClock
from tests.ratelimit.conftest import START

with warnings.catch_warnings():
    # As in tests/auth/conftest.py: Starlette 1.x warns that its TestClient
    # wants `httpx2`; the project pins `httpx`, which works the same. Only
    # this warning, only at this import; every other warning stays an error.
    warnings.filterwarnings(
        "ignore",
        message=r"Using `httpx` with `starlette.testclient`",
        category=StarletteDeprecationWarning,
    )
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.redis

PARTNER = "gemeente-lekstroom"
# RFC 9110 §10.2.3: Retry-After = HTTP-date / delay-seconds (1*DIGIT).
DELAY_SECONDS = re.compile(r"[0-9]+")

LIMITS = RateLimits(
    user_requests_per_minute=3,
    partner_requests_per_minute=100,
    user_distinct_pairs_per_hour=4,
    partner_distinct_pairs_per_hour=100,
    partner_distinct_cases_per_hour=5,
    partner_exchanges_per_day=100,
)


class ExchangeBody(BaseModel):
    case: str
    subject: str
    user: str


def build_app(*, limiter: RateLimiter, clock: SteppingClock, audit: AuditLog) -> FastAPI:
    app = FastAPI()

    @app.exception_handler(RateLimitedError)
    async def rate_limited(request: Request, error: RateLimitedError) -> JSONResponse:
        route = request.scope.get("route")
        audit.record(
            security_event(
                time=clock.now(),
                event=f"{request.method} {getattr(route, 'path', 'unrouted')}",
                code=error.code,
                principal=request.headers["x-partner"],
                trace_id=parse_traceparent(request.headers.get("traceparent")).trace_id,
                detail=str(error),
            )
        )
        return problem(
            429, error.code, error.public_detail, headers={"Retry-After": str(error.retry_after)}
        )

    @app.exception_handler(CacheUnavailableError)
    async def unavailable(_request: Request, error: CacheUnavailableError) -> JSONResponse:
        return problem(503, error.code, error.public_detail)

    @app.post("/v1/exchanges")
    def create_exchange(body: ExchangeBody, x_partner: Annotated[str, Header()]) -> dict[str, str]:
        enforce_rate_limits(
            limiter=limiter,
            limits=LIMITS,
            caller_partner=x_partner,
            acting_user=body.user,
            case=body.case,
            subject=body.subject,
            now=clock.now(),
        )
        return {"decision": "permit"}

    @app.get("/v1/cases/{case_id}")
    def get_case(case_id: str, x_partner: Annotated[str, Header()]) -> dict[str, str]:
        enforce_rate_limits(
            limiter=limiter,
            limits=LIMITS,
            caller_partner=x_partner,
            acting_user=None,
            case=case_id,
            subject=None,
            now=clock.now(),
        )
        return {"id": case_id}

    return app


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock(START)


@pytest.fixture
def audit(tmp_path: Path, clock: SteppingClock) -> Iterator[AuditLog]:
    store = SqliteAuditStore(tmp_path / "audit.sqlite3")
    yield AuditLog(store=store, signing_key=generate_signing_key(), clock=clock)
    store.close()


@pytest.fixture
def limiter(redis_client: redis.Redis, redis_namespace: str) -> RedisRateLimiter:
    return RedisRateLimiter(redis_client, namespace=redis_namespace)


@pytest.fixture
def client(
    limiter: RedisRateLimiter, clock: SteppingClock, audit: AuditLog
) -> Iterator[TestClient]:
    with TestClient(build_app(limiter=limiter, clock=clock, audit=audit)) as test_client:
        yield test_client


def post_exchange(client: TestClient, *, subject: str = "bewoner-1", user: str = "j.jansen") -> Any:
    return client.post(
        "/v1/exchanges",
        json={"case": "C-1", "subject": subject, "user": user},
        headers={"X-Partner": PARTNER},
    )


def security_events(audit: AuditLog) -> list[dict[str, Any]]:
    entries = audit.entries(AuditQuery(limit=1000))
    return [e.entry for e in entries if e.entry.get("kind") == "security_event"]


def test_a_user_over_the_rate_gets_429_with_retry_after_and_it_is_logged(
    client: TestClient, clock: SteppingClock, audit: AuditLog
) -> None:
    for _ in range(3):
        assert post_exchange(client).status_code == 200
        clock.advance(10)
    refused = post_exchange(client)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == PROBLEM_MEDIA_TYPE
    # The first request (at 0) leaves the minute at 60; it is now 30.
    assert DELAY_SECONDS.fullmatch(refused.headers["retry-after"])
    assert refused.headers["retry-after"] == "30"
    body = refused.json()
    assert (body["status"], body["code"]) == (429, "rate_limited")
    assert "j.jansen" not in body["detail"]  # the partner gets the fixed text only
    (event,) = security_events(audit)
    assert event["event"] == "POST /v1/exchanges"
    assert event["requester"] == {"partner": PARTNER}
    assert event["reasons"][0]["code"] == "rate_limited"
    assert "user_requests_per_minute" in event["reasons"][0]["detail"]
    assert "'j.jansen'" in event["reasons"][0]["detail"]


def test_waiting_retry_after_is_enough(client: TestClient, clock: SteppingClock) -> None:
    for _ in range(3):
        post_exchange(client)
    refused = post_exchange(client)
    assert refused.status_code == 429
    clock.advance(int(refused.headers["retry-after"]) - 1)
    assert post_exchange(client).status_code == 429
    clock.advance(1)
    assert post_exchange(client).status_code == 200


def test_enumerating_subjects_over_http_gets_429(
    client: TestClient, clock: SteppingClock, audit: AuditLog
) -> None:
    # Slow enough for every rate: one new subject every five minutes.
    for n in range(4):
        assert post_exchange(client, subject=f"bewoner-{n}").status_code == 200
        clock.advance(300)
    refused = post_exchange(client, subject="bewoner-4")
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == str(3600 - 4 * 300)
    assert "user_distinct_pairs_per_hour" in security_events(audit)[0]["reasons"][0]["detail"]
    # Known subjects stay answerable.
    assert post_exchange(client, subject="bewoner-2").status_code == 200


def test_probing_case_ids_over_http_gets_429(client: TestClient, audit: AuditLog) -> None:
    for n in range(5):
        assert client.get(f"/v1/cases/C-{n}", headers={"X-Partner": PARTNER}).status_code == 200
    refused = client.get("/v1/cases/C-5", headers={"X-Partner": PARTNER})
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "3600"
    (event,) = security_events(audit)
    # The route template, not the probed id.
    assert event["event"] == "GET /v1/cases/{case_id}"


def test_two_broker_processes_share_the_count(
    redis_client: redis.Redis, redis_namespace: str, clock: SteppingClock, audit: AuditLog
) -> None:
    # Two apps, two limiters, one Redis: spreading requests over processes
    # (or a load balancer doing it) does not multiply the limit.
    apps = [
        build_app(
            limiter=RedisRateLimiter(redis_client, namespace=redis_namespace),
            clock=clock,
            audit=audit,
        )
        for _ in range(2)
    ]
    with TestClient(apps[0]) as first, TestClient(apps[1]) as second:
        assert post_exchange(first).status_code == 200
        assert post_exchange(second).status_code == 200
        assert post_exchange(first).status_code == 200
        assert post_exchange(second).status_code == 429


def test_redis_down_answers_503_and_nothing_else(
    unreachable_redis: redis.Redis, clock: SteppingClock, audit: AuditLog
) -> None:
    app = build_app(
        limiter=RedisRateLimiter(unreachable_redis, namespace="kbtest-down"),
        clock=clock,
        audit=audit,
    )
    with TestClient(app) as down:
        answer = post_exchange(down)
        assert answer.status_code == 503
        assert answer.json()["code"] == "cache_unavailable"
        assert "decision" not in answer.json()
