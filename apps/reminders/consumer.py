"""The reminders app's task-change handler on the shared consumer loop, and the service that
runs it beside the scheduler.

The Kafka side (clients, stop, commits, lag, dead letters, close) is `apps.common.consumer_loop`;
`TaskChangeHandler` says what a batch means: every usable record applied to the schedule
(`handler.handle`) in ONE transaction, a savepoint per record, poison to the dead-letter topic,
then the loop commits offset+1. A crash in between replays the batch, which the handler's
version check turns into no-ops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from apps.common.consumer import database_ready
from apps.common.consumer_loop import (
    Batch,
    Completed,
    ConsumerLoop,
    DeadLetterSink,
    HandBack,
    LoopContext,
    LoopSettings,
    Pending,
)
from apps.common.db import make_pool
from apps.common.envelope import EnvelopeError, EventEnvelope, decode
from apps.common.kafka import make_producer
from apps.reminders.handler import BadTaskEvent, Outcome, handle
from apps.reminders.metrics import RemindersMetrics
from apps.reminders.scheduler import Scheduler
from apps.reminders.settings import APP_NAME, RemindersConfig

log = logging.getLogger(__name__)

Handler = Callable[[psycopg.Connection[Any], EventEnvelope], Outcome]
DB_RETRY_S = 0.2
DB_RETRY_MAX_S = 5.0


class TaskChangeHandler:
    """The loop's `BatchHandler` for task changes (see the module docstring)."""

    def __init__(
        self,
        pool: ConnectionPool,
        metrics: RemindersMetrics,
        handler: Handler = handle,
        on_scheduled: Callable[[], None] = lambda: None,
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self._handler = handler
        self._on_scheduled = on_scheduled
        self._stop = threading.Event()
        self._dead_letters: DeadLetterSink | None = None

    def open(self, context: LoopContext) -> None:
        self._stop = context.stop
        self._dead_letters = context.dead_letters

    def handle(self, batch: Batch) -> Pending:
        delay = DB_RETRY_S
        while True:
            try:
                poison = self._apply(batch)
                break
            except (psycopg.Error, OSError) as exc:
                # The database is away: nothing of the batch committed; retry it until it does
                # (or hand it back, uncommitted, when stopping).
                self._metrics.failures.labels("database").inc()
                log.warning("database unavailable; retrying the batch", extra={"error": str(exc)})
                if self._stop.wait(delay):
                    raise HandBack() from None
                delay = min(DB_RETRY_MAX_S, delay * 2)
        assert self._dead_letters is not None
        for record, reason, detail in poison:
            self._dead_letters.send(record, reason=reason, detail=detail)
        return Completed(batch.end_offsets())

    def _apply(self, batch: Batch) -> list[tuple[Any, str, str]]:
        poison: list[tuple[Any, str, str]] = []
        outcomes: list[Outcome] = []
        with self._pool.connection() as conn, conn.transaction():
            for record in batch.records:
                try:
                    envelope = decode(record.value)
                except EnvelopeError as exc:
                    poison.append((record, exc.reason, exc.detail))
                    continue
                try:
                    with conn.transaction():  # a savepoint: a bad record undoes only itself
                        outcomes.append(self._handler(conn, envelope))
                except BadTaskEvent as exc:
                    poison.append((record, "schema_violation", str(exc)))
        for outcome in outcomes:
            self._metrics.applied.labels(outcome).inc()
        if "scheduled" in outcomes:
            self._on_scheduled()
        return poison

    def checks(self) -> Mapping[str, bool]:
        return {"database": database_ready(self._pool)}

    def close(self) -> None:
        """The pool belongs to the service (the scheduler shares it)."""


def loop_settings(config: RemindersConfig) -> LoopSettings:
    return LoopSettings.of_app(APP_NAME, config, poll_timeout_ms=config.app.poll_timeout_ms)


class RemindersService:
    """The shared loop with `TaskChangeHandler` (this thread) and the scheduler (its own
    thread), on one pool."""

    def __init__(
        self,
        config: RemindersConfig,
        stop: threading.Event,
        metrics: RemindersMetrics | None = None,
    ) -> None:
        self.config = config
        self.stop = stop
        self.metrics = metrics or RemindersMetrics()
        self.loop: ConsumerLoop | None = None
        self.scheduler: Scheduler | None = None

    def ready(self) -> dict[str, bool]:
        loop, scheduler = self.loop, self.scheduler
        checks = loop.ready() if loop is not None else {"consumer": False, "database": False}
        checks["scheduler"] = bool(
            scheduler is not None and time.monotonic() - scheduler.last_cycle_ok < 30
        )
        return checks

    def run(self) -> None:
        cfg = self.config
        pool = make_pool(cfg.db.conninfo(), min_size=1, max_size=4, name=APP_NAME)
        self.scheduler = Scheduler(
            pool,
            lambda: make_producer(cfg.kafka, bootstrap_timeout_ms=3_000, max_block_ms=3_000),
            self.metrics,
            cfg.app,
        )
        handler = TaskChangeHandler(pool, self.metrics, on_scheduled=self.scheduler.wake)
        self.loop = ConsumerLoop(loop_settings(cfg), handler, self.stop, self.metrics)
        scheduler = threading.Thread(
            target=self.scheduler.run, args=(self.stop,), name="reminders-scheduler", daemon=True
        )
        scheduler.start()
        log.info("reminders scheduler started", extra={"publishes_to": cfg.app.reminders_topic})
        try:
            self.loop.run()
        finally:
            self.stop.set()
            self.scheduler.wake()
            scheduler.join(10)
            pool.close()
