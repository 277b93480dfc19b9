"""The notifier's Kafka loop: poll, decode, route, deliver, then commit what is durable.

Offsets are committed only for records whose outcome is in PostgreSQL (sent/dead) or in the
dead-letter topic (flushed). A stop request (SIGTERM) is honoured between records and during
retry waits: the record in hand is handed back (its offset is not committed) and is redelivered
to whichever member gets the partition next; the delivery table makes that redelivery safe.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

import httpx
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from psycopg_pool import ConnectionPool

from apps.common.consumer import readiness
from apps.common.db import make_pool
from apps.common.envelope import EnvelopeError, EventEnvelope, decode
from apps.common.kafka import dead_letter, make_consumer, make_producer
from apps.common.logging import correlation_scope
from apps.common.tracing import extract_context
from apps.notifier.delivery import Deliverer, HandBack
from apps.notifier.metrics import NotifierMetrics
from apps.notifier.retry import Outcome, Verdict
from apps.notifier.routing import channels_for
from apps.notifier.settings import NotifierConfig
from apps.notifier.store import DeliveryStore

log = logging.getLogger(__name__)
tracer = trace.get_tracer("apps.notifier")

POLL_TIMEOUT_MS = 500
RECOVERY_BACKOFF_S = 1.0


class NotifierService:
    def __init__(
        self, config: NotifierConfig, stop: threading.Event, metrics: NotifierMetrics | None = None
    ) -> None:
        self.config = config
        self.stop = stop
        self.metrics = metrics or NotifierMetrics()
        self.last_poll = 0.0
        self.running = False
        self._pool: ConnectionPool | None = None

    # --- probes (called from the health server thread) -----------------------------------------

    def ready(self) -> dict[str, bool]:
        # Not ready without a channel: every record would be consumed and delivered nowhere.
        channels = bool(self.config.app.routes())
        return {**readiness(self.running, self.last_poll, self._pool), "channels": channels}

    # --- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        cfg = self.config
        if not cfg.app.routes():
            self._wait_unconfigured()
            return
        self._pool = make_pool(cfg.db.conninfo, min_size=1, max_size=2, name="notifier")
        producer = make_producer(cfg.kafka)
        consumer = make_consumer(
            cfg.kafka, cfg.app.consumer_group, cfg.app.topics, **cfg.tuning.overrides()
        )
        http = httpx.Client(
            timeout=httpx.Timeout(cfg.app.http_timeout_s, connect=min(3.0, cfg.app.http_timeout_s)),
            follow_redirects=False,
        )
        store = DeliveryStore(self._pool, owner=f"notifier-{uuid.uuid4()}", lease_s=cfg.app.lease_s)
        deliverer = Deliverer(
            cfg.app.channels(),
            store,
            http,
            cfg.app.backoff(),
            self.stop,
            on_failed_attempt=lambda channel, outcome: self.metrics.failed_attempts.labels(
                channel, outcome.reason
            ).inc(),
        )
        routes = cfg.app.routes()
        self.running = True
        log.info(
            "notifier started",
            extra={"topics": list(cfg.app.topics), "channels": sorted(cfg.app.channels())},
        )
        try:
            while not self.stop.is_set():
                self.last_poll = time.monotonic()
                batch = consumer.poll(timeout_ms=POLL_TIMEOUT_MS)
                if batch:
                    self._process_batch(consumer, producer, deliverer, routes, batch)
        finally:
            self.running = False
            # Leave the group promptly (close() sends LeaveGroup) so the partitions move now,
            # not after the session timeout; autocommit=False: we committed what was durable.
            for closer in (
                lambda: consumer.close(autocommit=False),
                lambda: producer.close(timeout=5),
                http.close,
                self._pool.close,
            ):
                try:
                    closer()
                except Exception:
                    log.exception("error while closing")
            log.info("notifier stopped")

    def _wait_unconfigured(self) -> None:
        """With no channel there is nowhere to deliver: stay out of the consumer group (the
        records wait in Kafka) and say so, at start-up and on `/readyz`, until stopped."""
        log.error(
            "no notification channels configured: not consuming; set NOTIFIER_WEBHOOK_URL "
            "(or another channel's NOTIFIER_* credentials) and NOTIFIER_ROUTES",
            extra={"topics": list(self.config.app.topics)},
        )
        self.stop.wait()
        log.info("notifier stopped")

    def _process_batch(
        self,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        deliverer: Deliverer,
        routes: Any,
        batch: Mapping[TopicPartition, list[Any]],
    ) -> None:
        started = time.perf_counter()
        done: dict[TopicPartition, int] = {}
        try:
            for tp, records in batch.items():
                self.metrics.consumed.labels(tp.topic).inc(len(records))
            for tp, records in batch.items():
                for record in records:
                    self._process_record(producer, deliverer, routes, record)
                    done[tp] = record.offset + 1
                    self.metrics.processed.labels(tp.topic).inc()
        except HandBack:
            log.info("stopping: handing back the record in progress")
        except Exception:
            # Kafka (dead-letter publish) or an unexpected error: rewind every partition of
            # this batch to its first unfinished record and try again after a pause, rather
            # than commit past a record whose outcome is not durable.
            log.exception("record processing failed; will retry from the first unfinished record")
            for tp, records in batch.items():
                if records:
                    consumer.seek(tp, done.get(tp, records[0].offset))
            self.stop.wait(RECOVERY_BACKOFF_S)
        finally:
            self._commit(consumer, done)
            self.metrics.batch_seconds.observe(time.perf_counter() - started)
            self._update_lag(consumer, batch, done)

    def _process_record(
        self, producer: KafkaProducer, deliverer: Deliverer, routes: Any, record: Any
    ) -> None:
        app = self.config.app
        context = extract_context(record.headers)
        with tracer.start_as_current_span(
            "notifier.process", context=context, kind=SpanKind.CONSUMER
        ) as span:
            span.set_attribute("messaging.destination.name", record.topic)
            span.set_attribute("messaging.kafka.offset", record.offset)
            try:
                envelope: EventEnvelope = decode(record.value)
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
                    extra={"topic": record.topic, "offset": record.offset, "reason": exc.reason},
                )
                return
            with correlation_scope(envelope.correlation_id):
                span.set_attribute("event.id", str(envelope.id))

                def to_dlq(channel: str, outcome: Outcome, attempts: int) -> None:
                    reason = (
                        "delivery_attempts_exhausted"
                        if outcome.verdict is Verdict.TRANSIENT
                        else "delivery_rejected"
                    )
                    dead_letter(
                        producer,
                        app.dead_letter_topic,
                        record,
                        reason,
                        f"channel={channel} last={outcome.reason}",
                        attempts,
                        app.consumer_group,
                    )
                    self.metrics.dead_lettered.labels(reason).inc()

                for result in deliverer.deliver(envelope, channels_for(envelope, routes), to_dlq):
                    self.metrics.deliveries.labels(result.channel, result.status).inc()

    def _commit(self, consumer: KafkaConsumer, done: Mapping[TopicPartition, int]) -> None:
        if not done:
            return
        offsets = {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in done.items()}
        try:
            consumer.commit(offsets)
        except KafkaError as exc:
            # Not fatal: the records' outcomes are durable, so a redelivery is a no-op.
            log.warning(
                "offset commit failed; records will be redelivered", extra={"error": repr(exc)}
            )

    def _update_lag(
        self,
        consumer: KafkaConsumer,
        batch: Mapping[TopicPartition, list[Any]],
        done: Mapping[TopicPartition, int],
    ) -> None:
        lag = 0
        assigned = consumer.assignment()
        for tp in batch:
            # A rebalance during the last poll may have moved the partition elsewhere.
            high = consumer.highwater(tp) if tp in assigned else None
            if high is not None and tp in done:
                lag += max(0, high - done[tp])
        self.metrics.lag.set(lag)
