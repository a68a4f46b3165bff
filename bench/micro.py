"""Micro costs on the request path: one access-token check, one DPoP check, one replay check.

What it does: times, under a count and a time cap, with tokens and proofs
made by the project's own code (`AccessTokenIssuer` with the broker's dev
key, `BrokerClient.dpop_proof` with a fresh client key, nonces from
`DpopNonces`):

* `access_token_verify`: `verify_access_token` with the broker's key set
  already loaded (the signature and claims checks);
* `access_token_verify_with_keyset_read`: the same plus
  `KeyStore.public_keyset("broker")`, which broker/api/security.py reads
  from disk on every request (so that a revocation holds at once);
* `dpop_proof_verify`: `verify_dpop_proof` for an API call (method, URL,
  `ath`, bound key, server nonce), a pool of distinct proofs;
* `replay_check_memory` / `replay_check_redis`: `store_jti` of a fresh key,
  as the API edge stores a proof's jti after verifying it. Redis under a
  scratch namespace (bench.scratch), "not available" if Redis does not
  answer.

What it does not: time the HTTP edge around these (the exchange figures
include it).

Why: these run on every request; if the exchange is slow, these say
whether authentication is where the time goes.
"""

from __future__ import annotations

import itertools
import secrets
from typing import Any

from adapters.sdk.client import BrokerClient
from bench.schema import MEASURED, not_available
from bench.scratch import BackendUnavailableError, redis_client, scratch_namespace
from bench.stats import summarize, time_calls
from broker.auth.dpop import DpopNonces, key_thumbprint, replay_ttl_seconds, verify_dpop_proof
from broker.auth.replay import MemoryReplayCache, RedisReplayCache, ReplayCache
from broker.auth.tokens import AccessTokenIssuer, verify_access_token
from broker.clock import SystemClock
from broker.convenant import load_convenant
from broker.keys import KeyStore, generate_signing_key
from broker.settings import Settings

ROUNDS = 3_000
SECONDS = 3.0
WARMUP = 100
POOL = 500  # distinct proofs, cycled
PARTNER = "gemeente-lekstroom"
ISSUER = "http://127.0.0.1:8400"
EXCHANGES_URL = ISSUER + "/v1/exchanges"


def _replay(cache: ReplayCache, rounds: int, seconds: float) -> dict[str, Any]:
    ttl = replay_ttl_seconds()
    keys = (f"dpop:{PARTNER}:{secrets.token_urlsafe(18)}" for _ in itertools.count())

    def store() -> None:
        if not cache.store_jti(next(keys), ttl_seconds=ttl):
            raise RuntimeError("expected a fresh jti to be new")

    return summarize(time_calls(store, rounds=rounds, seconds=seconds, warmup=WARMUP))


def run(*, rounds: int = ROUNDS, seconds: float = SECONDS) -> dict[str, Any]:
    settings = Settings()
    keys = KeyStore(settings.keys_dir)
    convenant = load_convenant(settings.convenant_path)
    clock = SystemClock()
    broker_key = keys.signing_key("broker")
    keyset = keys.public_keyset("broker")
    dpop_key = generate_signing_key("EdDSA")  # as BrokerClient makes by default
    jkt = key_thumbprint(dpop_key.public_key)
    client = BrokerClient(
        base_url=ISSUER, client_id=PARTNER, signing_key=keys.signing_key(PARTNER), dpop_key=dpop_key
    )
    try:
        token = (
            AccessTokenIssuer(signing_key=broker_key, issuer=ISSUER, ttl_seconds=300)
            .issue(
                principal=PARTNER,
                role=str(convenant.role_of(PARTNER)),
                function=None,
                scopes=frozenset(convenant.scopes_for(PARTNER)),
                now=clock.now(),
                jkt=jkt,
            )
            .access_token
        )
        nonces = DpopNonces.from_signing_key(broker_key)
        nonce = nonces.issue(now=clock.now())
        proofs = itertools.cycle(
            [
                client.dpop_proof("POST", EXCHANGES_URL, access_token=token, nonce=nonce)
                for _ in range(POOL)
            ]
        )
    finally:
        client.close()

    def check_token() -> object:
        return verify_access_token(token, keys=keyset, issuer=ISSUER, now=clock.now())

    def check_token_reading_keys() -> object:
        return verify_access_token(
            token, keys=keys.public_keyset("broker"), issuer=ISSUER, now=clock.now()
        )

    def check_proof() -> object:
        return verify_dpop_proof(
            next(proofs),
            method="POST",
            url=EXCHANGES_URL,
            access_token=token,
            expected_jkt=jkt,
            nonces=nonces,
            now=clock.now(),
        )

    caps: dict[str, Any] = {"rounds": rounds, "seconds": seconds, "warmup": WARMUP}
    result: dict[str, Any] = {
        "status": MEASURED,
        "access_token_verify": summarize(time_calls(check_token, **caps)),
        "access_token_verify_with_keyset_read": summarize(
            time_calls(check_token_reading_keys, **caps)
        ),
        "dpop_proof_verify": summarize(time_calls(check_proof, **caps)),
        "replay_check_memory": _replay(MemoryReplayCache(clock=clock), rounds, seconds),
    }
    try:
        with scratch_namespace() as namespace:
            redis = redis_client()
            try:
                result["replay_check_redis"] = _replay(
                    RedisReplayCache(redis, namespace=namespace), rounds, seconds
                )
            finally:
                redis.close()
    except BackendUnavailableError as e:
        result["replay_check_redis"] = not_available(str(e))
    return result
