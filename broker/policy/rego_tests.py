"""Run the Rego unit tests (`test_*` rules in `*_test.rego`) with the embedded engine.

OPA's `opa test` convention: a test is a rule whose name starts with `test_`
and passes when it evaluates to true. We find them by name in the test
modules, evaluate each as a query, and count: an error or undefined result
is a failure, never a skip.

One difference (docs/adr/0003-rego-tests-without-with.md): rego-cpp crashes
on `with input as ...` when the rule under test calls a built-in, so test
modules declare each test's input as `test_inputs[<test name>]` and this
runner sets that input before evaluating the test. A test without a
declared input runs with no input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regopy

from broker.policy.engine import PolicyBundle

_PACKAGE = re.compile(r"^package\s+([A-Za-z0-9_.]+)", re.MULTILINE)
_TEST_RULE = re.compile(r"^(test_[A-Za-z0-9_]+)\s*(?:if\b|:?=|\{)", re.MULTILINE)


@dataclass(frozen=True)
class RegoTestResult:
    name: str
    passed: bool
    detail: str


def discover_tests(bundle: PolicyBundle) -> list[tuple[str, str]]:
    """(package, rule) for every test rule in every `*_test.rego` module."""
    found: list[tuple[str, str]] = []
    for name, source in bundle.modules.items():
        if not name.endswith("_test.rego"):
            continue
        package = _PACKAGE.search(source)
        if package is None:
            continue
        for rule in dict.fromkeys(_TEST_RULE.findall(source)):
            found.append((package.group(1), rule))
    return found


def run_rego_tests(root: Path, *, extra_data: dict[str, Any]) -> list[RegoTestResult]:
    bundle = PolicyBundle.from_directory(root, include_tests=True).with_data(extra_data)
    interpreter = regopy.Interpreter()
    for name, source in bundle.modules.items():
        interpreter.add_module(name, source)
    interpreter.add_data(bundle.data)
    results = []
    inputs = _declared_inputs(interpreter, {package for package, _ in discover_tests(bundle)})
    for package, rule in discover_tests(bundle):
        query = f"data.{package}.{rule}"
        try:
            interpreter.set_input(regopy.Input(inputs.get(package, {}).get(rule, {})))
            output = interpreter.query(query)
        except regopy.RegoError as e:
            results.append(RegoTestResult(query, False, f"error: {e}"))
            continue
        value = output[0].expressions[0] if len(output) and output[0].expressions else None
        passed = output.ok() and value is True
        results.append(RegoTestResult(query, passed, "" if passed else f"got {value!r}"))
    return results


def _declared_inputs(interpreter: regopy.Interpreter, packages: set[str]) -> dict[str, Any]:
    """Each test package's `test_inputs` object, evaluated once with no input."""
    found: dict[str, Any] = {}
    interpreter.set_input(regopy.Input({}))
    for package in packages:
        output = interpreter.query(f"data.{package}.test_inputs")
        if output.ok() and len(output) and output[0].expressions:
            value = output[0].expressions[0]
            if isinstance(value, dict):
                found[package] = value
    return found
