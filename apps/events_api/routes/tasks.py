"""Tasks CRUD; each change writes its `task.*` envelope to the outbox in the same transaction."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, status

from apps.events_api import storage
from apps.events_api.deps import CallerKey, CorrelationId, Pool, Settings
from apps.events_api.routes import COMMON_RESPONSES
from apps.events_api.schemas import Problem, TaskIn, TaskOut, TaskPage

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"], responses=COMMON_RESPONSES)
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "No such task for this API key."}
}


def _not_found() -> HTTPException:
    return HTTPException(404, "task not found")


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TaskOut)
def create_task(
    task: TaskIn, key: CallerKey, pool: Pool, settings: Settings, correlation_id: CorrelationId
) -> TaskOut:
    with pool.connection() as conn, conn.transaction():
        return storage.create_task(conn, key, task, correlation_id, settings.tasks_topic)


@router.get("", response_model=TaskPage)
def list_tasks(
    key: CallerKey,
    pool: Pool,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> TaskPage:
    """The caller's tasks, oldest first."""
    with pool.connection() as conn:
        items, total = storage.list_tasks(conn, key, limit, offset)
    return TaskPage(items=list(items), limit=limit, offset=offset, total=total)


@router.get("/{task_id}", response_model=TaskOut, responses=NOT_FOUND)
def get_task(task_id: uuid.UUID, key: CallerKey, pool: Pool) -> TaskOut:
    with pool.connection() as conn:
        task = storage.get_task(conn, key, task_id)
    if task is None:
        raise _not_found()
    return task


@router.put("/{task_id}", response_model=TaskOut, responses=NOT_FOUND)
def replace_task(
    task_id: uuid.UUID,
    task: TaskIn,
    key: CallerKey,
    pool: Pool,
    settings: Settings,
    correlation_id: CorrelationId,
) -> TaskOut:
    with pool.connection() as conn, conn.transaction():
        updated = storage.replace_task(
            conn, key, task_id, task, correlation_id, settings.tasks_topic
        )
    if updated is None:
        raise _not_found()
    return updated


@router.delete("/{task_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
def delete_task(
    task_id: uuid.UUID,
    key: CallerKey,
    pool: Pool,
    settings: Settings,
    correlation_id: CorrelationId,
) -> Response:
    with pool.connection() as conn, conn.transaction():
        deleted = storage.delete_task(conn, key, task_id, correlation_id, settings.tasks_topic)
    if not deleted:
        raise _not_found()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
