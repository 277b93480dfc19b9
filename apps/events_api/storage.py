"""Domain writes and their outbox rows, always in the caller's transaction.

Every function takes an open connection inside `conn.transaction()`: the domain row and its
outbox row commit together or not at all, which is what makes the outbox "transactional".
Events are the exception: `apps/events_api/admission.py` stores them (with their limits) in one
SQL function call; this module only builds their envelope.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from apps.common.envelope import EventEnvelope, EventType, encode, new_envelope
from apps.common.kafka import envelope_headers
from apps.common.tracing import inject_headers
from apps.events_api.keys import ApiKey
from apps.events_api.schemas import EventIn, TaskIn, TaskOut
from apps.events_api.settings import APP_NAME

# Every task query returns the same columns, in TaskOut's order.
_INSERT_TASK = """
INSERT INTO tasks (id, api_key_id, title, description, status, priority, due_at, tags)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
RETURNING id, title, description, status, priority, due_at, tags, version, created_at, updated_at
"""
_SELECT_TASK = """
SELECT id, title, description, status, priority, due_at, tags, version, created_at, updated_at
FROM tasks WHERE id = %s AND api_key_id = %s
"""
_LIST_TASKS = """
SELECT id, title, description, status, priority, due_at, tags, version, created_at, updated_at
FROM tasks WHERE api_key_id = %s ORDER BY created_at, id LIMIT %s OFFSET %s
"""
_UPDATE_TASK = """
UPDATE tasks SET title = %s, description = %s, status = %s, priority = %s, due_at = %s,
                 tags = %s, version = version + 1, updated_at = now()
WHERE id = %s AND api_key_id = %s
RETURNING id, title, description, status, priority, due_at, tags, version, created_at, updated_at
"""
_DELETE_TASK = """
DELETE FROM tasks WHERE id = %s AND api_key_id = %s
RETURNING id, title, description, status, priority, due_at, tags, version, created_at, updated_at
"""


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
        data={**event.model_dump(), "api_key": key.name},
    )


# --- tasks -------------------------------------------------------------------------------------


def _task_event(
    conn: psycopg.Connection,
    key: ApiKey,
    kind: EventType,
    task: TaskOut,
    correlation_id: str,
    topic: str,
) -> None:
    data: dict[str, Any] = (
        {"id": str(task.id), "version": task.version}
        if kind == "task.deleted"
        else task.model_dump(mode="json")
    )
    envelope = new_envelope(
        kind, source=APP_NAME, subject=str(task.id), correlation_id=correlation_id, data=data
    )
    enqueue(conn, topic, envelope, key.id)


def create_task(
    conn: psycopg.Connection, key: ApiKey, task: TaskIn, correlation_id: str, topic: str
) -> TaskOut:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            _INSERT_TASK,
            (
                uuid.uuid4(),
                key.id,
                task.title,
                task.description,
                task.status.value,
                task.priority.value,
                task.due_at,
                list(task.tags),
            ),
        ).fetchone()
    created = TaskOut.model_validate(row)
    _task_event(conn, key, "task.created", created, correlation_id, topic)
    return created


def get_task(conn: psycopg.Connection, key: ApiKey, task_id: uuid.UUID) -> TaskOut | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            _SELECT_TASK,
            (task_id, key.id),
        ).fetchone()
    return TaskOut.model_validate(row) if row else None


def list_tasks(
    conn: psycopg.Connection, key: ApiKey, limit: int, offset: int
) -> tuple[Sequence[TaskOut], int]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            _LIST_TASKS,
            (key.id, limit, offset),
        ).fetchall()
        total_row = cur.execute(
            "SELECT count(*) AS n FROM tasks WHERE api_key_id = %s", (key.id,)
        ).fetchone()
    total = int(total_row["n"]) if total_row else 0
    return [TaskOut.model_validate(r) for r in rows], total


def replace_task(
    conn: psycopg.Connection,
    key: ApiKey,
    task_id: uuid.UUID,
    task: TaskIn,
    correlation_id: str,
    topic: str,
) -> TaskOut | None:
    # The UPDATE takes the task's row lock before the outbox row gets its id, so two concurrent
    # changes of one task get outbox ids in commit order: per-subject order holds.
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            _UPDATE_TASK,
            (
                task.title,
                task.description,
                task.status.value,
                task.priority.value,
                task.due_at,
                list(task.tags),
                task_id,
                key.id,
            ),
        ).fetchone()
    if row is None:
        return None
    updated = TaskOut.model_validate(row)
    _task_event(conn, key, "task.updated", updated, correlation_id, topic)
    return updated


def delete_task(
    conn: psycopg.Connection, key: ApiKey, task_id: uuid.UUID, correlation_id: str, topic: str
) -> bool:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            _DELETE_TASK,
            (task_id, key.id),
        ).fetchone()
    if row is None:
        return False
    _task_event(conn, key, "task.deleted", TaskOut.model_validate(row), correlation_id, topic)
    return True
