"""Prometheus metrics of the notifier: the loop's (`notifier_*`, ConsumerMetrics) and its own."""

from __future__ import annotations

from functools import cache

from prometheus_client import CollectorRegistry, Counter

from apps.common.consumer_loop import ConsumerMetrics


class NotifierMetrics(ConsumerMetrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__("notifier", registry)
        r = self.registry
        self.deliveries = Counter(
            "notifier_deliveries",
            "Channel deliveries by final outcome (sent, dead, skipped: done earlier)",
            ["channel", "status"],
            registry=r,
        )
        self.failed_attempts = Counter(
            "notifier_delivery_failures",
            "Failed delivery attempts (each retry counts)",
            ["channel", "reason"],
            registry=r,
        )
        self.retries_scheduled = Counter(
            "notifier_retries_scheduled",
            "Deliveries handed to the retry schedule (after a failure, or behind an earlier"
            " delivery of their key)",
            ["channel"],
            registry=r,
        )

        # `labels()` parses and locks on every call; a delivery's counter is looked up once.
        self.delivery = cache(self.deliveries.labels)
