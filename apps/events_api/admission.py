"""`POST /api/v1/events` in one database round trip: rate, quota, event row and outbox row.

The `events_api_accept_event` SQL function (migrations 0002-0004; prefixed because the apps may
share one database) increments the key's per-minute rate and monthly quota counters and inserts the
event and its outbox row in one statement. The connection is in
autocommit mode, so the statement is its own transaction: when `execute` returns, the rows and the
counters are committed (or nothing is), which is what a 202 promises. No quota unit is ever taken
for an event that was not stored.

Async (psycopg's `AsyncConnection`) so the request never hops to the threadpool.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from apps.common.envelope import encode
from apps.events_api.keys import ApiKey
from apps.events_api.limits import LimitExceeded
from apps.events_api.schemas import EventIn
from apps.events_api.storage import event_envelope, outbox_headers

_ACCEPT = """
SELECT outcome, retry_after_s FROM events_api_accept_event(
    %(key)s, %(rate)s, %(quota)s, %(id)s, %(category)s, %(message)s, %(description)s,
    %(fields)s, %(correlation_id)s, %(received_at)s, %(topic)s, %(subject)s, %(payload)s,
    %(headers)s, %(at)s)
"""


async def accept_event(
    conn: AsyncConnection,
    key: ApiKey,
    event: EventIn,
    correlation_id: str,
    topic: str,
    at: datetime | None = None,
) -> uuid.UUID:
    """Store the event and its outbox record; raise LimitExceeded (nothing stored) if refused.

    `at` is the time rate and quota are counted at (None: the database's clock; see
    `limits.limit_time`)."""
    envelope = event_envelope(key, event, correlation_id)
    cur = await conn.execute(
        _ACCEPT,
        {
            "key": key.id,
            "rate": key.rate_per_minute,
            "quota": key.monthly_quota,
            "id": envelope.id,
            "category": event.category,
            "message": event.message,
            "description": event.description,
            "fields": Jsonb(event.fields),
            "correlation_id": correlation_id,
            "received_at": envelope.occurred_at,
            "topic": topic,
            "subject": envelope.subject,
            "payload": encode(envelope),
            "headers": outbox_headers(envelope),
            "at": at,
        },
    )
    row = await cur.fetchone()
    if row is None:  # a function with OUT parameters always returns one row
        raise RuntimeError("events_api_accept_event returned no row")
    outcome, retry_after_s = row
    if outcome == "rate":
        raise LimitExceeded("rate", key.rate_per_minute, retry_after_s)
    if outcome == "quota":
        raise LimitExceeded("monthly quota", key.monthly_quota, retry_after_s)
    return envelope.id
