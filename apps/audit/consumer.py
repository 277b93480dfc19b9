"""audit's handler: a polled batch -> one INSERT transaction; the loop commits offset+1 after it.

The Kafka side (clients, stop, commits, lag, dead letters, close) is the shared loop
(`apps.common.consumer_loop`); this module says what a batch means to the audit log.

Exactly-once *effect* from at-least-once delivery: the loop commits a batch's offsets only after
its transaction committed, and `event_id` is the primary key with ON CONFLICT DO NOTHING, so a
batch replayed after a crash (committed rows, uncommitted offsets) changes nothing.

Poison records (undecodable envelopes) go to the dead-letter topic (acked) before the batch's
offsets are committed; if the process dies in between, the redelivery dead-letters them again,
so the dead-letter topic is at-least-once while the audit log stays exactly-once.

Pipelining: while batches' INSERTs run on the writer threads (`AUDIT_WRITERS`, one connection
each), the loop polls and this handler validates the next one; PostgreSQL works in its own
processes, so they overlap. The loop keeps at most `writers` batches in flight and commits them
in poll order (asynchronously: a lost commit is a redelivery that ON CONFLICT absorbs). Records
are checked with `canonical_json`, which hands the validated bytes on as they arrived; the
database extracts the columns (see `store.insert_batch`).

A record that decodes but that PostgreSQL refuses to store (e.g. a NUL character, which `text`
and `jsonb` cannot hold) would fail its whole batch forever; the writer then inserts the batch
row by row and hands the refused records back to be dead-lettered ("storage_rejected").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
from kafka.structs import TopicPartition
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind
from psycopg_pool import ConnectionPool

from apps.audit import store
from apps.audit.metrics import AuditMetrics
from apps.audit.settings import AuditConfig
from apps.common.consumer import database_ready
from apps.common.consumer_loop import (
    Batch,
    ConsumerLoop,
    DeadLetterSink,
    HandBack,
    LoopContext,
    LoopSettings,
)
from apps.common.db import make_pool
from apps.common.envelope import EnvelopeError, canonical_json
from apps.common.tracing import max_span_links, span_context_of

log = logging.getLogger(__name__)
tracer = trace.get_tracer("apps.audit")

DB_RETRY_S = 0.2
DB_RETRY_MAX_S = 5.0


@dataclass(frozen=True)
class WriteResult:
    inserted: int
    rejected: list[tuple[store.AuditRecord, str]]
    """Records PostgreSQL refused to store, with the database's reason."""


@dataclass
class WrittenBatch:
    """A batch whose insert runs on a writer thread; `result()` (on the loop's thread) waits
    for it, dead-letters the refused rows and returns the offsets now durable."""

    future: Future[WriteResult]
    offsets: dict[TopicPartition, int]
    good: int
    sources: dict[int, Any]  # id(AuditRecord) -> the ConsumerRecord, for dead-lettering
    dead_letters: DeadLetterSink
    metrics: AuditMetrics

    def done(self) -> bool:
        return self.future.done()

    def result(self) -> Mapping[TopicPartition, int]:
        written = self.future.result()  # raises HandBack: leave the offsets uncommitted
        for record, reason in written.rejected:
            self.dead_letters.send(
                self.sources[id(record)],
                reason="storage_rejected",
                detail=reason,
                error=reason[:200],
            )
        stored = self.good - len(written.rejected)
        self.metrics.inserted.inc(written.inserted)
        self.metrics.duplicates.inc(stored - written.inserted)
        return self.offsets


class AuditHandler:
    """Validates a batch on the loop's thread and writes it on a writer thread."""

    def __init__(self, config: AuditConfig, metrics: AuditMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self._pool: ConnectionPool | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._stop = threading.Event()
        self._dead_letters: DeadLetterSink | None = None

    def open(self, context: LoopContext) -> None:
        app = self.config.app
        self._stop = context.stop
        self._dead_letters = context.dead_letters
        # One connection per writer, plus one for the readiness probe.
        self._pool = make_pool(
            self.config.db.conninfo, min_size=1, max_size=app.writers + 1, name="audit"
        )
        self._writer = ThreadPoolExecutor(
            max_workers=app.writers, thread_name_prefix="audit-writer"
        )
        log.info("audit writing", extra={"writers": app.writers, "batch_size": app.batch_size})

    def checks(self) -> dict[str, bool]:
        return {"database": database_ready(self._pool)}

    def close(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)
        if self._pool is not None:
            self._pool.close()

    def handle(self, batch: Batch) -> WrittenBatch:
        """Decode, dead-letter poison, and start the insert."""
        assert self._writer is not None and self._dead_letters is not None
        records = batch.records
        self.metrics.batch_size.observe(len(records))
        # One span per batch, linked to its records' publish spans: a batch has many parents,
        # which is what span links are for. At most the SDK's link limit (128 by default,
        # OTEL_SPAN_LINK_COUNT_LIMIT): the records of a bigger batch beyond it are not linked.
        links = [Link(span_context_of(r.headers)) for r in records[: max_span_links()]]
        with tracer.start_as_current_span(
            "audit.batch", kind=SpanKind.CONSUMER, links=[lk for lk in links if lk.context.is_valid]
        ) as span:
            span.set_attribute("messaging.batch.message_count", len(records))
            # A dead-letter publish that fails raises here: the loop re-reads the batch.
            good, sources = self._dead_letter_poison(self._dead_letters, records)
        return WrittenBatch(
            future=self._writer.submit(self._write_durably, good),
            offsets=batch.end_offsets(),
            good=len(good),
            sources=sources,
            dead_letters=self._dead_letters,
            metrics=self.metrics,
        )

    def _dead_letter_poison(
        self, dead_letters: DeadLetterSink, records: list[Any]
    ) -> tuple[list[store.AuditRecord], dict[int, Any]]:
        good: list[store.AuditRecord] = []
        sources: dict[int, Any] = {}
        for record in records:
            try:
                envelope_json = canonical_json(record.value)
            except EnvelopeError as exc:
                dead_letters.send(record, reason=exc.reason, detail=exc.detail)
                continue
            audit_record = store.AuditRecord(
                envelope_json, record.topic, record.partition, record.offset
            )
            good.append(audit_record)
            sources[id(audit_record)] = record
        return good, sources

    def _write_durably(self, good: list[store.AuditRecord]) -> WriteResult:
        """Insert the batch, retrying through database outages until it commits or we stop.

        Runs on a writer thread.
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
                self.metrics.failures.labels("database").inc()
                if self._stop.is_set():
                    raise HandBack("database unavailable while stopping") from exc
                log.warning(
                    "database unavailable; retrying batch",
                    extra={"error": type(exc).__name__, "retry_in_s": delay},
                )
                self._stop.wait(delay)
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


def loop_settings(config: AuditConfig) -> LoopSettings:
    app = config.app
    return LoopSettings.of_app(
        "audit",
        config,
        consumer_options={
            "max_poll_records": app.batch_size,
            "max_partition_fetch_bytes": app.fetch_partition_bytes,
        },
        poll_timeout_ms=app.poll_timeout_ms,
        max_records=app.batch_size,
        in_flight=app.writers,
        # The next batch need not wait for the coordinator's round trip (about an eighth of the
        # loop thread's time when commits were synchronous).
        async_commits=True,
    )


class AuditService(ConsumerLoop):
    """The audit consumer: the shared loop running `AuditHandler`."""

    metrics: AuditMetrics

    def __init__(
        self, config: AuditConfig, stop: threading.Event, metrics: AuditMetrics | None = None
    ) -> None:
        metrics = metrics or AuditMetrics()
        super().__init__(loop_settings(config), AuditHandler(config, metrics), stop, metrics)
        self.config = config
