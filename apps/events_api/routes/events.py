"""`POST /api/v1/events` (store an event and its outbox record, answer 202) and
`GET /api/v1/events/{id}` (the event, where it was delivered, whether audit has it)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from psycopg_pool import AsyncConnectionPool

from apps.events_api import idempotency, metrics, read_storage
from apps.events_api.admission import AcceptBatcher
from apps.events_api.admission import accept_event as store_admitted_event
from apps.events_api.deps import EventCallerKey, EventsReader
from apps.events_api.limits import limit_time
from apps.events_api.routes import COMMON_RESPONSES
from apps.events_api.schemas import EventAccepted, EventIn, EventOut, Problem
from apps.events_api.settings import ApiSettings

router = APIRouter(prefix="/api/v1/events", tags=["events"], responses=COMMON_RESPONSES)


def accepted_body(event_id: uuid.UUID, correlation_id: str) -> bytes:
    """`EventAccepted` as JSON, written directly: both values are plain ASCII by construction
    (a UUID; a correlation id matched against `[A-Za-z0-9._:-]` or generated as hex), so no
    escaping is needed, and FastAPI's validate-then-serialize of a returned model cost more
    than the rest of the response (tests/apps/test_events_api_events.py checks it parses as
    `EventAccepted`)."""
    return b'{"id": "%s", "status": "accepted", "correlation_id": "%s"}' % (
        str(event_id).encode(),
        correlation_id.encode("ascii"),
    )


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=EventAccepted)
async def accept_event(
    event: EventIn,
    request: Request,
    key: EventCallerKey,
    idem_key: idempotency.IdempotencyKey = None,
) -> Any:
    """Accept an event: 202 means the event and its outbox record are committed together.

    The hot path of the service, kept lean: the event joins this tick's group commit
    (`admission.AcceptBatcher`: rate, quota and both rows of every request in the tick, in one
    statement) on the event loop, no threadpool hop, and only the authenticating bearer scheme
    as a FastAPI dependency (`deps.EventCallerKey`).
    With an `Idempotency-Key` the key's row joins that transaction (apps/events_api/
    idempotency.py): a retry of a committed request gets its 202 back, with no second event.
    """
    settings: ApiSettings = request.app.state.settings
    correlation_id = str(getattr(request.state, "correlation_id", None) or uuid.uuid4().hex)
    if idem_key is None:
        batcher: AcceptBatcher = request.app.state.accept_batcher
        event_id = await batcher.accept(key, event, correlation_id)
        metrics.EVENTS_ACCEPTED.inc()
        return Response(
            accepted_body(event_id, correlation_id),
            status_code=status.HTTP_202_ACCEPTED,
            media_type="application/json",
        )
    pool: AsyncConnectionPool = request.app.state.async_pool
    claim = idempotency.Claim(
        key.id,
        idem_key,
        idempotency.fingerprint("POST", request.url.path, event.model_dump(mode="json")),
    )
    async with pool.connection() as conn, conn.transaction():
        replay = await idempotency.claim_async(conn, claim)
        if replay is not None:
            return replay.response()
        event_id = await store_admitted_event(
            conn,
            key,
            event,
            correlation_id,
            settings.events_topic,
            limit_time(request.app.state),
        )
        accepted = EventAccepted(id=event_id, correlation_id=correlation_id)
        await idempotency.record_async(conn, claim, 202, accepted.model_dump(mode="json"))
    metrics.EVENTS_ACCEPTED.inc()
    return EventAccepted(id=event_id, correlation_id=correlation_id)


@router.get(
    "/{event_id}",
    response_model=EventOut,
    responses={404: {"model": Problem, "description": "No such event for this API key."}},
)
async def get_event(event_id: uuid.UUID, request: Request, key: EventsReader) -> EventOut:
    """The event, its delivery status per notifier channel, and whether audit has it."""
    pool: AsyncConnectionPool = request.app.state.async_pool
    async with pool.connection() as conn:
        found = await read_storage.event_with_status(conn, key.id, event_id)
    if found is None:
        raise HTTPException(404, "event not found")
    return EventOut.model_validate(found)
