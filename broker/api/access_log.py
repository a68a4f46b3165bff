"""One log line per request, and one trace id per request for every log line.

What it does: an ASGI middleware that, for each HTTP request,

* settles the request's W3C trace context once: a valid `traceparent` is
  kept, a missing or malformed one is replaced in the request's headers by
  a fresh one, so the route, the pipeline, the adapter call and the audit
  entry all read the same trace id as the log lines;
* makes that trace id the context of every record logged while the request
  runs (`broker.logging_setup.current_trace_id`);
* when the answer is sent, logs `request` with the method, the matched
  route's template, the status, the duration, the authenticated partner
  and the problem `code` of a refusal.

What it does not: log the raw path or the query string. Paths carry case
ids and subject references, query strings search terms (`/dpo/search?q=`)
and filters; the template (`/v1/cases/{case_id}`) says which operation ran
without them. Nor headers or bodies: tokens, proofs and personal data live
there. The case and subject of an exchange are in the audit log, under
their pseudonyms, for those entitled to read it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.logging_setup import current_trace_id
from broker.tracing import parse_traceparent

log = logging.getLogger("ketenbroker.access")

_TRACEPARENT = b"traceparent"


def _settled_trace(scope: Scope) -> str:
    """Parse the request's traceparent and write the parsed one back; return the trace id."""
    headers: list[tuple[bytes, bytes]] = list(scope.get("headers", ()))
    offered = [value for name, value in headers if name.lower() == _TRACEPARENT]
    # W3C Trace Context §3.2: more than one traceparent is invalid; start afresh.
    header = offered[0].decode("latin-1") if len(offered) == 1 else None
    trace = parse_traceparent(header)
    headers = [(name, value) for name, value in headers if name.lower() != _TRACEPARENT]
    headers.append((_TRACEPARENT, trace.header().encode("ascii")))
    scope["headers"] = headers
    return trace.trace_id


class AccessLog:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        trace_id = _settled_trace(scope)
        token = current_trace_id.set(trace_id)
        status = 500  # what the server sends when the app raises before answering

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            log.info("request", extra=_request_fields(scope, status, started))
            current_trace_id.reset(token)


def _request_fields(scope: Scope, status: int, started: float) -> dict[str, Any]:
    state: dict[str, Any] = scope.get("state", {})
    principal = state.get("principal")
    return {
        "method": scope.get("method"),
        # The template, never the raw path (module docstring).
        "route": str(getattr(scope.get("route"), "path", "unrouted")),
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        "partner": principal if isinstance(principal, str) else None,
        "code": state.get("problem_code"),
    }
