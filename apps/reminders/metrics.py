"""Prometheus metrics of reminders: the loop's (`reminders_*` via ConsumerMetrics: consumed,
processed, batch time, lag, failures, dead letters) plus the schedule's own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from apps.common.consumer_loop import ConsumerMetrics

LATENESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600)


class RemindersMetrics(ConsumerMetrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__("reminders", registry)
        self.applied = self.counter(
            "task_changes_applied",
            "Task changes applied to the schedule (older versions are skipped)",
            "outcome",
        )
        self.fired = self.counter("fired", "Reminders published and marked fired", "late")
        self.lateness = self.histogram(
            "lateness_seconds",
            "How long after its time a reminder was published",
            LATENESS_BUCKETS,
        )
        self.overdue = self.gauge(
            "overdue",
            "Pending reminders whose time passed more than 30 s ago (the scheduler is behind)",
        )
        self.pending = self.gauge("pending", "Scheduled reminders not yet due")
