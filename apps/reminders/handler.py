"""The task-event handler: a task change (re)schedules or cancels the task's reminders.

`handle(conn, envelope)` is everything the consumer loop needs; it runs inside the batch's
transaction and is idempotent (a change is applied only when newer than the task's last applied
version), so a redelivered record changes nothing.

What a change means for the schedule:
- an open task with a `due_at` gets one pending reminder per offset, at `due_at - offset`;
  offsets whose time had already passed when the change was made are not scheduled (a reminder
  "1 h before" added 10 min before the task is due is not sent late);
- a reminder still wanted at the same time keeps its row (and id); one no longer wanted (offset
  removed, due date moved) is cancelled; one that already fired is never scheduled again;
- completing (done/cancelled) or deleting the task cancels every pending reminder.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import psycopg
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from apps.common.envelope import EventEnvelope

CLOSED = frozenset({"done", "cancelled"})
REMINDER_NAMESPACE = uuid.UUID("5d7c3c1e-0a53-4f5b-9a0e-2f1b6f3c9e10")
"""uuid5 namespace of reminder ids: (task, version, offset) -> the same id on every replay."""

Outcome = Literal["scheduled", "cancelled", "stale", "ignored"]


class TaskChange(BaseModel):
    """The parts of a `task.created` / `task.updated` envelope's data the schedule needs."""

    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    version: int
    title: str = ""
    status: str = "todo"
    due_at: datetime | None = None
    reminders: list[timedelta] = []
    tenant: str | None = None


class TaskDeleted(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: uuid.UUID
    version: int


_OFFSETS: TypeAdapter[list[timedelta]] = TypeAdapter(list[timedelta])


class BadTaskEvent(ValueError):
    """The envelope is valid but its task data is not: the consumer dead-letters it."""


@dataclass(frozen=True)
class Wanted:
    offset_s: int
    fire_at: datetime


def reminder_id(task_id: uuid.UUID, version: int, offset_s: int) -> uuid.UUID:
    return uuid.uuid5(REMINDER_NAMESPACE, f"{task_id}:{version}:{offset_s}")


def wanted(change: TaskChange, changed_at: datetime) -> list[Wanted]:
    if change.status in CLOSED or change.due_at is None:
        return []
    found = []
    for offset in change.reminders:
        fire_at = change.due_at - offset
        if fire_at >= changed_at:
            found.append(Wanted(int(offset.total_seconds()), fire_at))
    return found


_CLAIM_TASK = """
INSERT INTO reminder_tasks AS t (task_id, version, deleted)
VALUES (%(task)s, %(version)s, %(deleted)s)
ON CONFLICT (task_id) DO UPDATE SET version = EXCLUDED.version, deleted = EXCLUDED.deleted,
                                    updated_at = now()
    WHERE t.version < EXCLUDED.version AND NOT t.deleted
RETURNING 1
"""
_PENDING = "SELECT id, offset_s, fire_at FROM reminders WHERE task_id = %s AND status = 'pending'"
_CANCEL = """
UPDATE reminders SET status = 'cancelled', updated_at = now()
WHERE id = ANY(%s) AND status = 'pending'
"""
_REFRESH = """
UPDATE reminders SET task_version = %(version)s, title = %(title)s, tenant = %(tenant)s,
                     due_at = %(due_at)s, correlation_id = %(correlation_id)s, updated_at = now()
WHERE id = %(id)s AND status = 'pending'
"""
# Never schedule again what already went out at that time (a change consumed after its
# reminder fired).
_SCHEDULE = """
INSERT INTO reminders (id, task_id, task_version, offset_s, due_at, fire_at, status, tenant,
                       title, correlation_id)
SELECT %(id)s, %(task)s, %(version)s, %(offset_s)s, %(due_at)s, %(fire_at)s, 'pending',
       %(tenant)s, %(title)s, %(correlation_id)s
WHERE NOT EXISTS (SELECT 1 FROM reminders WHERE task_id = %(task)s AND offset_s = %(offset_s)s
                  AND fire_at = %(fire_at)s AND status = 'fired')
ON CONFLICT (id) DO NOTHING
"""


def _parse(envelope: EventEnvelope) -> TaskChange | TaskDeleted:
    try:
        if envelope.type == "task.deleted":
            return TaskDeleted.model_validate(envelope.data)
        return TaskChange.model_validate(envelope.data)
    except ValidationError as exc:
        raise BadTaskEvent(f"task data: {exc.errors()[0].get('msg', 'invalid')}") from None


def handle(conn: psycopg.Connection[Any], envelope: EventEnvelope) -> Outcome:
    """Apply one task change to the schedule, in the caller's transaction."""
    if envelope.type not in ("task.created", "task.updated", "task.deleted"):
        return "ignored"
    change = _parse(envelope)
    deleted = isinstance(change, TaskDeleted)
    claimed = conn.execute(
        _CLAIM_TASK, {"task": change.id, "version": change.version, "deleted": deleted}
    ).fetchone()
    if claimed is None:
        return "stale"  # this version (or a newer one) was applied already
    pending = {
        (int(offset_s), fire_at): row_id
        for row_id, offset_s, fire_at in conn.execute(_PENDING, (change.id,)).fetchall()
    }
    keep = [] if isinstance(change, TaskDeleted) else wanted(change, envelope.occurred_at)
    keys = {(w.offset_s, w.fire_at) for w in keep}
    cancelled = [row_id for key, row_id in pending.items() if key not in keys]
    if cancelled:
        conn.execute(_CANCEL, (cancelled,))
    if isinstance(change, TaskDeleted) or not keep:
        return "cancelled"
    for want in keep:
        values = {
            "version": change.version,
            "title": change.title[:500],
            "tenant": change.tenant,
            "due_at": change.due_at,
            "correlation_id": envelope.correlation_id,
        }
        existing = pending.get((want.offset_s, want.fire_at))
        if existing is not None:
            conn.execute(_REFRESH, {**values, "id": existing})
            continue
        conn.execute(
            _SCHEDULE,
            {
                **values,
                "id": reminder_id(change.id, change.version, want.offset_s),
                "task": change.id,
                "offset_s": want.offset_s,
                "fire_at": want.fire_at,
            },
        )
    return "scheduled"
