"""audit's Kafka loop: poll a batch -> one INSERT transaction -> commit offset+1 per partition.

Exactly-once *effect* from at-least-once delivery: offsets are committed only after the batch's
transaction committed, and `event_id` is the primary key with ON CONFLICT DO NOTHING, so a batch
replayed after a crash (committed rows, uncommitted offsets) changes nothing.

Poison records (undecodable envelopes) go to the dead-letter topic (flushed) before the batch's
offsets are committed; if the process dies in between, the redelivery dead-letters them again,
so the dead-letter topic is at-least-once while the audit log stays exactly-once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import psycopg
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind
from psycopg_pool import ConnectionPool

from apps.audit import store
from apps.audit.metrics import AuditMetrics
from apps.audit.settings import AuditConfig
from apps.common.db import make_pool
from apps.common.envelope import EnvelopeError, decode
from apps.common.kafka import dead_letter, make_consumer, make_producer
from apps.common.logging import correlation_scope
from apps.common.tracing import extract_context

log = logging.getLogger(__name__)
tracer = trace.get_tracer("apps.audit")

DB_RETRY_S = 0.2
DB_RETRY_MAX_S = 5.0
RECOVERY_BACKOFF_S = 1.0
MAX_SPAN_LINKS = 32


class Stopping(Exception):
    """Stop requested while the batch was not yet durable: leave its offsets uncommitted."""


class AuditService:
    def __init__(
        self, config: AuditConfig, stop: threading.Event, metrics: AuditMetrics | None = None
    ) -> None:
        self.config = config
        self.stop = stop
        self.metrics = metrics or AuditMetrics()
        self.last_poll = 0.0
        self.running = False
        self._pool: ConnectionPool | None = None

    def ready(self) -> dict[str, bool]:
        polled_recently = self.running and time.monotonic() - self.last_poll < 30
        db_ok = False
        if self._pool is not None:
            try:
                with self._pool.connection(timeout=2) as conn:
                    db_ok = conn.execute("SELECT 1").fetchone() is not None
            except Exception:  # any failure means "not ready"
                db_ok = False
        return {"consumer": polled_recently, "database": db_ok}

    def run(self) -> None:
        cfg = self.config
        self._pool = make_pool(cfg.db.conninfo(), min_size=1, max_size=2, name="audit")
        producer = make_producer(cfg.kafka)
        consumer = make_consumer(
            cfg.kafka,
            cfg.app.consumer_group,
            cfg.app.topics,
            max_poll_records=cfg.app.batch_size,
            **cfg.tuning.overrides(),
        )
        self.running = True
        log.info("audit started", extra={"topics": list(cfg.app.topics)})
        try:
            while not self.stop.is_set():
                self.last_poll = time.monotonic()
                batch = consumer.poll(
                    timeout_ms=cfg.app.poll_timeout_ms, max_records=cfg.app.batch_size
                )
                if batch:
                    self._process_batch(consumer, producer, batch)
        finally:
            self.running = False
            for closer in (
                lambda: consumer.close(autocommit=False),  # sends LeaveGroup
                lambda: producer.close(timeout=5),
                self._pool.close,
            ):
                try:
                    closer()
                except Exception:
                    log.exception("error while closing")
            log.info("audit stopped")

    def _process_batch(
        self,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        batch: Mapping[TopicPartition, list[Any]],
    ) -> None:
        started = time.perf_counter()
        records = [r for rs in batch.values() for r in rs]
        for tp, rs in batch.items():
            self.metrics.consumed.labels(tp.topic).inc(len(rs))
        self.metrics.batch_size.observe(len(records))
        # One span per batch, linked to (a sample of) the producers' spans: a batch has many
        # parents, which is what span links are for.
        links = [
            Link(trace.get_current_span(extract_context(r.headers)).get_span_context())
            for r in records[:MAX_SPAN_LINKS]
        ]
        with tracer.start_as_current_span(
            "audit.batch", kind=SpanKind.CONSUMER, links=[lk for lk in links if lk.context.is_valid]
        ) as span:
            span.set_attribute("messaging.batch.message_count", len(records))
            try:
                good = self._dead_letter_poison(producer, records)
                inserted = self._insert_durably(good)
            except Stopping:
                log.info("stopping: batch handed back uncommitted", extra={"records": len(records)})
                return
            except KafkaError:
                log.exception("dead-letter publish failed; batch will be retried")
                self.metrics.failed.labels("dead_letter").inc()
                for tp, rs in batch.items():
                    consumer.seek(tp, rs[0].offset)
                self.stop.wait(RECOVERY_BACKOFF_S)
                return
        self.metrics.inserted.inc(inserted)
        self.metrics.duplicates.inc(len(good) - inserted)
        self.metrics.processed.inc(len(records))
        self._commit(consumer, {tp: rs[-1].offset + 1 for tp, rs in batch.items() if rs})
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self._update_lag(consumer, batch)

    def _dead_letter_poison(
        self, producer: KafkaProducer, records: list[Any]
    ) -> list[store.AuditRecord]:
        app = self.config.app
        good: list[store.AuditRecord] = []
        for record in records:
            try:
                envelope = decode(record.value)
            except EnvelopeError as exc:
                dead_letter(
                    producer,
                    app.dead_letter_topic,
                    record,
                    exc.reason,
                    exc.detail,
                    1,
                    app.consumer_group,
                )
                self.metrics.dead_lettered.labels(exc.reason).inc()
                log.warning(
                    "undecodable record dead-lettered",
                    extra={
                        "topic": record.topic,
                        "partition": record.partition,
                        "offset": record.offset,
                        "reason": exc.reason,
                    },
                )
                continue
            good.append(store.AuditRecord(envelope, record.topic, record.partition, record.offset))
        return good

    def _insert_durably(self, good: list[store.AuditRecord]) -> int:
        """Insert the batch, retrying through database outages until it commits or we stop."""
        assert self._pool is not None
        if not good:
            return 0
        delay = DB_RETRY_S
        while True:
            try:
                with self._pool.connection() as conn:
                    inserted = store.insert_batch(conn, good)
                # Log one line per batch, with the first record's correlation id for context.
                with correlation_scope(good[0].envelope.correlation_id):
                    log.debug("batch written", extra={"records": len(good), "inserted": inserted})
                return inserted
            except psycopg.OperationalError as exc:
                self.metrics.failed.labels("database").inc()
                if self.stop.is_set():
                    raise Stopping from exc
                log.warning(
                    "database unavailable; retrying batch",
                    extra={"error": type(exc).__name__, "retry_in_s": delay},
                )
                self.stop.wait(delay)
                delay = min(DB_RETRY_MAX_S, delay * 2)

    def _commit(self, consumer: KafkaConsumer, offsets: Mapping[TopicPartition, int]) -> None:
        try:
            consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
        except KafkaError as exc:
            # The rows are durable; an uncommitted offset only means a harmless redelivery.
            log.warning(
                "offset commit failed; batch may be redelivered", extra={"error": repr(exc)}
            )

    def _update_lag(
        self, consumer: KafkaConsumer, batch: Mapping[TopicPartition, list[Any]]
    ) -> None:
        lag = 0
        for tp, rs in batch.items():
            high = consumer.highwater(tp)
            if high is not None and rs:
                lag += max(0, high - (rs[-1].offset + 1))
        self.metrics.lag.set(lag)
