"""Group commit for `POST /api/v1/events`: the accepts of one event-loop tick, in one statement.

Each request hands its event to the process's `AcceptBatcher` and awaits the outcome. The first
request of a tick schedules a flush for the next tick; the flush sends everything queued by then
to `events_api_accept_events` (migration 0008) as ONE statement on an autocommit connection, so
its rows, outbox records and limit counters commit together, in one WAL flush. Requests that
arrive while a flush is in the database queue for the next one: under load the batches grow by
themselves, and at low load a request waits at most one tick plus one round trip.

What a 202 means is unchanged: a request's future resolves only after the statement that stored
its event returned, i.e. committed. Rate and quota stay exact per key (the function admits each
key's requests in arrival order against its locked counters) and a refused event costs nothing.

One flush in the database at a time per process: concurrent batches of one process would queue
on the same keys' counter rows anyway, and one at a time keeps each key's admissions (and its
outbox ids) in arrival order.

A request with an `Idempotency-Key` does not join the batch: its key's row must commit in the
same transaction as its event, so it takes `accept_event` below (one statement in the caller's
transaction, `events_api_accept_event`, migrations 0002-0004).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from apps.common.envelope import EventEnvelope, encode
from apps.events_api.keys import ApiKey
from apps.events_api.limits import LimitExceeded
from apps.events_api.schemas import EventIn
from apps.events_api.storage import event_envelope, outbox_headers

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 500
"""Requests per statement at most; a longer queue is flushed in several statements."""
DEFAULT_MAX_IN_FLIGHT = 1
"""Statements in the database at once: while one commits, the next tick's batch is already
on its way (its rows wait for the first one's counter locks only where their keys overlap)."""

_ACCEPT_BATCH = "SELECT outcomes, retry_after_s FROM events_api_accept_events(%s::json, %s)"

LimitClock = Callable[[], datetime | None]
"""The time a batch is counted at (`limits.limit_time`; None: the database's clock)."""


@dataclass
class _Pending:
    key: ApiKey
    event: EventIn
    envelope: EventEnvelope
    headers: list[list[str]]
    done: asyncio.Future[None] = field(repr=False)


class AcceptBatcher:
    """Coalesces concurrent accepts of this process into one statement per flush."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        topic: str,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        clock: LimitClock = lambda: None,
    ) -> None:
        self._pool = pool
        self._clock = clock
        self._topic = topic
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: list[_Pending] = []
        self._flushers: set[asyncio.Task[None]] = set()
        self._flusher_pending = False  # a flusher is created but has not taken the queue yet
        self.statements = 0
        """Statements sent so far (each one transaction): accepted / statements = batch size."""

    async def accept(self, key: ApiKey, event: EventIn, correlation_id: str) -> uuid.UUID:
        """Store the event and its outbox record once committed; raise LimitExceeded (nothing
        stored) if refused, or the database's error if the statement failed."""
        envelope = event_envelope(key, event, correlation_id)
        loop = asyncio.get_running_loop()
        item = _Pending(key, event, envelope, outbox_headers(envelope).obj, loop.create_future())
        self._queue.append(item)
        if not self._flusher_pending and len(self._flushers) < self._max_in_flight:
            # Created now, it first runs on the loop's next iteration: every request handled
            # in this one has queued by then.
            self._flusher_pending = True
            flusher = loop.create_task(self._flush_all(), name="accept-group-commit")
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)
        await item.done
        return envelope.id

    async def drain(self) -> None:
        """Wait until everything queued so far is flushed (for shutdown)."""
        while self._flushers:
            await asyncio.gather(*self._flushers, return_exceptions=True)

    async def _flush_all(self) -> None:
        try:
            while self._queue:
                self._flusher_pending = False
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._flush(batch)
        finally:
            # Leave the in-flight set now, in the same step that found the queue empty. The
            # done-callback alone runs a loop iteration later: a request queued in between
            # would see this finished flusher still counted, start none, and wait forever
            # (tests/apps/test_events_api_group_commit.py).
            self._flusher_pending = False
            current = asyncio.current_task()
            if current is not None:
                self._flushers.discard(current)

    async def _flush(self, batch: list[_Pending]) -> None:
        try:
            outcomes = await self._store(batch)
        except (psycopg.DataError, psycopg.IntegrityError) as exc:
            if len(batch) == 1:
                _fail(batch[0], exc)
                return
            # A value the database refused fails its whole statement: retry one by one, so
            # only the request that carried it fails (the schemas make this a safety net).
            log.warning("batch refused by the database; retrying singly", extra={"error": str(exc)})
            for item in batch:
                await self._flush([item])
            return
        except BaseException as exc:  # the database is away, or we are being cancelled
            for item in batch:
                _fail(item, exc)
            if not isinstance(exc, Exception):
                raise
            return
        for item, (outcome, retry_after_s) in zip(batch, outcomes, strict=True):
            if item.done.done():  # the request was cancelled (client gone); its row is stored
                continue
            if outcome == "accepted":
                item.done.set_result(None)
            elif outcome == "rate":
                item.done.set_exception(
                    LimitExceeded("rate", item.key.rate_per_minute, retry_after_s)
                )
            else:
                item.done.set_exception(
                    LimitExceeded("monthly quota", item.key.monthly_quota, retry_after_s)
                )

    async def _store(self, batch: list[_Pending]) -> list[tuple[str, int]]:
        rows = [
            {
                "key_id": str(item.key.id),
                "rate": item.key.rate_per_minute,
                "quota": item.key.monthly_quota,
                "event_id": str(item.envelope.id),
                "category": item.event.category,
                "message": item.event.message,
                "description": item.event.description,
                "fields": item.event.fields,
                "correlation_id": item.envelope.correlation_id,
                "received_at": item.envelope.occurred_at.isoformat(),
                "topic": self._topic,
                "subject": item.envelope.subject,
                "payload": encode(item.envelope).decode("utf-8"),
                "headers": item.headers,
            }
            for item in batch
        ]
        async with self._pool.connection() as conn:
            cursor = await conn.execute(_ACCEPT_BATCH, (json.dumps(rows), self._clock()))
            row = await cursor.fetchone()
        self.statements += 1
        if row is None:  # a function with OUT parameters always returns one row
            raise RuntimeError("events_api_accept_events returned no row")
        outcomes, retries = row
        return list(zip(outcomes, retries, strict=True))


def _fail(item: _Pending, exc: BaseException) -> None:
    if item.done.done():
        return
    if isinstance(exc, Exception):
        item.done.set_exception(exc)
    else:  # cancelled (shutdown): the request is cancelled too
        item.done.cancel()


_ACCEPT = """
SELECT outcome, retry_after_s FROM events_api_accept_event(
    %(key)s, %(rate)s, %(quota)s, %(id)s, %(category)s, %(message)s, %(description)s,
    %(fields)s, %(correlation_id)s, %(received_at)s, %(topic)s, %(subject)s, %(payload)s,
    %(headers)s, %(at)s)
"""


async def accept_event(
    conn: AsyncConnection,
    key: ApiKey,
    event: EventIn,
    correlation_id: str,
    topic: str,
    at: datetime | None = None,
) -> uuid.UUID:
    """Store the event and its outbox record; raise LimitExceeded (nothing stored) if refused.

    `at` is the time rate and quota are counted at (None: the database's clock; see
    `limits.limit_time`)."""
    envelope = event_envelope(key, event, correlation_id)
    cur = await conn.execute(
        _ACCEPT,
        {
            "key": key.id,
            "rate": key.rate_per_minute,
            "quota": key.monthly_quota,
            "id": envelope.id,
            "category": event.category,
            "message": event.message,
            "description": event.description,
            "fields": Jsonb(event.fields),
            "correlation_id": correlation_id,
            "received_at": envelope.occurred_at,
            "topic": topic,
            "subject": envelope.subject,
            "payload": encode(envelope),
            "headers": outbox_headers(envelope),
            "at": at,
        },
    )
    row = await cur.fetchone()
    if row is None:  # a function with OUT parameters always returns one row
        raise RuntimeError("events_api_accept_event returned no row")
    outcome, retry_after_s = row
    if outcome == "rate":
        raise LimitExceeded("rate", key.rate_per_minute, retry_after_s)
    if outcome == "quota":
        raise LimitExceeded("monthly quota", key.monthly_quota, retry_after_s)
    return envelope.id
