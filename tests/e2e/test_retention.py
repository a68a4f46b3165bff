"""Retention end to end: a case found not complex is shredded, over real HTTP, on every backend.

The broker runs with the wall clock (tokens need it), so the job is called
directly with a `now` days ahead, as `ketenbroker retention run --now`
does. Everything a partner and the DPO then see goes over HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from adapters.sdk.client import BrokerClient
from broker.cases.model import CaseStatus
from broker.cases.requests import CreateCaseRequest
from broker.retention.job import run_retention
from broker.retention.schedule import destruction_due
from broker.stack import LocalStack
from tests.e2e.conftest import (
    DE_LINGE,
    FG,
    GEMEENTE,
    audit_entries,
    case_body,
    exchange_body,
)

pytestmark = pytest.mark.e2e

Clients = Callable[[str], BrokerClient]
NOON = time(12, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))


def _run(stack: LocalStack, now: datetime) -> list[str]:
    services = stack.services
    report = run_retention(
        cases=services.cases, audit=services.audit, convenant=services.convenant, now=now
    )
    return report.destroyed


def test_not_complex_case_is_shredded_and_nothing_flows_afterwards(
    stack: LocalStack, client_for: Clients, active_case: str
) -> None:
    gemeente, dpo = client_for(GEMEENTE), client_for(FG)
    case_id = active_case
    # An exchange while the case runs: its entry names the subject by pseudonym.
    asked = gemeente.post("/v1/exchanges", json=exchange_body(case_id))
    assert asked.status_code == 200, asked.text
    # The intent (logged before the fetch) and the disclosure that closes it.
    intent, before = [e for e in audit_entries(dpo, case=case_id) if e["kind"] == "exchange"]
    assert (intent["decision"], before["intent_index"]) == ("intent", intent["index"])
    assert intent["subject"] == before["subject"]
    assert before["subject"].startswith("ps_")
    moved = gemeente.post(f"/v1/cases/{case_id}/transitions", json={"to": "geen_complexe_overlast"})
    assert moved.status_code == 200, moved.text

    case = stack.services.cases.load(case_id)
    assert case is not None
    entered = case.entered(CaseStatus.geen_complexe_overlast)
    due = destruction_due(case, stack.services.convenant)
    assert entered is not None and due is not None
    # Eight days on, unless holidays push the fifth working day further.
    now = max(entered + timedelta(days=8), datetime.combine(due, NOON))
    # Other modules' cases share the PostgreSQL database, so look for this one.
    assert case_id not in _run(stack, datetime.combine(due - timedelta(days=1), NOON))
    assert stack.services.cases.data_key(case_id) is not None
    assert case_id in _run(stack, now)

    # Nothing is exchanged about the case any more.
    refused = gemeente.post("/v1/exchanges", json=exchange_body(case_id))
    assert refused.status_code == 403
    assert refused.json()["code"] == "case_closed"
    # The register says so, and shows no address.
    document = gemeente.get(f"/v1/cases/{case_id}").json()
    assert document["personal_data_destroyed"] is True
    assert document["address"] is None
    # The status still reports its terms, each with met and overdue.
    status = gemeente.get(f"/v1/cases/{case_id}/status")
    assert status.status_code == 200
    deadlines = {d["kind"]: d for d in status.json()["deadlines"]}
    assert {"corporation_consent", "intake_decision", "inform_overlastgever_start"} <= set(
        deadlines
    )
    assert all(isinstance(d["overdue"], bool) for d in deadlines.values())
    assert (deadlines["intake_decision"]["met"], deadlines["intake_decision"]["overdue"]) == (
        True,
        False,
    )

    # The DPO sees the destruction in the log, and the log still verifies.
    entries = audit_entries(dpo, case=case_id)
    (retention,) = [e for e in entries if e["kind"] == "retention"]
    assert (retention["event"], retention["reason"], retention["decision"]) == (
        "personal_data_destroyed",
        "not_complex_after_5_working_days",
        "destroyed",
    )
    assert retention["due"] == due.isoformat()
    # The refused exchange after destruction names no subject: there is no key to make one.
    after = [e for e in entries if e["kind"] == "exchange" and e["decision"] == "deny"]
    assert after and after[-1]["subject"] is None
    assert stack.services.cases.data_key(case_id) is None
    assert stack.services.audit.verify().ok
    # A second run finds nothing to do.
    assert case_id not in _run(stack, now + timedelta(days=1))
    assert [e["kind"] for e in audit_entries(dpo, case=case_id)].count("retention") == 1


def test_status_flags_a_consent_request_left_unanswered_as_overdue(
    stack: LocalStack, client_for: Clients
) -> None:
    # Registered ten days ago (the register takes the moment it is given);
    # the corporation never answered its 3-day consent request (R5).
    past = stack.services.clock.now() - timedelta(days=10)
    case = stack.services.cases.create(
        caller=GEMEENTE, request=CreateCaseRequest.model_validate(case_body()), now=past
    )
    status = client_for(DE_LINGE).get(f"/v1/cases/{case.id}/status")
    assert status.status_code == 200, status.text
    deadlines = {d["kind"]: d for d in status.json()["deadlines"]}
    assert deadlines["corporation_consent"] == {
        "kind": "corporation_consent",
        "due": (past + timedelta(days=3)).isoformat(),
        "met": False,
        "overdue": True,
        "met_at": None,
    }
    assert (deadlines["intake_decision"]["met"], deadlines["intake_decision"]["overdue"]) == (
        False,
        True,
    )
