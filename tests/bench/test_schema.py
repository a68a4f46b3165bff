"""The result document's shape: what later runs are compared against must be whole and honest."""

from __future__ import annotations

from typing import Any

import pytest

from bench.schema import validate
from bench.targets import evaluate
from tests.bench.documents import sample_document


def test_a_whole_document_validates() -> None:
    document = sample_document()
    document["targets"] = evaluate(document)
    assert validate(document) == []


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        # A section lost: a later comparison would read its absence as "no change".
        (lambda d: d.pop("exchange"), "missing top-level 'exchange'"),
        (lambda d: d.pop("machine"), "missing top-level 'machine'"),
        # Runs are comparable only on the same machine and commit.
        (lambda d: d["machine"].pop("git"), "machine: missing 'git'"),
        (lambda d: d["machine"].pop("cpus"), "machine: missing 'cpus'"),
        (lambda d: d.update(schema="other/9"), "expected schema"),
        # A status outside the closed set cannot be filtered on.
        (
            lambda d: d["policy"]["opa_server"].update(status="roughly 2 ms"),
            "policy.opa_server: expected a status",
        ),
        # "not available" must say why, never stand bare.
        (
            lambda d: d["policy"]["opa_server"].pop("reason"),
            "policy.opa_server: status 'not available' without a reason",
        ),
        (
            lambda d: d["audit_verify"]["postgres"].update(reason=""),
            "audit_verify.postgres: status 'failed' without a reason",
        ),
        # "measured" with nothing measured in it is a made-up result.
        (
            lambda d: d["micro"].update(access_token_verify={"status": "measured"}),
            "micro.access_token_verify: measured but holds no figures",
        ),
        (
            lambda d: d["scale_out"].pop("configs"),
            "scale_out: measured but holds no figures",
        ),
        (
            lambda d: d["scale_out"]["configs"][2].pop("reason"),
            "scale_out.configs[2]: status 'skipped: over budget' without a reason",
        ),
        (lambda d: d.pop("scale_out"), "missing top-level 'scale_out'"),
        (lambda d: d.update(exchange=[1, 2]), "exchange: expected an object"),
        (lambda d: d.update(targets={"a": 1}), "targets: expected a list"),
        (lambda d: d.update(targets=[{"name": "x"}]), "targets[0]: expected name, target"),
        (
            lambda d: d.update(targets=[{"name": "x", "target": "t", "actual": "a", "met": "yes"}]),
            "targets[0]: met must be",
        ),
    ],
)
def test_a_damaged_document_is_refused_with_the_reason(damage: Any, problem: str) -> None:
    document = sample_document()
    damage(document)
    problems = validate(document)
    assert any(problem in p for p in problems), problems


def test_a_document_that_is_not_an_object_is_refused() -> None:
    assert validate([1, 2, 3]) == ["expected a JSON object, got list"]
