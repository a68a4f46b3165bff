"""A strict gate for JSON request bodies, before FastAPI parses them.

What it does: for every request that carries a JSON body, read at most
`MAX_JSON_BODY_BYTES`, decode it as UTF-8 only (contract.md: "JSON in and
out, UTF-8"), and parse it once with rules stricter than Python's `json`:
no duplicate member names (two parsers must not read two different
requests), no NaN or Infinity, bounded nesting and bounded integers. A body
that fails answers 413 or 400 with a problem document and is logged like
every refusal; a body that passes goes on to the app unchanged.

How a refusal travels: the gate does not answer by itself, because it does
not yet know who is calling and every refusal must name its caller in the
audit log. It reads no more than the bound, puts the refusal on the
request's state, and hands the app an empty JSON object instead of the
body. The security dependency (broker/api/security.py) raises the refusal
right after authenticating, before FastAPI validates the body, so the app's
error handler answers and logs it with the principal.

What it does not: validate the body's schema (the route's model does), or
touch form bodies (the token endpoint and the DPO login bound their own).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.errors import InvalidRequestError, PayloadTooLargeError

# The largest legitimate body is a case registration with 20 subjects: a few
# kilobytes. 256 KiB leaves room and bounds what one request can make us read.
MAX_JSON_BODY_BYTES = 256 * 1024
# Real documents nest five levels deep; 32 leaves room and stays far from
# Python's recursion limit.
MAX_JSON_DEPTH = 32
# JSON numbers every engine reads alike (see broker/policy/engine.py).
MAX_JSON_INTEGER = 2**53


class BodyRefusedError(ValueError):
    def __init__(self, status: int, code: str, detail: str, public: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.public = public


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for name, value in pairs:
        if name in document:
            raise BodyRefusedError(
                400, "invalid_request", f"duplicate member {name[:40]!r}", "Duplicate JSON member."
            )
        document[name] = value
    return document


def _no_constants(name: str) -> Any:
    raise BodyRefusedError(400, "invalid_request", f"non-JSON constant {name}", "Not valid JSON.")


def _bounded_int(text: str) -> int:
    # Refuse before conversion: Python's own limit (4300 digits) is far too high.
    if len(text.lstrip("-")) > 16:
        raise BodyRefusedError(400, "invalid_request", "integer too long", "Number out of range.")
    value = int(text)
    if abs(value) > MAX_JSON_INTEGER:
        raise BodyRefusedError(
            400, "invalid_request", "integer beyond 2**53", "Number out of range."
        )
    return value


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def check_json_body(raw: bytes) -> None:
    """Raise BodyRefusedError unless `raw` is strict, bounded UTF-8 JSON."""
    if len(raw) > MAX_JSON_BODY_BYTES:
        raise BodyRefusedError(
            413, "payload_too_large", f"{len(raw)} bytes", "The request body is too large."
        )
    # Nesting is bounded before parsing too: the parser recurses per level.
    if raw.count(b"[") + raw.count(b"{") > 10_000:
        raise BodyRefusedError(400, "invalid_request", "too many containers", "Not valid JSON.")
    try:
        text = raw.decode("utf-8", errors="strict")
        document = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_no_constants,
            parse_int=_bounded_int,
        )
    except BodyRefusedError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise BodyRefusedError(
            400, "invalid_request", f"body is not UTF-8 JSON: {type(e).__name__}", "Not valid JSON."
        ) from e
    if _depth(document) > MAX_JSON_DEPTH:
        raise BodyRefusedError(400, "invalid_request", "nesting too deep", "Not valid JSON.")


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            media = bytes(value).split(b";", 1)[0].strip().lower()
            return bool(media == b"application/json" or media.endswith(b"+json"))
    return False


class JsonBodyGuard:
    """ASGI middleware applying `check_json_body` to JSON request bodies."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        refusal: BodyRefusedError | None = None
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_JSON_BODY_BYTES:
                # Stop reading: the rest of an oversized body is never buffered.
                refusal = BodyRefusedError(
                    413,
                    "payload_too_large",
                    f"more than {MAX_JSON_BODY_BYTES} bytes",
                    "The request body is too large.",
                )
                break
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        raw = b"".join(chunks)
        if refusal is None and raw:
            try:
                check_json_body(raw)
            except BodyRefusedError as e:
                refusal = e
        if refusal is not None:
            scope.setdefault("state", {})["body_refusal"] = _as_error(refusal)
            raw = b"{}"
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": raw, "more_body": False}

        await self.app(scope, replay, send)


def _as_error(refusal: BodyRefusedError) -> InvalidRequestError | PayloadTooLargeError:
    if refusal.status == 413:
        return PayloadTooLargeError(str(refusal))
    return InvalidRequestError(str(refusal))
