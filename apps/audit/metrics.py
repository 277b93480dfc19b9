"""Prometheus metrics of audit: the loop's (`audit_*` via ConsumerMetrics) plus the sink's own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from apps.common.consumer_loop import ConsumerMetrics


class AuditMetrics(ConsumerMetrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__("audit", registry)
        r = self.registry
        self.inserted = Counter("audit_rows_inserted", "New audit_log rows", registry=r)
        self.duplicates = Counter(
            "audit_duplicates", "Redelivered records that were already in audit_log", registry=r
        )
        self.batch_size = Histogram(
            "audit_batch_records",
            "Records per polled batch",
            registry=r,
            buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000),
        )
