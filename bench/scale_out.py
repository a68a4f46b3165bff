"""Scale-out: exchanges through a broker of 1 and of 2 worker processes, PostgreSQL + Redis.

What it does: for each worker count (1, 2) it starts the production
layout on loopback as separate OS processes: every partner's adapter as
`ketenbroker adapter --partner ID` (one process each), and the broker as
`ketenbroker serve --no-adapters --workers N` in the production profile
(audit log and case register in a scratch PostgreSQL database, replay
cache and rate limits under a scratch Redis namespace, the policy bundle
signed by `ketenbroker policy bundle` and only verified by the broker,
embedded policy engine, rate limits at their maximum). It waits, bounded,
until every adapter answers /healthz and the broker /readyz with all N
workers started, registers one active case, and lets `bench.loadgen`
(another process) send exchanges at each concurrency (8, 32). It reports
p50, p99 and exchanges/s per worker count and level, and the ratio of
each worker count's throughput to the smallest one's (`scaling`): on a
2-core machine, 2.0 for 2 workers would be perfect scaling.

What it does not: measure the direct path (bench.exchange does, in the
same run), or spread over several hosts: everything, the loadgen
included, shares this machine's cores, so the ratio is a floor of what
separate hosts would give. A worker count whose worst case no longer fits
the budget is "skipped: over budget"; one that fails is "failed" with its
error, and the others still run.

Why separate processes: one Python process is bound by one interpreter
lock (bench.exchange's stack: the same exchanges/s at every concurrency);
the production profile's answer is more processes sharing PostgreSQL and
Redis, and this part puts a figure on what that buys.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.exchange import PROVIDER, path_summary, plan_for, prepare_case, run_loadgen
from bench.processes import ServerProcess, stop_all
from bench.schema import MEASURED, failed, not_available, over_budget
from bench.scratch import (
    REDIS_URL,
    BackendUnavailableError,
    scratch_database,
    scratch_folder,
    scratch_namespace,
)
from broker.convenant import load_convenant
from broker.keys import KeyStore
from broker.ratelimit.policy import MAX_LIMIT, RateLimits
from broker.settings import PROJECT_ROOT, Settings
from broker.stack import LOOPBACK, free_port

LAYOUT = (
    "production profile on loopback: broker `serve --no-adapters --workers N` and each adapter"
    " in processes of their own, PostgreSQL + Redis, signed policy bundle, embedded engine;"
    " loadgen in another process; all on this machine's cores"
)
# Logged once by each uvicorn process that serves (every worker, or the one process).
STARTED_LINE = "Application startup complete"
BUNDLE_ARGS = ("-m", "broker.cli", "policy", "bundle")
SERVE_ARGS = ("-m", "broker.cli", "serve", "--no-adapters", "--host", LOOPBACK)
BUNDLE_TIMEOUT_SECONDS = 60.0
LOADGEN_GRACE_SECONDS = 60.0
STOP_ALLOWANCE_SECONDS = 25.0  # the processes' SIGTERM wait plus database drop


@dataclass(frozen=True)
class ScaleSettings:
    workers: tuple[int, ...] = (1, 2)
    concurrencies: tuple[int, ...] = (8, 32)
    seconds: float = 10.0
    max_requests: int = 3_000
    warmup_per_worker: int = 5
    startup_seconds: float = 60.0

    @classmethod
    def quick(cls) -> ScaleSettings:
        return cls(concurrencies=(8,), seconds=2.0, max_requests=200, warmup_per_worker=2)

    def scenarios(self) -> list[dict[str, Any]]:
        return [
            {
                "path": "broker",
                "concurrency": concurrency,
                "warmup": self.warmup_per_worker,
                "max_requests": self.max_requests,
                "max_seconds": self.seconds,
            }
            for concurrency in self.concurrencies
        ]

    def check(self) -> None:
        # Each worker count has a fresh Redis namespace, so a fresh daily quota.
        total = sum(self.max_requests + self.warmup_per_worker * c for c in self.concurrencies)
        if total >= MAX_LIMIT:
            raise ValueError(
                f"expected fewer than {MAX_LIMIT} broker requests per worker count, got {total}"
            )
        if not self.workers or min(self.workers) < 1:
            raise ValueError(f"expected worker counts >= 1, got {self.workers}")

    def config_seconds(self) -> float:
        """One worker count's time at its caps: start-up, every level, stopping."""
        levels = sum(self.seconds + 10 for _ in self.concurrencies)
        return self.startup_seconds + levels + STOP_ALLOWANCE_SECONDS

    def to_dict(self) -> dict[str, Any]:
        return {
            "workers": list(self.workers),
            "concurrencies": list(self.concurrencies),
            "max_seconds": self.seconds,
            "max_requests": self.max_requests,
            "warmup_per_worker": self.warmup_per_worker,
            "startup_max_seconds": self.startup_seconds,
        }


def scaling_rows(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Throughput of each worker count against the smallest measured one, per concurrency."""

    def rate(config: dict[str, Any], concurrency: int) -> float | None:
        for level in config.get("levels", []):
            block = level.get("broker", {})
            if level.get("concurrency") == concurrency and block.get("status") == MEASURED:
                value: float = block["throughput_per_s"]
                return value
        return None

    measured = sorted(
        (c for c in configs if c.get("status") == MEASURED), key=lambda c: int(c["workers"])
    )
    if len(measured) < 2:
        return []
    base, rows = measured[0], []
    for config in measured[1:]:
        for level in config.get("levels", []):
            concurrency = level.get("concurrency")
            ours, theirs = rate(config, concurrency), rate(base, concurrency)
            if ours is None or not theirs:
                continue
            ratio = ours / theirs
            rows.append(
                {
                    "concurrency": concurrency,
                    "workers": config["workers"],
                    "base_workers": base["workers"],
                    "throughput_per_s": ours,
                    "base_throughput_per_s": theirs,
                    "ratio_throughput": ratio,
                    # 1.0: each added worker adds as much as the first ones gave.
                    "efficiency": ratio / (config["workers"] / base["workers"]),
                }
            )
    return rows


def section(configs: list[dict[str, Any]]) -> dict[str, Any]:
    """The document's `scale_out` section from the worker counts' blocks."""
    body = {"layout": LAYOUT, "configs": configs, "scaling": scaling_rows(configs)}
    if any(c.get("status") == MEASURED for c in configs):
        return {"status": MEASURED, **body}
    first = configs[0] if configs else {"status": "failed", "reason": "no worker count asked"}
    return {"status": first["status"], "reason": first.get("reason", "no figure"), **body}


def _clean_environment() -> dict[str, str]:
    # Only what this part sets may configure the processes it starts.
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("KETENBROKER_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    return env


def signed_bundle(keys_dir: Path, out: Path) -> Path:
    """The production way: `ketenbroker policy bundle` signs, the broker only verifies."""
    done = subprocess.run(  # noqa: S603  # our own interpreter and module, no shell
        [sys.executable, *BUNDLE_ARGS, "--out", str(out), "--dir", str(keys_dir)],
        cwd=PROJECT_ROOT,
        env=_clean_environment(),
        capture_output=True,
        text=True,
        timeout=BUNDLE_TIMEOUT_SECONDS,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"expected `policy bundle` to exit 0, got {done.returncode}: {done.stderr[-500:]}"
        )
    return out


def production_environment(
    *, issuer: str, keys_dir: Path, dsn: str, namespace: str, bundle: Path, adapters: dict[str, str]
) -> dict[str, str]:
    return _clean_environment() | {
        "KETENBROKER_PROFILE": "production",
        "KETENBROKER_ISSUER": issuer,
        "KETENBROKER_KEYS_DIR": str(keys_dir),
        "KETENBROKER_POSTGRES_DSN": dsn,
        "KETENBROKER_REDIS_URL": REDIS_URL,
        "KETENBROKER_REDIS_NAMESPACE": namespace,
        "KETENBROKER_POLICY_BUNDLE_PATH": str(bundle),
        # The in-process engine: this part is about processes, not where
        # decisions are made (bench.policy_compare measures the OPA path).
        "KETENBROKER_POLICY_ENGINE": "embedded",
        "KETENBROKER_ADAPTER_URLS": json.dumps(adapters),
        # The bench measures speed, not limits (as bench.exchange does).
        "KETENBROKER_RATE_LIMITS": json.dumps(dict.fromkeys(RateLimits.model_fields, MAX_LIMIT)),
    }


@contextlib.contextmanager
def _running(processes: list[ServerProcess]) -> Iterator[list[ServerProcess]]:
    try:
        yield processes
    finally:
        stop_all(processes)


def run_config(
    workers: int, settings: ScaleSettings, *, keys_dir: Path, bundle: Path, folder: Path
) -> dict[str, Any]:
    """One worker count: start everything, load it, stop everything; its block."""
    partners = [p.id for p in load_convenant(Settings().convenant_path).partners]
    with scratch_database() as dsn, scratch_namespace() as namespace, _running([]) as processes:
        broker_url = f"http://{LOOPBACK}:{free_port()}"
        adapters = {partner: f"http://{LOOPBACK}:{free_port()}" for partner in partners}
        env = production_environment(
            issuer=broker_url,
            keys_dir=keys_dir,
            dsn=dsn,
            namespace=namespace,
            bundle=bundle,
            adapters=adapters,
        )
        began = time.monotonic()
        deadline = began + settings.startup_seconds
        for partner, url in adapters.items():
            port = url.rsplit(":", 1)[1]
            args = ["-m", "broker.cli", "adapter", "--partner", partner]
            processes.append(
                ServerProcess(
                    name=f"adapter {partner}",
                    args=[*args, "--host", LOOPBACK, "--port", port],
                    env=env,
                    log_file=folder / f"w{workers}-adapter-{partner}.log",
                )
            )
        for process, url in zip(processes, adapters.values(), strict=True):
            process.wait_ready(url + "/healthz", deadline=deadline)
        broker = ServerProcess(
            name=f"broker --workers {workers}",
            args=[*SERVE_ARGS, "--port", broker_url.rsplit(":", 1)[1], "--workers", str(workers)],
            env=env,
            log_file=folder / f"w{workers}-broker.log",
        )
        processes.append(broker)
        broker.wait_ready(
            broker_url + "/readyz", deadline=deadline, log_line=STARTED_LINE, times=workers
        )
        startup = time.monotonic() - began
        case_id = prepare_case(broker_url, KeyStore(keys_dir))
        plan = plan_for(
            broker_url=broker_url,
            adapter_url=adapters[PROVIDER],
            keys_dir=keys_dir,
            case_id=case_id,
            scenario_list=settings.scenarios(),
        )
        timeout = sum(float(s["max_seconds"]) + LOADGEN_GRACE_SECONDS for s in plan["scenarios"])
        answer = run_loadgen(plan, timeout=timeout)
        processes_started = broker.log_count(STARTED_LINE)
    return {
        "workers": workers,
        "status": MEASURED,
        "startup_seconds": startup,
        "serving_processes_seen": processes_started,
        "levels": [
            {"concurrency": r["concurrency"], "broker": path_summary(r)}
            for r in answer["scenarios"]
        ],
    }


def run(settings: ScaleSettings, *, left: Callable[[], float]) -> dict[str, Any]:
    """Every worker count that fits in what `left()` says remains of the budget."""
    settings.check()
    keys_dir = Settings().keys_dir
    configs: list[dict[str, Any]] = []
    try:
        with scratch_folder("bench-scale-") as folder:
            bundle = signed_bundle(keys_dir, folder / "policy-bundle.tar.gz")
            for workers in settings.workers:
                need = settings.config_seconds()
                if left() < need:
                    reason = f"needs up to {need:.0f} s, {max(left(), 0):.0f} s left"
                    configs.append({"workers": workers, **over_budget(reason)})
                    continue
                print(f"bench: scale_out --workers {workers} ...", file=sys.stderr, flush=True)
                try:
                    configs.append(
                        run_config(
                            workers, settings, keys_dir=keys_dir, bundle=bundle, folder=folder
                        )
                    )
                except BackendUnavailableError:
                    raise
                except Exception as e:  # noqa: BLE001  # the next worker count still runs
                    configs.append({"workers": workers, **failed(f"{type(e).__name__}: {e}"[:500])})
    except BackendUnavailableError as e:
        return not_available(str(e), layout=LAYOUT, configs=[], scaling=[])
    return section(configs)
