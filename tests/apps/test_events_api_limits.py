"""Rate limit and monthly quota: 429 with Retry-After, counted in PostgreSQL across replicas.

The limits count at a pinned time (`app.state.limit_clock`, read by both the accept function and
the other routes' rate check), so no test depends on where in the minute or month it runs, and
the window resets are tested by moving the clock, not by waiting.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.apps.conftest import EventsApiEnv

EVENT = {"category": "c", "message": "m"}


@dataclass
class PinnedClock:
    """What both replicas count limits at; move `now` to cross a window."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> PinnedClock:
    return PinnedClock(datetime(2031, 1, 31, 23, 59, 30, tzinfo=UTC))


@pytest.fixture
def two_replicas(
    events_api_env: EventsApiEnv, clock: PinnedClock
) -> Iterator[tuple[TestClient, TestClient]]:
    """Two app objects, each with its own pool, on one database: what two pods look like."""
    with ExitStack() as stack:
        first = stack.enter_context(TestClient(events_api_env.app(relay_enabled=False)))
        second = stack.enter_context(TestClient(events_api_env.app(relay_enabled=False)))
        for client in (first, second):
            client.app.state.limit_clock = clock  # type: ignore[attr-defined]
        yield first, second


def test_rate_limit_is_shared_by_replicas(
    events_api_env: EventsApiEnv, two_replicas: tuple[TestClient, TestClient], clock: PinnedClock
) -> None:
    key = events_api_env.create_key(rate=6)
    headers = {"Authorization": f"Bearer {key}"}
    first, second = two_replicas
    statuses = [
        (first if i % 2 == 0 else second).post("/api/v1/events", json=EVENT, headers=headers)
        for i in range(9)
    ]
    assert [r.status_code for r in statuses] == [202] * 6 + [429] * 3
    assert statuses[-1].headers["Retry-After"] == "30"  # 23:59:30 -> the next minute
    assert "rate" in statuses[-1].json()["detail"]
    # Other routes of the same key are limited too, with the same window; another key is not.
    tasks = second.get("/api/v1/tasks", headers=headers)
    assert (tasks.status_code, tasks.headers["Retry-After"]) == (429, "30")
    other = {"Authorization": f"Bearer {events_api_env.create_key()}"}
    assert first.post("/api/v1/events", json=EVENT, headers=other).status_code == 202

    clock.now += timedelta(seconds=29)  # 23:59:59: still the same window
    assert first.get("/api/v1/tasks", headers=headers).headers["Retry-After"] == "1"
    clock.now += timedelta(seconds=1)  # the next minute: a fresh window, on every route
    assert second.get("/api/v1/tasks", headers=headers).status_code == 200
    codes = [
        first.post("/api/v1/events", json=EVENT, headers=headers).status_code for _ in range(6)
    ]
    assert codes == [202] * 5 + [429]  # the GET above counted too


def test_monthly_quota_is_shared_and_refusals_cost_nothing(
    events_api_env: EventsApiEnv, two_replicas: tuple[TestClient, TestClient]
) -> None:
    key = events_api_env.create_key(monthly_quota=4)
    headers = {"Authorization": f"Bearer {key}"}
    first, second = two_replicas
    codes = [
        (first if i % 2 else second).post("/api/v1/events", json=EVENT, headers=headers).status_code
        for i in range(7)
    ]
    assert codes == [202] * 4 + [429] * 3
    refused = first.post("/api/v1/events", json=EVENT, headers=headers)
    assert refused.headers["Retry-After"] == "30"  # 2031-01-31T23:59:30Z -> February
    assert "monthly quota" in refused.json()["detail"]
    # A 422 does not use quota either, and tasks are not events: neither is refused for quota.
    assert first.post("/api/v1/events", json={"bad": 1}, headers=headers).status_code == 422
    assert second.post("/api/v1/tasks", json={"title": "t"}, headers=headers).status_code == 201
    with psycopg.connect(events_api_env.database_url) as conn:
        assert conn.execute("SELECT accepted FROM api_key_monthly_usage").fetchone() == (4,)
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (4,)
        outbox_events = conn.execute(
            "SELECT count(*) FROM outbox WHERE topic = %s", (events_api_env.topics.events,)
        ).fetchone()
        assert outbox_events == (4,)


def test_zero_limits_refuse_everything(
    events_api_env: EventsApiEnv, two_replicas: tuple[TestClient, TestClient]
) -> None:
    first, _ = two_replicas
    no_rate = {"Authorization": f"Bearer {events_api_env.create_key(rate=0)}"}
    no_quota = {"Authorization": f"Bearer {events_api_env.create_key(monthly_quota=0)}"}
    assert first.post("/api/v1/events", json=EVENT, headers=no_rate).status_code == 429
    assert first.post("/api/v1/events", json=EVENT, headers=no_quota).status_code == 429


def test_a_new_utc_month_brings_a_fresh_quota(
    events_api_env: EventsApiEnv, two_replicas: tuple[TestClient, TestClient], clock: PinnedClock
) -> None:
    headers = {"Authorization": f"Bearer {events_api_env.create_key(monthly_quota=2)}"}
    first, second = two_replicas
    codes = [
        first.post("/api/v1/events", json=EVENT, headers=headers).status_code for _ in range(3)
    ]
    assert codes == [202, 202, 429]
    clock.now = datetime(2031, 2, 1, 0, 0, 0, tzinfo=UTC)
    codes = [
        second.post("/api/v1/events", json=EVENT, headers=headers).status_code for _ in range(3)
    ]
    assert codes == [202, 202, 429]
    with psycopg.connect(events_api_env.database_url) as conn:
        months = conn.execute(
            "SELECT month::text, accepted FROM api_key_monthly_usage ORDER BY month"
        ).fetchall()
    assert months == [("2031-01-01", 2), ("2031-02-01", 2)]
