"""Read APIs: GET /api/v1/events/{id} (the event, its deliveries per channel from the notifier's
records, whether audit has it) and GET /api/v1/audit (the tenant's audit trail, `audit:read`).

One database for every app, as deployed: the notifier's and audit's migrations run on the
events-api database, and their rows are written with the apps' own store code."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from apps.audit import store as audit_store
from apps.common.envelope import decode
from tests.apps.conftest import EventsApiEnv, read_topic
from tests.apps.delivery_records import record_deliveries


@pytest.fixture
def client(one_database: EventsApiEnv) -> Iterator[TestClient]:
    with TestClient(one_database.app()) as test_client:
        yield test_client


def _audit_what_was_published(env: EventsApiEnv, topic: str, expect: int) -> list[str]:
    """Insert into audit_log what the relay published, as the audit consumer does."""
    records = read_topic(env.bootstrap, topic, expect)
    rows = [
        audit_store.AuditRecord.of(decode(r.value), r.topic, r.partition, r.offset) for r in records
    ]
    with psycopg.connect(env.database_url) as conn, conn.transaction():
        audit_store.insert_batch(conn, rows)
    return [str(decode(r.value).id) for r in records]


def test_an_event_shows_its_deliveries_per_channel_and_its_audit_state(
    client: TestClient, one_database: EventsApiEnv
) -> None:
    auth = {"Authorization": f"Bearer {one_database.create_key()}"}
    accepted = client.post(
        "/api/v1/events", json={"category": "deploy", "message": "v2 is out"}, headers=auth
    ).json()
    event_id = uuid.UUID(accepted["id"])
    before = client.get(f"/api/v1/events/{event_id}", headers=auth).json()
    assert (before["message"], before["deliveries"], before["audited"]) == ("v2 is out", [], False)

    (record,) = read_topic(one_database.bootstrap, one_database.topics.events, 1)
    record_deliveries(
        one_database.database_url, record, sent={"webhook": 204}, failing={"slack": "timeout"}
    )
    _audit_what_was_published(one_database, one_database.topics.events, 1)

    after = client.get(f"/api/v1/events/{event_id}", headers=auth).json()
    assert after["audited"] is True and after["audited_at"]
    by_channel = {d["channel"]: d for d in after["deliveries"]}
    assert by_channel["webhook"]["status"] == "sent"
    assert by_channel["webhook"]["last_status_code"] == 204 and by_channel["webhook"]["sent_at"]
    assert by_channel["slack"]["status"] == "sending"
    assert by_channel["slack"]["last_error"] == "timeout"
    # Another key's event is a 404 (ids cannot be probed); so is an unknown one.
    other = {"Authorization": f"Bearer {one_database.create_key()}"}
    assert client.get(f"/api/v1/events/{event_id}", headers=other).status_code == 404
    assert client.get(f"/api/v1/events/{uuid.uuid4()}", headers=auth).status_code == 404


def test_without_the_other_apps_tables_the_status_is_unknown_not_an_error(
    events_api_env: EventsApiEnv,
) -> None:
    auth = {"Authorization": f"Bearer {events_api_env.create_key()}"}
    with TestClient(events_api_env.app(relay_enabled=False)) as client:
        event_id = client.post(
            "/api/v1/events", json={"category": "c", "message": "m"}, headers=auth
        ).json()["id"]
        found = client.get(f"/api/v1/events/{event_id}", headers=auth).json()
        assert (found["deliveries"], found["audited"]) == (None, None)
        auditor = events_api_env.create_key(scopes=("audit:read",))
        trail = client.get("/api/v1/audit", headers={"Authorization": f"Bearer {auditor}"})
        assert trail.status_code == 503


def test_the_audit_trail_is_served_per_tenant_to_audit_read_keys(
    client: TestClient, one_database: EventsApiEnv
) -> None:
    acme = {"Authorization": f"Bearer {one_database.create_key(tenant='acme')}"}
    globex = {"Authorization": f"Bearer {one_database.create_key(tenant='globex')}"}
    task = client.post("/api/v1/tasks", json={"title": "Ship it"}, headers=acme).json()
    client.put(
        f"/api/v1/tasks/{task['id']}", json={"title": "Ship it", "status": "done"}, headers=acme
    )
    client.post("/api/v1/tasks", json={"title": "Not acme's"}, headers=globex)
    for i in range(5):
        client.post("/api/v1/events", json={"category": "c", "message": f"m{i}"}, headers=acme)
    _audit_what_was_published(one_database, one_database.topics.tasks, 3)
    _audit_what_was_published(one_database, one_database.topics.events, 5)

    auditor = {
        "Authorization": f"Bearer {one_database.create_key(tenant='acme', scopes=('audit:read',))}"
    }
    # The writing key lacks audit:read.
    refused = client.get("/api/v1/audit", headers=acme)
    assert refused.status_code == 403 and "audit:read" in refused.json()["detail"]

    trail = client.get("/api/v1/audit", params={"subject": task["id"]}, headers=auditor).json()
    assert [e["type"] for e in trail["items"]] == ["task.created", "task.updated"]
    assert trail["items"][1]["data"]["status"] == "done"

    everything: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/audit", params=params, headers=auditor).json()
        everything += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(everything) == 7  # acme's 2 task changes and 5 events; globex's is not there
    assert all(e["data"]["tenant"] == "acme" for e in everything)
    assert len({e["event_id"] for e in everything}) == 7
    only_events = client.get(
        "/api/v1/audit", params={"type": "event.received", "limit": 200}, headers=auditor
    ).json()
    assert len(only_events["items"]) == 5
    first = everything[0]["occurred_at"]
    later = client.get("/api/v1/audit", params={"from": first, "to": first}, headers=auditor)
    assert later.status_code == 422 and later.json()["detail"][0]["loc"] == ["query", "to"]

    globex_key = one_database.create_key(tenant="globex", scopes=("audit:read",))
    globex_auditor = {"Authorization": f"Bearer {globex_key}"}
    theirs = client.get("/api/v1/audit", headers=globex_auditor).json()["items"]
    assert [e["data"]["title"] for e in theirs] == ["Not acme's"]


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"type": "task.exploded"}, ["query", "type"]),
        ({"from": "yesterday"}, ["query", "from"]),
        ({"limit": 0}, ["query", "limit"]),
        ({"cursor": "abc"}, ["query", "cursor"]),
        ({"subject": ""}, ["query", "subject"]),
    ],
)
def test_bad_audit_parameters_are_422_naming_them(
    client: TestClient, one_database: EventsApiEnv, params: dict[str, object], loc: list[str]
) -> None:
    auditor = {"Authorization": f"Bearer {one_database.create_key(scopes=('audit:read',))}"}
    response = client.get("/api/v1/audit", params=params, headers=auditor)  # type: ignore[arg-type]
    assert response.status_code == 422
    assert loc in [d["loc"] for d in response.json()["detail"]]
