"""Delivery status in PostgreSQL: the notifier's idempotency record per (event id, channel), and
its retry schedule.

Protocol per delivery attempt (batched: one statement per step for a whole round of deliveries):

1. `claim()` inserts or updates the row to `sending`, bumps `attempts` and takes a short lease,
   in its own committed transaction, BEFORE the HTTP request. A row that is `sent`, `dead` or
   `scheduled` (the retry schedule owns it) is never claimed by a Kafka redelivery, so a
   redelivered message does not send twice.
2. The POST goes out carrying `Idempotency-Key: <event id>:<channel>`.
3. `resolve()` records the outcome in one transaction: `sent`, `dead`, or `scheduled` with a
   row in notifier_retry_schedule saying when to try again. Only then is the Kafka offset
   committed: each of those outcomes is durable.
4. The retry scheduler `take_due()`s scheduled rows (SKIP LOCKED, then a lease), and goes to 2.

The remaining at-least-once window: if the process dies after the receiver accepted the POST but
before `resolve()` commits, the row stays `sending` and the next owner sends again. No protocol
can close that window with a receiver that does not take part (the send and our commit cannot be
one atomic step), so the retry carries the SAME idempotency key and receivers that honour it
(Stripe-style APIs, our webhook contract) drop the duplicate.

Per-key order (channels whose `Delivery.order_key` is set): a delivery is not claimed while an
unresolved earlier delivery of its (channel, order_key) exists (`notifier_key_blocked`, migration
0002, says what "unresolved" means). It is scheduled behind it instead (`BLOCKED`), and the
scheduler takes each key's oldest (`seq`) first.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from apps.common.envelope import decode
from apps.notifier.model import Delivery, SourceRecord


class ClaimState(StrEnum):
    CLAIMED = "claimed"  # we own the delivery; `attempt` is its 1-based attempt number
    DONE = "done"  # sent, dead-lettered, or owned by the retry schedule: nothing to do
    BUSY = "busy"  # another replica holds the lease; park it in the schedule behind the lease
    BLOCKED = "blocked"  # an earlier delivery of its order key is unresolved; queue behind it


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    attempt: int = 0
    status: str = ""
    retry_in_s: float = 0.0
    last_error: str | None = None


@dataclass(frozen=True)
class Finished:
    """A delivery's final outcome."""

    delivery: Delivery
    status: str  # "sent" | "dead"
    status_code: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Later:
    """A delivery to try again in `delay_s`: after a failed attempt, behind an earlier delivery
    of its key, or behind another replica's lease."""

    delivery: Delivery
    delay_s: float = 0.0
    error: str | None = None
    status_code: int | None = None


_CLAIM = """
WITH input AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)
             AS i(event_id uuid, channel text, event_type text, correlation_id text,
                  order_key text)
),
open AS (
    SELECT i.* FROM input i
     WHERE i.order_key IS NULL
        OR NOT notifier_key_blocked(i.channel, i.order_key, i.event_id, NULL)
),
claimed AS (
    INSERT INTO notifier_deliveries AS d
        (event_id, channel, status, attempts, event_type, correlation_id, order_key,
         lease_owner, lease_expires_at)
    SELECT event_id, channel, 'sending', 1, event_type, correlation_id, order_key,
           %(owner)s, now() + make_interval(secs => %(lease_s)s)
      FROM open
    ON CONFLICT (event_id, channel) DO UPDATE
       SET attempts = d.attempts + 1,
           lease_owner = EXCLUDED.lease_owner,
           lease_expires_at = EXCLUDED.lease_expires_at,
           updated_at = now()
     WHERE d.status = 'sending'
       AND (d.lease_owner = EXCLUDED.lease_owner
            OR d.lease_expires_at IS NULL
            OR d.lease_expires_at < now())
    RETURNING d.event_id, d.channel, d.attempts
)
-- `d` is the row as it was before this statement (or NULL if the statement inserted it).
SELECT i.event_id, i.channel, c.attempts, o.event_id IS NOT NULL, d.status,
       GREATEST(0, EXTRACT(EPOCH FROM (d.lease_expires_at - now())))::float8, d.last_error
  FROM input i
  LEFT JOIN claimed c ON c.event_id = i.event_id AND c.channel = i.channel
  LEFT JOIN open o ON o.event_id = i.event_id AND o.channel = i.channel
  LEFT JOIN notifier_deliveries d ON d.event_id = i.event_id AND d.channel = i.channel
"""

_FINISH = """
WITH input AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)
             AS i(event_id uuid, channel text, status text, error text, status_code int)
),
finished AS (
    UPDATE notifier_deliveries d
       SET status = i.status,
           last_error = COALESCE(i.error, d.last_error),
           last_status_code = COALESCE(i.status_code, d.last_status_code),
           sent_at = CASE WHEN i.status = 'sent' THEN now() END,
           lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
      FROM input i
     WHERE d.event_id = i.event_id AND d.channel = i.channel AND d.status = 'sending'
    RETURNING d.event_id, d.channel
)
DELETE FROM notifier_retry_schedule s
 USING finished f
 WHERE s.event_id = f.event_id AND s.channel = f.channel
"""

# An attempt that failed but whose outcome could not be recorded yet (its dead letter was
# refused): keep the lease and the schedule row, remember why, for whoever takes it next.
_NOTE_FAILURE = """
UPDATE notifier_deliveries d
   SET last_error = i.error, last_status_code = COALESCE(i.status_code, d.last_status_code),
       updated_at = now()
  FROM jsonb_to_recordset(%(rows)s::jsonb)
       AS i(event_id uuid, channel text, status text, error text, status_code int)
 WHERE d.event_id = i.event_id AND d.channel = i.channel AND d.status = 'sending'
"""

# Two statements (one transaction): the schedule row may only exist beside an unresolved
# delivery, which the second statement can see only after the first has run.
_SCHEDULE_DELIVERY = """
INSERT INTO notifier_deliveries AS d
    (event_id, channel, status, attempts, event_type, correlation_id, order_key,
     last_error, last_status_code)
SELECT event_id, channel, 'scheduled', 0, event_type, correlation_id, order_key,
       error, status_code
  FROM jsonb_to_recordset(%(rows)s::jsonb)
       AS i(event_id uuid, channel text, event_type text, correlation_id text, order_key text,
            error text, status_code int)
ON CONFLICT (event_id, channel) DO UPDATE
   SET status = 'scheduled',
       lease_owner = NULL, lease_expires_at = NULL,
       last_error = COALESCE(EXCLUDED.last_error, d.last_error),
       last_status_code = COALESCE(EXCLUDED.last_status_code, d.last_status_code),
       updated_at = now()
 WHERE d.status = 'sending'
   AND (d.lease_owner = %(owner)s OR d.lease_expires_at IS NULL OR d.lease_expires_at < now())
"""

_SCHEDULE_RETRY = """
INSERT INTO notifier_retry_schedule AS s
    (event_id, channel, next_attempt_at, record_topic, record_partition, record_offset,
     record_key, record_value, record_headers)
SELECT i.event_id, i.channel, now() + make_interval(secs => i.delay_s), i.topic, i.partition,
       i.record_offset, i.key, i.value, i.headers
  FROM unnest(%(event_ids)s::uuid[], %(channels)s::text[], %(delays)s::float8[],
              %(topics)s::text[], %(partitions)s::int[], %(offsets)s::bigint[],
              %(keys)s::bytea[], %(values)s::bytea[], %(headers)s::jsonb[])
       AS i(event_id, channel, delay_s, topic, partition, record_offset, key, value, headers)
  JOIN notifier_deliveries d
    ON d.event_id = i.event_id AND d.channel = i.channel
   AND d.status IN ('sending', 'scheduled')
ON CONFLICT (event_id, channel) DO UPDATE SET next_attempt_at = EXCLUDED.next_attempt_at
"""

_TAKE_DUE = """
WITH due AS (
    SELECT d.event_id, d.channel
      FROM notifier_retry_schedule s
      JOIN notifier_deliveries d ON d.event_id = s.event_id AND d.channel = s.channel
     WHERE s.next_attempt_at <= now()
       AND (d.status = 'scheduled'
            OR (d.status = 'sending'
                AND (d.lease_expires_at IS NULL OR d.lease_expires_at < now())))
       AND (d.order_key IS NULL
            OR NOT notifier_key_blocked(d.channel, d.order_key, d.event_id, d.seq))
     ORDER BY s.next_attempt_at
     LIMIT %(limit)s
       FOR UPDATE OF s, d SKIP LOCKED
)
UPDATE notifier_deliveries d
   SET status = 'sending', attempts = d.attempts + 1, lease_owner = %(owner)s,
       lease_expires_at = now() + make_interval(secs => %(lease_s)s), updated_at = now()
  FROM due, notifier_retry_schedule s
 WHERE d.event_id = due.event_id AND d.channel = due.channel
   AND s.event_id = due.event_id AND s.channel = due.channel
RETURNING d.channel, d.attempts, d.order_key, d.last_error, s.record_topic, s.record_partition,
          s.record_offset, s.record_key, s.record_value, s.record_headers
"""

_NEXT_DUE = """
SELECT EXTRACT(EPOCH FROM (min(next_attempt_at) - now()))::float8 FROM notifier_retry_schedule
"""


class DeliveryStore:
    def __init__(self, pool: ConnectionPool, owner: str, lease_s: float) -> None:
        self._pool = pool
        self._owner = owner
        self._lease_s = lease_s

    @property
    def owner(self) -> str:
        return self._owner

    def claim(self, deliveries: Sequence[Delivery]) -> list[Claim]:
        """Claim each delivery (at most one per (event, channel)); claims in input order."""
        if not deliveries:
            return []
        params = {"rows": _rows(deliveries), "owner": self._owner, "lease_s": self._lease_s}
        with self._pool.connection() as conn:
            rows = conn.execute(_CLAIM, params).fetchall()
        by_id = {(row[0], row[1]): row for row in rows}
        return [_claim_of(by_id[d.id]) for d in deliveries]

    def resolve(
        self,
        finished: Sequence[Finished] = (),
        later: Sequence[Later] = (),
        failed: Sequence[Finished] = (),
    ) -> None:
        """Record final outcomes, schedule what comes later, and note the last error of
        `failed` deliveries (left `sending` under our lease), in one transaction."""
        if not finished and not later and not failed:
            return
        with self._pool.connection() as conn, conn.transaction():
            if failed:
                conn.execute(_NOTE_FAILURE, {"rows": _outcome_rows(failed)})
            if finished:
                conn.execute(_FINISH, {"rows": _outcome_rows(finished)})
            if later:
                rows = _rows([item.delivery for item in later])
                for row, item in zip(rows.obj, later, strict=True):
                    row["error"], row["status_code"] = item.error, item.status_code
                conn.execute(_SCHEDULE_DELIVERY, {"rows": rows, "owner": self._owner})
                conn.execute(_SCHEDULE_RETRY, _schedule_params(later))

    def take_due(self, limit: int) -> list[tuple[Delivery, int, str | None]]:
        """Lease up to `limit` due retries: (delivery, attempt number, last error) each."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                _TAKE_DUE, {"limit": limit, "owner": self._owner, "lease_s": self._lease_s}
            ).fetchall()
        taken = []
        for channel, attempt, order_key, last_error, *record in rows:
            source = _source_of(record)
            # It decoded when it was first consumed; the stored bytes are the same.
            delivery = Delivery(decode(source.value), str(channel), source, order_key)
            taken.append((delivery, int(attempt), last_error))
        return taken

    def next_due_in(self) -> float | None:
        """Seconds until the earliest scheduled retry (0 if one is due); None if none."""
        with self._pool.connection() as conn:
            row = conn.execute(_NEXT_DUE).fetchone()
        return None if row is None or row[0] is None else max(0.0, float(row[0]))

    def status(self, event_id: UUID, channel: str) -> tuple[str, int] | None:
        """(status, attempts) of one delivery, for tests and operators."""
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT status, attempts FROM notifier_deliveries"
                " WHERE event_id = %s AND channel = %s",
                (event_id, channel),
            ).fetchone()
        return None if row is None else (str(row[0]), int(row[1]))


def _rows(deliveries: Sequence[Delivery]) -> Jsonb:
    """Deliveries as one jsonb array for `jsonb_to_recordset`: a single parameter the C JSON
    encoder writes, where five typed arrays cost a Python call per element."""
    return Jsonb(
        [
            {
                "event_id": str(d.envelope.id),
                "channel": d.channel,
                "event_type": d.envelope.type,
                # Informational only, and jsonb and text cannot hold NUL: drop it rather than
                # refuse a delivery over a log field.
                "correlation_id": d.envelope.correlation_id.replace("\x00", ""),
                "order_key": None if d.order_key is None else d.order_key.replace("\x00", ""),
            }
            for d in deliveries
        ]
    )


def _outcome_rows(outcomes: Sequence[Finished]) -> Jsonb:
    return Jsonb(
        [
            {
                "event_id": str(f.delivery.envelope.id),
                "channel": f.delivery.channel,
                "status": f.status,
                "error": f.error,
                "status_code": f.status_code,
            }
            for f in outcomes
        ]
    )


def _schedule_params(later: Sequence[Later]) -> dict[str, Any]:
    sources = [item.delivery.source for item in later]
    return {
        "event_ids": [item.delivery.envelope.id for item in later],
        "channels": [item.delivery.channel for item in later],
        "delays": [max(0.0, item.delay_s) for item in later],
        "topics": [s.topic for s in sources],
        "partitions": [s.partition for s in sources],
        "offsets": [s.offset for s in sources],
        "keys": [s.key for s in sources],
        "values": [s.value for s in sources],
        "headers": [
            Jsonb([[k, base64.b64encode(v).decode()] for k, v in s.headers]) for s in sources
        ],
    }


def _claim_of(row: tuple[Any, ...]) -> Claim:
    _, _, attempts, is_open, status, lease_left, last_error = row
    if attempts is not None:
        return Claim(ClaimState.CLAIMED, attempt=int(attempts), last_error=last_error)
    if not is_open:
        return Claim(ClaimState.BLOCKED, status=status or "")
    if status in ("sent", "dead", "scheduled"):
        return Claim(ClaimState.DONE, status=str(status))
    # `sending` under another replica's live lease (or a row another replica inserted just now).
    return Claim(ClaimState.BUSY, status=status or "sending", retry_in_s=float(lease_left or 0))


def _source_of(record: Sequence[Any]) -> SourceRecord:
    topic, partition, offset, key, value, headers = record
    return SourceRecord(
        topic=str(topic),
        partition=int(partition),
        offset=int(offset),
        key=None if key is None else bytes(key),
        value=None if value is None else bytes(value),
        headers=tuple((str(k), base64.b64decode(v)) for k, v in headers or ()),
    )
