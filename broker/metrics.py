"""Prometheus metrics of one broker process (issue 6 point 6).

What it does: holds the counters and histograms an operator needs to see
the broker at work: exchanges by decision and reason, their latency, the
policy engine's and the adapters' share of it, audit appends with their
batch size and commit (fsync) time, refusals by problem code, and whether
each dependency answers. `render` gives the text exposition format.

What it does not: label anything with a person, a case or a free text.
Labels are closed sets (decisions, problem codes, reason codes from the
policy, partner ids from the convenant, entrypoints), so a scrape cannot
leak personal data and the series count stays bounded.

Why a registry per instance instead of prometheus_client's global one: two
brokers in one test process, or a broker rebuilt after a settings change,
must not count into each other's series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

# Seconds; an exchange is a few ms, a slow adapter or fsync may take a second.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The broker's metrics; pass one instance to every part that reports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._exchanges = Counter(
            "ketenbroker_exchanges",
            "Exchanges answered, by decision (permit/deny/...) and the policy's reason code",
            ["decision", "reason"],
            registry=self.registry,
        )
        self._exchange_seconds = Histogram(
            "ketenbroker_exchange_seconds",
            "Time from request to answer inside the broker, by decision",
            ["decision"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._policy_seconds = Histogram(
            "ketenbroker_policy_decision_seconds",
            "Time for one policy decision, by entrypoint",
            ["entrypoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._adapter_seconds = Histogram(
            "ketenbroker_adapter_call_seconds",
            "Time for one call to a provider's adapter, by provider",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._audit_append_seconds = Histogram(
            "ketenbroker_audit_append_seconds",
            "Time a caller waits for its audit entry to be durable (queueing included)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._audit_commit_seconds = Histogram(
            "ketenbroker_audit_commit_seconds",
            "Time of one durable audit commit (transaction and fsync) for a batch",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._audit_batch_entries = Histogram(
            "ketenbroker_audit_batch_entries",
            "Entries made durable by one commit (group commit)",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self._refusals = Counter(
            "ketenbroker_refusals",
            "Requests refused with a problem document, by its code",
            ["code"],
            registry=self.registry,
        )
        self._dependency_up = Gauge(
            "ketenbroker_dependency_up",
            "1 when the dependency answered its last health check, 0 when not",
            ["dependency"],
            registry=self.registry,
        )

    def observe_exchange(self, *, decision: str, reason: str, seconds: float) -> None:
        self._exchanges.labels(decision=decision, reason=reason).inc()
        self._exchange_seconds.labels(decision=decision).observe(seconds)

    def observe_policy_decision(self, *, entrypoint: str, seconds: float) -> None:
        self._policy_seconds.labels(entrypoint=entrypoint).observe(seconds)

    def observe_adapter_call(self, *, provider: str, seconds: float) -> None:
        self._adapter_seconds.labels(provider=provider).observe(seconds)

    def observe_audit_append(self, seconds: float) -> None:
        self._audit_append_seconds.observe(seconds)

    def observe_audit_commit(self, *, seconds: float, entries: int) -> None:
        self._audit_commit_seconds.observe(seconds)
        self._audit_batch_entries.observe(entries)

    def count_refusal(self, code: str) -> None:
        self._refusals.labels(code=code).inc()

    def set_dependency_up(self, dependency: str, up: bool) -> None:
        self._dependency_up.labels(dependency=dependency).set(1 if up else 0)

    def render(self) -> bytes:
        """The text exposition format (CONTENT_TYPE)."""
        return generate_latest(self.registry)
