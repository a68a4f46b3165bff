"""The access report and confidentiality holds over real HTTP (contract.md, Audit log)."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.sdk.client import BrokerClient
from broker.cases.crypto import pseudonym
from broker.cases.store import SqlCaseStore
from broker.cli import build_parser
from broker.keys import KeyStore
from broker.services import build_sql_connection
from broker.stack import LocalStack
from tests.e2e.conftest import (
    BUURTTEAM,
    FG,
    GEMEENTE,
    POLITIE,
    WOONGOED,
    exchange_body,
)

pytestmark = pytest.mark.e2e

Clients = Callable[[str], BrokerClient]
ABSENT_INDEX = 2**40


def _exchange(client_for: Clients, case_id: str, subject: str, **overrides: Any) -> dict[str, Any]:
    response = client_for(GEMEENTE).post(
        "/v1/exchanges", json=exchange_body(case_id, subject=subject, **overrides)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _report(client_for: Clients, case_id: str, ref: str) -> dict[str, Any]:
    response = client_for(FG).get(f"/v1/audit/subjects/{ref}", params={"case": case_id})
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def _indexes(report: dict[str, Any], part: str = "disclosures") -> list[int]:
    return [row["log_index"] for row in report[part]]


def _hold(client: BrokerClient, index: int, reason: str = "lopend onderzoek") -> httpx.Response:
    return client.post(f"/v1/audit/entries/{index}/hold", json={"reason": reason})


def _lift(stack: LocalStack, client: BrokerClient, index: int) -> httpx.Response:
    del stack  # the client knows its broker
    # DELETE through the client, so the call carries its DPoP proof (RFC 9449 §7.1).
    return client.request("DELETE", f"/v1/audit/entries/{index}/hold")


def _holds(client: BrokerClient) -> list[dict[str, Any]]:
    response = client.get("/v1/audit/holds")
    assert response.status_code == 200, response.text
    holds: list[dict[str, Any]] = response.json()["holds"]
    return holds


def test_report_lists_what_partners_received_about_the_subject_only(
    stack: LocalStack, client_for: Clients, active_case: str
) -> None:
    about_og = _exchange(client_for, active_case, "og-1")
    about_m = _exchange(client_for, active_case, "m-1")
    refused = client_for(WOONGOED).post("/v1/exchanges", json=exchange_body(active_case))
    assert refused.status_code == 404
    report = _report(client_for, active_case, "og-1")
    assert _indexes(report) == [about_og["receipt"]["log_index"]]
    [disclosure] = report["disclosures"]
    assert disclosure["requester"] == {
        "partner": GEMEENTE,
        "name": "Gemeente Lekstroom, team Woonoverlast",
    }
    assert disclosure["provider"]["partner"] == POLITIE
    assert disclosure["legal_basis"] == about_og["legal_basis"]
    assert set(disclosure["fields_disclosed"]) == set(about_og["data"])
    assert disclosure["processing_activity"] == "LEK-WO-03 Informatie politie aan casusregisseur"
    [refusal] = report["refusals"]
    assert refusal["requester"]["partner"] == WOONGOED
    assert "not_case_partner" in refusal["reasons"]
    assert (report["subject"], report["case"]) == ("og-1", active_case)
    # The other subject, officials and disclosed values stay out.
    data_key = stack.services.cases.data_key(active_case)
    assert data_key is not None
    text = json.dumps(report, ensure_ascii=False)
    assert pseudonym(data_key, "m-1") not in text
    assert pseudonym(data_key, "og-1") not in text
    assert "j.devries" not in text and "Marco" not in text and "Fatima" not in text
    for value in about_og["data"].values():
        if isinstance(value, str) and len(value) > 3:
            assert value not in text
    melder = _report(client_for, active_case, "m-1")
    assert _indexes(melder) == [about_m["receipt"]["log_index"]]
    assert melder["refusals"] == []


def test_provider_hold_hides_the_entry_until_the_provider_lifts_it(
    stack: LocalStack, client_for: Clients, active_case: str
) -> None:
    kept = _exchange(client_for, active_case, "og-1")["receipt"]["log_index"]
    held = _exchange(client_for, active_case, "og-1")["receipt"]["log_index"]
    police = client_for(POLITIE)

    placed = _hold(police, held, reason="onderzoek OM-2026-17")
    assert placed.status_code == 201, placed.text
    assert placed.json()["set_by"] == POLITIE
    assert _indexes(_report(client_for, active_case, "og-1")) == [kept]

    # The DPO sees the hold and who set it; so does the police, for its own.
    [seen] = [h for h in _holds(client_for(FG)) if h["entry"] == held]
    assert seen["active"] is True
    assert (seen["set_by"], seen["reason"], seen["case"]) == (
        POLITIE,
        "onderzoek OM-2026-17",
        active_case,
    )
    assert seen["set_by_name"] == "Politie eenheid Rivierenland, basisteam Lekstroom"
    assert held in {h["entry"] for h in _holds(police)}
    assert held not in {h["entry"] for h in _holds(client_for(GEMEENTE))}

    lifted = _lift(stack, police, held)
    assert lifted.status_code == 200, lifted.text
    assert _indexes(_report(client_for, active_case, "og-1")) == [kept, held]
    [after] = [h for h in _holds(client_for(FG)) if h["entry"] == held]
    assert (after["active"], after["lifted_by"]) == (False, POLITIE)


def test_hold_is_recorded_in_the_signed_log(client_for: Clients, active_case: str) -> None:
    held = _exchange(client_for, active_case, "og-1")["receipt"]["log_index"]
    placed = _hold(client_for(POLITIE), held)
    assert placed.status_code == 201, placed.text
    receipt = placed.json()["receipt"]
    entries = client_for(FG).get(
        "/v1/audit/entries", params={"cursor": receipt["log_index"] - 1, "limit": 1}
    )
    [marker] = entries.json()["entries"]
    assert (marker["kind"], marker["entry"], marker["set_by"]) == ("hold", held, POLITIE)


def test_holding_twice_or_lifting_twice_conflicts(
    stack: LocalStack, client_for: Clients, active_case: str
) -> None:
    index = _exchange(client_for, active_case, "og-1")["receipt"]["log_index"]
    police = client_for(POLITIE)
    assert _hold(police, index).status_code == 201
    again = _hold(police, index, reason="nog eens")
    assert again.status_code == 409
    assert again.json()["code"] == "conflict"
    assert _lift(stack, police, index).status_code == 200
    assert _lift(stack, police, index).status_code == 409


@pytest.mark.parametrize(
    "partner",
    [
        GEMEENTE,  # the requester may not hide its own request from the subject
        BUURTTEAM,  # a partner of the case that played no part in the exchange
        WOONGOED,  # a partner outside the case
    ],
)
def test_only_the_provider_can_hold_and_others_learn_nothing(
    stack: LocalStack, client_for: Clients, active_case: str, partner: str
) -> None:
    index = _exchange(client_for, active_case, "og-1")["receipt"]["log_index"]
    client = client_for(partner)
    foreign = _hold(client, index)
    absent = _hold(client, ABSENT_INDEX)
    assert foreign.status_code == absent.status_code == 404
    assert foreign.json() == absent.json()
    assert _lift(stack, client, index).status_code == 404
    assert _indexes(_report(client_for, active_case, "og-1")) == [index]


def test_police_cannot_hold_an_entry_it_did_not_provide(
    client_for: Clients, active_case: str
) -> None:
    index = _exchange(client_for, active_case, "og-1", query="buurtteam.bekendheid")
    assert _hold(client_for(POLITIE), index["receipt"]["log_index"]).status_code == 404


def test_the_dpo_cannot_set_holds(client_for: Clients, active_case: str) -> None:
    index = _exchange(client_for, active_case, "og-1")["receipt"]["log_index"]
    assert _hold(client_for(FG), index).status_code == 403


def test_hold_request_rejects_unknown_fields_and_overlong_reasons(
    client_for: Clients, active_case: str
) -> None:
    index = _exchange(client_for, active_case, "og-1")["receipt"]["log_index"]
    police = client_for(POLITIE)
    for body in ({"reason": "x", "until": "2030-01-01"}, {"reason": "x" * 201}, {"reason": ""}):
        response = police.post(f"/v1/audit/entries/{index}/hold", json=body)
        assert response.status_code == 400, body
        assert response.json()["code"] == "invalid_request"


@pytest.mark.parametrize("partner", [GEMEENTE, POLITIE, BUURTTEAM])
def test_partners_cannot_read_access_reports(
    client_for: Clients, active_case: str, partner: str
) -> None:
    response = client_for(partner).get("/v1/audit/subjects/og-1", params={"case": active_case})
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"


def test_report_for_a_ref_not_in_the_case_is_empty(client_for: Clients, active_case: str) -> None:
    _exchange(client_for, active_case, "og-1")
    report = _report(client_for, active_case, "x-9")
    assert (report["disclosures"], report["refusals"], report["withheld"]) == ([], [], [])
    assert report["rights"]


def test_unknown_and_destroyed_cases_answer_the_same_404(
    stack: LocalStack, client_for: Clients, active_case: str
) -> None:
    _exchange(client_for, active_case, "og-1")
    dpo = client_for(FG)
    unknown = dpo.get("/v1/audit/subjects/og-1", params={"case": "case_" + "0" * 32})
    store = SqlCaseStore(
        build_sql_connection(stack.settings), kek=KeyStore(stack.settings.keys_dir).data_kek()
    )
    try:
        assert store.destroy_personal_data(active_case) is True
    finally:
        store.close()
    destroyed = dpo.get("/v1/audit/subjects/og-1", params={"case": active_case})
    assert unknown.status_code == destroyed.status_code == 404
    assert unknown.json() == destroyed.json()
    assert destroyed.json()["code"] == "not_found"
    assert "no longer exists" in destroyed.json()["detail"]


@pytest.mark.parametrize(
    "params",
    [
        {},  # pseudonyms are per case: no case, no report
        {"case": "../etc"},
        {"case": "x" * 65},
    ],
)
def test_report_needs_a_well_formed_case(client_for: Clients, params: dict[str, str]) -> None:
    response = client_for(FG).get("/v1/audit/subjects/og-1", params=params)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


def test_cli_writes_the_report_as_a_private_html_letter(
    stack: LocalStack,
    client_for: Clients,
    active_case: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    index = _exchange(client_for, active_case, "og-1")["receipt"]["log_index"]
    out = tmp_path / "inzage.html"
    argv = ["access-report", "--case", active_case, "--subject", "og-1", "--out", str(out)]
    args = build_parser().parse_args(argv)
    assert args.handler(args, stack.settings) == 0
    assert capsys.readouterr().out.strip() == str(out.resolve())
    page = out.read_text(encoding="utf-8")
    assert "Overzicht verwerkingen persoonsgegevens (AVG artikel 15)" in page
    assert f"<td>{index}</td>" in page
    assert "Politie eenheid Rivierenland, basisteam Lekstroom" in page
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    # A second run does not clobber the letter unless told to.
    assert args.handler(args, stack.settings) == 1
    forced = build_parser().parse_args([*argv, "--force"])
    assert forced.handler(forced, stack.settings) == 0


def test_cli_refuses_an_unknown_case(
    stack: LocalStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "inzage.html"
    argv = ["access-report", "--case", "case_" + "0" * 32, "--subject", "og-1", "--out", str(out)]
    args = build_parser().parse_args(argv)
    assert args.handler(args, stack.settings) == 1
    assert "no longer exists" in capsys.readouterr().err
    assert not out.exists()
