"""Tasks CRUD: each change emits its task.* envelope, in order, keyed by the task id."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from apps.common.envelope import decode
from tests.apps.conftest import EventsApiEnv, read_topic


def test_crud_round_trip_emits_created_updated_deleted_in_order(
    client: TestClient, auth: dict[str, str], events_api_env: EventsApiEnv
) -> None:
    created = client.post(
        "/api/v1/tasks",
        json={
            "title": "Write docs",
            "priority": "high",
            "due_at": "2030-01-01T09:00:00+02:00",
            "tags": ["docs", "q1"],
        },
        headers={**auth, "X-Correlation-ID": "task-flow"},
    )
    assert created.status_code == 201, created.text
    task = created.json()
    task_id = task["id"]
    assert task["status"] == "todo"
    assert task["due_at"].startswith("2030-01-01T07:00:00")  # stored and returned in UTC
    assert task["version"] == 1

    fetched = client.get(f"/api/v1/tasks/{task_id}", headers=auth)
    assert fetched.status_code == 200
    assert fetched.json() == task

    replaced = client.put(
        f"/api/v1/tasks/{task_id}",
        json={"title": "Write better docs", "status": "in_progress", "tags": []},
        headers=auth,
    )
    assert replaced.status_code == 200
    assert replaced.json()["version"] == 2
    assert replaced.json()["priority"] == "medium"  # PUT replaces: omitted fields get defaults
    assert replaced.json()["due_at"] is None

    assert client.delete(f"/api/v1/tasks/{task_id}", headers=auth).status_code == 204
    assert client.get(f"/api/v1/tasks/{task_id}", headers=auth).status_code == 404
    assert client.delete(f"/api/v1/tasks/{task_id}", headers=auth).status_code == 404

    records = read_topic(events_api_env.bootstrap, events_api_env.topics.tasks, 3)
    envelopes = [decode(r.value) for r in records]
    assert [e.type for e in envelopes] == ["task.created", "task.updated", "task.deleted"]
    assert {e.subject for e in envelopes} == {task_id}
    assert {r.key for r in records} == {task_id.encode()}
    assert envelopes[0].correlation_id == "task-flow"
    assert envelopes[0].data["title"] == "Write docs"
    assert envelopes[1].data["title"] == "Write better docs"
    assert envelopes[2].data == {"id": task_id, "version": 2, "tenant": envelopes[0].data["tenant"]}


def test_list_pages_through_the_callers_tasks_only(
    client: TestClient, auth: dict[str, str], events_api_env: EventsApiEnv
) -> None:
    ids = [
        client.post("/api/v1/tasks", json={"title": f"t{i}"}, headers=auth).json()["id"]
        for i in range(5)
    ]
    other = {"Authorization": f"Bearer {events_api_env.create_key()}"}
    foreign = client.post("/api/v1/tasks", json={"title": "not yours"}, headers=other).json()

    first = client.get("/api/v1/tasks", params={"limit": 2}, headers=auth).json()
    second = client.get(
        "/api/v1/tasks", params={"limit": 2, "cursor": first["next_cursor"]}, headers=auth
    ).json()
    last = client.get(
        "/api/v1/tasks", params={"limit": 2, "cursor": second["next_cursor"]}, headers=auth
    ).json()
    assert last["next_cursor"] is None
    assert [t["id"] for t in first["items"] + second["items"] + last["items"]] == ids
    # Another key's task is invisible: 404, not 403, so ids cannot be probed.
    assert client.get(f"/api/v1/tasks/{foreign['id']}", headers=auth).status_code == 404
    assert (
        client.put(
            f"/api/v1/tasks/{foreign['id']}", json={"title": "mine now"}, headers=auth
        ).status_code
        == 404
    )


def _recurring(rrule: str, timezone: str = "UTC") -> dict[str, object]:
    """A task body with a due date and the given recurrence."""
    return {
        "title": "t",
        "due_at": "2030-01-01T09:00:00Z",
        "recurrence": {"rrule": rrule, "timezone": timezone},
    }


@pytest.mark.parametrize(
    ("method", "path", "body", "loc"),
    [
        ("post", "/api/v1/tasks", {"title": "t", "status": "started"}, ["body", "status"]),
        ("post", "/api/v1/tasks", {"title": "t", "priority": 3}, ["body", "priority"]),
        (
            "post",
            "/api/v1/tasks",
            {"title": "t", "due_at": "2030-01-01T09:00:00"},
            ["body", "due_at"],
        ),
        ("post", "/api/v1/tasks", {"title": "t", "tags": ["x"] * 21}, ["body", "tags"]),
        ("post", "/api/v1/tasks", {"title": "t", "owner": "me"}, ["body", "owner"]),
        ("put", "/api/v1/tasks/8d5c6a53-0d8e-4a4e-9d46-2b1f4b0f7a11", {}, ["body", "title"]),
        ("get", "/api/v1/tasks/not-a-uuid", None, ["path", "task_id"]),
        ("get", "/api/v1/tasks?limit=0", None, ["query", "limit"]),
        ("get", "/api/v1/tasks?cursor=bogus", None, ["query", "cursor"]),
        ("get", "/api/v1/tasks?sort=colour", None, ["query", "sort"]),
        ("get", "/api/v1/tasks?status=started", None, ["query", "status", 0]),
        ("get", "/api/v1/tasks?due_from=2030-01-01", None, ["query", "due_from"]),
        (
            "get",
            "/api/v1/tasks?due_from=2030-01-02T00:00:00Z&due_to=2030-01-01T00:00:00Z",
            None,
            ["query", "due_to"],
        ),
        ("post", "/api/v1/tasks", {"title": "t", "reminders": ["PT1H"]}, ["body", "reminders"]),
        (
            "post",
            "/api/v1/tasks",
            {"title": "t", "due_at": "2030-01-01T09:00:00Z", "reminders": ["-PT1H"]},
            ["body", "reminders", 0],
        ),
        (
            "post",
            "/api/v1/tasks",
            {"title": "t", "due_at": "2030-01-01T09:00:00Z", "reminders": ["soon"]},
            ["body", "reminders", 0],
        ),
        (
            "post",
            "/api/v1/tasks",
            {"title": "t", "due_at": "2030-01-01T09:00:00Z", "reminders": ["PT1H", "PT60M"]},
            ["body", "reminders"],
        ),
        (
            "post",
            "/api/v1/tasks",
            _recurring("FREQ=SOMETIMES"),
            ["body", "recurrence", "rrule"],
        ),
        (
            "post",
            "/api/v1/tasks",
            _recurring("FREQ=DAILY", "Mars/Olympus"),
            ["body", "recurrence", "timezone"],
        ),
        (
            "post",
            "/api/v1/tasks",
            {"title": "t", "recurrence": {"rrule": "FREQ=DAILY", "timezone": "UTC"}},
            ["body", "recurrence"],
        ),
        (
            "post",
            "/api/v1/tasks",
            _recurring("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30"),
            ["body", "recurrence"],
        ),
    ],
)
def test_invalid_task_input_is_422_with_field_detail(
    client: TestClient,
    auth: dict[str, str],
    method: str,
    path: str,
    body: object,
    loc: list[str],
) -> None:
    response = client.request(method, path, headers=auth, json=body)
    assert response.status_code == 422
    assert loc in [d["loc"] for d in response.json()["detail"]]


def test_due_at_outside_utc_range_is_422_not_500(client: TestClient, auth: dict[str, str]) -> None:
    response = client.post(
        "/api/v1/tasks", json={"title": "t", "due_at": "9999-12-31T23:59:59-14:00"}, headers=auth
    )
    assert response.status_code == 422
