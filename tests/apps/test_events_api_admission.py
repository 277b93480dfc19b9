"""The `events_api_accept_event` SQL function under concurrency: limits are exact across replicas.

Two app objects (each with its own pools, like two pods) on one database, several threads each,
hammering one key: exactly the quota (or the rate) is accepted, every other request is a 429,
and the stored rows match the counters one for one (no unit taken for an event not stored).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.apps.conftest import EventsApiEnv
from tests.apps.test_events_api_limits import PinnedClock

EVENT = {"category": "c", "message": "m"}
THREADS_PER_REPLICA = 4
REQUESTS = 48


@pytest.fixture
def replicas(events_api_env: EventsApiEnv) -> Iterator[list[TestClient]]:
    # Limits counted at one pinned time: no count can straddle a minute boundary.
    clock = PinnedClock(datetime(2031, 1, 1, 12, 0, 0, tzinfo=UTC))
    with ExitStack() as stack:
        clients = [
            stack.enter_context(TestClient(events_api_env.app(relay_enabled=False)))
            for _ in range(2)
        ]
        for client in clients:
            client.app.state.limit_clock = clock  # type: ignore[attr-defined]
        yield clients


def _hammer(replicas: list[TestClient], key: str) -> list[int]:
    headers = {"Authorization": f"Bearer {key}"}
    clients = itertools.cycle(replicas)
    targets = [next(clients) for _ in range(REQUESTS)]
    with ThreadPoolExecutor(THREADS_PER_REPLICA * len(replicas)) as pool:
        responses = list(
            pool.map(lambda c: c.post("/api/v1/events", json=EVENT, headers=headers), targets)
        )
    for response in responses:
        if response.status_code == 429:
            assert int(response.headers["Retry-After"]) >= 1
    return [r.status_code for r in responses]


def _stored(database_url: str, topic: str) -> tuple[int, int, int]:
    with psycopg.connect(database_url) as conn:
        usage = conn.execute("SELECT coalesce(sum(accepted), 0) FROM api_key_monthly_usage")
        events = conn.execute("SELECT count(*) FROM events")
        outbox = conn.execute("SELECT count(*) FROM outbox WHERE topic = %s", (topic,))
        return (
            (usage.fetchone() or (0,))[0],
            (events.fetchone() or (0,))[0],
            (outbox.fetchone() or (0,))[0],
        )


@pytest.mark.parametrize(
    ("monthly_quota", "rate"), [(17, 100_000), (1_000_000, 13)], ids=["quota", "rate"]
)
def test_limit_is_exact_under_concurrency(
    events_api_env: EventsApiEnv, replicas: list[TestClient], monthly_quota: int, rate: int
) -> None:
    admitted = min(monthly_quota, rate)  # the binding limit; REQUESTS is far above both
    statuses = _hammer(replicas, events_api_env.create_key(monthly_quota=monthly_quota, rate=rate))
    assert statuses.count(202) == admitted
    assert statuses.count(429) == REQUESTS - admitted
    stored = _stored(events_api_env.database_url, events_api_env.topics.events)
    assert stored == (admitted, admitted, admitted)


def test_refused_for_quota_still_counts_against_the_rate(
    events_api_env: EventsApiEnv, replicas: list[TestClient]
) -> None:
    """A quota refusal was still a request: it uses rate, but stores nothing."""
    key = events_api_env.create_key(monthly_quota=1, rate=3)
    headers = {"Authorization": f"Bearer {key}"}
    first = replicas[0]
    answers = [first.post("/api/v1/events", json=EVENT, headers=headers) for _ in range(4)]
    assert [a.status_code for a in answers] == [202, 429, 429, 429]
    assert "monthly quota" in answers[1].json()["detail"]
    assert "rate" in answers[3].json()["detail"]
    assert _stored(events_api_env.database_url, events_api_env.topics.events) == (1, 1, 1)
