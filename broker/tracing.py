"""W3C Trace Context (`traceparent`) parsing and propagation.

The requester's trace id travels through the broker to the adapter and into
the audit entry, so the broker's log line and the partner's own log can be
joined. A malformed or absent header starts a fresh trace; a header is
never echoed back unvalidated (log and header injection).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

# W3C Trace Context §3.2: version 00, 16-byte trace id, 8-byte parent id, flags.
_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_INVALID_TRACE_ID = "0" * 32
_INVALID_PARENT_ID = "0" * 16


@dataclass(frozen=True)
class TraceContext:
    trace_id: str
    parent_id: str
    flags: str

    def child(self) -> TraceContext:
        """A new span in the same trace: the broker's own hop towards the adapter."""
        return TraceContext(self.trace_id, secrets.token_hex(8), self.flags)

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.parent_id}-{self.flags}"


def new_trace() -> TraceContext:
    return TraceContext(secrets.token_hex(16), secrets.token_hex(8), "01")


def parse_traceparent(header: str | None) -> TraceContext:
    if header is None or len(header) > 100:
        return new_trace()
    match = _TRACEPARENT.match(header.strip())
    if match is None:
        return new_trace()
    trace_id, parent_id, flags = match.groups()
    if trace_id == _INVALID_TRACE_ID or parent_id == _INVALID_PARENT_ID:
        return new_trace()
    return TraceContext(trace_id, parent_id, flags)
