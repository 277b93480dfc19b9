"""Rate limit and monthly quota: 429 with Retry-After, counted in PostgreSQL across replicas."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.apps.conftest import EventsApiEnv

EVENT = {"category": "c", "message": "m"}


@pytest.fixture
def two_replicas(events_api_env: EventsApiEnv) -> Iterator[tuple[TestClient, TestClient]]:
    """Two app objects, each with its own pool, on one database: what two pods look like."""
    with ExitStack() as stack:
        first = stack.enter_context(TestClient(events_api_env.app(relay_enabled=False)))
        second = stack.enter_context(TestClient(events_api_env.app(relay_enabled=False)))
        yield first, second


def _avoid_minute_boundary(database_url: str) -> None:
    """The rate window is the database's calendar minute; don't start a count across one."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT extract(second FROM clock_timestamp())").fetchone()
    assert row is not None
    if float(row[0]) > 50:
        time.sleep(61 - float(row[0]))


def test_rate_limit_is_shared_by_replicas(
    events_api_env: EventsApiEnv, two_replicas: tuple[TestClient, TestClient]
) -> None:
    key = events_api_env.create_key(rate=6)
    headers = {"Authorization": f"Bearer {key}"}
    _avoid_minute_boundary(events_api_env.database_url)
    first, second = two_replicas
    statuses = [
        (first if i % 2 == 0 else second).post("/api/v1/events", json=EVENT, headers=headers)
        for i in range(9)
    ]
    assert [r.status_code for r in statuses] == [202] * 6 + [429] * 3
    retry_after = int(statuses[-1].headers["Retry-After"])
    assert 1 <= retry_after <= 60
    assert "rate" in statuses[-1].json()["detail"]
    # Other routes of the same key are limited too; another key is not.
    assert second.get("/api/v1/tasks", headers=headers).status_code == 429
    other = {"Authorization": f"Bearer {events_api_env.create_key()}"}
    assert first.post("/api/v1/events", json=EVENT, headers=other).status_code == 202


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
    retry_after = int(refused.headers["Retry-After"])
    assert 1 <= retry_after <= 31 * 24 * 3600
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
