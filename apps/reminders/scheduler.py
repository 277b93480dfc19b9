"""The scheduler: fires due reminders through the schedule table, which is its own outbox.

One cycle, in one transaction:
1. claim due pending rows, oldest first, `FOR UPDATE SKIP LOCKED` (replicas take disjoint
   batches; a row another replica holds is skipped, not waited for);
2. publish each as a `task.reminder.due` envelope to the `reminders` topic (acks=all), keyed by
   the task, with the reminder's id as the envelope id;
3. mark exactly the acknowledged rows `fired` (with how late, by the database clock), then
   commit.
This is the transactional outbox's relay step with the reminder row as the outbox row: the row
becomes `fired` only after the broker has the record, and the row lock is held until then.
- SIGKILL or a PostgreSQL outage before the commit: the transaction rolls back, the rows are
  pending again, and the next claim (any replica) fires them; a record the broker had already
  acknowledged is published again under the SAME envelope id, which the notifier
  (`notifier_deliveries` per event id and channel) and audit (`event_id` key) recognise, so
  each reminder is delivered and recorded once: exactly once in effect.
- A broker outage: nothing is acknowledged, nothing is marked; the scheduler backs off and
  retries. After any downtime the overdue rows go out once each, oldest first, marked late
  with their lateness: there is one row per reminder, so there is nothing to duplicate.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg
from kafka import KafkaProducer
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from apps.common.cycles import Backoff, CycleResult, Periodic
from apps.common.envelope import EventEnvelope, encode
from apps.common.kafka import envelope_headers
from apps.common.publish import send_and_flush
from apps.reminders.metrics import RemindersMetrics
from apps.reminders.settings import APP_NAME, RemindersSettings

log = logging.getLogger(__name__)

# clock_timestamp(): the claim's own time (now() is the transaction's start), so lateness is
# measured when the row is taken, by the one clock every replica shares.
_CLAIM = """
SELECT id, task_id, task_version, offset_s, due_at, fire_at, tenant, title, correlation_id,
       greatest(0, floor(extract(epoch FROM clock_timestamp() - fire_at) * 1000))::bigint
           AS late_ms
FROM reminders
WHERE status = 'pending' AND fire_at <= clock_timestamp()
ORDER BY fire_at
LIMIT %s
FOR UPDATE SKIP LOCKED
"""
_MARK_FIRED = """
UPDATE reminders AS r
SET status = 'fired', fired_at = r.fire_at + make_interval(secs => l.ms / 1000.0),
    late_ms = l.ms, attempts = attempts + 1, updated_at = now()
FROM unnest(%s::uuid[], %s::bigint[]) AS l(id, ms)
WHERE r.id = l.id
"""
_MARK_FAILED = """
UPDATE reminders SET attempts = attempts + 1, last_error = left(%s, 500), updated_at = now()
WHERE id = ANY(%s)
"""
_NEXT_DUE = """
SELECT greatest(0, extract(epoch FROM min(fire_at) - clock_timestamp()))
FROM reminders WHERE status = 'pending'
"""
_GAUGES = """
SELECT count(*) FILTER (WHERE fire_at < clock_timestamp() - interval '30 seconds'),
       count(*) FILTER (WHERE fire_at >= clock_timestamp())
FROM reminders WHERE status = 'pending'
"""


def reminder_envelope(row: dict[str, Any], late_after_ms: int) -> EventEnvelope:
    """The `task.reminder.due` envelope of one claimed row; its id is the reminder's id."""
    late_ms = int(row["late_ms"])
    fired_at = row["fire_at"] + timedelta(milliseconds=late_ms)
    return EventEnvelope(
        id=row["id"],
        type="task.reminder.due",
        source=APP_NAME,
        occurred_at=fired_at,
        correlation_id=row["correlation_id"],
        subject=str(row["task_id"]),
        data={
            "task_id": str(row["task_id"]),
            "task_version": row["task_version"],
            "title": row["title"],
            "due_at": row["due_at"].isoformat(),
            "before_due_s": row["offset_s"],
            "fire_at": row["fire_at"].isoformat(),
            "late": late_ms > late_after_ms,
            "late_ms": late_ms,
            "tenant": row["tenant"],
        },
    )


class Scheduler:
    """Fires due reminders in a loop (`run`); `wake()` cuts the current wait short."""

    def __init__(
        self,
        pool: ConnectionPool,
        producer_factory: Callable[[], KafkaProducer],
        metrics: RemindersMetrics,
        settings: RemindersSettings,
    ) -> None:
        """Publishes to `settings.reminders_topic`, paced by its `fire_batch`, `idle_s`,
        `max_backoff_s`, `publish_timeout_s` and `late_after_ms`."""
        self._pool = pool
        self._producer_factory = producer_factory
        self._producer: KafkaProducer | None = None
        self._metrics = metrics
        self._settings = settings
        self._wake = threading.Event()
        self.last_cycle_ok = 0.0
        self.fired = 0

    def wake(self) -> None:
        self._wake.set()

    # --- one cycle -----------------------------------------------------------------------------

    def run_once(self) -> CycleResult:
        """Claim, publish and mark one batch; never raises."""
        try:
            result = self._cycle()
        except (psycopg.Error, OSError) as exc:
            self._metrics.failures.labels("database").inc()
            return CycleResult(0, 0, 0, f"database: {type(exc).__name__}: {exc}"[:300])
        except Exception as exc:  # the loop must outlive anything a client library throws
            self._metrics.failures.labels("unexpected").inc()
            log.exception("scheduler cycle failed")
            return CycleResult(0, 0, 0, f"{type(exc).__name__}: {exc}"[:300])
        self.last_cycle_ok = time.monotonic()
        self.fired += result.published
        return result

    def _cycle(self) -> CycleResult:
        with self._pool.connection() as conn, conn.transaction():
            with conn.cursor(row_factory=dict_row) as cur:
                rows = cur.execute(_CLAIM, (self._settings.fire_batch,)).fetchall()
            if not rows:
                return CycleResult(0, 0, 0)
            envelopes = [reminder_envelope(row, self._settings.late_after_ms) for row in rows]
            acked, error = self._publish(envelopes)
            done = [(row, env) for row, env, ok in zip(rows, envelopes, acked, strict=True) if ok]
            failed = [row["id"] for row, ok in zip(rows, acked, strict=True) if not ok]
            if done:
                conn.execute(
                    _MARK_FIRED,
                    ([row["id"] for row, _ in done], [int(row["late_ms"]) for row, _ in done]),
                )
            if failed:
                conn.execute(_MARK_FAILED, (error or "not acknowledged", failed))
        for row, envelope in done:
            late = bool(envelope.data["late"])
            self._metrics.fired.labels("true" if late else "false").inc()
            self._metrics.lateness.observe(int(row["late_ms"]) / 1000)
        if failed:
            self._metrics.failures.labels("publish").inc()
        return CycleResult(len(rows), len(done), len(failed), error)

    def _publish(self, envelopes: list[EventEnvelope]) -> tuple[list[bool], str | None]:
        try:
            producer = self._ensure_producer()
        except Exception as exc:
            return [False] * len(envelopes), f"kafka unavailable: {type(exc).__name__}: {exc}"

        def send(envelope: EventEnvelope) -> Any:
            headers = envelope_headers(
                event_id=str(envelope.id),
                event_type=envelope.type,
                correlation_id=envelope.correlation_id,
            )
            return producer.send(
                self._settings.reminders_topic,
                key=envelope.subject.encode(),
                value=encode(envelope),
                headers=headers,
            )

        sent = send_and_flush(producer, envelopes, send, self._settings.publish_timeout_s)
        acked, error = sent.acked, sent.error
        if not all(acked):
            error = error or "not acknowledged by the broker"
            self._drop_producer()  # metadata may be stale after a broker restart
        return acked, error

    def _ensure_producer(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = self._producer_factory()
        return self._producer

    def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                producer.close(timeout=0)

    # --- the loop ------------------------------------------------------------------------------

    def _wait_s(self) -> float:
        """Seconds until the earliest pending reminder, capped by `idle_s`."""
        with self._pool.connection() as conn:
            row = conn.execute(_NEXT_DUE).fetchone()
        if row is None or row[0] is None:
            return self._settings.idle_s
        return min(self._settings.idle_s, float(row[0]))

    def refresh_gauges(self) -> None:
        with self._pool.connection() as conn:
            row = conn.execute(_GAUGES).fetchone()
        if row is not None:
            self._metrics.overdue.set(int(row[0]))
            self._metrics.pending.set(int(row[1]))

    def run(self, stop: threading.Event) -> None:
        """Until `stop`: drain due reminders back to back, else sleep until the next is due."""
        backoff = Backoff(0.1, self._settings.max_backoff_s, log)
        gauges = Periodic(5, self.refresh_gauges)
        while not stop.is_set():
            result = self.run_once()
            if result.error:
                backoff.wait_after_failure(stop, "reminders not fired; retrying", result.error)
                continue
            backoff.reset()
            gauges.maybe_run()
            if result.claimed >= self._settings.fire_batch:
                continue  # a full batch: more may be due right now
            try:
                wait = self._wait_s()
            except (psycopg.Error, OSError):
                wait = self._settings.idle_s
            if wait > 0:
                self._wake.wait(wait)
                self._wake.clear()
        self.close()

    def close(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):
                self._producer.flush(timeout=5)
                self._producer.close(timeout=5)
            self._producer = None
