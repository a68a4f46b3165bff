"""The embedded policy engine: rego-cpp through regopy, in this process.

The bundle is compiled once at start (`Interpreter.build` with the serving
entrypoints); each decision only sets the input and runs the compiled plan,
so no request re-parses Rego. rego-cpp interpreters are not thread-safe, so
decisions are serialised by a lock; a decision takes tens of microseconds.
"""

from __future__ import annotations

import threading
from typing import Any

import regopy

from broker.errors import PolicyUnavailableError
from broker.policy.engine import ENTRYPOINTS, PolicyBundle, check_policy_input


class EmbeddedPolicyEngine:
    def __init__(self, bundle: PolicyBundle, *, entrypoints: tuple[str, ...] = ENTRYPOINTS):
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

    @property
    def version(self) -> str:
        return self._bundle_source.version

    def evaluate(self, entrypoint: str, input_document: dict[str, Any]) -> Any:
        if entrypoint not in self._entrypoints:
            raise PolicyUnavailableError(f"expected one of {self._entrypoints}, got {entrypoint!r}")
        check_policy_input(input_document)
        with self._lock:
            try:
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
