"""Prometheus metrics named `<prefix>_<name>` in one registry: what each consumer app's metrics
class (`apps.common.consumer_loop.ConsumerMetrics` and its subclasses) declares its metrics
through, so the prefix and the registry are stated once per app."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class PrefixedMetrics:
    """Own registry by default, so several consumers (tests) can share one process."""

    def __init__(self, prefix: str, registry: CollectorRegistry | None = None) -> None:
        self.prefix = prefix
        self.registry = registry or CollectorRegistry()

    def counter(self, name: str, documentation: str, *labels: str) -> Counter:
        return Counter(f"{self.prefix}_{name}", documentation, labels, registry=self.registry)

    def gauge(self, name: str, documentation: str, *labels: str) -> Gauge:
        return Gauge(f"{self.prefix}_{name}", documentation, labels, registry=self.registry)

    def histogram(
        self, name: str, documentation: str, buckets: Sequence[float], *labels: str
    ) -> Histogram:
        return Histogram(
            f"{self.prefix}_{name}", documentation, labels, registry=self.registry, buckets=buckets
        )
