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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from kafka.structs import TopicPartition
from psycopg_pool import ConnectionPool

from apps.common.consumer import database_ready
from apps.common.consumer_loop import (
    Batch,
    BatchIncomplete,
    ConsumerLoop,
    DeadLetterSink,
    HandBack,
    LoopContext,
    LoopSettings,
    Offsets,
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


class BatchAbandoned(Exception):
    """Not delivered because an earlier batch failed; the loop reads both again."""


@dataclass(frozen=True)
class Rounds:
    """A batch's delivery rounds, queued on (or running on) the handler's rounds thread."""

    future: Future[Offsets]
    handler: NotifierHandler

    def done(self) -> bool:
        return self.future.done()

    def result(self) -> Offsets:
        try:
            return self.future.result()
        except BaseException:
            self.handler.failed()
            raise


class NotifierHandler:
    def __init__(self, config: NotifierConfig, metrics: NotifierMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self._channels = config.app.channels()
        self._routes = config.app.routes()
        self._stop = threading.Event()
        self._pool: ConnectionPool | None = None
        self._clients: list[httpx.Client] = []
        self._deliverer: Deliverer | None = None
        self._retry_deliverer: Deliverer | None = None
        self._scheduler: RetryScheduler | None = None
        self._dead_letters: DeadLetterSink | None = None
        self._rounds: ThreadPoolExecutor | None = None
        self._last: Future[Offsets] | None = None

    def open(self, context: LoopContext) -> None:
        app = self.config.app
        self._stop = context.stop
        self._dead_letters = context.dead_letters
        # The consumer's rounds, the retry scheduler's rounds, and the readiness probe.
        self._pool = make_pool(self.config.db.conninfo, min_size=1, max_size=3, name="notifier")
        store = DeliveryStore(self._pool, owner=f"notifier-{uuid.uuid4()}", lease_s=app.lease_s)

        def deliverer(name: str) -> Deliverer:
            # New records and retries each get their own connection pool of `concurrency`:
            # retries to a slow target never hold the connections new records need. (httpx
            # scans its whole pool on every request: a pool larger than the threads using it
            # only costs CPU.)
            http = httpx.Client(
                timeout=httpx.Timeout(app.http_timeout_s, connect=min(3.0, app.http_timeout_s)),
                follow_redirects=False,
                limits=httpx.Limits(
                    max_connections=app.concurrency, max_keepalive_connections=app.concurrency
                ),
            )
            self._clients.append(http)
            return Deliverer(
                self._channels,
                store,
                http,
                app.backoff(),
                context.dead_letters,
                context.stop,
                self.metrics,
                concurrency=app.concurrency,
                name=name,
                # A span per attempt only when something receives it: unexported, it would be
                # made and dropped, at the cost of ~4% of a delivery.
                traced=bool(app.otlp_endpoint),
            )

        self._deliverer = deliverer("notifier-send")
        # One thread: batches are delivered strictly one after another.
        self._rounds = ThreadPoolExecutor(max_workers=1, thread_name_prefix="notifier-rounds")
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
            self._rounds.shutdown if self._rounds else None,
            self._scheduler.close if self._scheduler else None,
            self._retry_deliverer.close if self._retry_deliverer else None,
            self._deliverer.close if self._deliverer else None,
            *(client.close for client in self._clients),
            self._pool.close if self._pool else None,
        ):
            if closer is not None:
                closer()

    def handle(self, batch: Batch) -> Rounds:
        """Decode and route the batch here (while the previous batch's deliveries are still
        going out), then queue its delivery rounds behind the previous batch's."""
        assert self._rounds is not None
        outstanding: dict[RecordId, int] = {}
        try:
            groups = self._route(batch, outstanding)
        except Exception as exc:
            raise BatchIncomplete(_done_offsets(batch, outstanding)) from exc
        previous = self._last
        future = self._rounds.submit(self._run_rounds, batch, groups, outstanding, previous)
        self._last = future
        return Rounds(future, self)

    def _run_rounds(
        self,
        batch: Batch,
        groups: dict[tuple[str, str], deque[Delivery]],
        outstanding: dict[RecordId, int],
        previous: Future[Offsets] | None,
    ) -> Offsets:
        """On the rounds thread, one batch after another in poll order (a key's deliveries
        stay in Kafka order across batches too)."""
        if previous is not None and previous.exception() is not None:
            # An earlier batch failed: the loop re-reads it and this one; sending this one's
            # records first would overtake that one's unfinished deliveries of the same keys.
            raise BatchAbandoned("an earlier batch failed; this one is read again")
        try:
            self._deliver_in_rounds(groups, outstanding)
        except HandBack:
            raise
        except Exception as exc:
            raise BatchIncomplete(_done_offsets(batch, outstanding)) from exc
        return _done_offsets(batch, outstanding)

    def failed(self) -> None:
        """The loop saw a batch fail and re-reads every batch in flight: the next batch
        starts a new chain."""
        self._last = None

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
    return LoopSettings.of_app(
        "notifier",
        config,
        poll_timeout_ms=POLL_TIMEOUT_MS,
        # The next batch is polled and decoded while this one's deliveries go out.
        in_flight=2,
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
