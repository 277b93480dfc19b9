"""`POST /api/v1/events`: store a notification event and its outbox record, answer 202."""

from __future__ import annotations

from fastapi import APIRouter, status

from apps.events_api import metrics
from apps.events_api.admission import accept_event as store_admitted_event
from apps.events_api.deps import AsyncPool, CorrelationId, EventCallerKey, Settings
from apps.events_api.routes import COMMON_RESPONSES
from apps.events_api.schemas import EventAccepted, EventIn

router = APIRouter(prefix="/api/v1/events", tags=["events"], responses=COMMON_RESPONSES)


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=EventAccepted)
async def accept_event(
    event: EventIn,
    key: EventCallerKey,
    pool: AsyncPool,
    settings: Settings,
    correlation_id: CorrelationId,
) -> EventAccepted:
    """Accept an event: 202 means the event and its outbox record are committed together.

    One database round trip (the `accept_event` SQL function: rate, quota, both rows), on the
    event loop: no threadpool hop.
    """
    async with pool.connection() as conn:
        event_id = await store_admitted_event(
            conn, key, event, correlation_id, settings.events_topic
        )
    metrics.EVENTS_ACCEPTED.inc()
    return EventAccepted(id=event_id, correlation_id=correlation_id)
