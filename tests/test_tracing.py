"""W3C Trace Context: a valid `traceparent` is carried on, anything else starts a fresh trace."""

from __future__ import annotations

import re

import pytest

from broker.tracing import TraceContext, new_trace, parse_traceparent

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
