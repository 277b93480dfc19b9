"""The group-commit batcher (`admission.AcceptBatcher`) never strands a request.

A request that queues in the instant its process's flusher is finishing (its last statement has
returned, the queue looked empty, the task is done but its done-callbacks have not run yet) must
still be flushed. The window is opened deterministically: the real statement runs on the real
database, and just as it returns, a new request's task is scheduled, so that request's first
step runs before the finished flusher's done-callbacks. CI hung on this once: 48 requests from
8 threads, one stranded, and the test waited forever.
"""

from __future__ import annotations

import asyncio
import uuid

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from apps.events_api.admission import AcceptBatcher
from apps.events_api.keys import ApiKey, create_key
from apps.events_api.schemas import EventIn
from tests.apps.conftest import EventsApiEnv

EVENT = EventIn(category="c", message="m")
STRANDED_AFTER_S = 10.0
"""A flush of one row takes milliseconds; waiting this long means the request was stranded."""


def _key(env: EventsApiEnv) -> ApiKey:
    with psycopg.connect(env.database_url) as conn:
        key, _ = create_key(conn, uuid.uuid4().hex[:8], 1_000_000, 100_000)
    return key


async def _accept_as_the_flusher_finishes(env: EventsApiEnv, key: ApiKey) -> list[uuid.UUID]:
    async with AsyncConnectionPool(
        env.settings.db.conninfo_async,
        connection_class=AsyncConnection,
        min_size=1,
        max_size=2,
        kwargs={"autocommit": True},
    ) as pool:
        batcher = AcceptBatcher(pool, env.topics.events)
        real_store = batcher._store
        late: list[asyncio.Task[uuid.UUID]] = []

        async def store_then_queue_one_more(batch):  # type: ignore[no-untyped-def]
            outcomes = await real_store(batch)
            if not late:
                # Scheduled now, its first step (queueing the request) runs after this flusher
                # has found the queue empty and finished, but before its done-callbacks.
                late.append(asyncio.create_task(batcher.accept(key, EVENT, "late")))
            return outcomes

        batcher._store = store_then_queue_one_more  # type: ignore[method-assign]
        first = await batcher.accept(key, EVENT, "first")
        second = await asyncio.wait_for(late[0], STRANDED_AFTER_S)
        await batcher.drain()
        return [first, second]


def test_a_request_queued_as_the_flusher_finishes_is_flushed(
    events_api_env: EventsApiEnv,
) -> None:
    # A loop of its own that is never made the thread's current loop: asyncio.run() would
    # leave "no current event loop" behind, and the Pulumi mocks of later tests in this
    # process ask for the current one.
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        ids = runner.run(_accept_as_the_flusher_finishes(events_api_env, _key(events_api_env)))
    with psycopg.connect(events_api_env.database_url) as conn:
        stored = conn.execute("SELECT id FROM events ORDER BY received_at").fetchall()
    assert [row[0] for row in stored] == ids
