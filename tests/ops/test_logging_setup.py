"""The JSON log format: one object per line, closed fields, exceptions without messages."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from broker.logging_setup import configure_logging, current_trace_id, log_format_of
from broker.settings import Settings

BIRTH_DATE = "1979-03-14"


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    previous = root.level
    handler = configure_logging(Settings(log_format="json"), level="INFO", stream=stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def _records(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_forged_line_inside_a_message_stays_inside_one_record(lines: io.StringIO) -> None:
    logging.getLogger("ketenbroker.test").warning("got %r", 'x"}\n{"level": "info"')
    (record,) = _records(lines)
    assert record["level"] == "warning"
    assert record["message"] == 'got \'x"}\\n{"level": "info"\''


def test_only_declared_fields_leave_through_extra(lines: io.StringIO) -> None:
    logging.getLogger("ketenbroker.test").info(
        "request", extra={"partner": "politie-lekstroom", "birth_date": BIRTH_DATE}
    )
    (record,) = _records(lines)
    assert record["partner"] == "politie-lekstroom"
    assert BIRTH_DATE not in json.dumps(record)


def _parse_date(text: str) -> None:
    raise ValueError(f"expected a date, got {text!r}")


def test_an_exception_is_logged_by_type_and_place_not_by_message(lines: io.StringIO) -> None:
    try:
        _parse_date(BIRTH_DATE)
    except ValueError:
        logging.getLogger("ketenbroker.test").exception("parse failed")
    (record,) = _records(lines)
    exception = record["exception"]
    assert isinstance(exception, dict)
    assert exception["type"] == "builtins.ValueError"
    assert any("test_logging_setup.py" in frame for frame in exception["frames"])
    assert BIRTH_DATE not in json.dumps(record)


def test_records_carry_the_requests_trace_id(lines: io.StringIO) -> None:
    token = current_trace_id.set("4bf92f3577b34da6a3ce929d0e0e4736")
    try:
        logging.getLogger("ketenbroker.test").info("inside")
    finally:
        current_trace_id.reset(token)
    logging.getLogger("ketenbroker.test").info("outside")
    inside, outside = _records(lines)
    assert inside["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert "trace_id" not in outside


@pytest.mark.parametrize(
    ("profile", "setting", "expected"),
    [
        # auto: JSON lines in production, text on a developer's machine
        ("production", "auto", "json"),
        ("embedded", "auto", "text"),
        # an explicit choice wins over the profile
        ("production", "text", "text"),
        ("embedded", "json", "json"),
    ],
)
def test_log_format_follows_the_profile_unless_chosen(
    profile: str, setting: str, expected: str
) -> None:
    assert log_format_of(Settings(profile=profile, log_format=setting)) == expected  # type: ignore[arg-type]  # literals from the table


def test_configuring_twice_keeps_one_handler() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    previous = root.level
    first = configure_logging(Settings(), stream=io.StringIO())
    second = configure_logging(Settings(), stream=io.StringIO())
    try:
        assert first not in root.handlers
        assert [h for h in root.handlers if h not in before] == [second]
    finally:
        root.removeHandler(second)
        root.setLevel(previous)
