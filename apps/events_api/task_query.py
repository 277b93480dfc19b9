"""GET /api/v1/tasks as SQL: filters, full-text search, one of the sorts, and keyset pages.

Keyset (cursor) pagination: a page ends at a row, and the next page starts strictly after that
row's (sort key, id). A task inserted meanwhile either sorts before the cursor (this listing
does not show it) or after it (the next page does): no task is shown twice and none that
existed is skipped, unlike OFFSET, where every insert before the offset shifts the page.

The SQL text is assembled only from the fixed fragments below (chosen by which filters are
set); every value travels as a parameter. Each sort has an index (migration 0006).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from apps.events_api.cursors import decode_cursor, encode_cursor
from apps.events_api.schemas import TaskPriority, TaskSort, TaskStatus

COLUMNS = (
    "id, title, description, status, priority, due_at, tags, version, created_at, updated_at,"
    " reminder_offsets, rrule, timezone, series_id, series_start, occurrence_at"
)
"""Every task query returns these columns (`task_storage.task_out` reads them)."""


class CursorError(ValueError):
    """The cursor is not one this query produced; the message says why."""


@dataclass(frozen=True)
class SortSpec:
    expression: str
    cast: str
    descending: bool


_SORTS: dict[TaskSort, SortSpec] = {
    TaskSort.CREATED: SortSpec("created_at", "timestamptz", False),
    TaskSort.CREATED_DESC: SortSpec("created_at", "timestamptz", True),
    TaskSort.UPDATED: SortSpec("updated_at", "timestamptz", False),
    TaskSort.UPDATED_DESC: SortSpec("updated_at", "timestamptz", True),
    # Without a due date: last in both directions (and the expressions match the indexes).
    TaskSort.DUE: SortSpec("coalesce(due_at, 'infinity')", "timestamptz", False),
    TaskSort.DUE_DESC: SortSpec("coalesce(due_at, '-infinity')", "timestamptz", True),
    TaskSort.PRIORITY: SortSpec("priority_rank", "smallint", False),
    TaskSort.PRIORITY_DESC: SortSpec("priority_rank", "smallint", True),
    TaskSort.TITLE: SortSpec("lower(title)", "text", False),
    TaskSort.TITLE_DESC: SortSpec("lower(title)", "text", True),
}


@dataclass(frozen=True)
class TaskFilter:
    statuses: tuple[TaskStatus, ...] = ()
    priorities: tuple[TaskPriority, ...] = ()
    tags: tuple[str, ...] = ()
    due_from: datetime | None = None
    due_to: datetime | None = None
    series_id: uuid.UUID | None = None
    text: str | None = None
    sort: TaskSort = TaskSort.CREATED
    limit: int = 20
    after: tuple[str, uuid.UUID] | None = field(default=None)
    """(sort key as PostgreSQL text, id) of the last row already shown."""

    def fingerprint(self) -> str:
        """What a cursor is bound to: the filters and the sort (not the page size)."""
        shape = [
            sorted(self.statuses),
            sorted(self.priorities),
            sorted(self.tags),
            self.due_from.isoformat() if self.due_from else None,
            self.due_to.isoformat() if self.due_to else None,
            str(self.series_id) if self.series_id else None,
            self.text,
            self.sort.value,
        ]
        return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]

    def cursor_after(self, row: dict[str, Any]) -> str:
        payload = {"k": row["sort_key"], "i": str(row["id"]), "f": self.fingerprint()}
        return encode_cursor(payload)

    def with_cursor(self, cursor: str) -> TaskFilter:
        """This query continued after `cursor`, or CursorError."""
        try:
            payload = decode_cursor(cursor)
            key, row_id, shape = str(payload["k"]), uuid.UUID(payload["i"]), payload["f"]
        except (ValueError, KeyError, TypeError, UnicodeEncodeError):
            raise CursorError("is not a cursor this API returned") from None
        if shape != self.fingerprint():
            raise CursorError("was returned for other filters or another sort; start again")
        if "\x00" in key or len(key) > 1000:
            raise CursorError("is not a cursor this API returned")
        return TaskFilter(**{**self.__dict__, "after": (key, row_id)})


def page_sql(api_key_id: uuid.UUID, query: TaskFilter) -> tuple[str, dict[str, Any]]:
    """One page plus one row (to know whether another page follows)."""
    spec = _SORTS[query.sort]
    where = ["api_key_id = %(key)s"]
    params: dict[str, Any] = {"key": api_key_id, "limit": query.limit + 1}
    if query.statuses:
        where.append("status = ANY(%(statuses)s)")
        params["statuses"] = [s.value for s in query.statuses]
    if query.priorities:
        where.append("priority = ANY(%(priorities)s)")
        params["priorities"] = [p.value for p in query.priorities]
    if query.tags:
        where.append("tags @> %(tags)s::text[]")
        params["tags"] = list(query.tags)
    if query.due_from is not None:
        where.append("due_at >= %(due_from)s")
        params["due_from"] = query.due_from
    if query.due_to is not None:
        where.append("due_at < %(due_to)s")
        params["due_to"] = query.due_to
    if query.series_id is not None:
        where.append("series_id = %(series)s")
        params["series"] = query.series_id
    if query.text:
        where.append("search @@ websearch_to_tsquery('english', %(text)s)")
        params["text"] = query.text
    direction = "DESC" if spec.descending else "ASC"
    if query.after is not None:
        operator = "<" if spec.descending else ">"
        where.append(
            f"({spec.expression}, id) {operator} (%(after_key)s::{spec.cast}, %(after_id)s)"
        )
        params["after_key"], params["after_id"] = query.after
    sql = (
        f"SELECT {COLUMNS}, ({spec.expression})::text AS sort_key FROM tasks"  # noqa: S608
        f" WHERE {' AND '.join(where)}"
        f" ORDER BY {spec.expression} {direction}, id {direction} LIMIT %(limit)s"
    )
    return sql, params
