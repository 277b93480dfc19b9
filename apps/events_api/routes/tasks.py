"""Tasks: CRUD with `Idempotency-Key`, and the query (filters, search, sorts, cursor pages).

Each change writes its `task.*` envelope to the outbox in the same transaction; closing an
occurrence of a series also creates the next instance there (apps/events_api/recurrence.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError

from apps.events_api import idempotency, recurrence, task_storage
from apps.events_api.deps import CorrelationId, Pool, Settings, TasksReader, TasksWriter
from apps.events_api.keys import ApiKey
from apps.events_api.routes import COMMON_RESPONSES
from apps.events_api.schemas import (
    Problem,
    Tag,
    TaskIn,
    TaskOut,
    TaskPage,
    TaskPriority,
    TaskSort,
    TaskStatus,
    UtcDatetime,
)
from apps.events_api.settings import ApiSettings
from apps.events_api.task_query import CursorError, TaskFilter

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"], responses=COMMON_RESPONSES)
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such task for this API key."}
}
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND,
    409: {"model": Problem, "description": "Another instance of the series has that occurrence."},
}


def _not_found() -> HTTPException:
    return HTTPException(404, "task not found")


def _query_error(name: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", name), "msg": message, "type": "value_error"}])


@dataclass(frozen=True)
class _TaskWrite:
    """What every task write depends on, with its transaction and Idempotency-Key handling."""

    request: Request
    key: ApiKey
    pool: Any
    settings: ApiSettings
    correlation_id: str
    idem_key: str | None

    @contextmanager
    def transaction(
        self, body: Any
    ) -> Iterator[tuple[psycopg.Connection, idempotency.Claim | None, idempotency.Replay | None]]:
        """A write transaction that first claims the Idempotency-Key (when one is sent)."""
        with self.pool.connection() as conn, conn.transaction():
            if self.idem_key is None:
                yield conn, None, None
                return
            fingerprint = idempotency.fingerprint(self.request.method, self.request.url.path, body)
            claim = idempotency.Claim(self.key.id, self.idem_key, fingerprint)
            yield conn, claim, idempotency.claim(conn, claim)


async def _task_write(
    request: Request,
    key: TasksWriter,
    pool: Pool,
    settings: Settings,
    correlation_id: CorrelationId,
    idem_key: idempotency.IdempotencyKey = None,
) -> _TaskWrite:
    return _TaskWrite(request, key, pool, settings, correlation_id, idem_key)


TaskWrite = Annotated[_TaskWrite, Depends(_task_write)]


def _check_series(task: TaskIn) -> None:
    """The rule's occurrence check, here in the threadpool (not in body validation, which runs
    on the event loop): a 422 on `recurrence` with the reason, like any other field error."""
    if task.recurrence is None or task.due_at is None:
        return
    try:
        recurrence.check_series(task.recurrence.rrule, task.recurrence.timezone, task.due_at)
    except recurrence.RuleError as exc:
        raise RequestValidationError(
            [{"loc": ("body", "recurrence"), "msg": str(exc), "type": "value_error"}]
        ) from None


def _unique_occurrence(write: Callable[[], Any]) -> Any:
    try:
        return write()
    except psycopg.errors.UniqueViolation:
        raise HTTPException(409, "another instance of this series has that occurrence") from None


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=TaskOut, responses=WRITE_RESPONSES
)
def create_task(task: TaskIn, write: TaskWrite) -> Any:
    _check_series(task)
    body = task.model_dump(mode="json")
    with write.transaction(body) as (conn, claim, replay):
        if replay is not None:
            return replay.response()
        created = task_storage.create_task(
            conn, write.key, task, write.correlation_id, write.settings.tasks_topic
        )
        if claim is not None:
            idempotency.record(conn, claim, 201, created.model_dump(mode="json"))
    return created


@router.get("", response_model=TaskPage)
def list_tasks(
    key: TasksReader,
    pool: Pool,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2000, description="From `next_cursor`.")] = None,
    status_: Annotated[
        list[TaskStatus] | None, Query(alias="status", description="Any of these (repeatable).")
    ] = None,
    priority: Annotated[list[TaskPriority] | None, Query(description="Any of these.")] = None,
    tag: Annotated[list[Tag] | None, Query(max_length=20, description="All of these.")] = None,
    due_from: Annotated[UtcDatetime | None, Query(description="due_at >= this.")] = None,
    due_to: Annotated[UtcDatetime | None, Query(description="due_at < this.")] = None,
    series_id: Annotated[uuid.UUID | None, Query(description="Instances of one series.")] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            description="Full-text search over title and description (PostgreSQL "
            'websearch syntax: words, "a phrase", -excluded, or).',
        ),
    ] = None,
    sort: Annotated[TaskSort, Query(description="A leading `-` sorts descending.")] = (
        TaskSort.CREATED
    ),
) -> TaskPage:
    """The caller's tasks: filtered, searched, sorted, one cursor page at a time."""
    if q is not None and "\x00" in q:
        raise _query_error("q", "must not contain NUL characters")
    if due_from is not None and due_to is not None and due_to <= due_from:
        raise _query_error("due_to", "must be after due_from")
    query = TaskFilter(
        statuses=tuple(status_ or ()),
        priorities=tuple(priority or ()),
        tags=tuple(tag or ()),
        due_from=due_from,
        due_to=due_to,
        series_id=series_id,
        text=q,
        sort=sort,
        limit=limit,
    )
    if cursor is not None:
        try:
            query = query.with_cursor(cursor)
        except CursorError as exc:
            raise _query_error("cursor", str(exc)) from None
    with pool.connection() as conn:
        items, next_cursor = task_storage.list_tasks(conn, key, query)
    return TaskPage(items=items, limit=limit, next_cursor=next_cursor)


@router.get("/{task_id}", response_model=TaskOut, responses=NOT_FOUND)
def get_task(task_id: uuid.UUID, key: TasksReader, pool: Pool) -> TaskOut:
    with pool.connection() as conn:
        task = task_storage.get_task(conn, key, task_id)
    if task is None:
        raise _not_found()
    return task


@router.put("/{task_id}", response_model=TaskOut, responses=WRITE_RESPONSES)
def replace_task(task_id: uuid.UUID, task: TaskIn, write: TaskWrite) -> Any:
    """Replace a task. Closing an occurrence of a series (done, or cancelled to skip it)
    creates its next instance; a changed `recurrence` edits the series from this instance on,
    and `recurrence: null` stops it."""
    _check_series(task)
    body = task.model_dump(mode="json")
    with write.transaction(body) as (conn, claim, replay):
        if replay is not None:
            return replay.response()
        updated = _unique_occurrence(
            lambda: task_storage.replace_task(
                conn, write.key, task_id, task, write.correlation_id, write.settings.tasks_topic
            )
        )
        if updated is None:
            raise _not_found()
        if claim is not None:
            idempotency.record(conn, claim, 200, updated.model_dump(mode="json"))
    return updated


@router.delete("/{task_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
def delete_task(task_id: uuid.UUID, write: TaskWrite) -> Response:
    """Delete one instance (deleting a series' open instance ends the series)."""
    with write.transaction(None) as (conn, claim, replay):
        if replay is not None:
            return replay.response()
        topic = write.settings.tasks_topic
        if not task_storage.delete_task(conn, write.key, task_id, write.correlation_id, topic):
            raise _not_found()
        if claim is not None:
            idempotency.record(conn, claim, 204, None)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
