"""The shape of a bench result: statuses, and a check that a result document is whole.

What it does: every measured block carries a `status`; `MEASURED` when it
holds figures, otherwise one of the other statuses with a `reason`
(`not_available`, `failed`, `over_budget` build those blocks).
`validate(document)` lists what is wrong with a result document: missing
sections, a status outside the closed set, a non-measured block without a
reason, a measured block without figures. `make bench` refuses to write a
document that does not validate, and tests/bench holds the renderer and
the parts to it.

What it does not: measure, or judge figures against targets
(`bench.targets`).

Why a closed set of statuses: the issue asks for "not available" where a
figure cannot be had (no OPA server), never a made-up one. A block that
is not measured must say so in words a later comparison can filter on.
"""

from __future__ import annotations

from typing import Any

SCHEMA = "ketenbroker-bench/1"

MEASURED = "measured"
NOT_AVAILABLE = "not available"
FAILED = "failed"
OVER_BUDGET = "skipped: over budget"
STATUSES = frozenset({MEASURED, NOT_AVAILABLE, FAILED, OVER_BUDGET})

# Sections of a whole run, in the order the table prints them.
SECTIONS = ("exchange", "scale_out", "policy", "audit_append", "audit_verify", "micro")
TOP_LEVEL = ("schema", "started", "wall_seconds", "machine", "settings", "targets", *SECTIONS)
MACHINE_KEYS = ("cpus", "python", "git")
# A measured block must hold at least one of these figures, or blocks of its own.
FIGURES = frozenset(
    {"p50_ms", "p99_ms", "entries_per_s", "throughput_per_s", "levels", "rows", "size", "configs"}
)


def not_available(reason: str, **extra: Any) -> dict[str, Any]:
    return {"status": NOT_AVAILABLE, "reason": reason, **extra}


def failed(reason: str, **extra: Any) -> dict[str, Any]:
    return {"status": FAILED, "reason": reason, **extra}


def over_budget(reason: str, **extra: Any) -> dict[str, Any]:
    return {"status": OVER_BUDGET, "reason": reason, **extra}


def is_measured(block: object) -> bool:
    return isinstance(block, dict) and block.get("status") == MEASURED


def _check_block(path: str, block: dict[str, Any], problems: list[str]) -> None:
    status = block.get("status")
    if status is not None:
        if status not in STATUSES:
            problems.append(f"{path}: expected a status in {sorted(STATUSES)}, got {status!r}")
        elif status == MEASURED:
            # Figures of its own, or measured blocks inside (a part per entrypoint).
            nested = any(isinstance(v, dict) and "status" in v for v in block.values())
            if not FIGURES & set(block) and not nested:
                problems.append(f"{path}: measured but holds no figures and no blocks")
        elif not isinstance(block.get("reason"), str) or not block["reason"]:
            problems.append(f"{path}: status {status!r} without a reason")
    for key, value in block.items():
        _check(f"{path}.{key}", value, problems)


def _check(path: str, value: object, problems: list[str]) -> None:
    if isinstance(value, dict):
        _check_block(path, value, problems)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check(f"{path}[{i}]", item, problems)


def _target_problems(targets: object) -> list[str]:
    if targets is None:
        return []
    if not isinstance(targets, list):
        return ["targets: expected a list"]
    problems = []
    for i, row in enumerate(targets):
        if not isinstance(row, dict) or not {"name", "target", "actual", "met"} <= set(row):
            problems.append(f"targets[{i}]: expected name, target, actual and met")
        elif row["met"] not in {True, False, None}:
            problems.append(f"targets[{i}]: met must be true, false or null")
    return problems


def validate(document: object) -> list[str]:
    """Problems with a result document; empty when it is whole."""
    if not isinstance(document, dict):
        return [f"expected a JSON object, got {type(document).__name__}"]
    problems = [f"missing top-level {key!r}" for key in TOP_LEVEL if key not in document]
    if document.get("schema") not in {None, SCHEMA}:
        problems.append(f"expected schema {SCHEMA!r}, got {document.get('schema')!r}")
    machine = document.get("machine")
    if isinstance(machine, dict):
        problems += [f"machine: missing {key!r}" for key in MACHINE_KEYS if key not in machine]
    elif "machine" in document:
        problems.append("machine: expected an object")
    for section in SECTIONS:
        if section in document and not isinstance(document[section], dict):
            problems.append(f"{section}: expected an object")
    problems += _target_problems(document.get("targets"))
    for section in SECTIONS:
        if isinstance(document.get(section), dict):
            _check(section, document[section], problems)
    return problems
