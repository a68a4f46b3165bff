"""The broker's HTTP client towards the partners' adapters.

Authenticated both ways: the broker signs a call token bound to the request
body; the adapter signs its answer with its own pinned key, and an answer
that does not verify is refused (broker/adapter_protocol.py). Every call has
a bounded timeout; anything but a verified 200 is an error, never data.

Each call's round trip (answered or failed) is reported to the metrics,
labelled by the provider's partner id, a closed set from the convenant.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime

import httpx

from broker.adapter_protocol import (
    ADAPTER_QUERY_PATH,
    ANSWER_SIGNATURE_HEADER,
    AdapterAnswer,
    AdapterQuery,
    sign_adapter_call,
    verify_answer_document,
)
from broker.errors import AdapterTrustError, AdapterUnavailableError
from broker.keys import KeyStore, SigningKey
from broker.metrics import Metrics
from broker.tracing import TraceContext

# Above the server's worker-thread count (40), below any adapter's accept backlog.
MAX_CONNECTIONS = 64


class AdapterGateway:
    def __init__(
        self,
        *,
        urls: Mapping[str, str],
        signing_key: SigningKey,
        issuer: str,
        keys: KeyStore,
        timeout_seconds: float,
        http: httpx.Client | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._urls = dict(urls)
        self._signing_key = signing_key
        self._issuer = issuer
        self._keys = keys
        # One client for the broker's life: its pool keeps connections to the
        # adapters alive, so a call costs no TCP handshake. Exchanges run on
        # the server's worker threads (anyio: 40 by default), so up to 40 calls
        # are in flight; httpx's default of 20 kept-alive connections would
        # close and reopen the rest on every call under load.
        self._http = http or httpx.Client(
            timeout=timeout_seconds,
            follow_redirects=False,
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
            ),
        )
        self._metrics = metrics or Metrics()

    def fetch(
        self, *, provider: str, query: AdapterQuery, trace: TraceContext, now: datetime
    ) -> AdapterAnswer:
        base = self._urls.get(provider)
        if base is None:
            raise AdapterUnavailableError(f"no adapter address is configured for {provider!r}")
        body = query.to_body()
        token = sign_adapter_call(
            key=self._signing_key,
            issuer=self._issuer,
            adapter_partner=provider,
            body=body,
            now=now,
        )
        started = time.perf_counter()
        try:
            response = self._http.post(
                base.rstrip("/") + ADAPTER_QUERY_PATH,
                content=body,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json",
                    "traceparent": trace.header(),
                },
            )
        except httpx.HTTPError as e:
            raise AdapterUnavailableError(
                f"adapter of {provider!r} did not answer: {type(e).__name__}"
            ) from e
        finally:
            self._metrics.observe_adapter_call(
                provider=provider, seconds=time.perf_counter() - started
            )
        if response.status_code != 200:
            raise AdapterUnavailableError(
                f"adapter of {provider!r} answered {response.status_code}, expected 200"
            )
        signature = response.headers.get(ANSWER_SIGNATURE_HEADER)
        if signature is None:
            raise AdapterTrustError(f"adapter of {provider!r} sent an unsigned answer")
        return verify_answer_document(
            response.content,
            signature=signature,
            keys=self._keys.public_keyset(provider),
            exchange=query.exchange,
            query=query.query,
        )

    def close(self) -> None:
        self._http.close()
