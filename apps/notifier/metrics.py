"""Prometheus metrics of the notifier (own registry, so several instances can share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class NotifierMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            "notifier_messages_consumed", "Records polled from Kafka", ["topic"], registry=r
        )
        self.processed = Counter(
            "notifier_messages_processed", "Records whose outcome is durable", ["topic"], registry=r
        )
        self.deliveries = Counter(
            "notifier_deliveries",
            "Channel deliveries by outcome (sent, dead, skipped)",
            ["channel", "status"],
            registry=r,
        )
        self.failed_attempts = Counter(
            "notifier_delivery_failures",
            "Failed delivery attempts (each retry counts)",
            ["channel", "reason"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "notifier_dead_lettered",
            "Records sent to the dead-letter topic",
            ["reason"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "notifier_batch_seconds",
            "Time to process one polled batch",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.lag = Gauge(
            "notifier_consumer_lag",
            "Records behind the high watermark (assigned partitions)",
            registry=r,
        )
