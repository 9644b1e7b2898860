"""Prometheus metrics: what /metrics exposes.

Each app gets its own registry (no module-level collectors), so tests and several
apps in one process do not collide. With several worker processes, each worker
serves its own numbers; scrape each, or run one worker per container (see
docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _PoolCollector(Collector):
    def __init__(self, pool_stats: Callable[[], dict[str, int]]) -> None:
        self._pool_stats = pool_stats

    def collect(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily(
            "accounts_db_pool_connections", "Database pool connections by state", labels=["state"]
        )
        for state, value in self._pool_stats().items():
            gauge.add_metric([state], value)
        yield gauge


class Metrics:
    def __init__(self, pool_stats: Callable[[], dict[str, int]] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "accounts_http_requests_total",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "accounts_http_request_duration_seconds",
            "HTTP request latency by method and route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.logins = Counter(
            "accounts_logins_total",
            "Login attempts by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "accounts_rate_limit_rejections_total",
            "Requests refused by a rate limit, by limit",
            ["limit"],
            registry=self.registry,
        )
        if pool_stats is not None:
            self.registry.register(_PoolCollector(pool_stats))
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        # Labelled children are looked up once per (method, route, status): labels()
        # takes a lock and builds a key on every call. Routes are templates and
        # methods and statuses few, so the dict stays small.
        if method not in KNOWN_METHODS:
            method = "OTHER"  # a client's invented method must not mint label sets
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            self._request_children[key] = children
        count, latency = children
        count.inc()
        latency.observe(seconds)

    def login(self, outcome: str) -> None:
        self.logins.labels(outcome).inc()

    def rejected(self, limit: str) -> None:
        self.rate_limited.labels(limit).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
