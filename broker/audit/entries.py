"""The shapes of audit entries, built from values (no I/O).

The kinds of entry built here (retention and hold entries have their own modules):

* `exchange`: the record of one exchange request. A refusal before anything
  is fetched is one entry (decision `deny`). An exchange that reaches the
  provider is two: an *intent* (decision `intent`), written before the
  adapter is asked, and a *closing* entry that points back at it with
  `intent_index`: `permit` or `partial` (what was disclosed), `deny` (the
  provider or the policy failed after the intent) or `not_disclosed`
  (written by `broker.exchange.reconcile` for an intent whose broker died
  before it could close it). Together they hold every field contract.md's
  audit section names, and never the disclosed values (only their SHA-256
  over canonical JSON, `payload_hash`, the digest of the provider's signed
  answer, and the digest of the broker's own signature over what it
  disclosed, `disclosure_signature_digest`).
* `security_event`: a refused authentication or authorisation attempt that
  never reached the exchange pipeline (bad client assertion, bad token,
  missing scope). These make "every refusal is logged" true at the edge.

A rare kind, `reconciliation`, marks how far a start-up
reconciliation has looked (`reconciliation_mark`), so the next one need not
read the whole log again.

The store adds `index`; the leaf hash covers the whole entry including it.
Untrusted strings are clipped before they reach the log (a log entry is not
a place to store an attacker's megabyte).

Why an intent at all (log before disclose, FSC / Authorization Decision
Log): if the broker dies between asking the provider and answering the
requester, the log must still show that the question was asked. The intent
says so; the closing entry says how it ended; an intent left without one is
closed as not disclosed when the broker starts again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from broker.clock import rfc3339

MAX_UNTRUSTED_CHARS = 200  # enough for any legitimate id or kid; bounds log growth

# Exchange decisions. An intent is open until an entry with one of the
# closing decisions names it in `intent_index`.
INTENT = "intent"
NOT_DISCLOSED = "not_disclosed"
DISCLOSED = frozenset({"permit", "partial"})
CLOSING_DECISIONS = frozenset({*DISCLOSED, "deny", NOT_DISCLOSED})
# Why reconciliation closed an intent (the reason code of a not_disclosed entry).
RESTARTED_BEFORE_DISCLOSURE = "broker_restarted_before_disclosure"

RECONCILIATION = "reconciliation"
RECONCILED = "reconciled"

# The members an intent shares with the entry that closes it: who asked whom
# what, for which case and subject, on which basis and under which policy.
_INTENT_MEMBERS = (
    "exchange",
    "trace_id",
    "processing_activity",
    "convenant",
    "legal_basis",
    "requester",
    "provider",
    "case",
    "subject",
    "query",
    "purpose",
    "policy_version",
    "flags",
)


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
    intent_index: int | None = None,
    disclosure_signature_digest: str | None = None,
) -> dict[str, Any]:
    """One exchange entry as contract.md's audit section describes it.

    `subject` is the keyed pseudonym, never a name; `payload_hash` is the
    SHA-256 of the canonical JSON of what was disclosed, never the values.
    `intent_index` (on a closing entry) and `disclosure_signature_digest`
    (on a disclosure) are present only when given, so a refusal before
    anything was fetched keeps the shape it always had.
    """
    entry: dict[str, Any] = {
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
    if intent_index is not None:
        entry["intent_index"] = intent_index
    if disclosure_signature_digest is not None:
        entry["disclosure_signature_digest"] = disclosure_signature_digest
    return entry


def not_disclosed_entry(
    intent: Mapping[str, Any], *, intent_index: int, time: datetime, detail: str
) -> dict[str, Any]:
    """The entry that closes a dangling `intent` (stored at `intent_index`) as not disclosed.

    It repeats the intent's description of the exchange, so that a reader of
    one entry sees what was not answered; it discloses no field.
    """
    entry: dict[str, Any] = {"kind": "exchange", "time": rfc3339(time)}
    for name in _INTENT_MEMBERS:
        entry[name] = intent.get(name)
    entry.update(
        {
            "decision": NOT_DISCLOSED,
            "reasons": [{"code": RESTARTED_BEFORE_DISCLOSURE, "reason": clip(detail)}],
            "fields_disclosed": [],
            "fields_withheld": [],
            "payload_hash": None,
            "answer_signature_digest": None,
            "intent_index": intent_index,
        }
    )
    return entry


def reconciliation_mark(
    *,
    time: datetime,
    scanned_from: int,
    scanned_to: int,
    open_from: int,
    closed: list[int],
    grace_seconds: int,
) -> dict[str, Any]:
    """How far a reconciliation looked: every intent below `open_from` is closed.

    `scanned_from`/`scanned_to` (exclusive) is the range of indexes read;
    `closed` the indexes of the intents it closed; `open_from` the index of
    the oldest intent it had to leave open (too young, see
    `broker.exchange.reconcile`), or `scanned_to` when none.
    """
    return {
        "kind": RECONCILIATION,
        "time": rfc3339(time),
        "decision": RECONCILED,
        "scanned": {"from": scanned_from, "to": scanned_to},
        "open_from": open_from,
        "closed": sorted(closed),
        "grace_seconds": grace_seconds,
    }
