"""W3C Trace Context (traceparent) parsing, for log correlation only.

The broker forwards its `traceparent` so an adapter's log line can be tied to
the audit entry (contract.md, audit `trace_id`). The header is untrusted: a
malformed one yields no trace id rather than an error, and only the validated
32-hex trace id is ever logged, never the raw header.
"""

from __future__ import annotations

import re
import secrets

# https://www.w3.org/TR/trace-context/#traceparent-header-field-values
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_INVALID_TRACE_ID = "0" * 32
_INVALID_PARENT_ID = "0" * 16


def trace_id_of(traceparent: str | None) -> str | None:
    if traceparent is None or len(traceparent) > 128:
        return None
    match = _TRACEPARENT.match(traceparent.strip())
    if match is None:
        return None
    version, trace_id, parent_id, _flags = match.groups()
    if version == "ff" or trace_id == _INVALID_TRACE_ID or parent_id == _INVALID_PARENT_ID:
        return None
    return trace_id


def new_traceparent() -> str:
    """A fresh, sampled traceparent for a call that starts a trace."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
