"""`POST /api/v1/events`: store a notification event and its outbox record, answer 202."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, status

from apps.events_api import metrics
from apps.events_api.admission import AcceptBatcher
from apps.events_api.deps import EventCallerKey
from apps.events_api.routes import COMMON_RESPONSES
from apps.events_api.schemas import EventAccepted, EventIn

router = APIRouter(prefix="/api/v1/events", tags=["events"], responses=COMMON_RESPONSES)


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=EventAccepted)
async def accept_event(event: EventIn, request: Request, key: EventCallerKey) -> EventAccepted:
    """Accept an event: 202 means the event and its outbox record are committed together.

    The hot path of the service, kept lean: the event joins this tick's group commit
    (`admission.AcceptBatcher`: rate, quota and both rows of every request in the tick, in one
    statement) on the event loop, no threadpool hop, and only the authenticating bearer scheme
    as a FastAPI dependency (`deps.EventCallerKey`).
    """
    correlation_id = str(getattr(request.state, "correlation_id", None) or uuid.uuid4().hex)
    batcher: AcceptBatcher = request.app.state.accept_batcher
    event_id = await batcher.accept(key, event, correlation_id)
    metrics.EVENTS_ACCEPTED.inc()
    return EventAccepted(id=event_id, correlation_id=correlation_id)
