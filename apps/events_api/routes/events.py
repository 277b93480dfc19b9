"""`POST /api/v1/events`: store a notification event and its outbox record, answer 202."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from apps.events_api import metrics
from apps.events_api.admission import AcceptBatcher
from apps.events_api.deps import EventCallerKey
from apps.events_api.routes import COMMON_RESPONSES
from apps.events_api.schemas import EventAccepted, EventIn

router = APIRouter(prefix="/api/v1/events", tags=["events"], responses=COMMON_RESPONSES)


def accepted_body(event_id: uuid.UUID, correlation_id: str) -> bytes:
    """`EventAccepted` as JSON, written directly: both values are plain ASCII by construction
    (a UUID; a correlation id matched against `[A-Za-z0-9._:-]` or generated as hex), so no
    escaping is needed, and FastAPI's validate-then-serialize of a returned model cost more
    than the rest of the response."""
    return b'{"id": "%s", "status": "accepted", "correlation_id": "%s"}' % (
        str(event_id).encode(),
        correlation_id.encode("ascii"),
    )


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=EventAccepted)
async def accept_event(event: EventIn, request: Request, key: EventCallerKey) -> Response:
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
    return Response(
        accepted_body(event_id, correlation_id),
        status_code=status.HTTP_202_ACCEPTED,
        media_type="application/json",
    )
