"""The policy-engine interface and the policy bundle both engines evaluate.

A `PolicyBundle` is the set of .rego modules plus the JSON data documents in
`policies/`, read once. Its `version` is a SHA-256 over every file's name and
bytes, so an audit entry can name exactly which policy decided.

Engines evaluate an entrypoint (a path like `ketenbroker/exchange/decision`)
against an input document and return the JSON value of that rule. An
undefined result is `PolicyUnavailableError`: no decision means no answer
(style.md §13).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from broker.errors import PolicyUnavailableError

ENTRYPOINTS = (
    "ketenbroker/exchange/decision",
    "ketenbroker/disclosure/decision",
)


class PolicyEngine(Protocol):
    @property
    def version(self) -> str: ...

    def evaluate(self, entrypoint: str, input_document: dict[str, Any]) -> Any:
        """The entrypoint's value for this input; raise PolicyUnavailableError if none."""
        ...

    def ping(self) -> None:
        """Raise PolicyUnavailableError when the engine cannot decide right now."""
        ...


# JSON numbers that every engine reads the same: rego-cpp wraps integers from
# 2**63 and OPA reads numbers as float64, so only the exactly representable
# range is passed on.
MAX_SAFE_INTEGER = 2**53


def check_policy_input(value: Any, *, where: str = "input") -> None:
    """Refuse input an engine would misread (NUL cuts a rego-cpp string short;
    huge integers wrap; NaN is not JSON). A refused input gets no decision."""
    if isinstance(value, str):
        if "\x00" in value:
            raise PolicyUnavailableError(f"{where}: NUL character in a string")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise PolicyUnavailableError(f"{where}: integer beyond ±2**53")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise PolicyUnavailableError(f"{where}: NaN or infinity")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_policy_input(key, where=where)
            check_policy_input(item, where=f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for n, item in enumerate(value):
            check_policy_input(item, where=f"{where}[{n}]")
    else:
        raise PolicyUnavailableError(f"{where}: {type(value).__name__} is not JSON")


@dataclass(frozen=True)
class PolicyBundle:
    modules: dict[str, str]  # relative path -> Rego source
    data: dict[str, Any]  # merged data documents
    version: str

    @classmethod
    def from_directory(cls, root: Path, *, include_tests: bool = False) -> PolicyBundle:
        """Read `root/**/*.rego` and `root/data/*.json`.

        Test modules (`*_test.rego`) are left out of the serving bundle: they
        are for `ketenbroker policy test`, not for deciding exchanges.
        """
        modules: dict[str, str] = {}
        digest = hashlib.sha256()
        for path in sorted(root.rglob("*.rego")):
            relative = path.relative_to(root).as_posix()
            if path.name.endswith("_test.rego") and not include_tests:
                continue
            source = path.read_text(encoding="utf-8")
            modules[relative] = source
            digest.update(relative.encode() + b"\0" + source.encode() + b"\0")
        if not modules:
            raise PolicyUnavailableError(f"expected .rego modules under {root}, found none")
        data: dict[str, Any] = {}
        for path in sorted((root / "data").glob("*.json")):
            raw = path.read_bytes()
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + raw + b"\0")
            document = json.loads(raw)
            overlap = set(document) & set(data)
            if overlap:
                raise PolicyUnavailableError(f"{path.name} redefines data keys {sorted(overlap)}")
            data.update(document)
        return cls(modules=modules, data=data, version="sha256:" + digest.hexdigest())

    def with_data(self, extra: dict[str, Any]) -> PolicyBundle:
        """The bundle plus run-time data (the convenant), versioned over both."""
        overlap = set(extra) & set(self.data)
        if overlap:
            raise PolicyUnavailableError(f"run-time data redefines keys {sorted(overlap)}")
        digest = hashlib.sha256(self.version.encode())
        digest.update(json.dumps(extra, sort_keys=True, default=str).encode())
        return PolicyBundle(
            modules=self.modules,
            data={**self.data, **extra},
            version="sha256:" + digest.hexdigest(),
        )
