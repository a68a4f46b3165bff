"""The adapter's HTTP edge: verify the broker's call, ask the source, sign the answer.

What it does: `create_adapter_app` builds a FastAPI app with

* `POST /v1/queries`: bounded body read, call-token check (`verify_adapter_call`:
  pinned broker key, audience = this partner, body hash), replay check of the
  token's `jti`, query parsing, a 404 for exchange types this adapter does not
  serve, then the source's answer, checked against the declarations and signed
  with this partner's key (`sign_answer`);
* `GET /v1/declaration`: the declared fields and categories per exchange type.
  Open: field names and categories are not personal data, and the broker and
  the DPO need them to see what a provider could send;
* `GET /healthz`: liveness.

What it does not: filter. The adapter answers with everything the partner's
system holds for the question; the broker decides what flows (R1-R4). Nor
does it log personal data: one line per call with the exchange id, the query
type, the trace id and the outcome.

Order matters: the token is checked before the body is parsed (no parser
exposure to strangers), and the jti is stored only after the signature holds
(strangers cannot fill the replay cache).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from adapters.sdk.declarations import (
    FieldDeclaration,
    declarations_document,
    verify_answer_declared,
)
from adapters.sdk.problems import problem, unauthorized
from adapters.sdk.source import PartnerSource
from adapters.sdk.tracing import trace_id_of
from broker.adapter_protocol import (
    ADAPTER_QUERY_PATH,
    ANSWER_SIGNATURE_HEADER,
    CALL_TOKEN_REPLAY_TTL_SECONDS,
    MAX_QUERY_BYTES,
    AdapterQuery,
    sign_answer,
    verify_adapter_call,
)
from broker.auth.replay import MemoryReplayCache
from broker.canonical import canonical_json
from broker.clock import Clock
from broker.errors import AdapterTrustError, BackendUnavailableError
from broker.keys import PublicKeySet, SigningKey

logger = logging.getLogger("adapters.sdk")

_BEARER = "bearer "


class ReplayCache(Protocol):
    def store_jti(self, key: str, *, ttl_seconds: int) -> bool:
        """Remember `key` for `ttl_seconds`; True if it was not known yet."""
        ...


async def _read_bounded(request: Request, *, limit: int) -> bytes | None:
    """The request body, or None when it exceeds `limit` (checked while streaming)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class _CallRefusedError(Exception):
    """Ends a call early with `response`; `outcome` names why, for the log line."""

    def __init__(self, response: Response, outcome: str) -> None:
        super().__init__(outcome)
        self.response = response
        self.outcome = outcome


async def _read_body(request: Request) -> bytes:
    body = await _read_bounded(request, limit=MAX_QUERY_BYTES)
    if body is None:
        raise _CallRefusedError(
            problem(413, "request_too_large", "The query exceeds the size limit."),
            "rejected:too_large",
        )
    return body


def _bearer_token(request: Request) -> str | None:
    value = request.headers.get("authorization")
    if value is None or value[: len(_BEARER)].lower() != _BEARER:
        return None
    token = value[len(_BEARER) :].strip()
    return token or None


def _validate_declarations(declarations: Mapping[str, Sequence[FieldDeclaration]]) -> None:
    # Fail closed on emptiness (style.md §13): an adapter that declares nothing
    # serves nothing, and that is a configuration error, not a quiet default.
    if not declarations:
        raise ValueError("expected at least one declared exchange type, got none")
    for exchange, fields in declarations.items():
        names = [f.name for f in fields]
        if not names:
            raise ValueError(f"expected declared fields for {exchange!r}, got none")
        if len(set(names)) != len(names):
            raise ValueError(f"expected unique field names for {exchange!r}, got {names}")


@dataclass(frozen=True)
class _QueryEndpoint:
    """`POST /v1/queries`, one step per check, in the order the module docstring gives."""

    partner_id: str
    source: PartnerSource
    declarations: Mapping[str, Sequence[FieldDeclaration]]
    signing_key: SigningKey
    broker_keys: PublicKeySet
    broker_issuer: str
    clock: Clock
    replay: ReplayCache

    async def __call__(self, request: Request) -> Response:
        trace_id = trace_id_of(request.headers.get("traceparent"))
        exchange, query_type = "-", "-"
        try:
            body = await _read_body(request)
            self._authenticate(request, body=body, trace_id=trace_id)
            query = self._parse(request, body=body)
            exchange, query_type = query.exchange, query.query
            self._check_served(query)
            payload, signature = await run_in_threadpool(self._answer, query, trace_id)
        except _CallRefusedError as refused:
            self._log(exchange, query_type, trace_id, refused.outcome)
            return refused.response
        self._log(exchange, query_type, trace_id, "answered")
        return Response(
            content=payload,
            media_type="application/json",
            headers={ANSWER_SIGNATURE_HEADER: signature, "Cache-Control": "no-store"},
        )

    def _authenticate(self, request: Request, *, body: bytes, trace_id: str | None) -> None:
        token = _bearer_token(request)
        if token is None:
            raise _CallRefusedError(unauthorized(), "rejected:no_token")
        try:
            call = verify_adapter_call(
                token,
                broker_keys=self.broker_keys,
                issuer=self.broker_issuer,
                adapter_partner=self.partner_id,
                body=body,
                now=self.clock.now(),
            )
        except AdapterTrustError as e:
            # The reason goes to the operator log; the caller gets one answer.
            # The message names claims and key ids, never the token or the body.
            logger.warning(
                "adapter call rejected partner=%s trace_id=%s reason=%s",
                self.partner_id,
                trace_id or "-",
                e,
            )
            raise _CallRefusedError(unauthorized(), "rejected:invalid_token") from e
        # Stored only now that the signature holds, so strangers cannot fill
        # the cache; the key names this adapter so caches may be shared.
        try:
            fresh = self.replay.store_jti(
                f"adapter-call:{self.partner_id}:{call.jti}",
                ttl_seconds=CALL_TOKEN_REPLAY_TTL_SECONDS,
            )
        except BackendUnavailableError as e:
            # Fail closed: without the replay check we cannot tell a replay.
            raise _CallRefusedError(
                problem(503, "cache_unavailable", "The replay cache is unavailable."),
                "failed:replay_cache",
            ) from e
        if not fresh:
            raise _CallRefusedError(unauthorized(), "rejected:replayed_token")

    def _parse(self, request: Request, *, body: bytes) -> AdapterQuery:
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise _CallRefusedError(
                problem(415, "unsupported_media_type", "Send the query as application/json."),
                "rejected:media_type",
            )
        try:
            return AdapterQuery.model_validate_json(body)
        except ValidationError as e:
            # Pydantic's message can quote input values (names, birth dates): not logged.
            raise _CallRefusedError(
                problem(400, "invalid_request", "The query does not match the protocol."),
                "rejected:invalid_query",
            ) from e

    def _check_served(self, query: AdapterQuery) -> None:
        if query.query not in self.declarations:
            raise _CallRefusedError(
                problem(404, "query_not_served", "This adapter does not answer that query."),
                "rejected:query_not_served",
            )

    def _answer(self, query: AdapterQuery, trace_id: str | None) -> tuple[bytes, str]:
        """The signed answer body; runs in a worker thread (sources do blocking I/O)."""
        try:
            answer = self.source.answer(query)
            verify_answer_declared(answer, query=query, declarations=self.declarations)
            document = answer.to_document()
            return canonical_json(document), sign_answer(key=self.signing_key, answer=document)
        except Exception as e:  # the edge: any source failure is a 500, never data
            logger.error(  # noqa: TRY400  # no traceback: frames and messages may hold personal data
                "adapter source failed partner=%s exchange=%s trace_id=%s error=%s",
                self.partner_id,
                query.exchange,
                trace_id or "-",
                type(e).__name__,
            )
            raise _CallRefusedError(
                problem(500, "source_failed", "The partner system could not answer."),
                "failed:source",
            ) from e

    def _log(self, exchange: str, query: str, trace_id: str | None, outcome: str) -> None:
        logger.info(
            "adapter call partner=%s exchange=%s query=%s trace_id=%s outcome=%s",
            self.partner_id,
            exchange,
            query,
            trace_id or "-",
            outcome,
        )


def create_adapter_app(
    *,
    partner_id: str,
    source: PartnerSource,
    declarations: Mapping[str, Sequence[FieldDeclaration]],
    signing_key: SigningKey,
    broker_keys: PublicKeySet,
    broker_issuer: str,
    clock: Clock,
    replay_cache: ReplayCache | None = None,
) -> FastAPI:
    """An adapter app for `partner_id`; see the module docstring for its routes.

    `replay_cache` defaults to an in-process MemoryReplayCache; adapters run
    as several processes must share one (e.g. broker.auth.replay.RedisReplayCache).
    """
    _validate_declarations(declarations)
    if len(broker_keys) == 0:
        raise ValueError("expected at least one pinned broker key, got none")
    endpoint = _QueryEndpoint(
        partner_id=partner_id,
        source=source,
        declarations=declarations,
        signing_key=signing_key,
        broker_keys=broker_keys,
        broker_issuer=broker_issuer,
        clock=clock,
        replay=replay_cache if replay_cache is not None else MemoryReplayCache(clock=clock),
    )
    declaration_body = declarations_document(partner_id, declarations)

    app = FastAPI(title=f"Ketenbroker adapter {partner_id}", docs_url=None, redoc_url=None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_problem(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's own errors (unknown route, wrong method) in the same
        # problem shape as ours, with fixed wording.
        known = {
            404: ("not_found", "No such route."),
            405: ("method_not_allowed", "This route does not accept that method."),
        }
        code, detail = known.get(exc.status_code, ("http_error", "The request failed."))
        return problem(exc.status_code, code, detail)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/declaration")
    async def declaration() -> dict[str, object]:
        return declaration_body

    app.add_api_route(ADAPTER_QUERY_PATH, endpoint, methods=["POST"], include_in_schema=True)
    return app
