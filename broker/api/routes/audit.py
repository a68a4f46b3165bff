"""The audit log's endpoints (contract.md, Audit log).

The DPO (scope `audit:read`) sees every entry; a partner (scope `audit:own`)
sees the entries in which it is requester or provider. Checkpoints and
proofs reveal no entry content and are open to both, so a partner can check
its receipts with only the broker's public key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from broker.api.deps import ServicesDep
from broker.api.security import AuditAnyCaller, AuditReadCaller
from broker.audit.store import AuditQuery
from broker.canonical import canonical_json
from broker.clock import rfc3339
from broker.errors import InvalidRequestError

router = APIRouter(tags=["audit"])

MAX_PAGE = 500  # one page of entries; the DPO pages with the cursor
EXPORT_PAGE = 1000

# Filters arrive from outside; a narrow alphabet keeps them inert (style.md §14).
FilterId = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
FilterTime = Annotated[str | None, Query(max_length=40, pattern=r"^[0-9T:.+Z-]+$")]


def _utc(moment: str | None) -> str | None:
    """An RFC 3339 filter as the stored form (UTC, `Z`), so text order is time order."""
    if moment is None:
        return None
    try:
        parsed = datetime.fromisoformat(moment)
    except ValueError as e:
        raise InvalidRequestError("from and to must be RFC 3339 times") from e
    if parsed.tzinfo is None:
        raise InvalidRequestError("from and to need a time zone (RFC 3339)")
    return rfc3339(parsed)


@router.get("/v1/audit/checkpoint")
def checkpoint(services: ServicesDep, caller: AuditAnyCaller) -> dict[str, Any]:
    _ = caller
    return services.audit.checkpoint().to_dict()


@router.get("/v1/audit/entries")
def entries(
    services: ServicesDep,
    caller: AuditAnyCaller,
    case: FilterId = None,
    partner: FilterId = None,
    decision: Annotated[
        str | None, Query(pattern=r"^(permit|partial|deny|intent|not_disclosed)$")
    ] = None,
    from_: Annotated[
        str | None, Query(alias="from", max_length=40, pattern=r"^[0-9T:.+Z-]+$")
    ] = None,
    to: FilterTime = None,
    cursor: Annotated[int | None, Query(ge=-1, le=2**62)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> dict[str, Any]:
    if "audit:read" not in caller.scopes:
        # audit:own: only entries where the caller is requester or provider.
        if partner is not None and partner != caller.principal:
            raise InvalidRequestError("with audit:own, partner can only be yourself")
        partner = caller.principal
    query = AuditQuery(
        case=case,
        partner=partner,
        decision=decision,
        time_from=_utc(from_),
        time_to=_utc(to),
        after_index=cursor,
        limit=limit,
    )
    found = services.audit.entries(query)
    next_cursor = found[-1].index if len(found) == limit else None
    return {"entries": [stored.entry for stored in found], "next_cursor": next_cursor}


@router.get("/v1/audit/proofs/inclusion")
def inclusion_proof(
    services: ServicesDep,
    caller: AuditAnyCaller,
    index: Annotated[int, Query(ge=0, le=2**62)],
    size: Annotated[int, Query(ge=1, le=2**62)],
) -> dict[str, Any]:
    _ = caller
    entry = services.audit.entries(AuditQuery(after_index=index - 1, limit=1))
    leaf = entry[0].leaf_hash.hex() if entry and entry[0].index == index else None
    return {
        "index": index,
        "size": size,
        "leaf_hash": leaf,
        "proof": services.audit.inclusion_proof(index, size),
    }


@router.get("/v1/audit/proofs/consistency")
def consistency_proof(
    services: ServicesDep,
    caller: AuditAnyCaller,
    first: Annotated[int, Query(ge=1, le=2**62)],
    second: Annotated[int, Query(ge=1, le=2**62)],
) -> dict[str, Any]:
    _ = caller
    return {
        "first": first,
        "second": second,
        "proof": services.audit.consistency_proof(first, second),
    }


class JsonLinesResponse(StreamingResponse):
    media_type = "application/jsonl"


@router.get(
    "/v1/audit/export",
    response_class=JsonLinesResponse,
    responses={
        200: {
            "description": "JSON Lines: every entry in index order, then the checkpoint.",
            "content": {"application/jsonl": {"schema": {"type": "string"}}},
        }
    },
)
def export(services: ServicesDep, caller: AuditReadCaller) -> StreamingResponse:
    _ = caller
    final = services.audit.checkpoint()

    def lines() -> Iterator[bytes]:
        cursor = -1
        while cursor + 1 < final.size:
            # Bounded by the checkpoint taken first, so the export ends exactly
            # where its closing checkpoint says, whatever is appended meanwhile.
            page = services.audit.entries(
                AuditQuery(after_index=cursor, before_index=final.size, limit=EXPORT_PAGE)
            )
            if not page:
                break
            for stored in page:
                yield canonical_json(stored.entry) + b"\n"
                cursor = stored.index
        yield json.dumps({"checkpoint": final.to_dict()}).encode() + b"\n"

    return JsonLinesResponse(lines())


@router.get("/v1/audit/decisions")
def decisions(
    services: ServicesDep,
    caller: AuditReadCaller,
    exchange: Annotated[str, Query(max_length=64, pattern=r"^ex_[0-9a-f]{32}$")],
) -> dict[str, Any]:
    """The policy decisions behind one exchange (OPA-style decision log), for the DPO."""
    _ = caller
    return {"decisions": [r.to_dict() for r in services.decisions.for_exchange(exchange)]}


@router.get("/v1/audit/verification")
def verification(services: ServicesDep, caller: AuditReadCaller) -> dict[str, Any]:
    """Recompute every leaf and the root now, against a fresh signed checkpoint (DPO)."""
    _ = caller
    checkpoint = services.audit.checkpoint()
    report = services.audit.verify(trusted=[checkpoint])
    return {**report.to_dict(), "checkpoint": checkpoint.to_dict()}
