"""Helpers for the reminders tests: a migrated database, task-change envelopes, the schedule's
counts, and the `task.reminder.due` records of a topic."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from apps.common.db import migrate
from apps.common.envelope import EventEnvelope, decode, new_envelope
from apps.reminders.cli import MIGRATIONS
from tests.apps.consumer_harness import read_topic


def migrated(database_url: str) -> str:
    migrate(database_url, "reminders", MIGRATIONS)
    return database_url


def task_change(
    task_id: uuid.UUID,
    *,
    version: int = 1,
    due_at: datetime | None,
    reminders: tuple[str, ...] = ("PT0S",),
    status: str = "todo",
    kind: str = "task.created",
    occurred_at: datetime | None = None,
    tenant: str = "acme",
) -> EventEnvelope:
    """A task envelope as events-api writes it (only the fields reminders reads matter)."""
    data: dict[str, Any] = {"id": str(task_id), "version": version, "tenant": tenant}
    if kind != "task.deleted":
        data |= {
            "title": f"task {task_id.hex[:6]}",
            "status": status,
            "due_at": due_at.isoformat() if due_at else None,
            "reminders": list(reminders),
        }
    return new_envelope(
        kind,  # type: ignore[arg-type]
        source="test",
        subject=str(task_id),
        correlation_id=f"corr-{task_id.hex[:8]}",
        data=data,
        occurred_at=occurred_at or datetime.now(UTC) - timedelta(minutes=1),
    )


def schedule(database_url: str, envelopes: list[EventEnvelope]) -> None:
    """Apply task changes straight to the schedule, as the consumer loop would."""
    from apps.reminders.handler import handle

    with psycopg.connect(database_url) as conn, conn.transaction():
        for envelope in envelopes:
            handle(conn, envelope)


def statuses(database_url: str) -> Counter[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT status, count(*) FROM reminders GROUP BY status").fetchall()
    return Counter({str(s): int(n) for s, n in rows})


def lateness_ms(database_url: str) -> list[int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT late_ms FROM reminders WHERE status = 'fired' ORDER BY late_ms"
        ).fetchall()
    return [int(r[0]) for r in rows]


def fired_records(
    bootstrap: str, topic: str, expect: int, timeout: float = 60
) -> list[EventEnvelope]:
    return [decode(r.value) for r in read_topic(bootstrap, topic, expect, timeout=timeout)]
