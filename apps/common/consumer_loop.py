"""The one Kafka consumer loop every bundled consumer runs; an app supplies only its handler.

The loop owns what the kafka-python and confluent-kafka examples teach, written once:

- **Clients**: a group consumer (`enable_auto_commit=False`) and an acks=all producer for dead
  letters, both made from the shared `KafkaSettings` (`apps.common.kafka`).
- **Stop**: a `threading.Event` that SIGTERM sets (`apps.common.stop`). The loop checks it
  between polls and hands it to the handler for its own waits.
- **Commit tracking**: a batch's offsets (offset+1 per partition) are committed only once the
  handler reports its work durable, and in poll order, so a later batch never commits past an
  earlier one still in flight. Commits are asynchronous while running when asked
  (`LoopSettings.async_commits`) and synchronous for the final one before leaving the group.
- **Metrics**: consumed and processed records, batch time, consumer lag, failures and dead
  letters, under the app's prefix (`ConsumerMetrics`).
- **Dead letters**: `DeadLetterSink.send(record, reason=..., detail=..., attempts=...)`
  publishes the original bytes with the reason in headers and waits for the ack, then counts and
  logs it.
- **Ordered close**, in `finally`: finish (or hand back) the batches in flight, commit, leave the
  group (`close()` sends LeaveGroup), close the handler, then flush and close the producer.

A handler (`BatchHandler`) says what a batch means. `handle(batch)` returns a `Pending`; its
`result()` gives, per partition, the next offset whose records' outcomes are now durable. A
handler that finishes inside `handle` returns `Completed(...)`. One that works in the background
(audit's writer threads) returns its own `Pending`, and the loop polls the next batch meanwhile,
up to `LoopSettings.in_flight` batches. `result()` raising `HandBack` means "stopping before this
was durable": that batch and every later one stay uncommitted and are redelivered.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from apps.common.kafka import (
    ConsumedRecord,
    KafkaSettings,
    dead_letter,
    make_consumer,
    make_producer,
)

log = logging.getLogger(__name__)

POLL_STALE_AFTER_S = 30.0
"""A consumer that has not polled for this long is not ready (stuck handler or lost group)."""

RECOVERY_BACKOFF_S = 1.0
"""Pause before re-reading a batch whose handling failed (e.g. the dead-letter topic refused)."""

Offsets = Mapping[TopicPartition, int]


class HandBack(Exception):
    """Stop was requested before the work was durable: leave its offsets uncommitted."""


class BatchIncomplete(Exception):
    """Handling failed part-way; `done` holds the offsets that ARE durable (committed first)."""

    def __init__(self, done: Offsets) -> None:
        super().__init__(f"batch incomplete; durable up to {dict(done)}")
        self.done = dict(done)


@dataclass(frozen=True)
class LoopSettings:
    """What the loop needs to know about one consumer app."""

    service: str
    """Name in logs ("<service> started" / "<service> stopped")."""
    group_id: str
    topics: Sequence[str]
    dead_letter_topic: str
    kafka: KafkaSettings
    consumer_options: Mapping[str, Any] = field(default_factory=dict)
    """kafka-python consumer arguments on top of the shared ones (group timings, fetch sizes)."""
    poll_timeout_ms: int = 500
    max_records: int | None = None
    in_flight: int = 1
    """Batches whose work may still be running while the next one is polled."""
    async_commits: bool = False
    """Commit without waiting for the coordinator (the final commit always waits)."""

    @classmethod
    def of_app(
        cls,
        service: str,
        config: Any,
        consumer_options: Mapping[str, Any] | None = None,
        **tuning: Any,
    ) -> LoopSettings:
        """What every consumer app's config holds the same way: `config.app`'s group, topics
        and dead-letter topic, `config.kafka`, and `config.tuning`'s group timings, to which
        `consumer_options` adds; `tuning` sets the other fields."""
        app = config.app
        return cls(
            service=service,
            group_id=app.consumer_group,
            topics=app.topics,
            dead_letter_topic=app.dead_letter_topic,
            kafka=config.kafka,
            consumer_options={**(consumer_options or {}), **config.tuning.overrides()},
            **tuning,
        )


class ConsumerMetrics:
    """The loop's Prometheus metrics under an app's prefix; apps subclass to add their own.

    Own registry by default, so several consumers (tests) can share one process."""

    def __init__(
        self,
        prefix: str,
        registry: CollectorRegistry | None = None,
        batch_buckets: Sequence[float] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    ) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            f"{prefix}_messages_consumed", "Records polled from Kafka", ["topic"], registry=r
        )
        self.processed = Counter(
            f"{prefix}_messages_processed",
            "Records whose outcome is durable and whose offset is committed or being committed",
            ["topic"],
            registry=r,
        )
        self.dead_lettered = Counter(
            f"{prefix}_dead_lettered",
            "Records sent to the dead-letter topic",
            ["reason"],
            registry=r,
        )
        self.failures = Counter(
            f"{prefix}_batch_failures",
            "Failed attempts that were retried (stage: what failed)",
            ["stage"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            f"{prefix}_batch_seconds",
            "Time from poll to durable outcome for one batch",
            registry=r,
            buckets=(*batch_buckets, 30, 60),
        )
        self.lag = Gauge(
            f"{prefix}_consumer_lag",
            "Records behind the high watermark (assigned partitions)",
            registry=r,
        )


@dataclass(frozen=True)
class Batch:
    """One poll's records, by partition, each partition's in offset order."""

    partitions: Mapping[TopicPartition, Sequence[Any]]

    @property
    def records(self) -> list[Any]:
        return [record for records in self.partitions.values() for record in records]

    def end_offsets(self) -> dict[TopicPartition, int]:
        """The offsets to commit once every record of the batch is durable."""
        return {tp: rs[-1].offset + 1 for tp, rs in self.partitions.items() if rs}

    def first_offsets(self) -> dict[TopicPartition, int]:
        return {tp: rs[0].offset for tp, rs in self.partitions.items() if rs}

    def count_before(self, offsets: Offsets) -> dict[str, int]:
        """Records per topic below `offsets` (what a commit of `offsets` covers)."""
        counts: dict[str, int] = {}
        for tp, records in self.partitions.items():
            end = offsets.get(tp)
            if end is not None:
                n = sum(1 for r in records if r.offset < end)
                counts[tp.topic] = counts.get(tp.topic, 0) + n
        return counts


class Pending(Protocol):
    """A batch's work; `result()` returns the durable offsets or raises `HandBack`."""

    def done(self) -> bool: ...

    def result(self) -> Offsets: ...


@dataclass(frozen=True)
class Completed:
    """Work that finished inside `handle`."""

    offsets: Offsets

    def done(self) -> bool:
        return True

    def result(self) -> Offsets:
        return self.offsets


class DeadLetterSink:
    """The one dead-letter path: publish (waiting for the ack), count by reason, log."""

    def __init__(
        self, producer: KafkaProducer, topic: str, consumer_group: str, metrics: ConsumerMetrics
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._group = consumer_group
        self._metrics = metrics

    def send(
        self,
        record: ConsumedRecord,
        *,
        reason: str,
        detail: str,
        attempts: int = 1,
        **context: Any,
    ) -> None:
        """Dead-letter `record`; raises the producer's error when the broker does not ack (the
        caller must then not commit the record's offset). `context` goes into the log line."""
        try:
            dead_letter(
                self._producer,
                record,
                topic=self._topic,
                reason=reason,
                detail=detail,
                attempts=attempts,
                consumer_group=self._group,
            )
        except KafkaError:
            self._metrics.failures.labels("dead_letter").inc()
            raise
        self._metrics.dead_lettered.labels(reason).inc()
        log.warning(
            "record dead-lettered",
            extra={
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "reason": reason,
                "attempts": attempts,
                "detail": detail[:200],
                **context,
            },
        )


@dataclass(frozen=True)
class LoopContext:
    """What a handler gets from the loop when it opens."""

    stop: threading.Event
    dead_letters: DeadLetterSink
    metrics: ConsumerMetrics
    producer: KafkaProducer
    """The loop's producer (acks=all, flushed on close), for handlers that publish."""


class BatchHandler(Protocol):
    """An app's part of a consumer: what a batch of records means."""

    def open(self, context: LoopContext) -> None:
        """Acquire the handler's own resources (pools, threads); the clients exist now."""

    def handle(self, batch: Batch) -> Pending: ...

    def checks(self) -> Mapping[str, bool]:
        """Readiness checks besides "polling recently" (e.g. {"database": True})."""
        ...

    def close(self) -> None:
        """Release what `open` acquired; the consumer has left the group, the producer is open."""


@dataclass
class _InFlight:
    batch: Batch
    pending: Pending
    started: float


class _Commits:
    """Commits in poll order; remembers the newest offsets for the final synchronous commit."""

    def __init__(self, consumer: KafkaConsumer, asynchronous: bool, metrics: ConsumerMetrics):
        self._consumer = consumer
        self._async = asynchronous
        self._metrics = metrics
        self._latest: dict[TopicPartition, int] = {}

    def commit(self, offsets: Offsets, *, wait: bool = False) -> None:
        """Asynchronous (when configured) unless `wait`: the next batch need not wait for the
        coordinator's round trip; a lost or refused commit only means a redelivery, which the
        handlers absorb (they are idempotent). Commits go out in order on one connection."""
        if not offsets:
            return
        self._latest.update(offsets)
        payload = {tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()}
        try:
            if self._async and not wait:
                self._consumer.commit_async(payload, callback=self._commit_done)
            else:
                self._consumer.commit(payload)
        except KafkaError as exc:
            self._failed(exc)

    def final(self) -> None:
        """Before leaving the group: the newest offsets of the partitions still ours, waited for,
        so a clean stop hands back nothing."""
        if not self._latest:
            return
        try:
            assigned = self._consumer.assignment()
        except Exception:  # the consumer may already be unusable; the records are redelivered
            return
        mine = {tp: o for tp, o in self._latest.items() if tp in assigned}
        self.commit(mine, wait=True)

    def _commit_done(self, offsets: Any, response: Any) -> None:
        if isinstance(response, Exception):
            self._failed(response)

    def _failed(self, exc: BaseException) -> None:
        # The work is durable; an uncommitted offset only means a harmless redelivery.
        self._metrics.failures.labels("offset_commit").inc()
        log.warning("offset commit failed; records may be redelivered", extra={"error": repr(exc)})


class ConsumerLoop:
    """Poll -> handler -> commit what is durable, until `stop` is set. Run `run()` once."""

    def __init__(
        self,
        settings: LoopSettings,
        handler: BatchHandler,
        stop: threading.Event,
        metrics: ConsumerMetrics,
    ) -> None:
        self.settings = settings
        self.handler = handler
        self.stop = stop
        self.metrics = metrics
        self.running = False
        self.last_poll = 0.0
        self.broker_unreachable = False
        """The last poll failed for want of a broker: not ready until one answers again."""

    def ready(self) -> dict[str, bool]:
        """`/readyz`: polling recently, plus the handler's own checks."""
        polled_recently = self.running and time.monotonic() - self.last_poll < POLL_STALE_AFTER_S
        consuming = polled_recently and not self.broker_unreachable
        return {"consumer": consuming, **self.handler.checks()}

    def run(self) -> None:
        s = self.settings
        producer = make_producer(s.kafka)
        consumer = make_consumer(s.kafka, s.group_id, s.topics, **s.consumer_options)
        commits = _Commits(consumer, s.async_commits, self.metrics)
        sink = DeadLetterSink(producer, s.dead_letter_topic, s.group_id, self.metrics)
        in_flight: deque[_InFlight] = deque()
        opened = False
        try:
            self.handler.open(LoopContext(self.stop, sink, self.metrics, producer))
            opened = True
            self.running = True
            log.info(f"{s.service} started", extra={"topics": list(s.topics)})
            while not self.stop.is_set():
                self.last_poll = time.monotonic()
                polled = self._poll(consumer)
                if polled:
                    self._submit(consumer, commits, Batch(polled), in_flight)
                while in_flight and (len(in_flight) > s.in_flight or in_flight[0].pending.done()):
                    self._finish_oldest(consumer, commits, in_flight)
        except HandBack:
            # Later batches stay uncommitted too: their offsets would cover the one handed back.
            log.info("stopping: the batches in flight are handed back uncommitted")
            in_flight.clear()
        finally:
            self.running = False
            self._close(consumer, producer, commits, in_flight, opened)

    def _poll(self, consumer: KafkaConsumer) -> Mapping[TopicPartition, list[Any]]:
        """One poll; a broker outage is waited out here instead of ending the process.

        kafka-python 3.0.x can let a failed metadata refresh escape `poll()` while it looks up
        the group coordinator (`KafkaConnectionError: 111 ECONNREFUSED` with the broker down).
        The consumer stays usable: it reconnects and rejoins on a later poll, and the records of
        the batches in flight are unaffected. Errors that are not retriable still end the loop."""
        s = self.settings
        try:
            polled = consumer.poll(timeout_ms=s.poll_timeout_ms, max_records=s.max_records)
        except KafkaError as exc:
            if not exc.retriable:
                raise
            self.metrics.failures.labels("poll").inc()
            if not self.broker_unreachable:
                log.warning("broker unreachable; polling again", extra={"error": repr(exc)})
            self.broker_unreachable = True
            self.stop.wait(RECOVERY_BACKOFF_S)
            return {}
        if self.broker_unreachable:
            log.info("broker reachable again")
        self.broker_unreachable = False
        return polled

    # --- batches -------------------------------------------------------------------------------

    def _submit(
        self,
        consumer: KafkaConsumer,
        commits: _Commits,
        batch: Batch,
        in_flight: deque[_InFlight],
    ) -> None:
        started = time.perf_counter()
        for tp, records in batch.partitions.items():
            self.metrics.consumed.labels(tp.topic).inc(len(records))
        try:
            pending = self.handler.handle(batch)
        except HandBack:
            raise
        except Exception as exc:
            # Older batches first (poll order), then whatever part of this one is durable;
            # the rest is read again after a pause instead of being committed past.
            while in_flight:
                self._finish_oldest(consumer, commits, in_flight)
            done = exc.done if isinstance(exc, BatchIncomplete) else {}
            log.exception("batch handling failed; re-reading from the first unfinished record")
            self.metrics.failures.labels("batch").inc()
            if done:
                self._record_done(consumer, commits, batch, done, started)
            self._rewind(consumer, [batch], done)
            return
        in_flight.append(_InFlight(batch, pending, started))

    def _finish_oldest(
        self, consumer: KafkaConsumer, commits: _Commits, in_flight: deque[_InFlight]
    ) -> None:
        oldest = in_flight[0]
        try:
            offsets = oldest.pending.result()
        except HandBack:
            raise
        except Exception as exc:
            # What this batch made durable is committed; nothing of the later ones, whose
            # offsets would cover the rest of it: all of that is read again.
            done = exc.done if isinstance(exc, BatchIncomplete) else {}
            log.exception("batch failed; re-reading it and every later batch")
            self.metrics.failures.labels("batch").inc()
            batches = [item.batch for item in in_flight]
            in_flight.clear()
            if done:
                self._record_done(consumer, commits, oldest.batch, done, oldest.started)
            self._rewind(consumer, batches, done)
            return
        in_flight.popleft()
        self._record_done(consumer, commits, oldest.batch, offsets, oldest.started)

    def _record_done(
        self,
        consumer: KafkaConsumer,
        commits: _Commits,
        batch: Batch,
        offsets: Offsets,
        started: float,
    ) -> None:
        commits.commit(offsets)
        for topic, n in batch.count_before(offsets).items():
            self.metrics.processed.labels(topic).inc(n)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self._update_lag(consumer, offsets)

    def _rewind(self, consumer: KafkaConsumer, batches: list[Batch], done: Offsets) -> None:
        """Seek every partition of `batches` back to its first record not yet durable."""
        targets: dict[TopicPartition, int] = {}
        for batch in batches:
            for tp, first in batch.first_offsets().items():
                targets[tp] = min(targets.get(tp, first), first)
        targets.update(done)
        assigned = consumer.assignment()
        for tp, offset in targets.items():
            if tp in assigned:  # a rebalance may have moved it; its new owner reads from the commit
                consumer.seek(tp, offset)
        self.stop.wait(RECOVERY_BACKOFF_S)

    def _update_lag(self, consumer: KafkaConsumer, offsets: Offsets) -> None:
        lag = 0
        assigned = consumer.assignment()
        for tp, next_offset in offsets.items():
            # A rebalance during the last poll may have moved the partition elsewhere.
            high = consumer.highwater(tp) if tp in assigned else None
            if high is not None:
                lag += max(0, high - next_offset)
        self.metrics.lag.set(lag)

    # --- shutdown ------------------------------------------------------------------------------

    def _close(
        self,
        consumer: KafkaConsumer,
        producer: KafkaProducer,
        commits: _Commits,
        in_flight: deque[_InFlight],
        opened: bool,
    ) -> None:
        try:
            while in_flight:
                self._finish_oldest(consumer, commits, in_flight)
        except HandBack:
            log.info("stopping: the batches in flight are handed back uncommitted")
        except Exception:
            log.exception("could not finish the batches in flight; they will be redelivered")
        commits.final()
        closers = [
            ("consumer", lambda: consumer.close(autocommit=False)),  # sends LeaveGroup
            ("handler", self.handler.close if opened else lambda: None),
            ("producer", lambda: producer.close(timeout=5)),  # flushes first
        ]
        for what, closer in closers:
            try:
                closer()
            except Exception:
                log.exception("error while closing", extra={"closing": what})
        log.info(f"{self.settings.service} stopped")


class Service(Protocol):
    """A consumer process's main object: `run()` until stopped, `ready()` for `/readyz`."""

    @property
    def metrics(self) -> ConsumerMetrics: ...

    def run(self) -> None: ...

    def ready(self) -> Mapping[str, bool]: ...


def run_with_probes(service: Service, port: int) -> None:
    """Serve `/healthz`, `/readyz` and `/metrics` on `port` while `service.run()` runs."""
    from apps.common.health import HealthServer

    health = HealthServer(port, service.ready, registry=service.metrics.registry).start()
    try:
        service.run()
    finally:
        health.stop()
