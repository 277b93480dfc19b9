"""The reminders app's Kafka loop over task changes, and the service that runs it beside the
scheduler.

The loop knows nothing about reminders: it polls, decodes, hands each envelope to `handle`
(apps/reminders/handler.py) inside ONE transaction per polled batch, dead-letters what cannot
be used, and commits offset+1 only after that transaction committed. A crash in between
replays the batch, which the handler's version check turns into no-ops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import psycopg
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition
from psycopg_pool import ConnectionPool

from apps.common.consumer import readiness
from apps.common.db import make_pool
from apps.common.envelope import EnvelopeError, EventEnvelope, decode
from apps.common.kafka import dead_letter, make_consumer, make_producer
from apps.reminders.handler import BadTaskEvent, Outcome, handle
from apps.reminders.metrics import RemindersMetrics
from apps.reminders.scheduler import Scheduler
from apps.reminders.settings import RemindersConfig

log = logging.getLogger(__name__)

Handler = Callable[[psycopg.Connection[Any], EventEnvelope], Outcome]
DB_RETRY_MAX_S = 5.0


class TaskChangeLoop:
    """Poll -> handle each record in one transaction -> commit offsets; poison to the DLQ."""

    def __init__(
        self,
        config: RemindersConfig,
        pool: ConnectionPool,
        stop: threading.Event,
        metrics: RemindersMetrics,
        handler: Handler = handle,
        on_scheduled: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.pool = pool
        self.stop = stop
        self.metrics = metrics
        self.handler = handler
        self.on_scheduled = on_scheduled
        self.last_poll = 0.0
        self.running = False

    def run(self) -> None:
        cfg = self.config
        producer = make_producer(cfg.kafka)
        consumer = make_consumer(
            cfg.kafka, cfg.app.consumer_group, cfg.app.topics, **cfg.tuning.overrides()
        )
        self.running = True
        try:
            while not self.stop.is_set():
                self.last_poll = time.monotonic()
                batch = consumer.poll(timeout_ms=cfg.app.poll_timeout_ms)
                if batch:
                    self._process(consumer, producer, batch)
        finally:
            self.running = False
            for closer in (lambda: consumer.close(autocommit=False), lambda: producer.close(5)):
                try:
                    closer()
                except Exception:
                    log.exception("error while closing")

    def _process(
        self,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        batch: Mapping[TopicPartition, list[Any]],
    ) -> None:
        started = time.perf_counter()
        for tp, records in batch.items():
            self.metrics.consumed.labels(tp.topic).inc(len(records))
        delay = 0.2
        while not self.stop.is_set():
            try:
                poison = self._apply(batch)
                break
            except (psycopg.Error, OSError) as exc:
                # The database is away: keep the batch (nothing was committed) and retry; the
                # offsets stay where they are until it succeeds.
                self.metrics.failed.labels("database").inc()
                log.warning("database unavailable; retrying the batch", extra={"error": str(exc)})
                self.stop.wait(delay)
                delay = min(DB_RETRY_MAX_S, delay * 2)
        else:
            return  # stopping: hand the batch back uncommitted
        try:
            for record, reason, detail in poison:
                dead_letter(
                    producer,
                    self.config.app.dead_letter_topic,
                    record,
                    reason,
                    detail,
                    1,
                    self.config.app.consumer_group,
                )
                self.metrics.dead_lettered.labels(reason).inc()
        except Exception:
            log.exception("dead-lettering failed; the batch will be redelivered")
            for tp, records in batch.items():
                consumer.seek(tp, records[0].offset)
            return
        self._commit(consumer, {tp: records[-1].offset + 1 for tp, records in batch.items()})
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self._update_lag(consumer, batch)

    def _apply(self, batch: Mapping[TopicPartition, list[Any]]) -> list[tuple[Any, str, str]]:
        """Every usable record applied in one transaction; returns the poison ones."""
        poison: list[tuple[Any, str, str]] = []
        outcomes: list[Outcome] = []
        with self.pool.connection() as conn, conn.transaction():
            for records in batch.values():
                for record in records:
                    try:
                        envelope = decode(record.value)
                    except EnvelopeError as exc:
                        poison.append((record, exc.reason, exc.detail))
                        continue
                    try:
                        with conn.transaction():  # a savepoint: a bad record undoes only itself
                            outcomes.append(self.handler(conn, envelope))
                    except BadTaskEvent as exc:
                        poison.append((record, "schema_violation", str(exc)))
        for outcome in outcomes:
            self.metrics.applied.labels(outcome).inc()
        if "scheduled" in outcomes:
            self.on_scheduled()
        return poison

    def _commit(self, consumer: KafkaConsumer, offsets: Mapping[TopicPartition, int]) -> None:
        try:
            consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
        except KafkaError as exc:
            # Not fatal: the batch is applied, so its redelivery is a no-op.
            log.warning(
                "offset commit failed; records will be redelivered", extra={"error": repr(exc)}
            )

    def _update_lag(
        self, consumer: KafkaConsumer, batch: Mapping[TopicPartition, list[Any]]
    ) -> None:
        lag = 0
        assigned = consumer.assignment()
        for tp, records in batch.items():
            high = consumer.highwater(tp) if tp in assigned else None
            if high is not None and records:
                lag += max(0, high - records[-1].offset - 1)
        self.metrics.lag.set(lag)


class RemindersService:
    """The task-change loop (main thread) and the scheduler (its own thread), one pool."""

    def __init__(
        self,
        config: RemindersConfig,
        stop: threading.Event,
        metrics: RemindersMetrics | None = None,
    ) -> None:
        self.config = config
        self.stop = stop
        self.metrics = metrics or RemindersMetrics()
        self._pool: ConnectionPool | None = None
        self.loop: TaskChangeLoop | None = None
        self.scheduler: Scheduler | None = None

    def ready(self) -> dict[str, bool]:
        loop, scheduler = self.loop, self.scheduler
        checks = readiness(bool(loop and loop.running), loop.last_poll if loop else 0.0, self._pool)
        checks["scheduler"] = bool(
            scheduler is not None and time.monotonic() - scheduler.last_cycle_ok < 30
        )
        return checks

    def run(self) -> None:
        cfg = self.config
        self._pool = make_pool(cfg.db.conninfo(), min_size=1, max_size=4, name="reminders")
        self.scheduler = Scheduler(
            self._pool,
            lambda: make_producer(cfg.kafka, bootstrap_timeout_ms=3_000, max_block_ms=3_000),
            cfg.app.reminders_topic,
            self.metrics,
            batch=cfg.app.fire_batch,
            idle_s=cfg.app.idle_s,
            max_backoff_s=cfg.app.max_backoff_s,
            publish_timeout_s=cfg.app.publish_timeout_s,
            late_after_ms=cfg.app.late_after_ms,
        )
        self.loop = TaskChangeLoop(
            cfg, self._pool, self.stop, self.metrics, on_scheduled=self.scheduler.wake
        )
        scheduler = threading.Thread(
            target=self.scheduler.run, args=(self.stop,), name="reminders-scheduler", daemon=True
        )
        scheduler.start()
        log.info(
            "reminders started",
            extra={"topics": list(cfg.app.topics), "publishes_to": cfg.app.reminders_topic},
        )
        try:
            self.loop.run()
        finally:
            self.stop.set()
            self.scheduler.wake()
            scheduler.join(10)
            self._pool.close()
            log.info("reminders stopped")
