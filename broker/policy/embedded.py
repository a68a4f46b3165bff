"""The embedded policy engine: rego-cpp through regopy, in this process.

The bundle is compiled once at start (`Interpreter.build` with the serving
entrypoints); each decision only sets the input and runs the compiled plan,
so no request re-parses Rego; the input goes in through
`broker.policy.regopy_input`, which converts it faster than `regopy.Input`.
rego-cpp interpreters are not thread-safe, so decisions are serialised by
a lock. Each decision's time (lock wait
included) goes to `Metrics.observe_policy_decision`.

Which bundle: the constructor compiles whatever `PolicyBundle` it is given;
the broker gives it only one that passed `broker.policy.bundle`'s signature
check (`broker.policy.served`), which `from_signed_archive` does in one step.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import regopy

from broker.errors import PolicyUnavailableError
from broker.keys import PublicKeySet
from broker.metrics import Metrics
from broker.policy import regopy_input
from broker.policy.bundle import load_signed_bundle
from broker.policy.engine import ENTRYPOINTS, PolicyBundle, check_policy_input


class EmbeddedPolicyEngine:
    def __init__(
        self,
        bundle: PolicyBundle,
        *,
        entrypoints: tuple[str, ...] = ENTRYPOINTS,
        metrics: Metrics | None = None,
    ):
        self._metrics = metrics or Metrics()
        self._bundle_source = bundle
        self._entrypoints = entrypoints
        builder = regopy.Interpreter()
        try:
            for name, source in bundle.modules.items():
                builder.add_module(name, source)
            builder.add_data(bundle.data)
            self._compiled = builder.build(None, list(entrypoints))
        except regopy.RegoError as e:
            raise PolicyUnavailableError(f"policy bundle does not compile: {e}") from e
        if not self._compiled.ok():
            raise PolicyUnavailableError(f"policy bundle does not compile: {self._compiled.node()}")
        self._runner = regopy.Interpreter()
        self._lock = threading.Lock()

    @classmethod
    def from_signed_archive(
        cls, path: Path, *, trusted: PublicKeySet, metrics: Metrics | None = None
    ) -> EmbeddedPolicyEngine:
        """Compile the bundle archive at `path` once its signature verifies (else raise)."""
        return cls(load_signed_bundle(path, trusted=trusted), metrics=metrics)

    @property
    def version(self) -> str:
        """The bundle's revision: the `policy_version` of every audit entry."""
        return self._bundle_source.version

    def evaluate(self, entrypoint: str, input_document: dict[str, Any]) -> Any:
        if entrypoint not in self._entrypoints:
            # Checked before timing: metric labels stay the closed set of entrypoints.
            raise PolicyUnavailableError(f"expected one of {self._entrypoints}, got {entrypoint!r}")
        start = time.perf_counter()
        try:
            return self._evaluate(entrypoint, input_document)
        finally:
            self._metrics.observe_policy_decision(
                entrypoint=entrypoint, seconds=time.perf_counter() - start
            )

    def _evaluate(self, entrypoint: str, input_document: dict[str, Any]) -> Any:
        check_policy_input(input_document)
        with self._lock:
            try:
                if regopy_input.supported():
                    regopy_input.set_input(self._runner, input_document)
                else:
                    self._runner.set_input(regopy.Input(input_document))
                output = self._runner.query_bundle_entrypoint(self._compiled, entrypoint)
            except (regopy.RegoError, ValueError) as e:
                # ValueError: regopy could not parse the engine's output as JSON.
                raise PolicyUnavailableError(
                    f"evaluating {entrypoint!r} failed: {type(e).__name__}"
                ) from e
            if not output.ok():
                raise PolicyUnavailableError(f"evaluating {entrypoint!r} failed: {output}")
            if len(output) == 0 or not output[0].expressions:
                raise PolicyUnavailableError(f"{entrypoint!r} is undefined for this input")
            return output[0].expressions[0]

    def ping(self) -> None:
        """The compiled bundle is in memory; an embedded engine is ready once built."""
