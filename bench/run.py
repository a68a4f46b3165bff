"""`make bench`: every benchmark of issue 6 in one run, one JSON document, one table.

What it does: `python -m bench.run` runs, in this order and side by side on
this machine: exchanges direct vs. through the broker on SQLite and on
PostgreSQL + Redis (bench.exchange, with the loadgen as a separate
process), policy decisions embedded vs. the OPA client path
(bench.policy_compare), micro costs of token, DPoP and replay checks
(bench.micro), audit appends with and without group commit
(bench.audit_append), full verification rates (bench.audit_verify), and
last the scale-out: the broker as 1 and 2 worker processes with the
adapters in processes of their own, PostgreSQL + Redis (bench.scale_out).
It then judges the figures against the issue's targets (bench.targets),
writes bench/results/bench-<UTC stamp>.json and latest.json with the
machine, commit and settings, and prints the table (bench.report).

What it does not: run in `make test`, or the deep audit-scale run
(bench/audit_scale.py, millions of entries, run by hand). A part that
raises is reported "failed" with its error and the run goes on; the exit
status is then 1. A part whose worst-case time no longer fits the budget
is reported "skipped: over budget", never estimated.

Why one driver: figures compared across separate runs on a busy 2-core
machine mislead; one run, one document, one table keeps the baselines
(direct call, one durable commit) next to what they are compared with.
Every loop below it is capped in count and time; the caps are in the
document's `settings`.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from bench import audit_append, audit_verify, exchange, micro, policy_compare, scale_out
from bench.machine import load_average, machine_info
from bench.report import render_table, write_results
from bench.schema import FAILED, SCHEMA, failed, over_budget, validate
from bench.scratch import POSTGRES_ADMIN_DSN
from bench.targets import evaluate
from broker.settings import PROJECT_ROOT

RESULTS = PROJECT_ROOT / "bench" / "results"
DEFAULT_BUDGET_SECONDS = 540.0  # `make bench` must end within ten minutes
BACKENDS = ("sqlite", "postgres")
PARTS = ("exchange", "policy", "micro", "audit_append", "audit_verify", "scale_out")


@dataclass(frozen=True)
class RunSettings:
    load: exchange.LoadSettings
    policy_rounds: int
    policy_seconds: float
    micro_rounds: int
    micro_seconds: float
    append_threads: tuple[int, ...]
    append_seconds: float
    append_max_entries: int
    verify_size: int
    scale: scale_out.ScaleSettings

    @classmethod
    def default(cls) -> RunSettings:
        return cls(
            load=exchange.LoadSettings(),
            policy_rounds=policy_compare.ROUNDS,
            policy_seconds=policy_compare.SECONDS,
            micro_rounds=micro.ROUNDS,
            micro_seconds=micro.SECONDS,
            append_threads=audit_append.THREADS,
            append_seconds=audit_append.SECONDS,
            append_max_entries=audit_append.MAX_ENTRIES,
            verify_size=audit_verify.DEFAULT_SIZE,
            scale=scale_out.ScaleSettings(),
        )

    @classmethod
    def quick(cls) -> RunSettings:
        """A smoke run of every part in about a minute; its figures are not for comparison."""
        return cls(
            load=exchange.LoadSettings(
                concurrencies=(1, 8),
                direct_seconds=1.0,
                direct_requests=500,
                broker_seconds=2.0,
                broker_requests=300,
                warmup_per_worker=2,
            ),
            policy_rounds=200,
            policy_seconds=0.5,
            micro_rounds=200,
            micro_seconds=0.3,
            append_threads=(1, 8),
            append_seconds=0.5,
            append_max_entries=500,
            verify_size=2_000,
            scale=scale_out.ScaleSettings.quick(),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "exchange": self.load.to_dict(),
            "policy": {"max_rounds": self.policy_rounds, "max_seconds": self.policy_seconds},
            "micro": {"max_rounds": self.micro_rounds, "max_seconds": self.micro_seconds},
            "audit_append": {
                "threads": list(self.append_threads),
                "max_seconds": self.append_seconds,
                "max_entries": self.append_max_entries,
            },
            "audit_verify": {"size": self.verify_size},
            "scale_out": self.scale.to_dict(),
        }

    def worst_case_seconds(self, part: str) -> float:
        """A part's time at its caps, plus start-up; what must be left before it starts."""
        load = self.load
        per_level = load.direct_seconds + load.broker_seconds + 10
        return {
            "exchange": 30 + len(load.concurrencies) * per_level,
            "policy": 10 + 4 * self.policy_seconds * 2,
            "micro": 5 + 6 * self.micro_seconds * 2,
            "audit_append": 10 + 2 * len(self.append_threads) * (self.append_seconds + 2),
            # Fill at >= 2 000 entries/s, five passes (two log verifies, the
            # export, two offline verifies) at >= 5 000/s: this machine's
            # figures before issue 6's work, the slow end.
            "audit_verify": 10 + self.verify_size * (1 / 2_000 + 5 / 5_000),
            # Checked again per worker count inside the part (bench.scale_out).
            "scale_out": 15 + self.scale.config_seconds(),
        }[part]


class Budget:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()


def _guarded(label: str, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    print(f"bench: {label} ...", file=sys.stderr, flush=True)
    began = time.monotonic()
    try:
        result = call()
    except Exception as e:  # noqa: BLE001  # one broken part must not lose the others' figures
        traceback.print_exc(file=sys.stderr)
        result = failed(f"{type(e).__name__}: {e}"[:500])
    result.setdefault("part_seconds", time.monotonic() - began)
    print(f"bench: {label} done in {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
    return result


def per_backend(
    part: str,
    settings: RunSettings,
    budget: Budget,
    run: Callable[[str], dict[str, Any]],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for backend in BACKENDS:
        need = settings.worst_case_seconds(part)
        if budget.left() < need:
            out[backend] = over_budget(
                f"needs up to {need:.0f} s, {max(budget.left(), 0):.0f} s left"
            )
            continue
        out[backend] = _guarded(f"{part} {backend}", partial(run, backend))
    return out


def run_parts(parts: Sequence[str], settings: RunSettings, budget: Budget) -> dict[str, Any]:
    doc: dict[str, Any] = dict.fromkeys(PARTS)
    load = settings.load
    if "exchange" in parts:
        doc["exchange"] = per_backend(
            "exchange", settings, budget, lambda b: exchange.run_backend(b, load)
        )
    for part, call in (
        (
            "policy",
            lambda: policy_compare.run(
                rounds=settings.policy_rounds, seconds=settings.policy_seconds
            ),
        ),
        ("micro", lambda: micro.run(rounds=settings.micro_rounds, seconds=settings.micro_seconds)),
    ):
        if part not in parts:
            continue
        need = settings.worst_case_seconds(part)
        doc[part] = (
            _guarded(part, call)
            if budget.left() >= need
            else over_budget(f"needs up to {need:.0f} s, {max(budget.left(), 0):.0f} s left")
        )
    if "audit_append" in parts:
        pool = audit_append.entry_pool()
        doc["audit_append"] = per_backend(
            "audit_append",
            settings,
            budget,
            lambda b: audit_append.run_backend(
                b,
                threads=settings.append_threads,
                seconds=settings.append_seconds,
                max_entries=settings.append_max_entries,
                pool=pool,
            ),
        )
    if "audit_verify" in parts:
        doc["audit_verify"] = per_backend(
            "audit_verify",
            settings,
            budget,
            lambda b: audit_verify.run_backend(b, size=settings.verify_size),
        )
    if "scale_out" in parts:
        # Last: it starts processes of its own and must not squeeze the parts
        # above; it runs the worker counts that still fit.
        need = settings.worst_case_seconds("scale_out")
        doc["scale_out"] = (
            _guarded("scale_out", lambda: scale_out.run(settings.scale, left=budget.left))
            if budget.left() >= need
            else over_budget(f"needs up to {need:.0f} s, {max(budget.left(), 0):.0f} s left")
        )
    # Parts not asked for are empty sections: the document keeps its shape.
    return {part: (value if value is not None else {}) for part, value in doc.items()}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--parts", default=",".join(PARTS), help="comma-separated, of " + ", ".join(PARTS)
    )
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_SECONDS, help="seconds")
    parser.add_argument("--quick", action="store_true", help="tiny caps: a smoke run")
    parser.add_argument("--verify-size", type=int, default=None, help="entries in the verified log")
    parser.add_argument("--out", default=str(RESULTS), help="folder for the JSON results")
    args = parser.parse_args(argv)
    args.parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown or not args.parts:
        parser.error(f"expected parts among {list(PARTS)}, got {args.parts}")
    if args.budget <= 0:
        parser.error(f"expected a positive budget, got {args.budget}")
    if args.verify_size is not None and not 1 <= args.verify_size <= 10_000_000:
        parser.error(f"expected a verify size of 1 to 10 000 000, got {args.verify_size}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = RunSettings.quick() if args.quick else RunSettings.default()
    if args.verify_size is not None:
        settings = replace(settings, verify_size=args.verify_size)
    settings.load.check()
    settings.scale.check()
    started = datetime.now(UTC)
    began = time.monotonic()
    budget = Budget(args.budget)
    document: dict[str, Any] = {
        "schema": SCHEMA,
        "started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "wall_seconds": 0.0,
        "machine": machine_info(postgres_admin_dsn=POSTGRES_ADMIN_DSN),
        "settings": {
            "quick": args.quick,
            "budget_seconds": args.budget,
            "parts": args.parts,
            **settings.to_dict(),
        },
        **run_parts(args.parts, settings, budget),
    }
    document["wall_seconds"] = time.monotonic() - began
    document["machine"]["loadavg_at_end"] = load_average()
    document["targets"] = evaluate(document)
    problems = validate(document)
    if problems:
        # Written anyway for diagnosis, but the run fails: a malformed
        # document would poison later comparisons.
        document["schema_problems"] = problems
    path = write_results(document, folder=Path(args.out), stamp=started.strftime("%Y%m%dT%H%M%SZ"))
    print(render_table(document))
    print(f"written to {path}", file=sys.stderr)
    return 1 if problems or has_failure([document[part] for part in PARTS]) else 0


def has_failure(value: object) -> bool:
    """Whether any block anywhere below `value` has status "failed"."""
    if isinstance(value, dict):
        return value.get("status") == FAILED or any(has_failure(v) for v in value.values())
    if isinstance(value, list):
        return any(has_failure(v) for v in value)
    return False


if __name__ == "__main__":
    sys.exit(main())
