"""Prometheus metrics: requests by status, pending requests, decision latency, HTTP traffic."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from signoff.models import ApprovalRequest, Status
from signoff.stores.base import Store


class Metrics:
    """One registry per app, so that several apps (tests) never share counters."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Gauge(
            "signoff_requests",
            "Approval requests in the store, by status.",
            ["status"],
            registry=self.registry,
        )
        self.pending = Gauge(
            "signoff_pending_requests",
            "Approval requests waiting for a decision.",
            registry=self.registry,
        )
        self.decision_seconds = Histogram(
            "signoff_decision_seconds",
            "Time from a request's creation to its final decision (through this server).",
            ["decision"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600),
            registry=self.registry,
        )
        self.http = Counter(
            "signoff_http_requests",
            "HTTP requests handled.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "signoff_http_request_seconds",
            "HTTP request handling time.",
            ["endpoint"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30, 60),
            registry=self.registry,
        )

    def observe_decision(self, request: ApprovalRequest) -> None:
        if request.status in (Status.APPROVED, Status.REJECTED) and request.decided_at:
            seconds = (request.decided_at - request.created_at).total_seconds()
            self.decision_seconds.labels(request.status.value).observe(max(seconds, 0.0))

    def observe_http(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.http.labels(endpoint, method, str(status)).inc()
        self.http_seconds.labels(endpoint).observe(seconds)

    async def render(self, store: Store) -> bytes:
        counts = await store.count_by_status()
        for status in Status:
            self.requests.labels(status.value).set(counts.get(status.value, 0))
        self.pending.set(counts.get(Status.PENDING.value, 0))
        return generate_latest(self.registry)
