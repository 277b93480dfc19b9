"""`POST /api/v1/events`: store a notification event and its outbox record, answer 202."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, status
from psycopg_pool import AsyncConnectionPool

from apps.events_api import metrics
from apps.events_api.admission import accept_event as store_admitted_event
from apps.events_api.deps import EventCallerKey
from apps.events_api.limits import limit_time
from apps.events_api.routes import COMMON_RESPONSES
from apps.events_api.schemas import EventAccepted, EventIn
from apps.events_api.settings import ApiSettings

router = APIRouter(prefix="/api/v1/events", tags=["events"], responses=COMMON_RESPONSES)


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=EventAccepted)
async def accept_event(event: EventIn, request: Request, key: EventCallerKey) -> EventAccepted:
    """Accept an event: 202 means the event and its outbox record are committed together.

    The hot path of the service, kept lean: one database round trip (the SQL function
    `events_api_accept_event`: rate, quota, both rows) on the event loop, no threadpool hop,
    and only the authenticating bearer scheme as a FastAPI dependency (`deps.EventCallerKey`).
    """
    settings: ApiSettings = request.app.state.settings
    correlation_id = str(getattr(request.state, "correlation_id", None) or uuid.uuid4().hex)
    pool: AsyncConnectionPool = request.app.state.async_pool
    async with pool.connection() as conn:
        event_id = await store_admitted_event(
            conn, key, event, correlation_id, settings.events_topic, limit_time(request.app.state)
        )
    metrics.EVENTS_ACCEPTED.inc()
    return EventAccepted(id=event_id, correlation_id=correlation_id)
