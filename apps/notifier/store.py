"""Delivery status in PostgreSQL: the notifier's idempotency record per (event id, channel).

Protocol per delivery attempt:

1. `claim()` inserts or updates the row to `sending`, bumps `attempts` and takes a short lease,
   in its own committed transaction, BEFORE the HTTP request. A row that is already `sent` or
   `dead` is never claimed again, so a redelivered Kafka message does not send twice.
2. The POST goes out carrying `Idempotency-Key: <event id>:<channel>`.
3. `mark_sent()` / `mark_dead()` record the outcome; only then is the Kafka offset committed.

The remaining at-least-once window: if the process dies after the receiver accepted the POST but
before `mark_sent()` commits, the row stays `sending` and the redelivered message is sent again.
No protocol can close that window with a receiver that does not take part (the send and our
commit cannot be one atomic step), so the retry carries the SAME idempotency key and receivers
that honour it (Stripe-style APIs, our webhook contract) drop the duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from psycopg_pool import ConnectionPool


class ClaimState(StrEnum):
    CLAIMED = "claimed"  # we own the delivery; `attempt` is its 1-based attempt number
    DONE = "done"  # already sent or dead-lettered: nothing to do
    BUSY = "busy"  # another replica holds the lease; wait `retry_in_s` and ask again


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    attempt: int = 0
    status: str = ""
    retry_in_s: float = 0.0


_CLAIM = """
INSERT INTO notifier_deliveries AS d
    (event_id, channel, status, attempts, event_type, correlation_id,
     lease_owner, lease_expires_at)
VALUES (%(event_id)s, %(channel)s, 'sending', 1, %(event_type)s, %(correlation_id)s,
        %(owner)s, now() + make_interval(secs => %(lease_s)s))
ON CONFLICT (event_id, channel) DO UPDATE
   SET attempts = d.attempts + 1,
       lease_owner = EXCLUDED.lease_owner,
       lease_expires_at = EXCLUDED.lease_expires_at,
       updated_at = now()
 WHERE d.status = 'sending'
   AND (d.lease_owner = EXCLUDED.lease_owner
        OR d.lease_expires_at IS NULL
        OR d.lease_expires_at < now())
RETURNING d.attempts
"""

_STATUS = """
SELECT status, GREATEST(0, EXTRACT(EPOCH FROM (lease_expires_at - now())))::float8
  FROM notifier_deliveries WHERE event_id = %s AND channel = %s
"""

_RECORD_FAILURE = """
UPDATE notifier_deliveries
   SET last_error = %(error)s, last_status_code = %(status_code)s, updated_at = now()
 WHERE event_id = %(event_id)s AND channel = %(channel)s AND status = 'sending'
"""

_FINISH = """
UPDATE notifier_deliveries
   SET status = %(status)s,
       last_error = COALESCE(%(error)s, last_error),
       last_status_code = COALESCE(%(status_code)s, last_status_code),
       sent_at = CASE WHEN %(status)s::text = 'sent' THEN now() END,
       lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
 WHERE event_id = %(event_id)s AND channel = %(channel)s AND status = 'sending'
"""


class DeliveryStore:
    def __init__(self, pool: ConnectionPool, owner: str, lease_s: float) -> None:
        self._pool = pool
        self._owner = owner
        self._lease_s = lease_s

    def claim(self, event_id: UUID, channel: str, event_type: str, correlation_id: str) -> Claim:
        with self._pool.connection() as conn:
            row = conn.execute(
                _CLAIM,
                {
                    "event_id": event_id,
                    "channel": channel,
                    "event_type": event_type,
                    # Informational only, and PostgreSQL text cannot hold NUL: drop it rather
                    # than refuse a delivery over a log field.
                    "correlation_id": correlation_id.replace("\x00", ""),
                    "owner": self._owner,
                    "lease_s": self._lease_s,
                },
            ).fetchone()
            if row is not None:
                return Claim(ClaimState.CLAIMED, attempt=int(row[0]))
            current = conn.execute(_STATUS, (event_id, channel)).fetchone()
        if current is None:  # pragma: no cover - the row cannot vanish between the two statements
            return Claim(ClaimState.BUSY, retry_in_s=0.1)
        status, lease_left = str(current[0]), float(current[1] or 0.0)
        if status in ("sent", "dead"):
            return Claim(ClaimState.DONE, status=status)
        return Claim(ClaimState.BUSY, status=status, retry_in_s=max(0.1, lease_left))

    def record_failure(
        self, event_id: UUID, channel: str, error: str, status_code: int | None
    ) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                _RECORD_FAILURE,
                {
                    "event_id": event_id,
                    "channel": channel,
                    "error": error,
                    "status_code": status_code,
                },
            )

    def mark_sent(self, event_id: UUID, channel: str, status_code: int | None) -> None:
        self._finish(event_id, channel, "sent", None, status_code)

    def mark_dead(self, event_id: UUID, channel: str, error: str, status_code: int | None) -> None:
        self._finish(event_id, channel, "dead", error, status_code)

    def _finish(
        self, event_id: UUID, channel: str, status: str, error: str | None, status_code: int | None
    ) -> None:
        with self._pool.connection() as conn:
            conn.execute(
                _FINISH,
                {
                    "event_id": event_id,
                    "channel": channel,
                    "status": status,
                    "error": error,
                    "status_code": status_code,
                },
            )

    def release(self, event_id: UUID, channel: str) -> None:
        """Give the lease back (on shutdown) so the next owner need not wait for it to expire."""
        with self._pool.connection() as conn:
            conn.execute(
                "UPDATE notifier_deliveries SET lease_expires_at = NULL"
                " WHERE event_id = %s AND channel = %s AND lease_owner = %s AND status = 'sending'",
                (event_id, channel, self._owner),
            )

    def status(self, event_id: UUID, channel: str) -> tuple[str, int] | None:
        """(status, attempts) of one delivery, for tests and operators."""
        with self._pool.connection() as conn:
            row = conn.execute(
                "SELECT status, attempts FROM notifier_deliveries"
                " WHERE event_id = %s AND channel = %s",
                (event_id, channel),
            ).fetchone()
        return None if row is None else (str(row[0]), int(row[1]))
