"""Full verification rate of an audit log, in entries/s, on SQLite and PostgreSQL.

What it does: fills a scratch log with `size` realistic entries
(bench/loggen.py, in batches), then times, once each:

* `log_verify`: `AuditLog.verify()`, the broker's own full re-check (every
  entry re-canonicalised and re-hashed, every leaf compared, the root
  recomputed), and `log_verify_parallel` with one worker per CPU where
  `verify` takes `workers`;
* `offline_verify`: the offline verifier on the export (the JSON lines
  GET /v1/audit/export streams, then the checkpoint), as
  `ketenbroker audit verify FILE` runs it (`offline.verify_export_file`
  where it exists, else `verify_export` over the lines) with only the
  broker's public key, and `offline_verify_parallel` with one worker per
  CPU (`--workers`). Writing the export is timed apart.

What it does not: grow logs to millions of entries or time the DPO's
queries: bench/audit_scale.py does, with its own budget, outside
`make bench`'s default run.

Why once each: a verification of 100 000 entries is itself 100 000
repetitions; the rate is the figure. The work is bounded by `size`; the
driver (bench.run) starts this part only when its worst case fits the
time left.
"""

from __future__ import annotations

import inspect
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.audit_append import open_store
from bench.loggen import default_cases, generate_entries, load_example_convenant, populate
from bench.schema import MEASURED, failed, not_available
from bench.scratch import BackendUnavailableError, scratch_folder
from broker.audit import AuditLog, AuditQuery, offline
from broker.canonical import canonical_json
from broker.clock import SystemClock
from broker.keys import PublicKeySet, TrustedKey, generate_signing_key

DEFAULT_SIZE = 100_000
BATCH = 10_000
EXPORT_PAGE = 1_000  # the export endpoint's page (broker/api/routes/audit.py)
SEED = 20260105
ENTRIES_PER_YEAR = 200_000


def _export(log: AuditLog, path: Path) -> int:
    """Write the export the API streams; how many entries it holds."""
    final = log.checkpoint()
    cursor = -1
    with path.open("wb") as out:
        while cursor + 1 < final.size:
            page = log.entries(
                AuditQuery(after_index=cursor, before_index=final.size, limit=EXPORT_PAGE)
            )
            if not page:
                break
            for stored in page:
                out.write(canonical_json(stored.entry) + b"\n")
                cursor = stored.index
        out.write(canonical_json({"checkpoint": final.to_dict()}) + b"\n")
    return cursor + 1


def _verify_variants() -> list[tuple[str, dict[str, Any]]]:
    """`AuditLog.verify()` as is, and with one worker per CPU where it takes `workers`."""
    variants: list[tuple[str, dict[str, Any]]] = [("log_verify", {})]
    if "workers" in inspect.signature(AuditLog.verify).parameters:
        cpus = os.cpu_count() or 1
        variants = [("log_verify", {"workers": 1})]
        if cpus > 1:
            variants.append(("log_verify_parallel", {"workers": cpus}))
    return variants


def _rate(size: int, seconds: float) -> dict[str, Any]:
    return {"status": MEASURED, "size": size, "seconds": seconds, "entries_per_s": size / seconds}


def run_backend(backend: str, *, size: int = DEFAULT_SIZE) -> dict[str, Any]:
    key = generate_signing_key()
    entries = generate_entries(
        count=size,
        start=datetime(2026, 1, 5, tzinfo=UTC),
        years=size / ENTRIES_PER_YEAR,
        seed=SEED,
        partners=load_example_convenant(),
        cases=default_cases(size),
    )
    try:
        with open_store(backend) as store:
            began = time.perf_counter()
            populate(store, entries, BATCH)
            fill = time.perf_counter() - began
            log = AuditLog(store=store, signing_key=key, clock=SystemClock())

            rates: dict[str, Any] = {}
            for name, kwargs in _verify_variants():
                began = time.perf_counter()
                report = log.verify(**kwargs)
                seconds = time.perf_counter() - began
                if not report.ok or report.size != size:
                    return failed(
                        f"expected a whole log of {size} to verify ({name}), got size"
                        f" {report.size} and {report.problems[:2]}"
                    )
                rates[name] = {**_rate(report.size, seconds), **kwargs}
            with scratch_folder("bench-export-") as folder:
                path = folder / "export.jsonl"
                began = time.perf_counter()
                exported = _export(log, path)
                export_seconds = time.perf_counter() - began
                keys = PublicKeySet(
                    [TrustedKey(kid=key.kid, alg=key.alg, public_key=key.public_key)]
                )
                rates.update(_offline_rates(path, keys))
    except BackendUnavailableError as e:
        return not_available(str(e))
    return {
        "status": MEASURED,
        "size": size,
        "fill_entries_per_s": size / fill,
        **rates,
        "export_write": _rate(exported, export_seconds),
    }


def _offline_rates(path: Path, keys: PublicKeySet) -> dict[str, Any]:
    """The offline verifier as `ketenbroker audit verify FILE` runs it, and with --workers."""
    by_file = getattr(offline, "verify_export_file", None)
    if by_file is None:
        began = time.perf_counter()
        with path.open("rb") as stream:
            verified = offline.verify_export(offline.bounded_lines(stream), keys=keys)
        return {"offline_verify": _rate(verified.size, time.perf_counter() - began)}
    rates: dict[str, Any] = {}
    cpus = os.cpu_count() or 1
    for name, workers in (("offline_verify", 1), ("offline_verify_parallel", cpus)):
        if workers == 1 and name.endswith("parallel"):
            continue
        began = time.perf_counter()
        verified = by_file(path, keys=keys, workers=workers)
        rates[name] = {**_rate(verified.size, time.perf_counter() - began), "workers": workers}
    return rates
