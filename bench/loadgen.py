"""The load generator of `make bench`: a separate process that asks the same question many times.

What it does: `python -m bench.loadgen` reads a plan (JSON on stdin) and,
for each scenario in it, runs `concurrency` worker threads against one
URL on loopback, each with its own keep-alive connection, and prints one
JSON document with every scenario's latencies (milliseconds, as the caller
saw them), completed and failed requests and wall time. Two paths:

* `direct`: what a partner would do without the broker, the body-bound
  signed call to the provider's adapter (`sign_adapter_call`, the same
  token the broker sends), a fresh signature per request;
* `broker`: POST /v1/exchanges through `adapters.sdk.BrokerClient`, one
  client per worker: its access token fetched once and cached (as a
  partner's client does), a fresh DPoP proof per request.

Signing is inside the timed span on both paths: it is what each caller
pays per request.

What it does not: start or stop the servers it loads (the bench driver,
`bench.exchange`, runs the stack in its own process and starts this one
with `subprocess`), or judge the figures.

Why a separate process: a generator in the broker's own process would
share its interpreter lock and flatter or punish it by accident; on
loopback in another process it is a client like any other. Threads, not
asyncio, because `BrokerClient` is the partners' real (synchronous) SDK.
Bounds: each scenario stops at `max_requests` OR `max_seconds`, whichever
comes first; warm-up requests are bounded by `warmup` per worker.
"""

from __future__ import annotations

import itertools
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from adapters.sdk.client import BrokerClient
from broker.adapter_protocol import ADAPTER_QUERY_PATH, sign_adapter_call
from broker.clock import SystemClock
from broker.keys import KeyStore

# Without TCP_NODELAY a request written in two pieces (headers, body) waits
# for the server's delayed ACK on loopback: ~40 ms of nothing measured.
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
REQUEST_TIMEOUT_SECONDS = 30.0
MAX_CONCURRENCY = 256
MAX_SECONDS = 120.0  # no scenario may hold the bench longer than this
MAX_REQUESTS = 1_000_000
WARMUP_TIMEOUT_SECONDS = 120.0  # all workers warmed up, or the scenario fails
MAX_ERRORS_KEPT = 5  # example failures carried back, enough to diagnose


@dataclass(frozen=True)
class Scenario:
    path: str  # "direct" or "broker"
    concurrency: int
    warmup: int
    max_requests: int
    max_seconds: float

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Scenario:
        scenario = cls(
            path=str(raw["path"]),
            concurrency=int(raw["concurrency"]),
            warmup=int(raw.get("warmup", 0)),
            max_requests=int(raw["max_requests"]),
            max_seconds=float(raw["max_seconds"]),
        )
        if scenario.path not in {"direct", "broker"}:
            raise ValueError(f"expected path 'direct' or 'broker', got {scenario.path!r}")
        if not 1 <= scenario.concurrency <= MAX_CONCURRENCY:
            raise ValueError(
                f"expected concurrency 1..{MAX_CONCURRENCY}, got {scenario.concurrency}"
            )
        if not 1 <= scenario.max_requests <= MAX_REQUESTS:
            raise ValueError(
                f"expected max_requests 1..{MAX_REQUESTS}, got {scenario.max_requests}"
            )
        if not 0 < scenario.max_seconds <= MAX_SECONDS:
            raise ValueError(
                f"expected max_seconds in (0, {MAX_SECONDS}], got {scenario.max_seconds}"
            )
        if not 0 <= scenario.warmup <= 1000:
            raise ValueError(f"expected warmup 0..1000, got {scenario.warmup}")
        return scenario


@dataclass(frozen=True)
class Plan:
    broker_url: str
    adapter_url: str  # the provider adapter's base URL
    adapter_partner: str
    keys_dir: Path
    client_id: str
    exchange_body: dict[str, Any]
    adapter_body: bytes
    scenarios: list[Scenario]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Plan:
        return cls(
            broker_url=str(raw["broker_url"]),
            adapter_url=str(raw["adapter_url"]),
            adapter_partner=str(raw["adapter_partner"]),
            keys_dir=Path(raw["keys_dir"]),
            client_id=str(raw["client_id"]),
            exchange_body=dict(raw["exchange_body"]),
            adapter_body=str(raw["adapter_body"]).encode("utf-8"),
            scenarios=[Scenario.from_dict(s) for s in raw["scenarios"]],
        )


@dataclass
class _Worker:
    send: Callable[[], httpx.Response]
    close: Callable[[], None]
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failed: int = 0


def _http() -> httpx.Client:
    return httpx.Client(
        transport=httpx.HTTPTransport(socket_options=NODELAY), timeout=REQUEST_TIMEOUT_SECONDS
    )


def _direct_worker(plan: Plan, keys: KeyStore) -> _Worker:
    http = _http()
    broker_key = keys.signing_key("broker")
    url = plan.adapter_url.rstrip("/") + ADAPTER_QUERY_PATH
    clock = SystemClock()

    def send() -> httpx.Response:
        token = sign_adapter_call(
            key=broker_key,
            issuer=plan.broker_url,
            adapter_partner=plan.adapter_partner,
            body=plan.adapter_body,
            now=clock.now(),
        )
        return http.post(
            url,
            content=plan.adapter_body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )

    return _Worker(send=send, close=http.close)


def _broker_worker(plan: Plan, keys: KeyStore) -> _Worker:
    http = _http()
    client = BrokerClient(
        base_url=plan.broker_url,
        client_id=plan.client_id,
        signing_key=keys.signing_key(plan.client_id),
        http=http,
    )

    def close() -> None:
        client.close()
        http.close()

    return _Worker(send=lambda: client.post("/v1/exchanges", json=plan.exchange_body), close=close)


def _note_failure(worker: _Worker, text: str) -> None:
    worker.failed += 1
    if len(worker.errors) < MAX_ERRORS_KEPT:
        worker.errors.append(text[:300])


def _run_worker(
    worker: _Worker,
    *,
    warmup: int,
    ready: threading.Barrier,
    tickets: itertools.count[int],
    max_requests: int,
    deadline: list[float],
) -> None:
    for _ in range(warmup):
        try:
            worker.send()
        except Exception as e:  # noqa: BLE001  # a broken worker is reported, never hangs the rest
            _note_failure(worker, f"warm-up: {type(e).__name__}: {e}")
            break
    try:
        # Every worker reaches the barrier, even one whose warm-up failed, so
        # the others start; the timeout bounds a worker that never arrives.
        ready.wait(timeout=WARMUP_TIMEOUT_SECONDS)
    except threading.BrokenBarrierError:
        _note_failure(worker, "the workers never started together (warm-up timed out)")
        return
    while next(tickets) < max_requests and time.perf_counter() < deadline[0]:
        start = time.perf_counter_ns()
        try:
            response = worker.send()
        except Exception as e:  # noqa: BLE001  # counted as a failed request, the run goes on
            _note_failure(worker, f"{type(e).__name__}: {e}")
            continue
        elapsed_ms = (time.perf_counter_ns() - start) / 1e6
        if response.status_code == 200:
            worker.latencies_ms.append(elapsed_ms)
        else:
            _note_failure(worker, f"{response.status_code} {response.text}")


def run_scenario(plan: Plan, scenario: Scenario, keys: KeyStore) -> dict[str, Any]:
    """One scenario: warm up, then load until max_requests or max_seconds."""
    make = _direct_worker if scenario.path == "direct" else _broker_worker
    workers = [make(plan, keys) for _ in range(scenario.concurrency)]
    tickets = itertools.count()
    deadline = [float("inf")]
    started: list[float] = []

    def go() -> None:
        # Runs once, when every worker has warmed up: the clock starts here.
        now = time.perf_counter()
        started.append(now)
        deadline[0] = now + scenario.max_seconds

    ready = threading.Barrier(scenario.concurrency, action=go)
    threads = [
        threading.Thread(
            target=_run_worker,
            kwargs={
                "worker": w,
                "warmup": scenario.warmup,
                "ready": ready,
                "tickets": tickets,
                "max_requests": scenario.max_requests,
                "deadline": deadline,
            },
            daemon=True,
        )
        for w in workers
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            # Warm-up, the deadline and one request's timeout bound the join.
            t.join(scenario.max_seconds + REQUEST_TIMEOUT_SECONDS + WARMUP_TIMEOUT_SECONDS)
        wall = time.perf_counter() - started[0] if started else 0.0
    finally:
        for w in workers:
            w.close()
    latencies = [ms for w in workers for ms in w.latencies_ms]
    return {
        "path": scenario.path,
        "concurrency": scenario.concurrency,
        "completed": len(latencies),
        "failed": sum(w.failed for w in workers),
        "errors": [e for w in workers for e in w.errors][:MAX_ERRORS_KEPT],
        "wall_seconds": wall,
        "latencies_ms": latencies,
        "hung_threads": sum(t.is_alive() for t in threads),
    }


def run(plan: Plan) -> dict[str, Any]:
    keys = KeyStore(plan.keys_dir)
    return {"scenarios": [run_scenario(plan, s, keys) for s in plan.scenarios]}


def main() -> None:
    plan = Plan.from_dict(json.loads(sys.stdin.read()))
    json.dump(run(plan), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
