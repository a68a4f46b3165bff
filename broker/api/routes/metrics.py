"""`GET /metrics`: the Prometheus text exposition of this broker process.

Who may scrape: with `metrics_token` unset, clients on loopback only (a
Prometheus or node agent on the same host); with it set, any client that
sends `Authorization: Bearer <metrics_token>`, and no one else, loopback
included. Others get the 404 of an unknown path, or a 401 when a token is
configured: the scrape carries no personal data (broker/metrics.py), but
traffic volumes and refusal counts by partner-facing code are still the
region's business, not the internet's.

Every scrape asks the dependencies first (broker/dependency_health.py),
so `ketenbroker_dependency_up` is as fresh as the scrape, within the
probe's bound.

What it does not: appear in /openapi.json. It is an operator's endpoint
outside the partner contract (contract.md), with its own credential; the
partners' generated clients have no use for it.
"""

from __future__ import annotations

import hmac
import ipaddress

from fastapi import APIRouter, Request, Response

from broker.api.deps import ServicesDep
from broker.api.routes.health import dependency_probe
from broker.errors import NotFoundError, TrustError
from broker.metrics import CONTENT_TYPE

router = APIRouter(tags=["operations"])

# A configured token is at most this long; a longer header is refused unread.
MAX_AUTHORIZATION_CHARS = 512


class MetricsTokenError(TrustError):
    """The scrape's bearer token is missing or is not the configured metrics token.

    A TrustError, not an InvalidTokenError: the latter's handler challenges
    for the partners' DPoP tokens, this endpoint takes a plain bearer secret
    (RFC 6750 §3 challenge from the app's handler).
    """

    code = "invalid_token"
    public_detail = "The metrics token is missing or wrong."


def _from_loopback(request: Request) -> bool:
    host = request.client.host if request.client is not None else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a Unix socket or a test client: no address to trust
        return False


def verify_scraper(request: Request, *, token: str | None) -> None:
    """Return when the rule of the module docstring admits `request`; raise otherwise."""
    if token is None:
        if not _from_loopback(request):
            raise NotFoundError("GET /metrics from a non-loopback client, no metrics_token set")
        return
    offered = request.headers.get("authorization", "")
    scheme, _, credential = offered.partition(" ")
    if len(offered) > MAX_AUTHORIZATION_CHARS or scheme.lower() != "bearer":
        raise MetricsTokenError("expected Authorization: Bearer <metrics_token> on GET /metrics")
    # Constant time: the comparison must not tell how much of a guess was right.
    if not hmac.compare_digest(credential.strip().encode(), token.encode()):
        raise MetricsTokenError("the bearer token on GET /metrics is not the metrics token")


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, services: ServicesDep) -> Response:
    secret = services.settings.metrics_token
    verify_scraper(request, token=secret.get_secret_value() if secret is not None else None)
    dependency_probe(request).probe()
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)
