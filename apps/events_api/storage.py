"""Outbox rows, always in the caller's transaction, and the envelope of an accepted event.

`enqueue` takes an open connection inside `conn.transaction()`: the domain row and its outbox
row commit together or not at all, which is what makes the outbox "transactional". Task writes
are in `task_storage`; events are stored (with their limits) by `admission` in one SQL function
call, and this module only builds their envelope.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import psycopg
from psycopg.types.json import Jsonb

from apps.common.envelope import EventEnvelope, encode
from apps.common.kafka import envelope_headers
from apps.common.tracing import inject_headers
from apps.events_api.keys import ApiKey
from apps.events_api.schemas import EventIn
from apps.events_api.settings import APP_NAME


def outbox_headers(envelope: EventEnvelope) -> Jsonb:
    """The Kafka headers of an outbox row, captured now (ids, correlation id and the request's
    `traceparent`), so the consumer's span joins the trace of the request that caused the event.
    """
    headers = envelope_headers(
        event_id=str(envelope.id),
        event_type=envelope.type,
        correlation_id=envelope.correlation_id,
        trace=inject_headers(),
    )
    return Jsonb([[k, v.decode()] for k, v in headers])


def enqueue(
    conn: psycopg.Connection,
    topic: str,
    envelope: EventEnvelope,
    api_key_id: uuid.UUID | None = None,
) -> None:
    """Write the envelope to the outbox; the relay publishes it after this transaction commits.
    `api_key_id` scopes the row for the live stream (routes/stream.py); a row without one is
    published but never streamed."""
    conn.execute(
        "INSERT INTO outbox (event_id, topic, subject, payload, headers, api_key_id)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (
            envelope.id,
            topic,
            envelope.subject,
            encode(envelope),
            outbox_headers(envelope),
            api_key_id,
        ),
    )


# --- events ------------------------------------------------------------------------------------


def event_envelope(key: ApiKey, event: EventIn, correlation_id: str) -> EventEnvelope:
    """The `event.received` envelope of a new event; the event is its own subject."""
    event_id = uuid.uuid4()
    return EventEnvelope(
        id=event_id,
        type="event.received",
        source=APP_NAME,
        occurred_at=datetime.now(UTC),
        correlation_id=correlation_id,
        subject=str(event_id),
        data={**event.model_dump(), "api_key": key.name, "tenant": key.tenant},
    )
