"""The gateway's Prometheus metrics, in a registry of its own (``GET /metrics``).

``route`` is the route template (``/v1/orders``), never the raw path: a path no route
matches counts as ``unmatched``, so callers cannot grow the label set.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ("CONTENT_TYPE", "UNMATCHED", "Metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
UNMATCHED = "unmatched"


class Metrics:
    """The counters and histograms of one gateway process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "sandan_gateway_requests_total",
            "HTTP requests answered, by route template, method and status",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.duration = Histogram(
            "sandan_gateway_request_duration_seconds",
            "Time to answer a request, by route template",
            ("route",),
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.documents = Counter(
            "sandan_gateway_documents_total",
            "Documents accepted (acknowledged by the broker), by topic and format",
            ("topic", "format"),
            registry=self.registry,
        )
        self.in_flight_records = Gauge(
            "sandan_gateway_in_flight_records",
            "Records sent to the broker and not yet acknowledged",
            registry=self.registry,
        )
        self.broker_connected = Gauge(
            "sandan_gateway_broker_connected",
            "1 when the producer reaches the broker",
            registry=self.registry,
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.duration.labels(route).observe(seconds)

    def bind(self, in_flight: Callable[[], float], connected: Callable[[], float]) -> None:
        """Read the gauges from the producer when scraped."""
        self.in_flight_records.set_function(in_flight)
        self.broker_connected.set_function(connected)

    def render(self) -> bytes:
        return generate_latest(self.registry)
