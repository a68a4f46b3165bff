"""`ketenbroker retention ...` run in-process against a real embedded deployment."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.audit.store import AuditQuery
from broker.cli import main
from broker.keys import KeyStore
from broker.services import build_services
from broker.settings import Settings
from tests.retention import NOT_COMPLEX_AT, closed_case, open_case

CREATED = datetime(2026, 3, 30, 8, 0, tzinfo=UTC)


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, keystore: KeyStore) -> Settings:
    """The commands read Settings from KETENBROKER_* variables: point them at a fresh deployment."""
    for name in list(os.environ):
        if name.upper().startswith("KETENBROKER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("KETENBROKER_KEYS_DIR", str(keystore.root))
    monkeypatch.setenv("KETENBROKER_SQLITE_PATH", str(tmp_path / "ketenbroker.sqlite3"))
    return Settings()


def test_retention_run_destroys_what_is_due_and_says_so(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    services = build_services(settings)
    try:
        due = open_case(services.cases, created=CREATED, moves=NOT_COMPLEX_AT)
        closed = closed_case(services.cases, created=CREATED, closed=CREATED)
    finally:
        services.close()

    assert main(["retention", "due", "--now", "2026-04-10", "--horizon-days", "3"]) == 0
    listed = capsys.readouterr().out
    assert f"2026-04-13  {due.id}  not_complex_after_5_working_days" in listed
    assert closed.id not in listed  # due in 2031, beyond the horizon

    assert main(["retention", "run", "--now", "2026-04-10"]) == 0
    assert "destroyed 0" in capsys.readouterr().out
    assert main(["retention", "run", "--now", "2026-04-13T09:00:00+02:00"]) == 0
    out = capsys.readouterr().out
    assert f"destroyed personal data: {due.id}" in out
    assert "checked 2 ended cases, destroyed 1" in out

    services = build_services(settings)
    try:
        assert services.cases.data_key(due.id) is None
        assert services.cases.data_key(closed.id) is not None
        kinds = [e.entry["kind"] for e in services.audit.entries(AuditQuery(case=due.id))]
        assert kinds == ["retention"]
    finally:
        services.close()

    assert main(["retention", "stats", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {
            "quarter": "2026-Q2",
            "outcome": "geen_complexe_overlast",
            "kind": "complex",
            "duration_months": "0-1",
            "cases": 1,
        }
    ]
    assert main(["retention", "stats"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[1].split() == ["2026-Q2", "geen_complexe_overlast", "complex", "0-1", "1"]


@pytest.mark.parametrize(
    "now",
    [
        "2026-04-13T09:00:00",  # a datetime without its zone: which day is it?
        "yesterday",  # not ISO at all
    ],
)
def test_retention_run_refuses_an_ambiguous_now(
    settings: Settings, capsys: pytest.CaptureFixture[str], now: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["retention", "run", "--now", now])
    assert exit_info.value.code == 2
    assert "--now" in capsys.readouterr().err
