"""`POST /api/v1/events`: store a notification event and its outbox record, answer 202."""

from __future__ import annotations

import contextlib

from fastapi import APIRouter, status

from apps.events_api import metrics
from apps.events_api.deps import CallerKey, CorrelationId, Pool, Settings
from apps.events_api.limits import admit_event, refund_event
from apps.events_api.routes import COMMON_RESPONSES
from apps.events_api.schemas import EventAccepted, EventIn
from apps.events_api.storage import record_event

router = APIRouter(prefix="/api/v1/events", tags=["events"], responses=COMMON_RESPONSES)


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=EventAccepted)
def accept_event(
    event: EventIn, key: CallerKey, pool: Pool, settings: Settings, correlation_id: CorrelationId
) -> EventAccepted:
    """Accept an event: 202 means the event and its outbox record are committed together."""
    with pool.connection() as conn:
        admit_event(conn, key)  # one autocommit statement: see apps/events_api/limits.py
        try:
            # Pipeline mode sends BEGIN, both INSERTs and COMMIT without waiting in between.
            with conn.pipeline(), conn.transaction():
                event_id = record_event(conn, key, event, correlation_id, settings.events_topic)
        except BaseException:
            with contextlib.suppress(Exception):
                refund_event(conn, key)
            raise
    metrics.EVENTS_ACCEPTED.inc()
    return EventAccepted(id=event_id, correlation_id=correlation_id)
