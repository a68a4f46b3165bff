"""RFC 9457 problem documents: the one shape of every error the broker returns.

A problem carries a `code` (contract.md) and a fixed, data-free detail. What
really went wrong goes to the audit log and the operator's log, never to the
caller (style.md §12).

Every problem the broker's handlers send is counted by its code
(`ketenbroker_refusals`) and named on the request's log line: `refusal`
builds the document and does both; `note_refusal` does the counting for a
problem built elsewhere (the token challenges of broker/api/security.py).
"""

from __future__ import annotations

from typing import Any, cast

from fastapi import Request
from fastapi.responses import JSONResponse

from broker.metrics import Metrics

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://ketenbroker.nl/problems/"

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code.replace("_", "-"),
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def note_refusal(request: Request, code: str) -> None:
    """Count a refusal by its code and name the code on the request's log line."""
    request.state.problem_code = code
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        cast("Metrics", metrics).count_refusal(code)


def refusal(
    request: Request,
    status: int,
    code: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """`problem(...)`, counted and noted for `request` (`note_refusal`)."""
    note_refusal(request, code)
    return problem(status, code, detail, headers=headers, extra=extra)


# What every /v1 operation may answer besides success (contract.md, General).
# FastAPI's default 422 is never sent: validation failures are 400 problems.
PROBLEM_RESPONSES: dict[int, str] = {
    400: "Not a valid request (code invalid_request).",
    401: "No valid access token or DPoP proof (code invalid_token).",
    403: "The token lacks the scope, or the convenant refuses (see code).",
    404: "Unknown, or not the caller's to know about (no existence leak).",
    429: "Too many requests (code rate_limited; Retry-After).",
    503: "A backend is unavailable (code *_unavailable).",
}
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
    },
}


def with_problem_responses(document: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with the problem answers the API gives, and without 422."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    answer = {"$ref": "#/components/schemas/Problem"}
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            if not path.startswith("/v1/"):
                continue
            for status, description in PROBLEM_RESPONSES.items():
                responses.setdefault(
                    str(status),
                    {
                        "description": description,
                        "content": {PROBLEM_MEDIA_TYPE: {"schema": answer}},
                    },
                )
    return document
