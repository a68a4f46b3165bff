"""The JSON log format: one object per line, closed fields, exceptions without messages."""

from __future__ import annotations

import io
import json
import logging

import pytest

from broker.logging_setup import configure_logging, current_trace_id, log_format_of
from broker.settings import Settings
from tests.conftest import json_records

BIRTH_DATE = "1979-03-14"


def test_a_forged_line_inside_a_message_stays_inside_one_record(json_log: io.StringIO) -> None:
    logging.getLogger("ketenbroker.test").warning("got %r", 'x"}\n{"level": "info"')
    (record,) = json_records(json_log)
    assert record["level"] == "warning"
    assert record["message"] == 'got \'x"}\\n{"level": "info"\''


def test_only_declared_fields_leave_through_extra(json_log: io.StringIO) -> None:
    logging.getLogger("ketenbroker.test").info(
        "request", extra={"partner": "politie-lekstroom", "birth_date": BIRTH_DATE}
    )
    (record,) = json_records(json_log)
    assert record["partner"] == "politie-lekstroom"
    assert BIRTH_DATE not in json.dumps(record)


def _parse_date(text: str) -> None:
    raise ValueError(f"expected a date, got {text!r}")


def test_an_exception_is_logged_by_type_and_place_not_by_message(json_log: io.StringIO) -> None:
    try:
        _parse_date(BIRTH_DATE)
    except ValueError:
        logging.getLogger("ketenbroker.test").exception("parse failed")
    (record,) = json_records(json_log)
    exception = record["exception"]
    assert isinstance(exception, dict)
    assert exception["type"] == "builtins.ValueError"
    assert any("test_logging_setup.py" in frame for frame in exception["frames"])
    assert BIRTH_DATE not in json.dumps(record)


def test_records_carry_the_requests_trace_id(json_log: io.StringIO) -> None:
    token = current_trace_id.set("4bf92f3577b34da6a3ce929d0e0e4736")
    try:
        logging.getLogger("ketenbroker.test").info("inside")
    finally:
        current_trace_id.reset(token)
    logging.getLogger("ketenbroker.test").info("outside")
    inside, outside = json_records(json_log)
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
