"""Policy input documents, built from facts (pure; no I/O).

The broker gathers facts (who asks, about which case and subject, what the
case looks like, what the adapter answered) and hands them to Rego as one
input document. Python computes only facts that Rego cannot compute
portably (a period's length in days, normalised text), never a verdict.

Input of `ketenbroker/exchange/decision`::

    {"exchange": {"id", "query", "purpose", "period": {"from", "to", "days"} | null},
     "requester": {"partner", "role", "function", "user", "user_function"},
     "case": null | {"id", "kind", "status", "regisseur", "dwelling_owner",
                     "consent", "criteria": [int], "partners": [{"partner", "role",
                     "function", "status"}], "subjects": [{"ref", "role"}],
                     "events": [str], "urgent": bool},
     "subject": {"ref"}}

Input of `ketenbroker/disclosure/decision` adds the answer::

    {..., "provider": {"partner", "role", "function"},
     "answer": {"subject_known": bool,
                "fields": [{"name", "category", "boolean": bool | null,
                            "texts": [normalised strings], "oversized": bool}]}}

Field values themselves are not sent to the policy: only their category,
their yes/no value where they are booleans (R3's investigation flag, R4's
"known"), and their normalised text content (for the R2 free-text scan).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date
from pathlib import Path
from typing import Any

from broker.cases.model import Case
from broker.convenant import Convenant
from broker.policy.engine import PolicyBundle
from broker.policy.normalise import TextTooLongError, normalise_text

# An answer field with more text than this is not scanned but withheld whole:
# a short description or a note is far shorter (R2 scan bound).
MAX_SCANNED_TEXT_CHARS = 20_000


def case_facts(case: Case | None, convenant: Convenant) -> dict[str, Any] | None:
    if case is None:
        return None
    partners = []
    for entry in case.partners:
        partner = convenant.partner(entry.partner)
        partners.append(
            {
                "partner": entry.partner,
                "role": partner.role.value if partner else None,
                "function": partner.function if partner else None,
                "status": entry.status.value,
            }
        )
    return {
        "id": case.id,
        "kind": case.kind.value,
        "status": case.status.value,
        "regisseur": case.regisseur,
        "dwelling_owner": case.dwelling_owner,
        "consent": case.consent.value,
        "criteria": list(case.criteria),
        "partners": partners,
        "subjects": [{"ref": s.ref, "role": s.role.value} for s in case.subjects],
        # Recorded facts (OM permission, mediation consent) and acute necessity.
        "events": sorted({event.kind.value for event in case.events}),
        "urgent": case.urgency is not None,
    }


def period_facts(period_from: date | None, period_to: date | None) -> dict[str, Any] | None:
    if period_from is None or period_to is None:
        return None
    return {
        "from": period_from.isoformat(),
        "to": period_to.isoformat(),
        # Inclusive day count: Rego v1 has no portable date arithmetic on dates.
        "days": (period_to - period_from).days + 1,
    }


def build_exchange_input(
    *,
    exchange_id: str,
    query: str,
    purpose: str,
    period: dict[str, Any] | None,
    requester: Mapping[str, Any],
    case: dict[str, Any] | None,
    subject_ref: str,
) -> dict[str, Any]:
    return {
        "exchange": {"id": exchange_id, "query": query, "purpose": purpose, "period": period},
        "requester": dict(requester),
        "case": case,
        "subject": {"ref": subject_ref},
    }


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def answer_field_facts(name: str, category: str, value: Any) -> dict[str, Any]:
    texts = list(_strings(value))
    oversized = sum(len(t) for t in texts) > MAX_SCANNED_TEXT_CHARS
    normalised: list[str] = []
    if not oversized:
        try:
            normalised = [normalise_text(t) for t in texts]
        except TextTooLongError:
            # One text beyond what the scanner reads: withheld whole, never cut.
            oversized = True
    return {
        "name": name,
        "category": category,
        # Yes/no facts (an investigation flag, "known to us") are the only
        # values the policy sees; every other value stays out of the input.
        "boolean": value if isinstance(value, bool) else None,
        "texts": [] if oversized else normalised,
        "oversized": oversized,
    }


def build_disclosure_input(
    exchange_input: Mapping[str, Any],
    *,
    provider: Mapping[str, Any],
    subject_known: bool,
    fields: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        **exchange_input,
        "provider": dict(provider),
        "answer": {"subject_known": subject_known, "fields": fields},
    }


def convenant_data(convenant: Convenant) -> dict[str, Any]:
    """The convenant as Rego base data: `data.convenant`, and `data.convenant_index`.

    The index holds the convenant's exchange types and partners keyed by id
    and the ids of the complex-case criteria, made once when the bundle is
    built. A keyed lookup is one step in
    rego-cpp, where finding an entry by scanning the arrays cost about
    0.2 ms on every decision (docs/performance.md). It adds no fact: every
    value in it is also in `data.convenant`.
    """
    document = convenant.model_dump(mode="json")
    index = {
        "exchanges": {exchange["id"]: exchange for exchange in document["exchanges"]},
        "partners": {partner["id"]: partner for partner in document["partners"]},
        "criteria_ids": [item["id"] for item in document["complex_case_criteria"]["items"]],
    }
    return {"convenant": document, "convenant_index": index}


def serving_bundle(policies_dir: Path, convenant: Convenant) -> PolicyBundle:
    """What both engines serve: policies/ plus the convenant as `data.convenant`.

    Its version is the `policy_version` every audit entry records, so the
    broker, `policy eval` and the bundle written for OPA are built here only.
    """
    return PolicyBundle.from_directory(policies_dir).with_data(convenant_data(convenant))
