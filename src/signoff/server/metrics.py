"""Prometheus metrics: requests by status, pending requests, decision latency, HTTP traffic,
and the outbox: deliveries by channel and status, outcomes, attempts and latency."""

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

        self.deliveries = Gauge(
            "signoff_outbox_deliveries",
            "Deliveries in the outbox, by channel and status.",
            ["channel", "status"],
            registry=self.registry,
        )
        self.delivery_outcomes = Counter(
            "signoff_deliveries_total",
            "Delivery attempts made by this server, by channel and outcome "
            "(delivered, retry, failed, superseded).",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.delivery_attempts = Histogram(
            "signoff_delivery_attempts",
            "How many attempts a delivery took, when it was delivered or given up.",
            ["channel"],
            buckets=(1, 2, 3, 4, 5, 6, 8, 10, 15, 20),
            registry=self.registry,
        )
        self.delivery_seconds = Histogram(
            "signoff_delivery_latency_seconds",
            "Time from the event to its delivery.",
            ["channel"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60, 300, 3600),
            registry=self.registry,
        )

    def observe_delivery(self, channel: str, outcome: str, attempts: int, seconds: float) -> None:
        self.delivery_outcomes.labels(channel, outcome).inc()
        if outcome in ("delivered", "failed"):
            self.delivery_attempts.labels(channel).observe(attempts)
        if outcome == "delivered":
            self.delivery_seconds.labels(channel).observe(seconds)

    def observe_decision(self, request: ApprovalRequest) -> None:
        if request.status in (Status.APPROVED, Status.REJECTED, Status.RESPONDED) and (
            request.decided_at
        ):
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
        self.deliveries.clear()
        for (channel, state), n in (await store.delivery_counts()).items():
            self.deliveries.labels(channel, state).set(n)
        return generate_latest(self.registry)
