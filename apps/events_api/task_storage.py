"""Task rows: writes (each with its `task.*` outbox row, in the caller's transaction), the
series' next instance, and the query behind GET /api/v1/tasks.

Every write function takes a connection inside `conn.transaction()`: the task row and its outbox
row commit together or not at all.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from apps.common.envelope import EventType, new_envelope
from apps.events_api import recurrence
from apps.events_api.keys import ApiKey
from apps.events_api.schemas import CLOSED_STATUSES, Recurrence, TaskIn, TaskOut, TaskStatus
from apps.events_api.settings import APP_NAME
from apps.events_api.storage import enqueue
from apps.events_api.task_query import COLUMNS, TaskFilter, page_sql

# The f-strings below only splice in COLUMNS, a constant: no input reaches SQL text.
_INSERT = f"""
INSERT INTO tasks (id, api_key_id, title, description, status, priority, due_at, tags,
                   reminder_offsets, rrule, timezone, series_id, series_start, occurrence_at)
VALUES (%(id)s, %(key)s, %(title)s, %(description)s, %(status)s, %(priority)s, %(due_at)s,
        %(tags)s, %(offsets)s, %(rrule)s, %(timezone)s, %(series_id)s, %(series_start)s,
        %(occurrence_at)s)
ON CONFLICT (series_id, occurrence_at) WHERE series_id IS NOT NULL DO NOTHING
RETURNING {COLUMNS}
"""  # noqa: S608
_SELECT = f"SELECT {COLUMNS} FROM tasks WHERE id = %s AND api_key_id = %s"  # noqa: S608
_LOCK = f"{_SELECT} FOR UPDATE"
_UPDATE = f"""
UPDATE tasks SET title = %(title)s, description = %(description)s, status = %(status)s,
                 priority = %(priority)s, due_at = %(due_at)s, tags = %(tags)s,
                 reminder_offsets = %(offsets)s, rrule = %(rrule)s, timezone = %(timezone)s,
                 series_id = %(series_id)s, series_start = %(series_start)s,
                 occurrence_at = %(occurrence_at)s, version = version + 1, updated_at = now()
WHERE id = %(id)s AND api_key_id = %(key)s
RETURNING {COLUMNS}
"""  # noqa: S608
_DELETE = f"DELETE FROM tasks WHERE id = %s AND api_key_id = %s RETURNING {COLUMNS}"  # noqa: S608
_LATER_INSTANCE = "SELECT 1 FROM tasks WHERE series_id = %s AND occurrence_at > %s LIMIT 1"


def task_out(row: dict[str, Any]) -> TaskOut:
    rule = (
        Recurrence.model_construct(rrule=row["rrule"], timezone=row["timezone"])
        if row["rrule"]
        else None
    )
    return TaskOut(
        id=row["id"],
        title=row["title"],
        description=row["description"],
        status=row["status"],
        priority=row["priority"],
        due_at=row["due_at"],
        tags=row["tags"],
        reminders=[timedelta(seconds=s) for s in row["reminder_offsets"]],
        recurrence=rule,
        series_id=row["series_id"],
        occurrence_at=row["occurrence_at"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _emit(
    conn: psycopg.Connection,
    key: ApiKey,
    kind: EventType,
    task: TaskOut,
    correlation_id: str,
    topic: str,
) -> None:
    """The task's envelope, with the tenant whose audit trail it belongs to."""
    data: dict[str, Any] = (
        {"id": str(task.id), "version": task.version}
        if kind == "task.deleted"
        else task.model_dump(mode="json")
    )
    data["tenant"] = key.tenant
    envelope = new_envelope(
        kind, source=APP_NAME, subject=str(task.id), correlation_id=correlation_id, data=data
    )
    enqueue(conn, topic, envelope, key.id)


def _values(task: TaskIn) -> dict[str, Any]:
    return {
        "title": task.title,
        "description": task.description,
        "status": task.status.value,
        "priority": task.priority.value,
        "due_at": task.due_at,
        "tags": list(task.tags),
        "offsets": [int(offset.total_seconds()) for offset in task.reminders],
        "rrule": task.recurrence.rrule if task.recurrence else None,
        "timezone": task.recurrence.timezone if task.recurrence else None,
    }


def _series_start(task: TaskIn) -> datetime | None:
    if task.recurrence is None or task.due_at is None:
        return None
    return recurrence.local_start(task.due_at, recurrence.zone(task.recurrence.timezone))


def _insert(conn: psycopg.Connection, values: dict[str, Any]) -> TaskOut | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_INSERT, values).fetchone()
    return task_out(row) if row else None


def create_task(
    conn: psycopg.Connection, key: ApiKey, task: TaskIn, correlation_id: str, topic: str
) -> TaskOut:
    series = task.recurrence is not None
    created = _insert(
        conn,
        {
            **_values(task),
            "id": uuid.uuid4(),
            "key": key.id,
            "series_id": uuid.uuid4() if series else None,
            "series_start": _series_start(task),
            "occurrence_at": task.due_at if series else None,
        },
    )
    assert created is not None  # a new series id cannot conflict
    _emit(conn, key, "task.created", created, correlation_id, topic)
    return created


def get_task(conn: psycopg.Connection, key: ApiKey, task_id: uuid.UUID) -> TaskOut | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_SELECT, (task_id, key.id)).fetchone()
    return task_out(row) if row else None


def list_tasks(
    conn: psycopg.Connection, key: ApiKey, query: TaskFilter
) -> tuple[list[TaskOut], str | None]:
    """One page of the caller's tasks and the cursor of the next (None at the end)."""
    sql, params = page_sql(key.id, query)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql, params).fetchall()
    more = len(rows) > query.limit
    tasks = [task_out(r) for r in rows[: query.limit]]
    return tasks, (query.cursor_after(rows[query.limit - 1]) if more else None)


def _series_fields(before: dict[str, Any], task: TaskIn) -> dict[str, Any]:
    """How a replace changes the series: the same rule keeps its anchor; a new or edited rule
    (or zone) starts the series again from this instance's due_at; no rule stops it."""
    kept = {
        "series_id": before["series_id"],
        "series_start": before["series_start"],
        "occurrence_at": before["occurrence_at"],
    }
    rule = task.recurrence
    if rule is None or (rule.rrule, rule.timezone) == (before["rrule"], before["timezone"]):
        return kept
    return {
        "series_id": before["series_id"] or uuid.uuid4(),
        "series_start": _series_start(task),
        "occurrence_at": task.due_at,
    }


def replace_task(
    conn: psycopg.Connection,
    key: ApiKey,
    task_id: uuid.UUID,
    task: TaskIn,
    correlation_id: str,
    topic: str,
) -> TaskOut | None:
    # The row lock comes before the outbox row gets its id, so two concurrent changes of one
    # task get outbox ids in commit order (per-subject order holds), and only one of two racing
    # completions sees the open -> closed transition that creates the next instance.
    with conn.cursor(row_factory=dict_row) as cur:
        before = cur.execute(_LOCK, (task_id, key.id)).fetchone()
        if before is None:
            return None
        row = cur.execute(
            _UPDATE,
            {**_values(task), **_series_fields(before, task), "id": task_id, "key": key.id},
        ).fetchone()
    assert row is not None  # locked above
    updated = task_out(row)
    _emit(conn, key, "task.updated", updated, correlation_id, topic)
    if TaskStatus(before["status"]) not in CLOSED_STATUSES and updated.status in CLOSED_STATUSES:
        create_next_instance(conn, key, row, correlation_id, topic)
    return updated


def create_next_instance(
    conn: psycopg.Connection,
    key: ApiKey,
    closed: dict[str, Any],
    correlation_id: str,
    topic: str,
    now: datetime | None = None,
) -> TaskOut | None:
    """The series' next instance after `closed` (a locked, just-closed row), exactly once: not
    if a later instance exists already (the occurrence was reopened and closed again), and the
    unique (series, occurrence) index refuses a second one whatever else races."""
    if not closed["rrule"]:
        return None
    if conn.execute(_LATER_INSTANCE, (closed["series_id"], closed["occurrence_at"])).fetchone():
        return None
    occurrence = recurrence.next_occurrence(
        closed["rrule"],
        closed["timezone"],
        closed["series_start"],
        closed["occurrence_at"],
        now or datetime.now(UTC),
    )
    if occurrence is None:
        return None  # COUNT or UNTIL ended the series
    created = _insert(
        conn,
        {
            "id": uuid.uuid4(),
            "key": key.id,
            "title": closed["title"],
            "description": closed["description"],
            "status": TaskStatus.TODO.value,
            "priority": closed["priority"],
            "due_at": occurrence,
            "tags": closed["tags"],
            "offsets": closed["reminder_offsets"],
            "rrule": closed["rrule"],
            "timezone": closed["timezone"],
            "series_id": closed["series_id"],
            "series_start": closed["series_start"],
            "occurrence_at": occurrence,
        },
    )
    if created is not None:
        _emit(conn, key, "task.created", created, correlation_id, topic)
    return created


def delete_task(
    conn: psycopg.Connection, key: ApiKey, task_id: uuid.UUID, correlation_id: str, topic: str
) -> bool:
    """Delete one instance; deleting a series' open instance ends the series."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(_DELETE, (task_id, key.id)).fetchone()
    if row is None:
        return False
    _emit(conn, key, "task.deleted", task_out(row), correlation_id, topic)
    return True
