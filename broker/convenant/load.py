"""Load and validate a convenant file (YAML or JSON).

Errors name the offending key by its path, e.g. `exchanges.2.fields`, so the
person maintaining the file can find it without reading a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from broker.convenant.model import Convenant
from broker.errors import ConvenantError

MAX_CONVENANT_BYTES = 1_000_000  # a convenant is a page of terms, not a data set


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys: a signed text has one reading."""


def _mapping_without_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Any:
    keys = [loader.construct_object(key, deep=True) for key, _ in node.value]
    duplicates = sorted({str(k) for k in keys if keys.count(k) > 1})
    if duplicates:
        raise ConvenantError(f"duplicate keys {duplicates} near line {node.start_mark.line + 1}")
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def parse_convenant(document: Any) -> Convenant:
    if not isinstance(document, dict):
        raise ConvenantError(f"expected a mapping at the top level, got {type(document).__name__}")
    try:
        return Convenant.model_validate(document)
    except ValidationError as e:
        problems = []
        for error in e.errors():
            where = ".".join(str(part) for part in error["loc"]) or "(top level)"
            problems.append(f"{where}: {error['msg']}")
        raise ConvenantError("convenant is invalid: " + "; ".join(problems)) from e


def load_convenant(path: Path) -> Convenant:
    raw = path.read_bytes()
    if len(raw) > MAX_CONVENANT_BYTES:
        raise ConvenantError(f"expected at most {MAX_CONVENANT_BYTES} bytes, got {len(raw)}")
    try:
        document = (
            json.loads(raw) if path.suffix == ".json" else yaml.load(raw, Loader=_UniqueKeyLoader)  # noqa: S506  # a SafeLoader subclass
        )
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise ConvenantError(f"{path.name} is not valid {path.suffix.lstrip('.')}: {e}") from e
    return parse_convenant(document)
