"""Structured logs without personal data (issue 6 point 6).

Runs the demo's exchanges and refusals through a real stack (broker and
adapters on loopback, SQLite and PostgreSQL) with the production log
format, catches every line every logger wrote meanwhile, and holds them to
two rules: each line is one JSON object with the fixed members, and no line
holds a personal value of the demo data or the case register, a token or
a private key.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from broker.keys import KeyStore
from broker.settings import PROJECT_ROOT
from tests.e2e.conftest import GEMEENTE, case_body
from tests.ops.conftest import client, play_story, running_stack

pytestmark = pytest.mark.e2e

# Members of the adapters' demo records whose values are about a person.
PERSONAL_MEMBERS = frozenset(
    {
        "naam", "voornaam", "voornamen", "achternaam", "geslachtsnaam", "geboortedatum",
        "straat", "postcode", "melder", "korte_omschrijving", "tekst", "gegevens",
        "diagnose", "behandelplan", "medicatie", "verdenking", "interne_notitie",
        "hulpvraag", "bemiddelaar", "feit", "persoons_id", "relatienummer",
        "clientnummer", "relatie_id", "dossiernummer", "registratienummer",
        "contractnummer", "vhe_nummer", "zaaktype", "afspraken", "uitkering",
    }
)  # fmt: skip
DUTCH_DATE = re.compile(r"(\d{2})-(\d{2})-(\d{4})")


def _personal_values(document: Any, member: str | None = None) -> Iterator[str]:
    if isinstance(document, dict):
        if {"voornamen", "achternaam"} <= document.keys():
            # The full name as a log line would spell it.
            parts = (document.get("voornamen"), document.get("voorvoegsel"), document["achternaam"])
            yield " ".join(part for part in parts if part)
        for key, value in document.items():
            yield from _personal_values(value, key)
    elif isinstance(document, list):
        for item in document:
            yield from _personal_values(item, member)
    elif isinstance(document, str) and member in PERSONAL_MEMBERS and len(document) >= 4:
        yield document
        if match := DUTCH_DATE.fullmatch(document):
            day, month, year = match.groups()
            yield date(int(year), int(month), int(day)).isoformat()


def demo_personal_values() -> set[str]:
    values: set[str] = set()
    for path in sorted((PROJECT_ROOT / "adapters").glob("*/data/*.json")):
        values.update(_personal_values(json.loads(path.read_text(encoding="utf-8"))))
    for subject in case_body()["subjects"]:
        values.update({subject["name"], subject["birth_date"]})
    address = case_body()["address"]
    values.add(address["postcode"])
    assert len(values) > 50, f"expected the demo data's personal values, got {len(values)}"
    return values


def secrets_of(keystore: KeyStore) -> set[str]:
    """Lines of every private key file: a key in a log shows up as one of them."""
    found: set[str] = set()
    for path in Path(keystore.root).rglob("*"):
        if path.is_file() and b"PRIVATE KEY" in path.read_bytes():
            found.update(
                line for line in path.read_text().splitlines() if line and "-----" not in line
            )
    assert found, f"expected private keys under {keystore.root}"
    return found


@pytest.fixture
def captured(json_log: io.StringIO) -> Iterator[io.StringIO]:
    """Every record of every logger, in the production format, at DEBUG for our own."""
    ours = [logging.getLogger(name) for name in ("ketenbroker", "broker", "adapters")]
    for logger in ours:
        logger.setLevel(logging.DEBUG)
    try:
        yield json_log
    finally:
        for logger in ours:
            logger.setLevel(logging.NOTSET)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_logs_are_json_lines_without_personal_data(
    backend: str,
    captured: io.StringIO,
    keystore: KeyStore,
    tmp_path: Path,
    postgres_dsn: str,
) -> None:
    extra = {"storage_backend": backend, "postgres_dsn": postgres_dsn}
    with running_stack(tmp_path, keystore, **extra) as stack:
        answers = play_story(stack, keystore)
        with client(stack, keystore, GEMEENTE) as gemeente:
            token = gemeente.authorization()[1]
    statuses = {a.status_code for a in answers}
    assert 200 in statuses and statuses & {401, 403, 404}, (
        f"expected answers and refusals: {statuses}"
    )

    lines = captured.getvalue().splitlines()
    records = [json.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    requests = [r for r in records if r["logger"] == "ketenbroker.access"]
    assert len(requests) >= len(answers)
    for r in requests:
        assert re.fullmatch(r"[0-9a-f]{32}", r["trace_id"]), r
        assert r["route"].startswith("/") and "?" not in r["route"], r
    refused = [r for r in requests if r["route"] == "/v1/exchanges" and r["status"] >= 400]
    assert refused and all(r.get("code") for r in refused), refused

    forbidden = demo_personal_values() | secrets_of(keystore) | {token}
    text = captured.getvalue()
    leaked = sorted(value for value in forbidden if value.lower() in text.lower())
    assert not leaked, f"expected no personal data, token or key in the log, found {leaked}"
    # The case ids did travel in the paths; the log names only the route templates.
    case_paths = re.findall(r"/v1/cases/case_\w+", text)
    assert not case_paths, case_paths
