"""The OAuth edge: token endpoint, authorization-server metadata, JWKS.

What it does: `POST /oauth/token` reads a bounded form-encoded body and the
request's `DPoP` header fields (RFC 9449 §5), hands them to `TokenService`
and answers RFC 6749 §5.1 JSON, or §5.2 JSON on refusal. Every answer
carries a fresh server nonce in `DPoP-Nonce` (RFC 9449 §8, §8.2): the
`use_dpop_nonce` challenge needs it, and with the token it saves the
client a challenge on its first API call. Every refusal is written to the
audit log as a `security_event` before it is answered; if that write fails
the answer is 503, never a silent refusal.
`GET /.well-known/oauth-authorization-server` serves RFC 8414 metadata
(plus RFC 9449 §5.1's `dpop_signing_alg_values_supported`, and a nonce in
`DPoP-Nonce` so that a client's first proof can carry one) and
`GET /.well-known/jwks.json` the broker's public keys (RFC 7517).

What it does not: decide anything. Parsing and rendering only; the token
pipeline is `broker.auth.token_service`.

Why not problem documents here: OAuth clients parse RFC 6749 error JSON
(`error`, `error_description`) from the token endpoint, and contract.md says
so; every other route speaks RFC 9457.
"""

from __future__ import annotations

import logging
from typing import Any, Literal
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from broker.api.deps import ServicesDep
from broker.api.security import DPOP_HEADER, DPOP_NONCE_HEADER, dpop_nonces
from broker.audit.entries import security_event
from broker.auth.metadata import (
    JWKS_PATH,
    METADATA_PATH,
    TOKEN_PATH,
    authorization_server_metadata,
)
from broker.auth.oauth_errors import INVALID_REQUEST, TEMPORARILY_UNAVAILABLE, OAuthError
from broker.auth.token_service import TokenService
from broker.convenant.model import SCOPES
from broker.errors import AuditWriteError
from broker.keys import ALLOWED_ALGORITHMS
from broker.tracing import parse_traceparent

logger = logging.getLogger(__name__)

router = APIRouter(tags=["oauth"])

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
# An assertion is at most 8 KiB (broker.auth.jose.MAX_JWT_BYTES) and needs no
# percent-escaping (base64url and dots); the other five parameters are short.
MAX_TOKEN_REQUEST_BYTES = 16 * 1024
# contract.md names six parameters; a few spare for clients that add
# resource or audience hints, which are ignored (RFC 6749 §3.2).
MAX_TOKEN_REQUEST_FIELDS = 16

# RFC 6749 §5.1: token responses, and errors alike, must not be cached.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenAnswer(BaseModel):
    access_token: str
    # RFC 9449 §5: DPoP when the request brought a proof; Bearer only for
    # clients the convenant allows bearer tokens and that sent none.
    token_type: Literal["DPoP", "Bearer"]
    expires_in: int
    scope: str


class OAuthErrorAnswer(BaseModel):
    error: str
    error_description: str


_TOKEN_FORM_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            FORM_MEDIA_TYPE: {
                "schema": {
                    "type": "object",
                    "required": [
                        "grant_type",
                        "client_id",
                        "client_assertion_type",
                        "client_assertion",
                    ],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["client_credentials"]},
                        "client_id": {"type": "string"},
                        "client_assertion_type": {
                            "type": "string",
                            "enum": ["urn:ietf:params:oauth:client-assertion-type:jwt-bearer"],
                        },
                        "client_assertion": {"type": "string", "description": "RFC 7523 JWT"},
                        "scope": {"type": "string", "description": " ".join(SCOPES)},
                    },
                }
            }
        },
    }
}


@router.post(
    TOKEN_PATH,
    summary="Obtain an access token (client credentials, private_key_jwt)",
    response_model=TokenAnswer,
    responses={
        400: {"model": OAuthErrorAnswer},
        401: {"model": OAuthErrorAnswer},
        503: {"model": OAuthErrorAnswer},
    },
    openapi_extra={
        **_TOKEN_FORM_SCHEMA,
        "parameters": [
            {
                "name": DPOP_HEADER,
                "in": "header",
                "required": False,
                "description": "A DPoP proof JWT for POST at this endpoint (RFC 9449 §4);"
                " required unless the convenant allows the client bearer tokens.",
                "schema": {"type": "string"},
            }
        ],
    },
)
async def token(request: Request, services: ServicesDep) -> JSONResponse:
    body = await _read_bounded_body(request)
    # Verification, Redis and the audit write block: off the event loop.
    return await run_in_threadpool(_answer_token_request, request, services, body)


@router.get(METADATA_PATH, summary="OAuth 2.0 authorization-server metadata (RFC 8414)")
def authorization_server(
    request: Request, response: Response, services: ServicesDep
) -> dict[str, Any]:
    # RFC 9449 §8.2 lets any answer carry the nonce to use: a client that
    # reads the metadata first (as RFC 8414 clients do) sends its first
    # token request with a nonce, instead of meeting a logged challenge.
    response.headers[DPOP_NONCE_HEADER] = dpop_nonces(request).issue(now=services.clock.now())
    metadata = authorization_server_metadata(issuer=services.settings.issuer, scopes=SCOPES)
    # RFC 9449 §5.1: the algorithms a DPoP proof may use (broker.auth.dpop).
    metadata["dpop_signing_alg_values_supported"] = list(ALLOWED_ALGORITHMS)
    return metadata


@router.get(JWKS_PATH, summary="The broker's public keys (RFC 7517)")
def jwks(services: ServicesDep) -> dict[str, list[dict[str, str]]]:
    return services.keys.public_keyset("broker").to_jwks()


async def _read_bounded_body(request: Request) -> bytes | None:
    """The request body, or None once it exceeds MAX_TOKEN_REQUEST_BYTES (read no further)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_TOKEN_REQUEST_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _answer_token_request(
    request: Request, services: ServicesDep, body: bytes | None
) -> JSONResponse:
    now = services.clock.now()
    nonces = dpop_nonces(request)
    # RFC 9449 §8: a fresh nonce on every answer of the token endpoint.
    headers = {**NO_STORE, DPOP_NONCE_HEADER: nonces.issue(now=now)}
    form: dict[str, str] = {}
    try:
        form = _parse_form(request.headers.get("content-type"), body)
        issued = TokenService(
            convenant=services.convenant,
            keys=services.keys,
            replay_cache=services.replay_cache,
            issuer_service=services.token_issuer,
            issuer_url=services.settings.issuer,
            clock=services.clock,
            # Nonces required at the token endpoint (RFC 9449 §8), always.
            nonces=nonces,
        ).exchange(form, dpop_proofs=request.headers.getlist(DPOP_HEADER))
    except OAuthError as refusal:
        client_id = form.get("client_id")
        known = client_id if client_id and services.convenant.role_of(client_id) else None
        try:
            services.audit.record(
                security_event(
                    time=now,
                    event="token_refused",
                    code=refusal.error,
                    principal=known,
                    trace_id=parse_traceparent(request.headers.get("traceparent")).trace_id,
                    detail=str(refusal),
                )
            )
        except AuditWriteError as e:
            # An unrecorded refusal must not look like an ordinary one. The
            # cause is in the message; a traceback would add nothing (TRY400).
            logger.error("token refusal not recorded in the audit log: %s", e)  # noqa: TRY400
            refusal = OAuthError(TEMPORARILY_UNAVAILABLE, f"audit write failed: {e}")
        return _oauth_error(refusal, headers=headers)
    return JSONResponse(
        {
            "access_token": issued.access_token,
            "token_type": issued.token_type,
            "expires_in": issued.expires_in,
            "scope": issued.scope,
        },
        headers=headers,
    )


def _parse_form(content_type: str | None, body: bytes | None) -> dict[str, str]:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        raise OAuthError(INVALID_REQUEST, f"expected {FORM_MEDIA_TYPE!r}, got {content_type!r}")
    if body is None:
        raise OAuthError(
            INVALID_REQUEST, f"expected a body of at most {MAX_TOKEN_REQUEST_BYTES} bytes"
        )
    try:
        pairs = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            strict_parsing=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_TOKEN_REQUEST_FIELDS,
        )
    except ValueError as e:  # includes UnicodeDecodeError
        raise OAuthError(INVALID_REQUEST, f"expected a form-encoded body, got {e}") from e
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            # RFC 6749 §3.2: parameters MUST NOT be included more than once;
            # which copy would win is exactly what a parser-differential attack needs.
            raise OAuthError(INVALID_REQUEST, f"expected {name!r} once, got it repeated")
        form[name] = value
    return form


def _oauth_error(refusal: OAuthError, *, headers: dict[str, str]) -> JSONResponse:
    return JSONResponse(
        {"error": refusal.error, "error_description": refusal.description},
        status_code=refusal.status,
        headers=headers,
    )
