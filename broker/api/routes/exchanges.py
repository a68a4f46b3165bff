"""`POST /v1/exchanges`: the exchange pipeline behind one endpoint."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header

from broker.api.deps import ServicesDep
from broker.api.security import ExchangeCaller
from broker.exchange.pipeline import Requester
from broker.exchange.requests import ExchangeRequest
from broker.tracing import parse_traceparent

router = APIRouter(tags=["exchanges"])


@router.post("/v1/exchanges")
def create_exchange(
    body: ExchangeRequest,
    services: ServicesDep,
    caller: ExchangeCaller,
    traceparent: str | None = Header(default=None),
) -> dict[str, Any]:
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
    return outcome.to_response()
