"""`POST /v1/exchanges`: the exchange pipeline behind one endpoint.

The answer carries the broker's signature over what it disclosed in the
`Ketenbroker-Signature` header (a detached JWS over the canonical JSON of
the body without its receipt; `broker.exchange.answer_signature`), so that
the requester can later prove what it was told, and the audit entry behind
the receipt holds that signature's digest.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, Response

from broker.api.deps import ServicesDep
from broker.api.security import ExchangeCaller
from broker.exchange.answer_signature import DISCLOSURE_SIGNATURE_HEADER
from broker.exchange.pipeline import Requester
from broker.exchange.requests import ExchangeRequest
from broker.ratelimit import enforce_rate_limits
from broker.tracing import parse_traceparent

router = APIRouter(tags=["exchanges"])


@router.post("/v1/exchanges")
def create_exchange(
    body: ExchangeRequest,
    services: ServicesDep,
    caller: ExchangeCaller,
    response: Response,
    traceparent: str | None = Header(default=None),
) -> dict[str, Any]:
    # Before the pipeline: a request over a limit reaches no policy and no
    # adapter. The app's handler answers 429 + Retry-After and logs it.
    enforce_rate_limits(
        limiter=services.rate_limiter,
        limits=services.rate_limits,
        caller_partner=caller.principal,
        acting_user=body.on_behalf_of.user,
        case=body.case,
        subject=body.subject,
        now=services.clock.now(),
    )
    outcome = services.exchanges.run(
        requester=Requester(
            partner=caller.principal,
            role=caller.role,
            function=caller.function,
            user=body.on_behalf_of.user,
            user_function=body.on_behalf_of.function,
        ),
        request=body,
        trace=parse_traceparent(traceparent),
    )
    response.headers[DISCLOSURE_SIGNATURE_HEADER] = outcome.signature
    return outcome.to_response()
