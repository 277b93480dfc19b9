"""audit's Kafka loop: poll a batch -> one INSERT transaction -> commit offset+1 per partition.

Exactly-once *effect* from at-least-once delivery: offsets are committed only after the batch's
transaction committed, and `event_id` is the primary key with ON CONFLICT DO NOTHING, so a batch
replayed after a crash (committed rows, uncommitted offsets) changes nothing.

Poison records (undecodable envelopes) go to the dead-letter topic (flushed) before the batch's
offsets are committed; if the process dies in between, the redelivery dead-letters them again,
so the dead-letter topic is at-least-once while the audit log stays exactly-once.

Pipelining: while batches' INSERTs run on the writer threads (`AUDIT_WRITERS`, one connection
each), the main thread polls and validates the next one; PostgreSQL works in its own
processes, so they overlap. At most `writers` batches are in flight, and offsets are committed
only after a batch's insert returned AND every older batch's did, in poll order, so the commit
rule above is unchanged. Records are checked with `canonical_json`, which hands the validated
bytes on as they arrived; the database extracts the columns (see `store.insert_batch`).

A record that decodes but that PostgreSQL refuses to store (e.g. a NUL character, which `text`
and `jsonb` cannot hold) would fail its whole batch forever; the writer then inserts the batch
row by row and hands the refused records back to be dead-lettered ("storage_rejected").
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
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
from apps.common.consumer import readiness
from apps.common.db import make_pool
from apps.common.envelope import EnvelopeError, canonical_json
from apps.common.kafka import dead_letter, make_consumer, make_producer
from apps.common.tracing import max_span_links, span_context_of

log = logging.getLogger(__name__)
tracer = trace.get_tracer("apps.audit")

DB_RETRY_S = 0.2
DB_RETRY_MAX_S = 5.0
RECOVERY_BACKOFF_S = 1.0


class Stopping(Exception):
    """Stop requested while the batch was not yet durable: leave its offsets uncommitted."""


@dataclass(frozen=True)
class WriteResult:
    inserted: int
    rejected: list[tuple[store.AuditRecord, str]]
    """Records PostgreSQL refused to store, with the database's reason."""


@dataclass
class InFlight:
    """A batch whose insert runs on the writer thread; committed once `future` is done."""

    future: Future[WriteResult]
    offsets: dict[TopicPartition, int]
    records: int
    good: int
    sources: dict[int, Any]  # id(AuditRecord) -> the ConsumerRecord, for dead-lettering
    started: float


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
        self._latest_offsets: dict[TopicPartition, int] = {}

    def ready(self) -> dict[str, bool]:
        return readiness(self.running, self.last_poll, self._pool)

    def run(self) -> None:
        cfg = self.config
        # One connection per writer, plus one for the readiness probe.
        self._pool = make_pool(
            cfg.db.conninfo(), min_size=1, max_size=cfg.app.writers + 1, name="audit"
        )
        producer = make_producer(cfg.kafka)
        consumer = make_consumer(
            cfg.kafka,
            cfg.app.consumer_group,
            cfg.app.topics,
            max_poll_records=cfg.app.batch_size,
            max_partition_fetch_bytes=cfg.app.fetch_partition_bytes,
            **cfg.tuning.overrides(),
        )
        writers = cfg.app.writers
        writer = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="audit-writer")
        # Oldest first: batches are finished (and their offsets committed) in poll order.
        in_flight: deque[InFlight] = deque()
        self.running = True
        log.info("audit started", extra={"topics": list(cfg.app.topics), "writers": writers})
        try:
            while not self.stop.is_set():
                self.last_poll = time.monotonic()
                batch = consumer.poll(
                    timeout_ms=cfg.app.poll_timeout_ms, max_records=cfg.app.batch_size
                )
                if batch:
                    prepared = self._prepare(consumer, producer, batch, writer)
                    if prepared is not None:
                        in_flight.append(prepared)
                # Popped before finishing: if finishing raises Stopping, nothing is finished twice.
                while in_flight and (len(in_flight) > writers or in_flight[0].future.done()):
                    self._finish(consumer, producer, in_flight.popleft())
        except Stopping:
            # Later batches stay uncommitted too: their offsets would cover the one handed back.
            log.info("stopping: the batches in flight are handed back uncommitted")
            in_flight.clear()
        finally:
            self.running = False
            try:
                while in_flight:
                    self._finish(consumer, producer, in_flight.popleft())
            except Stopping:
                log.info("stopping: the batches in flight are handed back uncommitted")
            except Exception:
                log.exception("could not finish the batches in flight; they will be redelivered")
            if self._latest_offsets:
                assigned = consumer.assignment()
                mine = {tp: o for tp, o in self._latest_offsets.items() if tp in assigned}
                if mine:
                    self._commit(consumer, mine, wait=True)
            writer.shutdown(wait=True)
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

    def _prepare(
        self,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        batch: Mapping[TopicPartition, list[Any]],
        writer: ThreadPoolExecutor,
    ) -> InFlight | None:
        """Decode, dead-letter poison, and start the insert; None if the batch must be re-read."""
        started = time.perf_counter()
        records = [r for rs in batch.values() for r in rs]
        for tp, rs in batch.items():
            self.metrics.consumed.labels(tp.topic).inc(len(rs))
        self.metrics.batch_size.observe(len(records))
        # One span per batch, linked to its records' publish spans: a batch has many parents,
        # which is what span links are for. At most the SDK's link limit (128 by default,
        # OTEL_SPAN_LINK_COUNT_LIMIT): the records of a bigger batch beyond it are not linked.
        links = [Link(span_context_of(r.headers)) for r in records[: max_span_links()]]
        with tracer.start_as_current_span(
            "audit.batch", kind=SpanKind.CONSUMER, links=[lk for lk in links if lk.context.is_valid]
        ) as span:
            span.set_attribute("messaging.batch.message_count", len(records))
            try:
                good, sources = self._dead_letter_poison(producer, records)
            except KafkaError:
                log.exception("dead-letter publish failed; batch will be retried")
                self.metrics.failed.labels("dead_letter").inc()
                for tp, rs in batch.items():
                    consumer.seek(tp, rs[0].offset)
                self.stop.wait(RECOVERY_BACKOFF_S)
                return None
        return InFlight(
            future=writer.submit(self._write_durably, good),
            offsets={tp: rs[-1].offset + 1 for tp, rs in batch.items() if rs},
            records=len(records),
            good=len(good),
            sources=sources,
            started=started,
        )

    def _finish(self, consumer: KafkaConsumer, producer: KafkaProducer, batch: InFlight) -> None:
        """Wait for the batch's insert, dead-letter refused rows, then commit its offsets."""
        result = batch.future.result()  # raises Stopping: leave the offsets uncommitted
        app = self.config.app
        for record, reason in result.rejected:
            dead_letter(
                producer,
                app.dead_letter_topic,
                batch.sources[id(record)],
                "storage_rejected",
                reason,
                1,
                app.consumer_group,
            )
            self.metrics.dead_lettered.labels("storage_rejected").inc()
            log.warning(
                "record refused by the database, dead-lettered",
                extra={"topic": record.topic, "offset": record.offset, "error": reason[:200]},
            )
        stored = batch.good - len(result.rejected)
        self.metrics.inserted.inc(result.inserted)
        self.metrics.duplicates.inc(stored - result.inserted)
        self.metrics.processed.inc(batch.records)
        self._commit(consumer, batch.offsets)
        self.metrics.batch_seconds.observe(time.perf_counter() - batch.started)
        self._update_lag(consumer, batch.offsets)

    def _dead_letter_poison(
        self, producer: KafkaProducer, records: list[Any]
    ) -> tuple[list[store.AuditRecord], dict[int, Any]]:
        app = self.config.app
        good: list[store.AuditRecord] = []
        sources: dict[int, Any] = {}
        for record in records:
            try:
                envelope_json = canonical_json(record.value)
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
            audit_record = store.AuditRecord(
                envelope_json, record.topic, record.partition, record.offset
            )
            good.append(audit_record)
            sources[id(audit_record)] = record
        return good, sources

    def _write_durably(self, good: list[store.AuditRecord]) -> WriteResult:
        """Insert the batch, retrying through database outages until it commits or we stop.

        Runs on the writer thread.
        """
        assert self._pool is not None
        if not good:
            return WriteResult(0, [])
        delay = DB_RETRY_S
        while True:
            try:
                try:
                    with self._pool.connection() as conn:
                        inserted = store.insert_batch(conn, good)
                    result = WriteResult(inserted, [])
                except (psycopg.DataError, psycopg.IntegrityError):
                    result = self._write_one_by_one(good)
                log.debug("batch written", extra={"records": len(good), "new": result.inserted})
                return result
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

    def _write_one_by_one(self, good: list[store.AuditRecord]) -> WriteResult:
        """Find the rows the database refuses; each row in its own transaction."""
        assert self._pool is not None
        inserted, rejected = 0, []
        with self._pool.connection() as conn:
            for record in good:
                try:
                    with conn.transaction():
                        inserted += store.insert_batch(conn, [record])
                except (psycopg.DataError, psycopg.IntegrityError) as exc:
                    rejected.append((record, f"{type(exc).__name__}: {exc}"))
        return WriteResult(inserted, rejected)

    def _commit(
        self, consumer: KafkaConsumer, offsets: Mapping[TopicPartition, int], *, wait: bool = False
    ) -> None:
        """Commit after the rows are durable; asynchronous unless `wait`.

        The next batch need not wait for the coordinator's round trip (about an eighth of the
        main thread's time when the commit was synchronous): a commit that is lost, or arrives
        after a rebalance and is refused, only means a redelivery that ON CONFLICT absorbs.
        Commits go out in order on one connection. Before leaving the group the newest offsets
        are committed again with `wait`, so a clean shutdown hands back nothing."""
        self._latest_offsets.update(offsets)
        payload = {tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()}
        try:
            if wait:
                consumer.commit(payload)
            else:
                consumer.commit_async(payload, callback=self._commit_done)
        except KafkaError as exc:
            # The rows are durable; an uncommitted offset only means a harmless redelivery.
            log.warning(
                "offset commit failed; batch may be redelivered", extra={"error": repr(exc)}
            )

    def _commit_done(self, offsets: Any, response: Any) -> None:
        if isinstance(response, Exception):
            self.metrics.failed.labels("offset_commit").inc()
            log.warning(
                "offset commit failed; batch may be redelivered", extra={"error": repr(response)}
            )

    def _update_lag(self, consumer: KafkaConsumer, offsets: Mapping[TopicPartition, int]) -> None:
        lag = 0
        assigned = consumer.assignment()
        for tp, next_offset in offsets.items():
            # A rebalance during the last poll may have moved the partition elsewhere.
            high = consumer.highwater(tp) if tp in assigned else None
            if high is not None:
                lag += max(0, high - next_offset)
        self.metrics.lag.set(lag)
