"""RFC 9457 problem documents for adapter errors.

Same shape as the broker's (`type`, `title`, `status`, `detail`, `code`) so
the broker maps adapter failures without guessing. The detail is a fixed
sentence per code: no personal data, no token contents, no internals.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://ketenbroker.nl/problems/adapter/"

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def problem(
    status: int, code: str, detail: str, *, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {
        "type": PROBLEM_TYPE_BASE + code.replace("_", "-"),
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def unauthorized() -> JSONResponse:
    # One answer for every failure (missing, malformed, wrong key, expired,
    # replayed): the caller learns nothing about which check failed (style.md §18).
    return problem(
        401,
        "invalid_token",
        "The call token is missing, invalid, expired or already used.",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )
