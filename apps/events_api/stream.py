"""The live stream hub: one per events-api process, fanning the outbox out to SSE clients.

One reader per process, not per client: the hub reads every key's new outbox rows once per
wake-up (a NOTIFY from the relay's mark-sent, or the poll interval as a fallback), renders each
row into its SSE frame once, and hands the same bytes to every client of that row's key.

Bounded memory per client: a client's queue holds at most `queue_bytes` of frames. When a slow
client's queue overflows, the hub drops that queue (`overflowed`) and the client's response
goes back to the database: it replays from its own last cursor, paced by its socket (each
write awaits the transport), then re-joins the hub. A slow reader costs database reads, never
server memory, and sees no gap. Delivery and audit status ("delivered per channel", "audited")
are other apps' rows in the same database; the hub polls them for the recent items of keys
with clients and sends a `status` frame when one changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from apps.events_api import metrics
from apps.events_api import stream_storage as q
from apps.events_api.stream_storage import Cursor, OutboxItem, StatusTables

log = logging.getLogger(__name__)

CHANNEL = "events_api_stream"
READ_BATCH = 500
STATUS_WINDOW_S = 120.0
"""How long after an item appears its delivery/audit status is followed (and re-sent to a
client that reconnects): deliveries retry with backoff for about this long at most."""
MAX_TRACKED = 5_000
STATUS_QUERY_CHUNK = 1_000
STATUS_TABLES_TTL_S = 30.0
LISTEN_RETRY_S = 2.0
RECONNECT_HINT_MS = 2_000
REPLAY_CONCURRENCY = 2


class HubFull(Exception):
    """More clients than `max_clients`: the route answers 503."""


def sse(event: str, data: Any, event_id: str | None = None) -> bytes:
    """One Server-Sent Events message. JSON has no raw newlines, so `data:` is one line."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=True, default=str)
    return f"{head}event: {event}\ndata: {body}\n\n".encode()


def activity(item: OutboxItem, status: dict[str, Any]) -> bytes:
    envelope = item.envelope or {}
    data = dict(envelope.get("data") or {})
    data.pop("api_key", None)  # the key's name: internal, and the caller knows its own key
    data.pop("tenant", None)  # routing for the audit trail (by default the key's name too)
    return sse(
        "activity",
        {
            "cursor": str(item.cursor),
            "id": str(item.event_id),
            "type": envelope.get("type"),
            "subject": envelope.get("subject"),
            "occurred_at": envelope.get("occurred_at"),
            "correlation_id": envelope.get("correlation_id"),
            "data": data,
            "status": status,
        },
        event_id=str(item.cursor),
    )


def status_frame(event_id: uuid.UUID, status: dict[str, Any]) -> bytes:
    return sse("status", {"id": str(event_id), **status})


@dataclass(eq=False)
class Subscriber:
    """One connected client: a queue of (cursor or None, frame), bounded in bytes (frames vary
    from ~300 bytes to ~12 KB), and a wake-up."""

    key_id: uuid.UUID
    max_bytes: int
    frames: deque[tuple[Cursor | None, bytes]] = field(default_factory=deque)
    queued_bytes: int = 0
    overflowed: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, cursor: Cursor | None, frame: bytes) -> None:
        if self.overflowed:
            return
        if self.queued_bytes + len(frame) > self.max_bytes:
            # Drop the queue, not the frame: the client resumes from the database instead.
            self.overflowed = True
            self.clear()
            metrics.STREAM_CATCHUPS.inc()
        else:
            self.frames.append((cursor, frame))
            self.queued_bytes += len(frame)
        self.wake.set()

    def take(self) -> list[tuple[Cursor | None, bytes]]:
        taken = list(self.frames)
        self.clear()
        return taken

    def clear(self) -> None:
        self.frames.clear()
        self.queued_bytes = 0
        self.wake.clear()


@dataclass
class _Tracked:
    key_id: uuid.UUID
    since: float
    status: str  # the last status sent, as JSON, to detect changes


@dataclass(frozen=True)
class HubSettings:
    poll_s: float = 0.5
    status_poll_s: float = 1.0
    queue_bytes: int = 1 << 20
    max_clients: int = 500
    history: int = 50


class StreamHub:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        conninfo: str | Callable[[], Awaitable[str]],
        settings: HubSettings,
    ) -> None:
        self._pool = pool
        self._conninfo = conninfo
        self.settings = settings
        self._subscribers: dict[uuid.UUID, set[Subscriber]] = {}
        self._count = 0
        self._cursor: Cursor | None = None  # None while no client is connected
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._tracked: OrderedDict[uuid.UUID, _Tracked] = OrderedDict()
        self._tables: StatusTables | None = None
        self._tables_at = 0.0
        self._last_status_poll = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        # Replays (new clients, reconnects, overflowed clients) read the database; at most this
        # many at once, so a crowd catching up queues here instead of taking the whole pool
        # from the write path.
        self._replays = asyncio.Semaphore(REPLAY_CONCURRENCY)
        self._first_client = asyncio.Event()  # LISTEN only once someone is listening

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> StreamHub:
        self._tasks = [
            asyncio.create_task(self._run(), name="stream-hub"),
            asyncio.create_task(self._listen(), name="stream-hub-listen"),
        ]
        return self

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    @property
    def clients(self) -> int:
        return self._count

    # --- clients -----------------------------------------------------------------------------

    async def subscribe(self, key_id: uuid.UUID) -> tuple[Subscriber, Cursor]:
        """Register a client; returns it and the cursor it will receive live frames after."""
        if self._count >= self.settings.max_clients:
            metrics.STREAM_REFUSED.inc()
            raise HubFull(f"the stream serves at most {self.settings.max_clients} clients")
        subscriber = Subscriber(key_id, self.settings.queue_bytes)
        async with self._lock:
            live_from = await self._ensure_cursor()
            self._subscribers.setdefault(key_id, set()).add(subscriber)
            self._count += 1
            self._first_client.set()
        metrics.STREAM_CLIENTS.set(self._count)
        return subscriber, live_from

    async def rejoin(self, subscriber: Subscriber) -> Cursor:
        """After an overflow: an empty queue again, live after the hub's current cursor."""
        async with self._lock:
            live_from = await self._ensure_cursor()
            subscriber.clear()
            subscriber.overflowed = False
        return live_from

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subscribers = self._subscribers.get(subscriber.key_id)
        if subscribers is None or subscriber not in subscribers:
            return
        subscribers.discard(subscriber)
        if not subscribers:
            del self._subscribers[subscriber.key_id]
        self._count -= 1
        metrics.STREAM_CLIENTS.set(self._count)

    async def _ensure_cursor(self) -> Cursor:
        if self._cursor is None:
            async with self._pool.connection() as conn:
                self._cursor = await q.head(conn)
        return self._cursor

    # --- replay (per client, from the database) ----------------------------------------------

    async def replay(
        self, key_id: uuid.UUID, after: Cursor | None, upto: Cursor
    ) -> AsyncIterator[tuple[Cursor, bytes, list[uuid.UUID]]]:
        """A key's rows in (after, upto] (or its last `history` rows when `after` is None), in
        chunks: (last cursor, the chunk's frames joined, the chunk's event ids)."""
        tables = await self._status_tables()
        if after is None:
            if self.settings.history == 0:
                return
            async with self._replays, self._pool.connection() as conn:
                items = await q.read_key_latest(conn, key_id, upto, self.settings.history)
                found = await q.statuses(conn, tables, [i.event_id for i in items])
            if items:
                yield self._replayed(items, found)
            return
        while after < upto:
            async with self._replays, self._pool.connection() as conn:
                items = await q.read_key_range(conn, key_id, after, upto, READ_BATCH)
                found = await q.statuses(conn, tables, [i.event_id for i in items])
            if not items:
                return
            yield self._replayed(items, found)
            after = items[-1].cursor

    def _replayed(
        self, items: list[OutboxItem], found: dict[uuid.UUID, dict[str, Any]]
    ) -> tuple[Cursor, bytes, list[uuid.UUID]]:
        now = time.monotonic()
        for item in items:
            if item.api_key_id is not None and item.event_id not in self._tracked:
                self._track(item.event_id, item.api_key_id, found[item.event_id], now)
        frames = b"".join(activity(item, found[item.event_id]) for item in items)
        return items[-1].cursor, frames, [item.event_id for item in items]

    async def gap_possible(self, after: Cursor) -> bool:
        """Rows after `after` may have been purged (older than the outbox retention)."""
        async with self._pool.connection() as conn:
            first = await q.oldest(conn)
        return first is not None and after < first and after != q.START

    def status_snapshot(self, key_id: uuid.UUID, skip: set[uuid.UUID]) -> bytes:
        """The followed status of a key's recent items, for a client that (re)joins."""
        return b"".join(
            status_frame(event_id, json.loads(tracked.status))
            for event_id, tracked in self._tracked.items()
            if tracked.key_id == key_id and event_id not in skip
        )

    async def key_active(self, key_id: uuid.UUID) -> bool:
        async with self._pool.connection() as conn:
            return await q.key_active(conn, key_id)

    # --- the reader --------------------------------------------------------------------------

    async def _listen(self) -> None:
        """LISTEN for the relay's wake-ups; on any failure, retry (the poll covers the gap)."""
        await self._first_client.wait()
        while True:
            try:
                # Resolved per connection: rotated credentials reach the next LISTEN connection.
                conninfo = (
                    self._conninfo if isinstance(self._conninfo, str) else await self._conninfo()
                )
                async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    async for _ in conn.notifies():
                        self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("stream listen connection lost", extra={"error": str(exc)[:200]})
            await asyncio.sleep(LISTEN_RETRY_S)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_s)
            self._wake.clear()
            if not self._subscribers:
                self._cursor = None
                self._tracked.clear()
                continue
            try:
                async with self._lock:
                    await self._read_new()
                if time.monotonic() - self._last_status_poll >= self.settings.status_poll_s:
                    self._last_status_poll = time.monotonic()
                    await self._poll_statuses()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a database outage: keep serving, retry next interval
                log.warning("stream hub read failed", extra={"error": str(exc)[:200]})

    async def _read_new(self) -> None:
        cursor = await self._ensure_cursor()
        tables = await self._status_tables()
        initial: dict[str, Any] = {
            "audited": False if tables.audit else None,
            "deliveries": [] if tables.deliveries else None,
        }
        while True:
            async with self._pool.connection() as conn:
                items = await q.read_after(conn, cursor, list(self._subscribers), READ_BATCH)
            now = time.monotonic()
            for item in items:
                subscribers = self._subscribers.get(item.api_key_id) if item.api_key_id else None
                if subscribers and item.envelope is not None and item.api_key_id is not None:
                    frame = activity(item, initial)
                    for subscriber in subscribers:
                        subscriber.offer(item.cursor, frame)
                    if item.event_id not in self._tracked:
                        self._track(item.event_id, item.api_key_id, initial, now)
            if items:
                cursor = items[-1].cursor
                self._cursor = cursor
                metrics.STREAM_ITEMS.inc(len(items))
            if len(items) < READ_BATCH:
                return

    def _track(
        self, event_id: uuid.UUID, key_id: uuid.UUID, status: dict[str, Any], now: float
    ) -> None:
        self._tracked[event_id] = _Tracked(key_id, now, json.dumps(status, sort_keys=True))
        while len(self._tracked) > MAX_TRACKED:
            self._tracked.popitem(last=False)

    async def _status_tables(self) -> StatusTables:
        if self._tables is None or time.monotonic() - self._tables_at > STATUS_TABLES_TTL_S:
            async with self._pool.connection() as conn:
                self._tables = await q.status_tables(conn)
            self._tables_at = time.monotonic()
        return self._tables

    async def _poll_statuses(self) -> None:
        now = time.monotonic()
        while self._tracked:
            oldest = next(iter(self._tracked.values()))
            if now - oldest.since <= STATUS_WINDOW_S:
                break
            self._tracked.popitem(last=False)
        followed = [e for e, t in self._tracked.items() if t.key_id in self._subscribers]
        if not followed:
            return
        tables = await self._status_tables()
        if not (tables.audit or tables.deliveries):
            return
        for start in range(0, len(followed), STATUS_QUERY_CHUNK):
            chunk = followed[start : start + STATUS_QUERY_CHUNK]
            async with self._pool.connection() as conn:
                found = await q.statuses(conn, tables, chunk)
            for event_id, status in found.items():
                tracked = self._tracked.get(event_id)
                encoded = json.dumps(status, sort_keys=True)
                if tracked is None or tracked.status == encoded:
                    continue
                tracked.status = encoded
                frame = status_frame(event_id, status)
                for subscriber in self._subscribers.get(tracked.key_id, ()):
                    subscriber.offer(None, frame)

    async def hello(self) -> bytes:
        tables = await self._status_tables()
        return f"retry: {RECONNECT_HINT_MS}\n\n".encode() + sse(
            "hello", {"statuses": {"deliveries": tables.deliveries, "audit": tables.audit}}
        )
