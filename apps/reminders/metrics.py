"""Prometheus metrics of reminders (own registry, so several instances can share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600)


class RemindersMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            "reminders_messages_consumed", "Task records polled from Kafka", ["topic"], registry=r
        )
        self.applied = Counter(
            "reminders_task_changes_applied",
            "Task changes applied to the schedule (older versions are skipped)",
            ["outcome"],
            registry=r,
        )
        self.failed = Counter(
            "reminders_batch_failures",
            "Batch or scheduler attempts that failed and were retried",
            ["stage"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "reminders_dead_lettered",
            "Records sent to the dead-letter topic",
            ["reason"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "reminders_batch_seconds",
            "Time from poll to committed offsets for one batch of task changes",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.lag = Gauge(
            "reminders_consumer_lag",
            "Task records behind the high watermark (assigned partitions)",
            registry=r,
        )
        self.fired = Counter(
            "reminders_fired", "Reminders published and marked fired", ["late"], registry=r
        )
        self.lateness = Histogram(
            "reminders_lateness_seconds",
            "How long after its time a reminder was published",
            registry=r,
            buckets=LATENESS_BUCKETS,
        )
        self.overdue = Gauge(
            "reminders_overdue",
            "Pending reminders whose time passed more than 30 s ago (the scheduler is behind)",
            registry=r,
        )
        self.pending = Gauge("reminders_pending", "Scheduled reminders not yet due", registry=r)
