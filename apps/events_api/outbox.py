"""The outbox relay: publishes committed outbox rows to Kafka, then marks them sent.

Safe with several relays (one per API replica, or standalone `events-api relay`):
- rows are claimed with `FOR UPDATE SKIP LOCKED` inside a transaction held until the broker has
  acknowledged them, so two relays never publish the same row at once;
- a row is published only if every earlier unsent row of its subject is in the same claim, so a
  subject's records reach Kafka in outbox-id order even when another relay holds earlier rows;
- `sent_at` is set only for records the broker acknowledged (acks=all). A crash between the ack
  and the commit republishes those rows: delivery is at-least-once and consumers dedupe by
  envelope id.
While Kafka is down the relay backs off exponentially (capped) and the API keeps accepting.

Woken, not polling: every INSERT into the outbox notifies `events_api_outbox` at commit (trigger
of migration 0004), and the relay waits on a LISTEN connection between cycles, so a committed
row is claimed within a round trip. It still polls every `idle_s` when no notification came
(missed while reconnecting, or the LISTEN connection is down): polling is the fallback.

Each publish is a PRODUCER span, a child of the API request's span (whose context the outbox
row's headers carry), and the record's `traceparent` header is replaced by the publish span's:
the consumers' spans hang under the publish, and the outbox wait shows as the gap between the
request span and its publish span.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from kafka import KafkaProducer
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from psycopg_pool import ConnectionPool

from apps.common.cycles import Backoff, CycleResult, Periodic
from apps.common.db import Conninfo, make_pool
from apps.common.kafka import EVENT_ID_HEADER, KafkaSettings, make_producer
from apps.common.publish import send_and_flush
from apps.common.tracing import extract_context, inject_headers, is_trace_header
from apps.events_api import metrics
from apps.events_api.producer_close import close_without_flush
from apps.events_api.settings import ApiSettings

log = logging.getLogger(__name__)
tracer = trace.get_tracer("apps.events_api.outbox")

CHANNEL = "events_api_outbox"
"""Notified at the commit of every outbox INSERT (migration 0004)."""
LISTEN_SLICE_S = 0.25
"""A wait for a notification is cut into slices this long, so `stop()` is seen promptly."""

_CLAIM = """
SELECT id, topic, subject, payload, headers FROM outbox
WHERE sent_at IS NULL ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
"""
_PENDING_OF_SUBJECTS = """
SELECT id, subject FROM outbox WHERE sent_at IS NULL AND subject = ANY(%s) ORDER BY id
"""
_MARK_SENT = "UPDATE outbox SET sent_at = now(), attempts = attempts + 1 WHERE id = ANY(%s)"
_MARK_FAILED = """
UPDATE outbox SET attempts = attempts + 1, last_error = left(%s, 500) WHERE id = ANY(%s)
"""
_BACKLOG = """
SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)
FROM outbox WHERE sent_at IS NULL
"""
_PURGE_SENT = "DELETE FROM outbox WHERE sent_at < now() - make_interval(secs => %s)"


@dataclass(frozen=True)
class OutboxRow:
    id: int
    topic: str
    subject: str
    payload: bytes
    headers: list[tuple[str, bytes]]


def publishable(
    claimed: Sequence[OutboxRow], pending: Sequence[tuple[int, str]]
) -> list[OutboxRow]:
    """Claimed rows that may go now: per subject, the run of our rows before any row not ours.

    `pending` is every unsent (id, subject) of the claimed subjects, in id order. A subject's
    rows stop at the first pending row we did not claim (another relay holds it, or it is
    newer than our claim); they are retried on a later cycle.
    """
    ours = {row.id for row in claimed}
    blocked: set[str] = set()
    allowed: set[int] = set()
    for row_id, subject in pending:
        if subject in blocked:
            continue
        if row_id in ours:
            allowed.add(row_id)
        else:
            blocked.add(subject)
    return [row for row in claimed if row.id in allowed]


def acknowledged(rows: Sequence[OutboxRow], outcomes: Sequence[bool]) -> list[OutboxRow]:
    """Rows to mark sent: acked, and with no earlier failed row of the same subject.

    A later row that was acked after an earlier one of its subject failed is left unsent, so it
    is republished after the failed one: the last copy a consumer sees is in order.
    """
    failed_subjects: set[str] = set()
    done: list[OutboxRow] = []
    for row, ok in zip(rows, outcomes, strict=True):
        if not ok:
            failed_subjects.add(row.subject)
        elif row.subject not in failed_subjects:
            done.append(row)
    return done


class OutboxRelay:
    """Publishes outbox rows in a loop; `start()` runs it on a daemon thread."""

    def __init__(
        self,
        settings: ApiSettings,
        *,
        publish_timeout_s: float = 5.0,
    ) -> None:
        """Paced by the `relay_*` settings; publishes through `settings.kafka`."""
        self._settings = settings
        # A callable, called per connection: rotated credentials are picked up.
        self._conninfo: Conninfo = settings.db.conninfo
        self._pool: ConnectionPool = make_pool(
            self._conninfo, min_size=1, max_size=2, name="outbox"
        )
        self._listener: psycopg.Connection[Any] | None = None
        self._publish_timeout_s = publish_timeout_s
        self._producer: KafkaProducer | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_db_ok = 0.0
        self._last_publish_ok = 0.0
        self._last_housekeeping = 0.0
        self.published = 0
        """Rows this relay has published and marked sent (for metrics-free introspection)."""

    # --- one cycle -----------------------------------------------------------------------------

    def run_once(self) -> CycleResult:
        """Claim one batch, publish what may go, record the outcome; never raises."""
        try:
            result = self._cycle()
        except (psycopg.Error, OSError) as exc:
            metrics.OUTBOX_RELAY_ERRORS.inc()
            return CycleResult(0, 0, 0, error=f"database: {type(exc).__name__}: {exc}")
        except Exception as exc:  # the loop must survive anything a client library throws
            metrics.OUTBOX_RELAY_ERRORS.inc()
            log.exception("outbox relay cycle failed")
            return CycleResult(0, 0, 0, error=f"{type(exc).__name__}: {exc}")
        self._last_db_ok = time.monotonic()  # the cycle reached the database, whatever Kafka did
        self.published += result.published
        return result

    def _cycle(self) -> CycleResult:
        with self._pool.connection() as conn, conn.transaction():
            rows = [
                OutboxRow(r[0], r[1], r[2], bytes(r[3]), [(k, v.encode()) for k, v in r[4]])
                for r in conn.execute(_CLAIM, (self._settings.relay_batch_size,)).fetchall()
            ]
            if not rows:
                self._housekeeping(conn)
                return CycleResult(0, 0, 0)
            pending = conn.execute(
                _PENDING_OF_SUBJECTS, (sorted({r.subject for r in rows}),)
            ).fetchall()
            batch = publishable(rows, [(int(i), str(s)) for i, s in pending])
            outcomes, error = self._publish(batch)
            done = acknowledged(batch, outcomes)
            failed = [row.id for row, ok in zip(batch, outcomes, strict=True) if not ok]
            if done:
                conn.execute(_MARK_SENT, ([row.id for row in done],))
            if failed:
                conn.execute(_MARK_FAILED, (error or "publish failed", failed))
        for row in done:
            metrics.OUTBOX_PUBLISHED.labels(row.topic).inc()
        metrics.OUTBOX_PUBLISH_FAILURES.inc(len(failed))
        return CycleResult(len(rows), len(done), len(failed), error)

    def _publish(self, rows: Sequence[OutboxRow]) -> tuple[list[bool], str | None]:
        """Send in id order, wait for acks; one outcome per row (False if not acked)."""
        if not rows:
            return [], None
        try:
            producer = self._ensure_producer()
        except Exception as exc:
            return [False] * len(rows), f"kafka unavailable: {type(exc).__name__}: {exc}"
        spans: list[trace.Span] = []

        def send(row: OutboxRow) -> Any:
            span = _publish_span(row)
            spans.append(span)
            key, headers = row.subject.encode(), _with_trace(row.headers, span)
            return producer.send(row.topic, key=key, value=row.payload, headers=headers)

        sent = send_and_flush(producer, rows, send, self._publish_timeout_s)
        outcomes, error = sent.acked, sent.error
        for span, ok in zip(spans, outcomes, strict=False):
            if not ok:
                span.set_status(Status(StatusCode.ERROR, "not acknowledged"))
            span.end()
        if not all(outcomes):
            if error is None:
                error = f"not acknowledged: {sent.first_failure()!r}"
            self._drop_producer()  # start clean: metadata may be stale after a broker restart
        else:
            self._last_publish_ok = time.monotonic()
        return outcomes, error

    def _ensure_producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = _relay_producer(self._settings.kafka, self._settings.relay_idempotent)
        return self._producer

    def _drop_producer(self) -> None:
        """Discard the producer after a failed publish, without flushing: its unacknowledged
        records are still in the outbox and will be published again by a fresh producer."""
        producer, self._producer = self._producer, None
        if producer is not None:
            close_without_flush(producer)

    def _housekeeping(self, conn: psycopg.Connection) -> None:
        """When idle, at most every 10 s: refresh backlog gauges and purge old sent rows."""
        now = time.monotonic()
        if now - self._last_housekeeping < 10:
            return
        self._last_housekeeping = now
        conn.execute(_PURGE_SENT, (self._settings.relay_retention_hours * 3600,))
        self.refresh_gauges(conn)

    def refresh_gauges(self, conn: psycopg.Connection | None = None) -> tuple[int, float]:
        """Update and return (pending rows, age of the oldest pending row in seconds)."""
        if conn is None:
            with self._pool.connection() as own:
                return self.refresh_gauges(own)
        row = conn.execute(_BACKLOG).fetchone()
        pending, lag = (int(row[0]), float(row[1])) if row else (0, 0.0)
        metrics.OUTBOX_PENDING.set(pending)
        metrics.OUTBOX_LAG.set(lag)
        return pending, lag

    # --- the loop ------------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> None:
        """Loop until `stop` is set: drain quickly, sleep until woken, back off on failures."""
        stop = stop or self._stop
        backoff = Backoff(0.2, self._settings.relay_max_backoff_s, log)
        gauges = Periodic(2, self.refresh_gauges)
        try:
            while not stop.is_set():
                # LISTEN before the claim: a commit after it always wakes the wait that follows.
                self._ensure_listener()
                result = self.run_once()
                gauges.maybe_run()
                if result.error:
                    backoff.wait_after_failure(
                        stop, "outbox relay cycle failed; retrying", result.error
                    )
                else:
                    backoff.reset()
                    # Drain full batches back to back; wait when the outbox is (nearly) empty
                    # or every claimed row waits behind rows another relay holds.
                    if result.claimed < self._settings.relay_batch_size or result.published == 0:
                        self._wait_for_commit(stop)
        finally:
            self._close_listener()

    def _ensure_listener(self) -> None:
        if self._listener is not None and not self._listener.closed:
            return
        try:
            conninfo = self._conninfo() if callable(self._conninfo) else self._conninfo
            self._listener = psycopg.connect(conninfo, autocommit=True, connect_timeout=3)
            self._listener.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            # The database is away: the claim fails too and backs off; polling covers the rest.
            log.debug("outbox listen connection failed", extra={"error": str(exc)[:200]})
            self._close_listener()

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(Exception):
                listener.close()

    def _wait_for_commit(self, stop: threading.Event) -> None:
        """Until a commit notifies the channel, `idle_s` passes (the polling fallback) or stop."""
        deadline = time.monotonic() + self._settings.relay_idle_s
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self._listener is None:
                stop.wait(remaining)
                return
            try:
                woken = False
                for _ in self._listener.notifies(
                    timeout=min(remaining, LISTEN_SLICE_S), stop_after=1
                ):
                    woken = True
                if woken:
                    # Fold the notifications already queued (commits the next claim covers).
                    for _ in self._listener.notifies(timeout=0):
                        pass
                    return
            except psycopg.Error:
                self._close_listener()  # reconnected before the next claim

    def start(self) -> OutboxRelay:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="outbox-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the loop, flush and close the producer, close the pool."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._producer is not None:
            try:
                self._producer.flush(timeout=5)
                self._producer.close(timeout=5)
            except Exception:
                # Kafka is away: what was not acknowledged stays in the outbox.
                close_without_flush(self._producer)
            self._producer = None
        self._pool.close()

    # --- health --------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def healthy(self, within_s: float = 30.0) -> bool:
        """Running, and a cycle reached the database recently (Kafka may be down: we buffer)."""
        return self.alive and time.monotonic() - self._last_db_ok < within_s

    def kafka_ok(self, within_s: float = 30.0) -> bool:
        return time.monotonic() - self._last_publish_ok < within_s


def _relay_producer(settings: KafkaSettings, idempotent: bool = True) -> KafkaProducer:
    """The shared producer settings, plus short blocking limits (while the broker is away the
    relay should fail fast and back off, not sit in a 30 s bootstrap or metadata wait).

    `idempotent`: kafka-python's idempotent producer (3.0 has it), explicitly, so a broker
    without it fails loudly instead of silently losing the guarantee: the broker drops a
    retried duplicate and keeps each partition in send order with up to 5 requests in flight.
    Without it, one request in flight keeps a key's order through retries, and a retry may
    duplicate a record (consumers dedupe by envelope id). Off against Tansu: its producer-state
    update and its write of the batch are not atomic, so a batch retried across a broker crash
    is answered DUPLICATE_SEQUENCE_NUMBER, which the client must take as success, and the
    record is lost (measured: 6-15 of ~2,000 acknowledged records gone after 3 SIGKILLs of an
    S3-backed Tansu 0.6.0; none with it off).
    """
    delivery = (
        {"enable_idempotence": True, "max_in_flight_requests_per_connection": 5}
        if idempotent
        else {"enable_idempotence": False, "max_in_flight_requests_per_connection": 1}
    )
    return make_producer(settings, bootstrap_timeout_ms=3_000, max_block_ms=3_000, **delivery)


def _publish_span(row: OutboxRow) -> trace.Span:
    """A PRODUCER span for one record, child of the request span stored with the row."""
    span = tracer.start_span(
        f"{row.topic} publish",
        context=extract_context(row.headers),
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": row.topic,
            "messaging.kafka.message.key": row.subject,
            "outbox.id": row.id,
        },
    )
    event_id = next((v for k, v in row.headers if k == EVENT_ID_HEADER), None)
    if event_id is not None:
        span.set_attribute("messaging.message.id", event_id.decode("utf-8", "replace"))
    return span


def _with_trace(headers: list[tuple[str, bytes]], span: trace.Span) -> list[tuple[str, bytes]]:
    """The row's headers with the request's trace context replaced by the publish span's."""
    kept = [(k, v) for k, v in headers if not is_trace_header(k)]
    return kept + inject_headers(trace.set_span_in_context(span))
