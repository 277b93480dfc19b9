"""`GET /api/v1/stream`: the caller's events and task changes, live, as Server-Sent Events.

Why SSE and not WebSocket: the flow is one-way (the console writes through the REST API), SSE is
plain HTTP, so the same bearer auth, middleware, Ingress and HTTP/2 apply unchanged, and its
`id:` / `Last-Event-ID` / `retry:` fields are exactly the resume protocol the stream needs. A
WebSocket would add an upgrade path through every proxy and a resume protocol of our own.

Messages: `hello` (which statuses this database can tell), `activity` (one outbox row; its
`id:` is the resume cursor), `status` (an item's delivery/audit status changed; no `id:`),
`reset` (the cursor is older than the outbox retention: reload), and `: ping` comments.
Resume: send the last `id:` received as `Last-Event-ID`; every row after it follows, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Annotated

import psycopg
from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from psycopg_pool import PoolTimeout
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from apps.events_api.deps import CallerKey
from apps.events_api.keys import ApiKey
from apps.events_api.stream import HubFull, StreamHub, Subscriber, sse
from apps.events_api.stream_storage import Cursor

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/stream", tags=["stream"])

STREAM_HEADERS = {
    "Cache-Control": "no-cache, no-store",
    # ingress-nginx (and nginx generally) buffers responses unless told not to: a buffered
    # stream arrives in bursts, or not at all until the buffer fills.
    "X-Accel-Buffering": "no",
    "X-Content-Type-Options": "nosniff",
}
HUB_FULL_RETRY_AFTER_S = 10
LAST_EVENT_ID = r"^\s*\d{1,20}-\d{1,20}\s*$"


class _StreamResponse(StreamingResponse):
    """Runs `on_close` however the response ends, even if the body never started."""

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], None]) -> None:
        super().__init__(content, media_type="text/event-stream", headers=STREAM_HEADERS)
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


def _hub(request: Request) -> StreamHub:
    hub: StreamHub | None = getattr(request.app.state, "stream_hub", None)
    if hub is None:
        raise HTTPException(503, "the stream is not running", headers={"Retry-After": "5"})
    return hub


@router.get(
    "",
    # Kept out of the OpenAPI document: it never ends, so generated clients (and the contract
    # test's schemathesis run) cannot call it like the other routes. docs/console.md describes it.
    include_in_schema=False,
)
async def stream(
    request: Request,
    key: CallerKey,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", max_length=50, pattern=LAST_EVENT_ID)
    ] = None,
) -> StreamingResponse:
    hub = _hub(request)
    after: Cursor | None = None
    if last_event_id is not None:
        try:
            after = Cursor.parse(last_event_id)
        except ValueError as exc:
            raise RequestValidationError(
                [{"loc": ("header", "Last-Event-ID"), "msg": str(exc), "type": "value_error"}]
            ) from None
    try:
        subscriber, live_from = await hub.subscribe(key.id)
    except HubFull as exc:
        raise HTTPException(
            503, str(exc), headers={"Retry-After": str(HUB_FULL_RETRY_AFTER_S)}
        ) from None
    heartbeat_s: float = request.app.state.settings.stream_heartbeat_s
    body = _ending_on_database_failure(_stream(hub, key, subscriber, after, live_from, heartbeat_s))
    return _StreamResponse(body, on_close=lambda: hub.unsubscribe(subscriber))


async def _ending_on_database_failure(frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The stream's body. A database failure mid-stream cannot become a status code (the
    headers are gone): the stream ends and the client reconnects with its Last-Event-ID."""
    try:
        async for frame in frames:
            yield frame
    except (psycopg.Error, PoolTimeout) as exc:
        log.warning("stream ended: database unavailable", extra={"error": str(exc)[:200]})


async def _stream(
    hub: StreamHub,
    key: ApiKey,
    subscriber: Subscriber,
    last: Cursor | None,
    live_from: Cursor,
    heartbeat_s: float,
) -> AsyncIterator[bytes]:
    yield await hub.hello()
    if last is not None and await hub.gap_possible(last):
        yield sse("reset", {"detail": "the cursor is older than the stream's retention; reload"})
    while True:
        # Catch up from the database up to where the hub's live frames start...
        replayed: set[uuid.UUID] = set()
        async for cursor, frames, event_ids in hub.replay(key.id, last, live_from):
            last = cursor
            replayed.update(event_ids)
            yield frames
        last = live_from if last is None or last < live_from else last
        snapshot = hub.status_snapshot(key.id, skip=replayed)
        if snapshot:
            yield snapshot
        # ...then follow the hub until this client falls a whole queue behind.
        checked = time.monotonic()
        while not subscriber.overflowed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(subscriber.wake.wait(), heartbeat_s)
            taken = subscriber.take()
            out = [f for cursor, f in taken if cursor is None or cursor > last]
            cursors = [cursor for cursor, _ in taken if cursor is not None]
            if out:
                yield b"".join(out)
                if cursors:
                    last = max(last, *cursors)
            elif not subscriber.overflowed:
                yield b": ping\n\n"
            if time.monotonic() - checked >= heartbeat_s:
                checked = time.monotonic()
                if not await hub.key_active(key.id):
                    yield sse("error", {"detail": "the API key was revoked"})
                    return
        live_from = await hub.rejoin(subscriber)
