"""Prometheus metrics of audit (own registry, so several instances can share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class AuditMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            "audit_messages_consumed", "Records polled from Kafka", ["topic"], registry=r
        )
        self.processed = Counter(
            "audit_messages_processed",
            "Records whose outcome is durable (written, duplicate or dead-lettered)",
            registry=r,
        )
        self.inserted = Counter("audit_rows_inserted", "New audit_log rows", registry=r)
        self.duplicates = Counter(
            "audit_duplicates", "Redelivered records that were already in audit_log", registry=r
        )
        self.failed = Counter(
            "audit_batch_failures",
            "Batch attempts that failed and were retried",
            ["stage"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "audit_dead_lettered", "Records sent to the dead-letter topic", ["reason"], registry=r
        )
        self.batch_seconds = Histogram(
            "audit_batch_seconds",
            "Time from poll to committed offsets for one batch",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.batch_size = Histogram(
            "audit_batch_records",
            "Records per polled batch",
            registry=r,
            buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000),
        )
        self.lag = Gauge(
            "audit_consumer_lag",
            "Records behind the high watermark (assigned partitions)",
            registry=r,
        )
