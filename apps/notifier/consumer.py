"""The notifier's handler: decode, route, deliver; the shared loop commits what is durable.

The Kafka side (clients, stop, commits, lag, dead letters, close) is `apps.common.consumer_loop`.
A record is done, and its offset committable, once every one of its deliveries is `sent`,
`dead` (dead-lettered and acked), or `scheduled` in PostgreSQL for the retry scheduler
(`apps.notifier.scheduler`). A failing target therefore costs the loop one HTTP attempt per
record, never its backoff: the retry waits in the schedule, off the loop.

Deliveries of different keys go out concurrently; one key's (the envelope's subject) go one
round after another, in Kafka order, so a channel that needs order sees it (`Channel.ordered`;
the store keeps a later delivery behind an earlier one being retried).

A stop request (SIGTERM) is honoured between rounds: the records not yet done are handed back
(their offsets are not committed) and redelivered to whichever member gets the partition next;
the delivery table makes that redelivery safe.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from collections.abc import Mapping
from typing import Any

import httpx
from kafka.structs import TopicPartition
from psycopg_pool import ConnectionPool

from apps.common.consumer import database_ready
from apps.common.consumer_loop import (
    Batch,
    BatchIncomplete,
    Completed,
    ConsumerLoop,
    DeadLetterSink,
    HandBack,
    LoopContext,
    LoopSettings,
)
from apps.common.db import make_pool
from apps.common.envelope import EnvelopeError, decode
from apps.notifier.delivery import Deliverer
from apps.notifier.metrics import NotifierMetrics
from apps.notifier.model import Delivery, SourceRecord
from apps.notifier.routing import channels_for
from apps.notifier.scheduler import RetryScheduler
from apps.notifier.settings import NotifierConfig
from apps.notifier.store import DeliveryStore

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 500

RecordId = tuple[str, int, int]  # topic, partition, offset


class NotifierHandler:
    def __init__(self, config: NotifierConfig, metrics: NotifierMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self._channels = config.app.channels()
        self._routes = config.app.routes()
        self._stop = threading.Event()
        self._pool: ConnectionPool | None = None
        self._http: httpx.Client | None = None
        self._deliverer: Deliverer | None = None
        self._retry_deliverer: Deliverer | None = None
        self._scheduler: RetryScheduler | None = None
        self._dead_letters: DeadLetterSink | None = None

    def open(self, context: LoopContext) -> None:
        app = self.config.app
        self._stop = context.stop
        self._dead_letters = context.dead_letters
        # The consumer's rounds, the retry scheduler's rounds, and the readiness probe.
        self._pool = make_pool(self.config.db.conninfo(), min_size=1, max_size=3, name="notifier")
        # New records and retries each send up to `concurrency` requests at once.
        connections = 2 * app.concurrency
        self._http = httpx.Client(
            timeout=httpx.Timeout(app.http_timeout_s, connect=min(3.0, app.http_timeout_s)),
            follow_redirects=False,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )
        store = DeliveryStore(self._pool, owner=f"notifier-{uuid.uuid4()}", lease_s=app.lease_s)

        def deliverer(name: str) -> Deliverer:
            assert self._http is not None
            return Deliverer(
                self._channels,
                store,
                self._http,
                app.backoff(),
                context.dead_letters,
                context.stop,
                self.metrics,
                concurrency=app.concurrency,
                name=name,
            )

        self._deliverer = deliverer("notifier-send")
        self._retry_deliverer = deliverer("notifier-retry")
        self._scheduler = RetryScheduler(
            store,
            self._retry_deliverer,
            context.stop,
            batch=app.retry_batch,
            idle_s=app.retry_idle_s,
        ).start()
        log.info(
            "notifier delivering",
            extra={"channels": sorted(self._channels), "concurrency": app.concurrency},
        )

    def checks(self) -> dict[str, bool]:
        return {
            "database": database_ready(self._pool),
            "retry_scheduler": self._scheduler is not None and self._scheduler.alive(),
        }

    def close(self) -> None:
        for closer in (
            self._scheduler.close if self._scheduler else None,
            self._retry_deliverer.close if self._retry_deliverer else None,
            self._deliverer.close if self._deliverer else None,
            self._http.close if self._http else None,
            self._pool.close if self._pool else None,
        ):
            if closer is not None:
                closer()

    def handle(self, batch: Batch) -> Completed:
        assert self._deliverer is not None and self._dead_letters is not None
        outstanding: dict[RecordId, int] = {}
        try:
            groups = self._route(batch, outstanding)
            self._deliver_in_rounds(groups, outstanding)
        except HandBack:
            raise
        except Exception as exc:
            raise BatchIncomplete(_done_offsets(batch, outstanding)) from exc
        return Completed(_done_offsets(batch, outstanding))

    def _route(
        self, batch: Batch, outstanding: dict[RecordId, int]
    ) -> dict[tuple[str, str], deque[Delivery]]:
        """Decode every record (dead-lettering poison) and queue its deliveries by (channel,
        key), in Kafka order. Every record is outstanding until its deliveries are done."""
        assert self._dead_letters is not None
        groups: dict[tuple[str, str], deque[Delivery]] = {}
        for record in batch.records:
            rid = (record.topic, record.partition, record.offset)
            outstanding[rid] = 1  # this record's decoding
            try:
                envelope = decode(record.value)
            except EnvelopeError as exc:
                self._dead_letters.send(record, reason=exc.reason, detail=exc.detail)
                outstanding[rid] = 0
                continue
            source = SourceRecord.of(record)
            names = channels_for(envelope, self._routes)
            outstanding[rid] = len(names)
            for name in names:
                order_key = envelope.subject if self._channels[name].ordered else None
                delivery = Delivery(envelope, name, source, order_key)
                groups.setdefault((name, envelope.subject), deque()).append(delivery)
        return groups

    def _deliver_in_rounds(
        self, groups: dict[tuple[str, str], deque[Delivery]], outstanding: dict[RecordId, int]
    ) -> None:
        """Each round sends the next delivery of every (channel, key): different keys at once,
        one key's one after another."""
        assert self._deliverer is not None and self._scheduler is not None
        while groups:
            if self._stop.is_set():
                log.info("stopping: handing back the records not yet delivered")
                return
            this_round = [queue.popleft() for queue in groups.values()]
            groups = {key: queue for key, queue in groups.items() if queue}
            results = self._deliverer.deliver(_distinct(this_round, groups))
            for result in results:
                source = result.delivery.source
                outstanding[(source.topic, source.partition, source.offset)] -= 1
            if any(result.status == "scheduled" for result in results):
                self._scheduler.wake()


def _distinct(
    deliveries: list[Delivery], groups: dict[tuple[str, str], deque[Delivery]]
) -> list[Delivery]:
    """One delivery per (event, channel) per round: a claim statement may touch a row once. A
    repeat (the same record twice in a batch, as after a redelivery) waits for the next round."""
    seen: set[Any] = set()
    unique: list[Delivery] = []
    for delivery in deliveries:
        if delivery.id in seen:
            key = (delivery.channel, delivery.envelope.subject)
            groups.setdefault(key, deque()).appendleft(delivery)
            continue
        seen.add(delivery.id)
        unique.append(delivery)
    return unique


def _done_offsets(batch: Batch, outstanding: Mapping[RecordId, int]) -> dict[TopicPartition, int]:
    """Per partition, the offset after the last record of the unbroken run of done ones."""
    done: dict[TopicPartition, int] = {}
    for tp, records in batch.partitions.items():
        for record in records:
            if outstanding.get((record.topic, record.partition, record.offset), 1) > 0:
                if record.offset > records[0].offset:
                    done[tp] = record.offset
                break
            done[tp] = record.offset + 1
    return done


def loop_settings(config: NotifierConfig) -> LoopSettings:
    app = config.app
    return LoopSettings(
        service="notifier",
        group_id=app.consumer_group,
        topics=app.topics,
        dead_letter_topic=app.dead_letter_topic,
        kafka=config.kafka,
        consumer_options=config.tuning.overrides(),
        poll_timeout_ms=POLL_TIMEOUT_MS,
    )


class NotifierService(ConsumerLoop):
    """The notifier consumer: the shared loop running `NotifierHandler`, or, with no channel
    configured, nothing at all."""

    metrics: NotifierMetrics

    def __init__(
        self, config: NotifierConfig, stop: threading.Event, metrics: NotifierMetrics | None = None
    ) -> None:
        metrics = metrics or NotifierMetrics()
        super().__init__(loop_settings(config), NotifierHandler(config, metrics), stop, metrics)
        self.config = config

    def ready(self) -> dict[str, bool]:
        # Not ready without a channel: every record would be consumed and delivered nowhere.
        return {**super().ready(), "channels": bool(self.config.app.routes())}

    def run(self) -> None:
        if not self.config.app.routes():
            self._wait_unconfigured()
            return
        super().run()

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
