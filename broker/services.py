"""Wiring: build every service the broker needs from its Settings.

This is the one place that chooses implementations (SQLite or PostgreSQL,
in-process or Redis cache, embedded or OPA engine). Everything else receives
its collaborators through constructors (style.md §2).

It is also where a starting broker reconciles the audit log: intents that a
killed broker left without a closing entry are closed as not disclosed
before this process serves anything (`broker.exchange.reconcile` says why
start-up, and when a young intent must be left to a live peer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from broker.audit.log import AuditLog
from broker.audit.postgres_store import PostgresAuditStore
from broker.audit.sqlite_store import SqliteAuditStore
from broker.audit.store import AuditStore
from broker.auth.replay import MemoryReplayCache, RedisReplayCache, ReplayCache
from broker.auth.tokens import AccessTokenIssuer
from broker.cases.register import CaseRegister
from broker.cases.store import SqlCaseStore
from broker.clock import Clock, SystemClock
from broker.convenant import Convenant, load_convenant
from broker.exchange.gateway import AdapterGateway
from broker.exchange.pipeline import ExchangePipeline
from broker.exchange.reconcile import (
    ReconcileReport,
    claim_writer,
    in_flight_limit,
    reconcile,
    shared_grace,
)
from broker.keys import KeyStore
from broker.metrics import Metrics
from broker.policy.decision_log import SqlDecisionLog
from broker.policy.embedded import EmbeddedPolicyEngine
from broker.policy.engine import PolicyEngine
from broker.policy.opa import OpaPolicyEngine
from broker.policy.served import load_served_bundle
from broker.ratelimit import MemoryRateLimiter, RateLimiter, RateLimits, RedisRateLimiter
from broker.settings import Settings
from broker.sql import SqlConnection

BROKER_PRINCIPAL = "broker"


@dataclass
class Services:
    settings: Settings
    convenant: Convenant
    keys: KeyStore
    clock: Clock
    replay_cache: ReplayCache
    token_issuer: AccessTokenIssuer
    audit: AuditLog
    cases: CaseRegister
    policy: PolicyEngine
    adapters: AdapterGateway
    exchanges: ExchangePipeline
    decisions: SqlDecisionLog
    # What the start-up reconciliation closed (broker.exchange.reconcile).
    reconciled: ReconcileReport
    rate_limiter: RateLimiter
    rate_limits: RateLimits
    # One registry per broker: every part reports into it, GET /metrics renders it.
    metrics: Metrics = field(default_factory=Metrics)
    _closers: list[object] = field(default_factory=list)

    def close(self) -> None:
        self.adapters.close()
        close_policy = getattr(self.policy, "close", None)
        if callable(close_policy):
            close_policy()
        for closer in self._closers:
            close = getattr(closer, "close", None)
            if callable(close):
                close()


def build_policy_engine(
    settings: Settings, convenant: Convenant, *, metrics: Metrics | None = None
) -> PolicyEngine:
    """An engine over the signed bundle only (broker.policy.served); its revision is `version`.

    The OPA engine refuses every decision OPA makes with another revision, so
    OPA must serve the same signed bundle file (docker/compose.yaml).
    """
    bundle = load_served_bundle(settings, convenant)
    if settings.policy_engine == "opa":
        return OpaPolicyEngine(
            url=settings.opa_url,
            version=bundle.version,
            timeout_seconds=settings.policy_timeout_seconds,
            metrics=metrics,
        )
    return EmbeddedPolicyEngine(bundle, metrics=metrics)


def build_audit_store(settings: Settings) -> AuditStore:
    if settings.storage_backend == "postgres":
        return PostgresAuditStore(settings.postgres_dsn)
    return SqliteAuditStore(settings.sqlite_path)


def build_sql_connection(settings: Settings) -> SqlConnection:
    if settings.storage_backend == "postgres":
        return SqlConnection(dialect="postgres", dsn=settings.postgres_dsn)
    return SqlConnection(
        dialect="sqlite", sqlite_path=settings.sqlite_path.with_suffix(".cases.sqlite3")
    )


def build_redis_client(settings: Settings) -> redis.Redis:
    # Fail fast: with redis-py's default retries an outage made each token
    # request hang for seconds; without Redis there is no answer anyway.
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
        retry=Retry(NoBackoff(), 0),
    )


def build_replay_cache(settings: Settings, clock: Clock) -> ReplayCache:
    if settings.cache_backend == "redis":
        return RedisReplayCache(build_redis_client(settings), namespace=settings.redis_namespace)
    return MemoryReplayCache(clock=clock)


def build_rate_limiter(settings: Settings) -> RateLimiter:
    if settings.cache_backend == "redis":
        # Shared by every broker process: limits hold however requests are
        # spread over processes. Keys under {namespace}:ratelimit:...
        return RedisRateLimiter(build_redis_client(settings), namespace=settings.redis_namespace)
    return MemoryRateLimiter()


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    audit_store: AuditStore | None = None,
    policy: PolicyEngine | None = None,
) -> Services:
    clock = clock or SystemClock()
    metrics = Metrics()
    convenant = load_convenant(settings.convenant_path)
    keys = KeyStore(settings.keys_dir)
    broker_key = keys.signing_key(BROKER_PRINCIPAL)
    store = audit_store or build_audit_store(settings)
    audit = AuditLog(
        store=store,
        signing_key=broker_key,
        clock=clock,
        metrics=metrics,
        group_commit=settings.audit_group_commit,
        max_batch=settings.audit_max_batch,
    )
    limit = in_flight_limit(
        adapter_timeout_seconds=settings.adapter_timeout_seconds,
        policy_timeout_seconds=settings.policy_timeout_seconds,
    )
    # Sole writer of a SQLite log (proved by a file lock, not assumed): every
    # open intent is a dead process's, close them all. Otherwise (PostgreSQL,
    # a peer on the same file, or a store passed in whose file we do not
    # know) close only intents no live peer can still be working on.
    on_sqlite = audit_store is None and settings.storage_backend == "sqlite"
    writer = claim_writer(sqlite_path=settings.sqlite_path if on_sqlite else None)
    try:
        reconciled = reconcile(
            audit,
            now=clock.now(),
            grace=timedelta(0) if writer.sole else shared_grace(limit),
        )
    except BaseException:
        writer.close()
        raise
    sql = build_sql_connection(settings)
    cases = CaseRegister(store=SqlCaseStore(sql, kek=keys.data_kek()), convenant=convenant)
    decisions = SqlDecisionLog(sql)
    engine = policy or build_policy_engine(settings, convenant, metrics=metrics)
    adapters = AdapterGateway(
        urls=settings.adapter_urls,
        signing_key=broker_key,
        issuer=settings.issuer,
        keys=keys,
        timeout_seconds=settings.adapter_timeout_seconds,
        metrics=metrics,
    )
    return Services(
        settings=settings,
        convenant=convenant,
        keys=keys,
        clock=clock,
        replay_cache=build_replay_cache(settings, clock),
        token_issuer=AccessTokenIssuer(
            signing_key=broker_key,
            issuer=settings.issuer,
            ttl_seconds=settings.access_token_ttl_seconds,
        ),
        audit=audit,
        cases=cases,
        policy=engine,
        adapters=adapters,
        exchanges=ExchangePipeline(
            convenant=convenant,
            cases=cases,
            policy=engine,
            adapters=adapters,
            audit=audit,
            decisions=decisions,
            clock=clock,
            signing_key=broker_key,
            in_flight_limit=limit,
            metrics=metrics,
        ),
        decisions=decisions,
        reconciled=reconciled,
        rate_limiter=build_rate_limiter(settings),
        rate_limits=settings.rate_limits,
        metrics=metrics,
        _closers=[store, sql, writer],
    )
