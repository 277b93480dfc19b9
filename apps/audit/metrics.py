"""Prometheus metrics of audit: the loop's (`audit_*` via ConsumerMetrics) plus the sink's own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from apps.common.consumer_loop import ConsumerMetrics


class AuditMetrics(ConsumerMetrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__("audit", registry)
        self.inserted = self.counter("rows_inserted", "New audit_log rows")
        self.duplicates = self.counter(
            "duplicates", "Redelivered records that were already in audit_log"
        )
        self.batch_size = self.histogram(
            "batch_records", "Records per polled batch", (1, 10, 100, 500, 1000, 2000, 5000, 10000)
        )
