"""W3C Trace Context: a valid `traceparent` is carried on, anything else starts a fresh trace.

The last test follows one trace through a real stack: the client's header,
the broker's request log line, the adapter's log line and the audit entry.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from broker.audit.store import AuditQuery
from broker.keys import KeyStore
from broker.tracing import TraceContext, new_trace, parse_traceparent
from tests.conftest import json_records
from tests.e2e.conftest import GEMEENTE, case_body, exchange_body
from tests.ops.conftest import active_case, client, running_stack

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
VALID = f"00-{TRACE_ID}-{PARENT_ID}-01"
WELL_FORMED = re.compile(r"00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}")


@pytest.mark.parametrize(
    ("header", "flags"),
    [
        # the W3C specification's own example, sampled
        (VALID, "01"),
        # not sampled
        (f"00-{TRACE_ID}-{PARENT_ID}-00", "00"),
        # surrounding whitespace from a proxy is dropped
        (f"  {VALID}\t", "01"),
    ],
)
def test_valid_traceparent_is_carried_on(header: str, flags: str) -> None:
    context = parse_traceparent(header)
    assert context == TraceContext(TRACE_ID, PARENT_ID, flags)
    assert context.header() == f"00-{TRACE_ID}-{PARENT_ID}-{flags}"


INVALID = [
    # no header at all
    None,
    # an empty header
    "",
    # a version this broker does not speak
    f"01-{TRACE_ID}-{PARENT_ID}-01",
    # the forbidden version ff
    f"ff-{TRACE_ID}-{PARENT_ID}-01",
    # uppercase hex is not allowed by the specification
    f"00-{TRACE_ID.upper()}-{PARENT_ID}-01",
    # an all-zero trace id is invalid
    f"00-{'0' * 32}-{PARENT_ID}-01",
    # an all-zero parent id is invalid
    f"00-{TRACE_ID}-{'0' * 16}-01",
    # a trace id one digit short
    f"00-{TRACE_ID[:-1]}-{PARENT_ID}-01",
    # a parent id one digit long
    f"00-{TRACE_ID}-{PARENT_ID}0-01",
    # a trailing extra member
    f"{VALID}-extra",
    # far too long: never even matched
    VALID + "0" * 200,
    # a header injected after CR LF
    f"{VALID}\r\nX-Injected: 1",
    # a log line injected after LF
    f"{VALID}\nINFO forged log line",
    # a non-hex character
    f"00-{TRACE_ID[:-1]}g-{PARENT_ID}-01",
    # non-ASCII digits that \d would accept
    f"00-{TRACE_ID[:-1]}\u0663-{PARENT_ID}-01",
    # separators other than a dash
    f"00_{TRACE_ID}_{PARENT_ID}_01",
]


@pytest.mark.parametrize("header", INVALID)
def test_invalid_traceparent_starts_a_fresh_valid_trace(header: str | None) -> None:
    context = parse_traceparent(header)
    assert WELL_FORMED.fullmatch(context.header())
    assert context.trace_id != TRACE_ID
    assert context.trace_id.lower() != TRACE_ID.lower()
    assert context.parent_id != PARENT_ID
    # Nothing of the offered header survives into what the broker sends on.
    assert "\n" not in context.header() and "\r" not in context.header()


def test_fresh_traces_differ() -> None:
    traces = {new_trace().trace_id for _ in range(16)}
    assert len(traces) == 16
    assert all(WELL_FORMED.fullmatch(new_trace().header()) for _ in range(16))


def test_child_keeps_the_trace_and_starts_a_new_span() -> None:
    parent = parse_traceparent(VALID)
    children = [parent.child() for _ in range(8)]
    assert {c.trace_id for c in children} == {TRACE_ID}
    assert {c.flags for c in children} == {"01"}
    assert PARENT_ID not in {c.parent_id for c in children}
    assert len({c.parent_id for c in children}) == 8
    assert all(WELL_FORMED.fullmatch(c.header()) for c in children)
    # The child's header is what the adapter receives; it parses back to the child.
    assert parse_traceparent(children[0].header()) == children[0]


# --- end to end: client -> broker -> adapter, the audit entry and the logs ---------------

E2E_TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("sent", "carried_on"),
    [
        # the requester's trace is carried to the adapter, the log and the audit entry
        (f"00-{E2E_TRACE_ID}-b7ad6b7169203331-01", True),
        # a malformed header starts one fresh trace, the same everywhere
        (f"00-{E2E_TRACE_ID.upper()}-b7ad6b7169203331-01", False),
    ],
)
def test_trace_id_joins_client_broker_adapter_audit_and_logs(
    sent: str, carried_on: bool, json_log: io.StringIO, keystore: KeyStore, tmp_path: Path
) -> None:
    with running_stack(tmp_path, keystore) as stack:
        case_id = active_case(stack, keystore, case_body())
        with client(stack, keystore, GEMEENTE) as gemeente:
            answer = gemeente.post(
                "/v1/exchanges", json=exchange_body(case_id), headers={"traceparent": sent}
            )
        assert answer.status_code == 200, answer.text
        index = answer.json()["receipt"]["log_index"]
        (stored,) = stack.services.audit.entries(AuditQuery(after_index=index - 1, limit=1))
    trace_id = stored.entry["trace_id"]
    assert (trace_id == E2E_TRACE_ID) is carried_on
    assert WELL_FORMED.fullmatch(f"00-{trace_id}-{PARENT_ID}-01")
    records = json_records(json_log)
    (request,) = [
        r for r in records if r["logger"] == "ketenbroker.access" and r["route"] == "/v1/exchanges"
    ]
    assert request["trace_id"] == trace_id
    adapter_lines = [r["message"] for r in records if r["logger"] == "adapters.sdk"]
    assert any(f"trace_id={trace_id}" in line for line in adapter_lines), adapter_lines
    # Nothing of a refused header reaches a log line.
    assert all(E2E_TRACE_ID.upper() not in json.dumps(r) for r in records)
