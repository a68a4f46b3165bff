"""Policy decisions: the embedded engine vs. the OPA-server client path, per entrypoint.

What it does: times both entrypoints (ketenbroker/exchange/decision and
ketenbroker/disclosure/decision) with the realistic inputs of
bench/policy_decision.py, each under a count and a time cap:

* `embedded`: the engine the broker builds by default
  (`broker.services.build_policy_engine`, rego-cpp in process);
* `opa_server`: `broker.policy.opa.OpaPolicyEngine` against the OPA server
  at KETENBROKER_OPA_URL (default http://127.0.0.1:8181), but only when
  its /health answers within PROBE_TIMEOUT_SECONDS; otherwise the block is
  "not available" with the reason, never a figure;
* `opa_standin` (optional): the same client against tests/support/
  opa_standin.py, rego-cpp behind OPA's REST API, in this process. Labelled
  "stand-in, not OPA" wherever it appears: it shows the client path's HTTP
  and JSON cost, not what OPA itself costs.

What it does not: compare decisions (tests/policy does), or start an OPA.

Why the probe: no OPA binary can be installed on the development machines
(tests/support/opa_standin.py says why); docker/ runs the real one. A
bench that invented an OPA figure would be worse than none.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.policy_decision import realistic_inputs
from bench.schema import MEASURED, failed, not_available
from bench.stats import summarize, time_calls
from broker.convenant import load_convenant
from broker.errors import PolicyUnavailableError
from broker.policy.engine import PolicyEngine
from broker.policy.inputs import serving_bundle
from broker.policy.opa import OpaPolicyEngine
from broker.services import build_policy_engine
from broker.settings import Settings

ENTRYPOINTS = ("ketenbroker/exchange/decision", "ketenbroker/disclosure/decision")
DEFAULT_OPA_URL = "http://127.0.0.1:8181"
PROBE_TIMEOUT_SECONDS = 0.5
DECISION_TIMEOUT_SECONDS = 2.0
ROUNDS = 3_000
SECONDS = 4.0
WARMUP = 200
STANDIN_LABEL = "stand-in, not OPA"
# The stand-in is rego-cpp behind a threaded http.server in this process:
# slow, and not what is being compared; a short look is enough.
STANDIN_ROUNDS = 300
STANDIN_SECONDS = 2.0


def probe_opa(url: str, *, timeout: float = PROBE_TIMEOUT_SECONDS) -> str | None:
    """None when an OPA answers 200 on /health at `url`; otherwise why not."""
    try:
        response = httpx.get(url.rstrip("/") + "/health", timeout=timeout, trust_env=False)
    except httpx.HTTPError as e:
        return f"no OPA server answered at {url} ({type(e).__name__})"
    if response.status_code != 200:
        return f"OPA at {url} answered /health with {response.status_code}"
    return None


def time_engine(
    engine: PolicyEngine, inputs: dict[str, dict[str, Any]], *, rounds: int, seconds: float
) -> dict[str, Any]:
    """Median and p99 per entrypoint; a failed decision fails that entrypoint's block."""
    out: dict[str, Any] = {}
    for entrypoint in ENTRYPOINTS:
        document = inputs[entrypoint]

        def decide(entrypoint: str = entrypoint, document: dict[str, Any] = document) -> Any:
            return engine.evaluate(entrypoint, document)

        try:
            samples = time_calls(decide, rounds=rounds, seconds=seconds, warmup=WARMUP)
        except PolicyUnavailableError as e:
            out[entrypoint] = failed(f"the engine gave no decision: {e}")
            continue
        out[entrypoint] = summarize(samples)
    return out


def _inputs() -> dict[str, dict[str, Any]]:
    exchange, disclosure = realistic_inputs()
    return {ENTRYPOINTS[0]: exchange, ENTRYPOINTS[1]: disclosure}


def _client_path(
    make: Callable[[], OpaPolicyEngine], inputs: dict[str, dict[str, Any]], **caps: Any
) -> dict[str, Any]:
    engine = make()
    try:
        return {"status": MEASURED, "url": engine.url, **time_engine(engine, inputs, **caps)}
    finally:
        engine.close()


def run(
    *,
    opa_url: str | None = None,
    with_standin: bool = True,
    rounds: int = ROUNDS,
    seconds: float = SECONDS,
) -> dict[str, Any]:
    settings = Settings(policy_engine="embedded")
    convenant = load_convenant(settings.convenant_path)
    bundle = serving_bundle(settings.policies_dir, convenant)
    inputs = _inputs()
    caps: dict[str, Any] = {"rounds": rounds, "seconds": seconds}
    embedded = build_policy_engine(settings, convenant)
    result: dict[str, Any] = {
        "policy_version": bundle.version,
        "embedded": {"status": MEASURED, **time_engine(embedded, inputs, **caps)},
    }
    url = opa_url or os.environ.get("KETENBROKER_OPA_URL", DEFAULT_OPA_URL)
    unavailable = probe_opa(url)
    if unavailable is not None:
        result["opa_server"] = not_available(unavailable, url=url)
    else:
        result["opa_server"] = _client_path(
            lambda: OpaPolicyEngine(
                url=url, version=bundle.version, timeout_seconds=DECISION_TIMEOUT_SECONDS
            ),
            inputs,
            **caps,
        )
    if with_standin:
        standin_caps: dict[str, Any] = {
            "rounds": min(rounds, STANDIN_ROUNDS),
            "seconds": min(seconds, STANDIN_SECONDS),
        }
        result["opa_standin"] = {"label": STANDIN_LABEL, **_standin(bundle, inputs, standin_caps)}
    return result


def _standin(
    bundle: Any, inputs: dict[str, dict[str, Any]], caps: dict[str, Any]
) -> dict[str, Any]:
    # Imported here: tests/ is not installed with the package, and the
    # stand-in is optional to the bench.
    try:
        from tests.support.opa_standin import OpaStandIn  # noqa: PLC0415
    except ImportError as e:
        return not_available(f"tests/support/opa_standin.py cannot be imported: {e}")
    with OpaStandIn() as standin, tempfile.TemporaryDirectory(prefix="kb-bench-opa-") as folder:
        standin.serve_bundle(bundle, Path(folder) / "bundle")
        return _client_path(
            lambda: OpaPolicyEngine(
                url=standin.url, version=bundle.version, timeout_seconds=DECISION_TIMEOUT_SECONDS
            ),
            inputs,
            **caps,
        )
