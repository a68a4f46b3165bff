"""Benchmark: the embedded policy decision (not part of `make test`).

Measures, in one run on this machine, the median and p99 time of the two
real entrypoints with realistic inputs, against a baseline measured in the
same run: the same engine evaluating a one-rule policy (the fixed cost of
crossing into rego-cpp). Prints a table and writes JSON to bench/results/.
Loops are bounded in count. No decision is cached: every round converts the
input and evaluates the compiled policy again.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from broker.convenant import load_convenant
from broker.policy.embedded import EmbeddedPolicyEngine
from broker.policy.engine import PolicyBundle
from broker.policy.inputs import answer_field_facts, serving_bundle
from broker.settings import PROJECT_ROOT

ROUNDS = 2000
WARMUP = 200
RESULTS = PROJECT_ROOT / "bench" / "results"


def _timings(call: Callable[[], Any], rounds: int = ROUNDS) -> list[float]:
    for _ in range(WARMUP):
        call()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return samples


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": statistics.median(ordered),
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1],
        "rounds": len(ordered),
    }


def realistic_inputs() -> tuple[dict[str, Any], dict[str, Any]]:
    case = {
        "id": "case_1",
        "kind": "complex",
        "status": "in_behandeling",
        "regisseur": "gemeente-lekstroom",
        "dwelling_owner": "woonstichting-de-linge",
        "consent": "granted",
        "criteria": [1, 2, 3, 6],
        "partners": [
            {"partner": p, "role": r, "function": f, "status": "actief"}
            for p, r, f in [
                ("gemeente-lekstroom", "gemeente", None),
                ("politie-lekstroom", "politie", None),
                ("woonstichting-de-linge", "corporatie", None),
                ("buurtteam-lekstroom", "zorg", "buurtteam"),
                ("ggd-lekstroom", "zorg", "ggd"),
            ]
        ],
        "subjects": [{"ref": "og-1", "role": "overlastgever"}, {"ref": "m-1", "role": "melder"}],
        "events": [],
        "urgent": False,
    }
    exchange = {
        "exchange": {
            "id": "ex_1",
            "query": "politie.meldingen",
            "purpose": "aanpak_woonoverlast",
            "period": {"from": "2025-01-01", "to": "2026-11-01", "days": 670},
        },
        "requester": {
            "partner": "gemeente-lekstroom",
            "role": "gemeente",
            "function": None,
            "user": "j.devries",
            "user_function": "casemanager",
        },
        "case": case,
        "subject": {"ref": "og-1"},
    }
    meldingen = [
        {"datum": f"2026-0{m}-01", "aard": "geluidsoverlast", "korte_omschrijving": text}
        for m, text in enumerate(
            [
                "Harde muziek tot diep in de nacht, buren klagen over bonken op de muur.",
                "Ruzie in het trappenhuis, melder voelt zich geïntimideerd.",
                "Geschreeuw en deuren die dichtslaan, agenten hebben gesproken met bewoner.",
                "Vernieling van de fietsenstalling, camerabeelden bekeken.",
            ],
            start=1,
        )
    ]
    answer = [
        answer_field_facts("meldingen_aantal", "nuisance", 4),
        answer_field_facts("meldingen", "nuisance", meldingen),
        answer_field_facts("politie_inzet", "police_deployment", {"aantal": 3}),
        answer_field_facts("fysiek_geweld_omwonenden", "nuisance", True),
        answer_field_facts("zware_intimidatie_bedreiging", "nuisance", True),
        answer_field_facts("bekend_overlast_antecedenten", "nuisance_history", True),
        answer_field_facts("lopend_onderzoek", "investigation", False),
        answer_field_facts("strafrechtelijke_antecedenten", "criminal", ["diefstal 2019"]),
        answer_field_facts("interne_notitie", "free_text", "Zie ook registratie elders."),
    ]
    disclosure = {
        **exchange,
        "provider": {"partner": "politie-lekstroom", "role": "politie", "function": None},
        "answer": {"subject_known": True, "fields": answer},
    }
    return exchange, disclosure


def run() -> dict[str, Any]:
    convenant = load_convenant(PROJECT_ROOT / "convenants" / "lekstroom.yaml")
    # What the broker serves: policies/ plus the convenant and its index
    # (the signed bundle holds exactly this; signing does not change decisions).
    engine = EmbeddedPolicyEngine(serving_bundle(PROJECT_ROOT / "policies", convenant))
    baseline_bundle = PolicyBundle(
        modules={"b.rego": "package ketenbroker.exchange\nimport rego.v1\ndecision := true\n"},
        data={},
        version="baseline",
    )
    baseline = EmbeddedPolicyEngine(baseline_bundle, entrypoints=("ketenbroker/exchange/decision",))
    exchange, disclosure = realistic_inputs()
    results = {
        "baseline_one_rule": _summary(
            _timings(lambda: baseline.evaluate("ketenbroker/exchange/decision", exchange))
        ),
        "exchange_decision": _summary(
            _timings(lambda: engine.evaluate("ketenbroker/exchange/decision", exchange))
        ),
        "disclosure_decision": _summary(
            _timings(lambda: engine.evaluate("ketenbroker/disclosure/decision", disclosure))
        ),
    }
    base = results["baseline_one_rule"]["median_ms"]
    for name in ("exchange_decision", "disclosure_decision"):
        results[name]["ratio_to_baseline"] = results[name]["median_ms"] / base
    results["policy_version"] = engine.version
    return results


def main() -> None:
    results = run()
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (RESULTS / f"policy-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'decision':<24}{'median ms':>12}{'p99 ms':>10}{'x baseline':>12}")
    for name in ("baseline_one_rule", "exchange_decision", "disclosure_decision"):
        row = results[name]
        ratio = row.get("ratio_to_baseline", 1.0)
        print(f"{name:<24}{row['median_ms']:>12.3f}{row['p99_ms']:>10.3f}{ratio:>12.1f}")


if __name__ == "__main__":
    main()
