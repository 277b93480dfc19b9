"""Prometheus metrics of the notifier: the loop's (`notifier_*`, ConsumerMetrics) and its own."""

from __future__ import annotations

from functools import cache

from prometheus_client import CollectorRegistry

from apps.common.consumer_loop import ConsumerMetrics


class NotifierMetrics(ConsumerMetrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__("notifier", registry)
        self.deliveries = self.counter(
            "deliveries",
            "Channel deliveries by final outcome (sent, dead, skipped: done earlier)",
            "channel",
            "status",
        )
        self.failed_attempts = self.counter(
            "delivery_failures", "Failed delivery attempts (each retry counts)", "channel", "reason"
        )
        self.retries_scheduled = self.counter(
            "retries_scheduled",
            "Deliveries handed to the retry schedule (after a failure, or behind an earlier"
            " delivery of their key)",
            "channel",
        )

        # `labels()` parses and locks on every call; a delivery's counter is looked up once.
        self.delivery = cache(self.deliveries.labels)
