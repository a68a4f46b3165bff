"""The operator's log: one JSON object per line, or readable text in development.

What it does: `configure_logging(settings)` puts one handler on the root
logger. In JSON form (`log_format=json`, or `auto` in the production
profile) every record becomes one line with `time`, `level`, `logger`,
`message`, the request's `trace_id` when there is one, and the structured
fields a caller passed as `extra=` (LOG_FIELDS: `exchange_id`, `partner`,
`code`, `status`, `duration_ms`, ...). An exception is rendered as its type
and the code locations of its frames, never its message or local values.
It also silences uvicorn's access log: the broker writes its own request
line (`broker.api.access_log`) with the route template instead of the path.

What it does not: decide what is logged. Modules log what they log; this
module only shapes it. Keeping personal data out is the job of every log
call (messages name codes, partner ids and pseudonymous ids, never names,
birth dates, addresses, free text, tokens or keys), and
tests/ops/test_logs_carry_no_personal_data.py holds the whole broker to it.

Why no exception messages in JSON: a message may quote an untrusted value
(`!r`, style.md §12), and an input value may be a name or a birth date. The
type and the place are enough to find the cause; the audit log holds the
refusal's detail where only the DPO reads it. Text form keeps the full
traceback, for a developer at a terminal with demo data.

Why not structlog: the standard library's `logging` already reaches every
module and library; a formatter is all JSON lines need.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from broker.settings import Settings

# The request's trace id, set by the access-log middleware for the request's
# duration; every record logged meanwhile carries it, whatever logged it.
current_trace_id: ContextVar[str | None] = ContextVar("ketenbroker_trace_id", default=None)

# Structured fields a log call may pass as `extra=`. A closed set: a field
# not named here is dropped, so a careless `extra={"name": ...}` stays out.
LOG_FIELDS = frozenset(
    {
        "trace_id",
        "exchange_id",
        "partner",
        "provider",
        "decision",
        "code",
        "method",
        "route",
        "status",
        "duration_ms",
        "entries",
        "dependency",
    }
)
# Frames kept of a traceback: the innermost are where the cause is.
MAX_FRAMES = 20
_HANDLER_MARK = "_ketenbroker_handler"
# uvicorn's access log prints the raw path and query string; the broker's
# own request line replaces it (see the module docstring).
SILENCED = {"uvicorn.access": logging.CRITICAL + 1, "httpx": logging.WARNING}


def _time(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _exception(info: tuple[type[BaseException], BaseException, Any]) -> dict[str, Any]:
    kind, _, tb = info
    frames = traceback.extract_tb(tb)[-MAX_FRAMES:]
    return {
        "type": f"{kind.__module__}.{kind.__qualname__}",
        "frames": [f"{frame.filename}:{frame.lineno} in {frame.name}" for frame in frames],
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (json escapes any newline in a value)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        trace_id = current_trace_id.get()
        if trace_id is not None:
            line["trace_id"] = trace_id
        for name in LOG_FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                line[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = _exception(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value ...`, for a developer's terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = [
            f"{name}={record.__dict__[name]}"
            for name in sorted(LOG_FIELDS)
            if record.__dict__.get(name) is not None
        ]
        trace_id = current_trace_id.get()
        if trace_id is not None and "trace_id" not in record.__dict__:
            fields.append(f"trace_id={trace_id}")
        if not fields:
            return text
        first, newline, rest = text.partition("\n")
        return f"{first} {' '.join(fields)}{newline}{rest}"


def log_format_of(settings: Settings) -> str:
    if settings.log_format != "auto":
        return settings.log_format
    return "json" if settings.profile == "production" else "text"


def configure_logging(
    settings: Settings, *, level: str | None = None, stream: IO[str] | None = None
) -> logging.Handler:
    """Install the broker's handler on the root logger (replacing one installed before)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            root.removeHandler(handler)
            handler.close()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format_of(settings) == "json" else TextFormatter())
    setattr(handler, _HANDLER_MARK, True)
    root.addHandler(handler)
    root.setLevel(level or settings.log_level)
    for name, silenced_below in SILENCED.items():
        logging.getLogger(name).setLevel(silenced_below)
    return handler
