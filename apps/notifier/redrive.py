"""Re-arm dead deliveries so a dead-letter replay is delivered, and delivered only once.

The notifier's idempotency record (`notifier_deliveries`, see `apps.notifier.store`) never sends
a `dead` delivery again: that is what makes a Kafka redelivery harmless. A replay from the
dead-letter topic is the one case where sending again is the point, after the channel was
fixed. So, before a replay republishes a delivery failure, its `dead` rows go back to
`sending` with no attempts and no lease: the next claim of the replayed record takes them like
a fresh delivery (attempt 1 of the usual budget).

Only `dead` rows move. A row that is `sent` (an earlier replay already got through) stays
`sent`, so replaying the same dead letters twice still delivers each event once; a row still
`sending` belongs to a delivery in progress and is left to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg

from apps.notifier.delivery import ATTEMPTS_EXHAUSTED, REJECTED

DELIVERY_REASONS: tuple[str, ...] = (ATTEMPTS_EXHAUSTED, REJECTED)
"""`dlq.reason` of the notifier's delivery failures (`apps.notifier.delivery`); the other
reasons are envelope errors, which no re-arm can fix."""

_REARM = """
UPDATE notifier_deliveries
   SET status = 'sending', attempts = 0, lease_owner = NULL, lease_expires_at = NULL,
       last_error = 'rearmed for dead-letter replay; was: ' || coalesce(last_error, ''),
       updated_at = now()
 WHERE event_id = ANY(%s::uuid[]) AND status = 'dead'
"""


def count_dead(conn: psycopg.Connection[Any], event_ids: Sequence[UUID]) -> int:
    """Dead deliveries (any channel) of these events: what `rearm_dead` would move."""
    row = conn.execute(
        "SELECT count(*) FROM notifier_deliveries"
        " WHERE event_id = ANY(%s::uuid[]) AND status = 'dead'",
        ([str(i) for i in event_ids],),
    ).fetchone()
    return int(row[0]) if row else 0


def rearm_dead(conn: psycopg.Connection[Any], event_ids: Sequence[UUID]) -> int:
    """Move the dead deliveries of these events back to claimable; returns how many moved."""
    if not event_ids:
        return 0
    return conn.execute(_REARM, ([str(i) for i in event_ids],)).rowcount
