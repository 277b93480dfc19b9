"""Idempotency-Key: a write whose response was lost after its commit is retried on another
replica and answered with the first response; no second row, no second event.

Two API replicas (two apps on one database, each a real uvicorn server); the first request goes
through a proxy that breaks the connection as soon as the response starts (after the commit)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from apps.events_api import idempotency
from tests.apps.conftest import EventsApiEnv
from tests.apps.drop_proxy import drop_proxy
from tests.apps.live_server import live_server


@pytest.fixture
def replicas(events_api_env: EventsApiEnv) -> Iterator[tuple[str, str]]:
    with (
        live_server(events_api_env.app(relay_enabled=False)) as a,
        live_server(events_api_env.app(relay_enabled=False)) as b,
    ):
        yield a, b


def _count(env: EventsApiEnv, sql: str) -> int:
    with psycopg.connect(env.database_url) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def test_a_lost_response_is_retried_on_the_other_replica_without_a_second_write(
    events_api_env: EventsApiEnv, replicas: tuple[str, str]
) -> None:
    a, b = replicas
    headers = {"Authorization": f"Bearer {events_api_env.create_key()}"}
    body = {"title": "Renew the certificate", "priority": "high", "tags": ["ops"]}
    outcomes = []
    for attempt in range(8):
        key = {"Idempotency-Key": f"create-{attempt}-{uuid.uuid4().hex[:6]}"}
        with drop_proxy(a, drop=1) as (through_a, proxy):
            with pytest.raises(httpx.TransportError):
                httpx.post(f"{through_a}/api/v1/tasks", json=body, headers={**headers, **key})
            assert proxy.dropped == 1
        retried = httpx.post(f"{b}/api/v1/tasks", json=body, headers={**headers, **key})
        again = httpx.post(f"{a}/api/v1/tasks", json=body, headers={**headers, **key})
        assert retried.status_code == 201, retried.text
        assert retried.headers[idempotency.REPLAYED_HEADER] == "true"
        assert again.json() == retried.json()
        outcomes.append(retried.json()["id"])
    # 8 broken connections, each committed; each retry answered the first response.
    assert len(set(outcomes)) == 8
    assert _count(events_api_env, "SELECT count(*) FROM tasks") == 8
    assert _count(events_api_env, "SELECT count(*) FROM outbox") == 8


def test_a_lost_202_for_an_event_is_retried_without_a_second_event(
    events_api_env: EventsApiEnv, replicas: tuple[str, str]
) -> None:
    """The issue's fault-injection case: events whose connection broke after they were stored.
    Each retry (on the other replica) returns the first 202 and its id; nothing is stored
    twice and the quota counts each event once."""
    a, b = replicas
    headers = {"Authorization": f"Bearer {events_api_env.create_key()}"}
    ids = []
    for attempt in range(8):
        key = {**headers, "Idempotency-Key": f"event-{attempt}"}
        body = {"category": "payment", "message": f"invoice {attempt} paid"}
        with drop_proxy(a, drop=1) as (through_a, proxy):
            with pytest.raises(httpx.TransportError):
                httpx.post(f"{through_a}/api/v1/events", json=body, headers=key)
            assert proxy.dropped == 1
        retried = httpx.post(f"{b}/api/v1/events", json=body, headers=key)
        assert retried.status_code == 202, retried.text
        assert retried.headers[idempotency.REPLAYED_HEADER] == "true"
        ids.append(retried.json()["id"])
        reused = httpx.post(f"{a}/api/v1/events", json={**body, "message": "other"}, headers=key)
        assert reused.status_code == 422
    unkeyed = httpx.post(
        f"{a}/api/v1/events", json={"category": "c", "message": "m"}, headers=headers
    )
    assert unkeyed.status_code == 202 and idempotency.REPLAYED_HEADER not in unkeyed.headers
    assert len(set(ids)) == 8
    assert _count(events_api_env, "SELECT count(*) FROM events") == 9
    assert _count(events_api_env, "SELECT count(*) FROM outbox") == 9
    assert (
        _count(events_api_env, "SELECT coalesce(sum(accepted), 0) FROM api_key_monthly_usage") == 9
    )


def test_put_and_delete_replay_too(events_api_env: EventsApiEnv, replicas: tuple[str, str]) -> None:
    a, b = replicas
    headers = {"Authorization": f"Bearer {events_api_env.create_key()}"}
    task = httpx.post(f"{a}/api/v1/tasks", json={"title": "t"}, headers=headers).json()
    put_key = {**headers, "Idempotency-Key": "put-1"}
    with drop_proxy(a, drop=1) as (through_a, _), pytest.raises(httpx.TransportError):
        httpx.put(f"{through_a}/api/v1/tasks/{task['id']}", json={"title": "u"}, headers=put_key)
    replay = httpx.put(f"{b}/api/v1/tasks/{task['id']}", json={"title": "u"}, headers=put_key)
    assert replay.status_code == 200 and replay.json()["version"] == 2  # not 3
    delete_key = {**headers, "Idempotency-Key": "delete-1"}
    assert httpx.delete(f"{a}/api/v1/tasks/{task['id']}", headers=delete_key).status_code == 204
    again = httpx.delete(f"{b}/api/v1/tasks/{task['id']}", headers=delete_key)
    assert again.status_code == 204 and again.headers[idempotency.REPLAYED_HEADER] == "true"
    assert _count(events_api_env, "SELECT count(*) FROM outbox") == 3  # created, updated, deleted


def test_the_same_key_with_another_request_is_422_naming_the_header(
    events_api_env: EventsApiEnv, replicas: tuple[str, str]
) -> None:
    a, b = replicas
    headers = {"Authorization": f"Bearer {events_api_env.create_key()}", "Idempotency-Key": "k1"}
    assert (
        httpx.post(f"{a}/api/v1/tasks", json={"title": "one"}, headers=headers).status_code == 201
    )
    # Same meaning, other spelling (key order, spacing): the same request, replayed.
    same = httpx.post(
        f"{b}/api/v1/tasks",
        content=b'{ "title" : "one" }',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert same.status_code == 201 and same.headers[idempotency.REPLAYED_HEADER] == "true"
    different = httpx.post(f"{b}/api/v1/tasks", json={"title": "two"}, headers=headers)
    assert different.status_code == 422
    assert different.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    # Keys belong to the API key: another caller may use the same string.
    other = {"Authorization": f"Bearer {events_api_env.create_key()}", "Idempotency-Key": "k1"}
    assert httpx.post(f"{a}/api/v1/tasks", json={"title": "two"}, headers=other).status_code == 201
    assert _count(events_api_env, "SELECT count(*) FROM tasks") == 2


def test_concurrent_requests_with_one_key_write_once(
    events_api_env: EventsApiEnv, replicas: tuple[str, str]
) -> None:
    headers = {"Authorization": f"Bearer {events_api_env.create_key()}", "Idempotency-Key": "race"}

    def post(base: str) -> httpx.Response:
        return httpx.post(f"{base}/api/v1/tasks", json={"title": "once"}, headers=headers)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(post, [*replicas] * 4))
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert _count(events_api_env, "SELECT count(*) FROM tasks") == 1


def test_expired_keys_are_purged_and_can_be_used_again(events_api_env: EventsApiEnv) -> None:
    headers = {"Authorization": f"Bearer {events_api_env.create_key()}", "Idempotency-Key": "old"}
    with TestClient(events_api_env.app(relay_enabled=False)) as client:
        first = client.post("/api/v1/tasks", json={"title": "a"}, headers=headers).json()
        with psycopg.connect(events_api_env.database_url) as conn:
            conn.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
        # Expired: a new request under the old key is a new write, not a 422.
        second = client.post("/api/v1/tasks", json={"title": "b"}, headers=headers)
        assert second.status_code == 201 and second.json()["id"] != first["id"]
        with psycopg.connect(events_api_env.database_url, autocommit=True) as conn:
            conn.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
            assert idempotency.purge_expired(conn, batch=1) == 1
            assert conn.execute("SELECT count(*) FROM idempotency_keys").fetchone() == (0,)


@pytest.mark.parametrize("value", ["", "x" * 256, "has space", "tab\there"])
def test_a_malformed_key_is_422(events_api_env: EventsApiEnv, value: str) -> None:
    headers = {"Authorization": f"Bearer {events_api_env.create_key()}", "Idempotency-Key": value}
    with TestClient(events_api_env.app(relay_enabled=False)) as client:
        response = client.post("/api/v1/tasks", json={"title": "a"}, headers=headers)
    assert response.status_code == 422
    assert ["header", "Idempotency-Key"] in [d["loc"] for d in response.json()["detail"]]
