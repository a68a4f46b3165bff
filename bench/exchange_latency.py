"""Benchmark: one exchange through the broker vs. the same question asked directly.

Starts the embedded stack on loopback (SQLite with synchronous=FULL, in-process
replay cache, regopy), then measures sequentially, in the same run:
* direct: a signed call straight to the police adapter (what a partner would
  do without the broker);
* broker: POST /v1/exchanges for the same question (token cached, policy x2,
  adapter call, filtering, durable audit append, decision log).
Bounded: ROUNDS requests each. Prints p50/p99 and the ratio; writes JSON.
"""

from __future__ import annotations

import json
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from adapters.sdk.client import BrokerClient
from broker.adapter_protocol import ADAPTER_QUERY_PATH, AdapterQuery, sign_adapter_call
from broker.clock import SystemClock
from broker.demo import CASE_A
from broker.keys import KeyStore
from broker.settings import PROJECT_ROOT, Settings
from broker.stack import start_local_stack

ROUNDS = 200
RESULTS = PROJECT_ROOT / "bench" / "results"


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[max(0, int(len(ordered) * 0.99) - 1)],
        "rounds": len(ordered),
    }


def _require_ok(response: httpx.Response) -> None:
    # A benchmark of failing requests would measure nothing: stop at once.
    if response.status_code != 200:
        raise SystemExit(f"benchmark request failed: {response.status_code} {response.text[:200]}")


def run() -> dict[str, Any]:
    settings = Settings()
    keys = KeyStore(settings.keys_dir)
    with tempfile.TemporaryDirectory(prefix="ketenbroker-bench-") as workdir:
        base = settings.model_dump(exclude={"issuer", "adapter_urls"})
        base.update(sqlite_path=Path(workdir) / "kb.sqlite3")
        with start_local_stack(base=base) as stack:

            def client(p: str) -> BrokerClient:
                return BrokerClient(
                    base_url=stack.broker_url, client_id=p, signing_key=keys.signing_key(p)
                )

            gemeente, linge = client("gemeente-lekstroom"), client("woonstichting-de-linge")
            case_id = gemeente.post("/v1/cases", json=CASE_A).json()["id"]
            linge.post(f"/v1/cases/{case_id}/consent", json={"decision": "granted"})
            gemeente.post(f"/v1/cases/{case_id}/transitions", json={"to": "in_behandeling"})
            body = {
                "case": case_id,
                "subject": "og-1",
                "query": "politie.meldingen",
                "purpose": "aanpak_woonoverlast",
                "period": {"from": "2025-01-01", "to": "2026-11-01"},
                "on_behalf_of": {"user": "bench", "function": "casemanager"},
            }
            query = AdapterQuery.model_validate(
                {
                    "exchange": "ex_bench",
                    "query": "politie.meldingen",
                    "case": case_id,
                    "subject": {
                        "ref": "og-1",
                        "role": "overlastgever",
                        "name": "Marco de Wit",
                        "birth_date": "1979-03-14",
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
            raw = query.to_body()
            broker_key = keys.signing_key("broker")
            adapter = stack.adapter_urls["politie-lekstroom"] + ADAPTER_QUERY_PATH
            direct: list[float] = []
            through: list[float] = []
            nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
            with httpx.Client(transport=httpx.HTTPTransport(socket_options=nodelay)) as http:
                for _ in range(ROUNDS):
                    token = sign_adapter_call(
                        key=broker_key,
                        issuer=stack.broker_url,
                        adapter_partner="politie-lekstroom",
                        body=raw,
                        now=SystemClock().now(),
                    )
                    start = time.perf_counter()
                    response = http.post(
                        adapter,
                        content=raw,
                        headers={
                            "Authorization": f"Bearer {token}",
                            "Content-Type": "application/json",
                        },
                    )
                    direct.append((time.perf_counter() - start) * 1000)
                    _require_ok(response)
                gemeente.token()  # the token is cached, as a partner's client would
                for _ in range(ROUNDS):
                    start = time.perf_counter()
                    response = gemeente.post("/v1/exchanges", json=body)
                    through.append((time.perf_counter() - start) * 1000)
                    _require_ok(response)
            gemeente.close()
            linge.close()
    results = {"direct_adapter": _percentiles(direct), "through_broker": _percentiles(through)}
    results["ratio_p50"] = results["through_broker"]["p50_ms"] / results["direct_adapter"]["p50_ms"]
    results["added_p50_ms"] = (
        results["through_broker"]["p50_ms"] - results["direct_adapter"]["p50_ms"]
    )
    return results


def main() -> None:
    results = run()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"exchange-{time.strftime('%Y%m%dT%H%M%S')}.json").write_text(
        json.dumps(results, indent=2)
    )
    print(f"{'path':<18}{'p50 ms':>10}{'p99 ms':>10}")
    for name in ("direct_adapter", "through_broker"):
        print(f"{name:<18}{results[name]['p50_ms']:>10.2f}{results[name]['p99_ms']:>10.2f}")
    print(
        f"broker adds {results['added_p50_ms']:.2f} ms at p50"
        f" ({results['ratio_p50']:.1f}x the direct call)"
    )


if __name__ == "__main__":
    main()
