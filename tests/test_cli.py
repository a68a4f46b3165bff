"""The `ketenbroker` command line, run in-process: keys, policy evaluation, Rego tests."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from broker.cases.model import CasePartner, CaseStatus, Consent, PartnerStatus
from broker.cli import main
from broker.convenant import Convenant
from broker.keys import KeyStore
from broker.policy.inputs import build_exchange_input, case_facts, period_facts
from broker.settings import PROJECT_ROOT
from tests.cases import POLICE, REGISSEUR, T0, make_case

EXCHANGE = "ketenbroker/exchange/decision"
SUMMARY = re.compile(r"^rego: (\d+) passed, (\d+) failed$", re.MULTILINE)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands read Settings from KETENBROKER_* variables; start from none."""
    for name in list(os.environ):
        if name.upper().startswith("KETENBROKER_"):
            monkeypatch.delenv(name)


# ---- keys init ----------------------------------------------------------------------


def test_keys_init_makes_keys_for_the_broker_and_every_principal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], convenant: Convenant
) -> None:
    folder = tmp_path / "keys"
    assert main(["keys", "init", "--dir", str(folder)]) == 0
    out = capsys.readouterr().out
    principals = ["broker", *convenant.principal_ids()]
    assert out.startswith(f"made key pairs for {', '.join(principals)} in {folder}\n")
    # The policy signer signs bundles (broker.policy.bundle); OPA reads its PEM.
    assert "made the policy-signer key pair (ES256)" in out
    principals.append("policy-signer")
    assert sorted(p.name for p in (folder / "private").iterdir()) == sorted(
        [f"{p}.pem" for p in principals] + ["case-kek.bin"]
    )
    assert sorted(p.name for p in (folder / "public").iterdir()) == sorted(
        [f"{p}.jwks.json" for p in principals] + ["policy-signer.pem"]
    )
    for private in (folder / "private").iterdir():
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    store = KeyStore(folder)
    for principal in principals:
        assert store.public_keyset(principal).get(store.signing_key(principal).kid) is not None


def test_keys_init_if_missing_keeps_every_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], convenant: Convenant
) -> None:
    folder = tmp_path / "keys"
    main(["keys", "init", "--dir", str(folder)])
    store = KeyStore(folder)
    principals = ["broker", *convenant.principal_ids()]
    kids = {p: store.signing_key(p).kid for p in principals}
    kek = store.data_kek()
    capsys.readouterr()

    assert main(["keys", "init", "--if-missing", "--dir", str(folder)]) == 0
    assert capsys.readouterr().out == f"all key pairs present in {folder}\n"
    assert {p: store.signing_key(p).kid for p in principals} == kids
    assert store.data_kek() == kek


def test_keys_init_if_missing_fills_only_the_gaps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "keys"
    main(["keys", "init", "--dir", str(folder)])
    (folder / "private" / "politie-lekstroom.pem").unlink()
    capsys.readouterr()
    assert main(["keys", "init", "--if-missing", "--dir", str(folder)]) == 0
    assert capsys.readouterr().out == f"made key pairs for politie-lekstroom in {folder}\n"


def test_keys_init_with_es256(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "keys"
    assert main(["keys", "init", "--alg", "ES256", "--dir", str(folder)]) == 0
    assert KeyStore(folder).signing_key("broker").alg == "ES256"
    jwks = json.loads((folder / "public" / "broker.jwks.json").read_text())
    assert jwks["keys"][0]["crv"] == "P-256"


def test_keys_init_refuses_an_unknown_algorithm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["keys", "init", "--alg", "HS256", "--dir", str(tmp_path / "keys")])
    assert exited.value.code == 2
    assert "invalid choice: 'HS256'" in capsys.readouterr().err
    assert not (tmp_path / "keys").exists()


# ---- policy eval ----------------------------------------------------------------------


def exchange_input(convenant: Convenant, *, with_case: bool) -> dict[str, Any]:
    """What the broker sends for the regisseur asking the police about the overlastgever."""
    case = make_case(
        status=CaseStatus.in_behandeling,
        dwelling_owner="particulier",
        consent=Consent.not_required,
        partners=(
            CasePartner(REGISSEUR, PartnerStatus.actief, T0),
            CasePartner(POLICE, PartnerStatus.actief, T0),
        ),
    )
    return build_exchange_input(
        exchange_id="ex_01HZX3V6",
        query="politie.meldingen",
        purpose="aanpak_woonoverlast",
        period=period_facts(date(2025, 5, 5), date(2026, 5, 4)),
        requester={
            "partner": REGISSEUR,
            "role": "gemeente",
            "function": None,
            "user": "j.devries",
            "user_function": "casusregisseur",
        },
        case=case_facts(case, convenant) if with_case else None,
        subject_ref="og-1",
    )


def _evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str], document: Any) -> Any:
    path = tmp_path / "input.json"
    path.write_text(json.dumps(document))
    capsys.readouterr()
    assert main(["policy", "eval", EXCHANGE, "--input", str(path)]) == 0
    return json.loads(capsys.readouterr().out)


def test_policy_eval_refuses_an_exchange_without_a_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], convenant: Convenant
) -> None:
    decision = _evaluate(tmp_path, capsys, exchange_input(convenant, with_case=False))
    assert decision["allow"] is False
    assert decision["fields"] == []
    assert decision["provider"] is None
    # Somebody outside a case learns first that it is not theirs (lowest rank).
    lowest = min(decision["refusals"], key=lambda r: r["rank"])
    assert lowest["code"] == "not_case_partner"


def test_policy_eval_allows_the_same_question_within_the_case(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], convenant: Convenant
) -> None:
    """The control for the test above: the refusal comes from the missing case."""
    decision = _evaluate(tmp_path, capsys, exchange_input(convenant, with_case=True))
    assert decision["refusals"] == []
    assert decision["allow"] is True
    assert decision["provider"] == POLICE
    exchange = convenant.exchange("politie.meldingen")
    assert exchange is not None
    assert decision["fields"] == list(exchange.fields)


# ---- policy test ------------------------------------------------------------------------


def test_policy_test_runs_the_shipped_rego_tests_and_all_pass(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["policy", "test"]) == 0
    out = capsys.readouterr().out
    match = SUMMARY.search(out)
    assert match is not None, out
    passed, failed = int(match.group(1)), int(match.group(2))
    assert failed == 0
    assert passed > 0
    assert "FAIL" not in out


FAILING_TEST = """package ketenbroker.cli_probe_test

import rego.v1

test_holds if {
\tdata.convenant.purpose == "aanpak_woonoverlast"
}

test_breaks if {
\tdata.convenant.purpose == "opsporing"
}
"""


def test_policy_test_reports_a_failing_rego_test_and_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(PROJECT_ROOT / "policies", policies)
    (policies / "cli_probe_test.rego").write_text(FAILING_TEST)
    monkeypatch.setenv("KETENBROKER_POLICIES_DIR", str(policies))
    assert main(["policy", "test"]) == 1
    out = capsys.readouterr().out
    assert "FAIL data.ketenbroker.cli_probe_test.test_breaks" in out
    assert "test_holds" not in out  # passing tests are listed only with -v
    match = SUMMARY.search(out)
    assert match is not None
    assert int(match.group(2)) == 1


def test_policy_test_without_any_rego_test_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Zero tests is not a pass: a lost test folder must not turn `make test` green."""
    policies = tmp_path / "policies"
    shutil.copytree(
        PROJECT_ROOT / "policies", policies, ignore=shutil.ignore_patterns("*_test.rego")
    )
    monkeypatch.setenv("KETENBROKER_POLICIES_DIR", str(policies))
    assert main(["policy", "test"]) == 1
    assert "rego: 0 passed, 0 failed" in capsys.readouterr().out
