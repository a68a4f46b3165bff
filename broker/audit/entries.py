"""The shapes of audit entries, built from values (no I/O).

Two kinds of entry share the log:

* `exchange`: one per exchange request, permitted, partial or refused. It
  holds every field contract.md's audit section names, and never the
  disclosed values (only their SHA-256 over canonical JSON, `payload_hash`).
* `security_event`: a refused authentication or authorisation attempt that
  never reached the exchange pipeline (bad client assertion, bad token,
  missing scope). These make "every refusal is logged" true at the edge.

The store adds `index`; the leaf hash covers the whole entry including it.
Untrusted strings are clipped before they reach the log (a log entry is not
a place to store an attacker's megabyte).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from broker.clock import rfc3339

MAX_UNTRUSTED_CHARS = 200  # enough for any legitimate id or kid; bounds log growth


def clip(value: str) -> str:
    """Clip an untrusted string for the log, marking that it was clipped."""
    if len(value) <= MAX_UNTRUSTED_CHARS:
        return value
    return value[:MAX_UNTRUSTED_CHARS] + "…[clipped]"


def security_event(
    *,
    time: datetime,
    event: str,
    code: str,
    principal: str | None,
    trace_id: str,
    detail: str,
) -> dict[str, Any]:
    """An authentication or authorisation refusal at the edge.

    `principal` must be a principal the convenant knows, or None: an unknown
    client id is recorded only inside the clipped `detail`.
    """
    return {
        "kind": "security_event",
        "time": rfc3339(time),
        "event": event,
        "decision": "deny",
        "reasons": [{"code": code, "detail": clip(detail)}],
        "requester": {"partner": principal},
        "trace_id": trace_id,
    }


def exchange_entry(
    *,
    time: datetime,
    exchange_id: str,
    trace_id: str,
    convenant: dict[str, str],
    processing_activity: str | None,
    legal_basis: dict[str, str] | None,
    requester: dict[str, str | None],
    provider: str | None,
    case: str,
    subject: str | None,
    query: str,
    purpose: str,
    decision: str,
    reasons: list[dict[str, str]],
    fields_disclosed: list[str],
    fields_withheld: list[dict[str, str]],
    policy_version: str,
    payload_hash: str | None,
    answer_signature_digest: str | None = None,
    flags: list[str] | None = None,
) -> dict[str, Any]:
    """One exchange as contract.md's audit section describes it.

    `subject` is the keyed pseudonym, never a name; `payload_hash` is the
    SHA-256 of the canonical JSON of what was disclosed, never the values.
    """
    return {
        "kind": "exchange",
        "time": rfc3339(time),
        "exchange": exchange_id,
        "trace_id": trace_id,
        "processing_activity": processing_activity,
        "convenant": convenant,
        "legal_basis": legal_basis,
        "requester": {
            "partner": requester.get("partner"),
            "user": clip(requester.get("user") or ""),
            "function": clip(requester.get("function") or ""),
        },
        "provider": {"partner": provider},
        "case": clip(case),
        "subject": subject,
        "query": clip(query),
        "purpose": clip(purpose),
        "decision": decision,
        "reasons": reasons,
        "fields_disclosed": sorted(fields_disclosed),
        "fields_withheld": sorted(fields_withheld, key=lambda w: w["field"]),
        "policy_version": policy_version,
        "payload_hash": payload_hash,
        "answer_signature_digest": answer_signature_digest,
        "flags": flags or [],
    }
