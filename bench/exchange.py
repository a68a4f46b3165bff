"""Exchange latency and throughput: the direct call vs. the same question through the broker.

What it does: for each audit backend (SQLite; PostgreSQL with Redis, the
production profile) it starts the whole network on loopback in THIS
process (`broker.stack.start_local_stack`: broker and every adapter, real
HTTP, uvicorn in threads, as `ketenbroker serve` and the e2e tests run
it), registers one active case, then starts `bench.loadgen` as a separate
process that, at each concurrency level (1, 8, 32), asks the politie
adapter directly and then the broker (token, DPoP proof, policy x2, adapter
call, filter, signed answer, durable audit: two commits per disclosed
exchange, ADR 0005). In the same run it measures one durable commit on the
backend (`bench.commit_cost`), the yardstick of the latency target.

PostgreSQL runs in a scratch database, Redis under a scratch namespace
(`bench.scratch`), both removed afterwards; rate limits are set to their
maximum (as tests/e2e/conftest.py does), because the bench measures speed,
not limits.

What it does not: spread the broker over several processes (that is
bench.scale_out, which reuses the case, plan and summaries below), or
hide the limits: every request the loadgen sends counts against the
partner's daily quota (MAX_LIMIT, 10 000), so the request caps below keep
one backend's run under it, and any refusal shows up as failed requests.

Why this split of processes: the loadgen must not share the broker's
interpreter; the stack is one process because that is the embedded
deployment the figures describe. On this 2-core machine the loadgen and
the stack each get about one core.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from adapters.sdk.client import BrokerClient
from bench import commit_cost
from bench.schema import MEASURED, failed, not_available
from bench.scratch import (
    BackendUnavailableError,
    scratch_database,
    scratch_folder,
    scratch_namespace,
)
from bench.stats import summarize
from broker.adapter_protocol import AdapterQuery
from broker.demo import CASE_A
from broker.keys import KeyStore
from broker.ratelimit.policy import MAX_LIMIT, RateLimits
from broker.settings import PROJECT_ROOT, Settings
from broker.stack import LocalStack, start_local_stack

REQUESTER = "gemeente-lekstroom"
PROVIDER = "politie-lekstroom"
CONSENTER = "woonstichting-de-linge"
LOADGEN_GRACE_SECONDS = 90.0
# The overlastgever of the demo case: the adapter answers about that person.
_BENCH_SUBJECT: dict[str, Any] = cast(list[dict[str, Any]], CASE_A["subjects"])[
    0
]  # start-up, warm-up and the last requests, per scenario


@dataclass(frozen=True)
class LoadSettings:
    concurrencies: tuple[int, ...] = (1, 8, 32)
    direct_seconds: float = 5.0
    direct_requests: int = 5_000
    broker_seconds: float = 10.0
    broker_requests: int = 3_000
    warmup_per_worker: int = 5

    def broker_total(self) -> int:
        return sum(self.broker_requests + self.warmup_per_worker * c for c in self.concurrencies)

    def check(self) -> None:
        # Every broker request counts against the partner's daily quota; a
        # run that crossed it would measure 429s, not exchanges.
        if self.broker_total() >= MAX_LIMIT:
            raise ValueError(
                f"expected fewer than {MAX_LIMIT} broker requests per backend (the daily quota"
                f" at its maximum), got {self.broker_total()}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "concurrencies": list(self.concurrencies),
            "direct_max_seconds": self.direct_seconds,
            "direct_max_requests": self.direct_requests,
            "broker_max_seconds": self.broker_seconds,
            "broker_max_requests": self.broker_requests,
            "warmup_per_worker": self.warmup_per_worker,
        }


def exchange_body(case_id: str) -> dict[str, Any]:
    return {
        "case": case_id,
        "subject": "og-1",
        "query": "politie.meldingen",
        "purpose": "aanpak_woonoverlast",
        "period": {"from": "2025-01-01", "to": "2026-11-01"},
        "on_behalf_of": {"user": "bench", "function": "casemanager"},
    }


def adapter_query(case_id: str) -> AdapterQuery:
    """The question the broker puts to the politie adapter for `exchange_body`."""
    return AdapterQuery.model_validate(
        {
            "exchange": "ex_bench",
            "query": "politie.meldingen",
            "case": case_id,
            "subject": {
                "ref": "og-1",
                "role": "overlastgever",
                "name": _BENCH_SUBJECT["name"],
                "birth_date": _BENCH_SUBJECT["birth_date"],
            },
            "address": {
                "postcode": "4101AB",
                "huisnummer": 12,
                "toevoeging": None,
                "plaats": "Lekstroom",
            },
            "period": {"from": "2025-01-01", "to": "2026-11-01"},
            "fields": [],
        }
    )


def scenarios(load: LoadSettings) -> list[dict[str, Any]]:
    """Direct then broker at each level, smallest level first."""
    out: list[dict[str, Any]] = []
    for concurrency in load.concurrencies:
        out.append(
            {
                "path": "direct",
                "concurrency": concurrency,
                "warmup": load.warmup_per_worker,
                "max_requests": load.direct_requests,
                "max_seconds": load.direct_seconds,
            }
        )
        out.append(
            {
                "path": "broker",
                "concurrency": concurrency,
                "warmup": load.warmup_per_worker,
                "max_requests": load.broker_requests,
                "max_seconds": load.broker_seconds,
            }
        )
    return out


def path_summary(result: dict[str, Any]) -> dict[str, Any]:
    """Figures for one scenario of the loadgen: latency percentiles and exchanges/s."""
    latencies: list[float] = result["latencies_ms"]
    wall: float = result["wall_seconds"]
    counts = {"completed": result["completed"], "failed": result["failed"], "wall_seconds": wall}
    if not latencies or wall <= 0:
        return failed(
            f"no request completed; first errors: {result.get('errors', [])[:2]}", **counts
        )
    block = {**summarize(latencies), **counts, "throughput_per_s": len(latencies) / wall}
    if result["failed"] or result.get("hung_threads"):
        # Figures are kept for diagnosis; the status says they do not count.
        block["status"] = "failed"
        block["reason"] = (
            f"{result['failed']} requests failed, {result.get('hung_threads', 0)} workers hung;"
            f" first errors: {result.get('errors', [])[:2]}"
        )
    return block


def level_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pair the loadgen's scenarios into one row per concurrency, with the ratios."""
    by_level: dict[int, dict[str, Any]] = {}
    for result in results:
        row = by_level.setdefault(result["concurrency"], {"concurrency": result["concurrency"]})
        row[result["path"]] = path_summary(result)
    rows = []
    for concurrency in sorted(by_level):
        row = by_level[concurrency]
        direct, broker = row.get("direct", {}), row.get("broker", {})
        if "p50_ms" in direct and "p50_ms" in broker:
            row["added_p50_ms"] = broker["p50_ms"] - direct["p50_ms"]
            row["ratio_p50"] = broker["p50_ms"] / direct["p50_ms"]
            row["ratio_throughput"] = broker["throughput_per_s"] / direct["throughput_per_s"]
        rows.append(row)
    return rows


def prepare_case(broker_url: str, keys: KeyStore) -> str:
    """An active complex case (consent granted, in behandeling) that exchanges may use."""

    def client(partner: str) -> BrokerClient:
        return BrokerClient(
            base_url=broker_url, client_id=partner, signing_key=keys.signing_key(partner)
        )

    with client(REQUESTER) as gemeente, client(CONSENTER) as linge:
        created = gemeente.post("/v1/cases", json=CASE_A)
        if created.status_code != 201:
            raise RuntimeError(f"expected 201 for the bench case, got {created.status_code}")
        case_id: str = created.json()["id"]
        steps = [
            linge.post(f"/v1/cases/{case_id}/consent", json={"decision": "granted"}),
            gemeente.post(f"/v1/cases/{case_id}/transitions", json={"to": "in_behandeling"}),
        ]
        for step in steps:
            if step.status_code >= 300:
                raise RuntimeError(f"expected the bench case to start, got {step.status_code}")
        probe = gemeente.post("/v1/exchanges", json=exchange_body(case_id))
        if probe.status_code != 200:
            raise RuntimeError(f"expected a permitted exchange, got {probe.status_code}")
    return case_id


def loadgen_plan(stack: LocalStack, case_id: str, load: LoadSettings) -> dict[str, Any]:
    """What `bench.loadgen` needs: where to send, as whom, what, and the scenarios."""
    return plan_for(
        broker_url=stack.broker_url,
        adapter_url=stack.adapter_urls[PROVIDER],
        keys_dir=stack.settings.keys_dir,
        case_id=case_id,
        scenario_list=scenarios(load),
    )


def plan_for(
    *,
    broker_url: str,
    adapter_url: str,
    keys_dir: Path,
    case_id: str,
    scenario_list: list[dict[str, Any]],
) -> dict[str, Any]:
    """A loadgen plan for any layout: the broker and the politie adapter at these URLs."""
    return {
        "broker_url": broker_url,
        "adapter_url": adapter_url,
        "adapter_partner": PROVIDER,
        "keys_dir": str(keys_dir),
        "client_id": REQUESTER,
        "exchange_body": exchange_body(case_id),
        "adapter_body": adapter_query(case_id).to_body().decode("utf-8"),
        "scenarios": scenario_list,
    }


def run_loadgen(plan: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """Start `python -m bench.loadgen` with `plan`; its JSON answer."""
    done = subprocess.run(  # our own interpreter and module, no shell
        [sys.executable, "-m", "bench.loadgen"],
        input=json.dumps(plan),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT_ROOT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"expected the loadgen to exit 0, got {done.returncode}: {done.stderr[-800:]}"
        )
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


@contextlib.contextmanager
def _backend_base(backend: str, workdir: Path) -> Iterator[dict[str, Any]]:
    settings = Settings()
    base = settings.model_dump(exclude={"issuer", "adapter_urls"})
    base.update(
        sqlite_path=workdir / "kb.sqlite3",
        policy_engine="embedded",
        rate_limits=dict.fromkeys(RateLimits.model_fields, MAX_LIMIT),
    )
    if backend == "sqlite":
        base.update(storage_backend="sqlite", cache_backend="memory")
        yield base
        return
    with scratch_database() as dsn, scratch_namespace() as namespace:
        base.update(
            storage_backend="postgres",
            cache_backend="redis",
            postgres_dsn=dsn,
            redis_namespace=namespace,
        )
        yield base


def _commit_costs(backend: str) -> dict[str, Any]:
    if backend == "sqlite":
        return {
            "durable_commit": commit_cost.sqlite_commit(),
            "store_append_one": commit_cost.store_append("sqlite"),
        }
    with scratch_database() as dsn:
        return {
            "durable_commit": commit_cost.postgres_commit(dsn),
            "store_append_one": commit_cost.store_append("postgres", dsn=dsn),
        }


def run_backend(backend: str, load: LoadSettings) -> dict[str, Any]:
    """Everything for one backend; 'not available' when its services do not answer."""
    load.check()
    try:
        costs = _commit_costs(backend)
        with (
            scratch_folder("bench-stack-") as folder,
            _backend_base(backend, folder) as base,
            start_local_stack(base=base) as stack,
        ):
            keys = KeyStore(stack.settings.keys_dir)
            case_id = prepare_case(stack.broker_url, keys)
            plan = loadgen_plan(stack, case_id, load)
            timeout = sum(
                float(sc["max_seconds"]) + LOADGEN_GRACE_SECONDS for sc in plan["scenarios"]
            )
            answer = run_loadgen(plan, timeout=timeout)
            audit_size = stack.services.audit.checkpoint().size
    except BackendUnavailableError as e:
        return not_available(str(e))
    return {
        "status": MEASURED,
        **costs,
        "levels": level_rows(answer["scenarios"]),
        "audit_entries_written": audit_size,
    }
