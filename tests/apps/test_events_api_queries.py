"""GET /api/v1/tasks: filters, PostgreSQL full-text search (with its index), sorts, and cursor
pages that stay stable while other tasks are inserted."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from tests.apps.conftest import EventsApiEnv


@pytest.fixture
def client(events_api_env: EventsApiEnv) -> Iterator[TestClient]:
    with TestClient(events_api_env.app(relay_enabled=False)) as test_client:
        yield test_client


TASKS = [
    {"title": "Write the quarterly report", "priority": "high", "tags": ["work", "q3"],
     "due_at": "2030-07-01T09:00:00Z", "description": "numbers from finance"},
    {"title": "Buy milk", "priority": "low", "tags": ["home"], "status": "done"},
    {"title": "Review pull requests", "priority": "urgent", "tags": ["work"],
     "due_at": "2030-06-15T09:00:00Z"},
    {"title": "Call the plumber", "priority": "medium", "tags": ["home", "urgent-ish"],
     "due_at": "2030-06-20T12:00:00Z", "description": "the kitchen sink is leaking"},
    {"title": "Writing workshop", "priority": "medium", "tags": ["work", "q3"],
     "status": "in_progress"},
]  # fmt: skip


def _titles(client: TestClient, auth: dict[str, str], **params: object) -> list[str]:
    response = client.get("/api/v1/tasks", params=params, headers=auth)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    return [t["title"] for t in response.json()["items"]]


@pytest.fixture
def seeded(client: TestClient, auth: dict[str, str]) -> None:
    for task in TASKS:
        assert client.post("/api/v1/tasks", json=task, headers=auth).status_code == 201


@pytest.mark.usefixtures("seeded")
def test_filters_combine(client: TestClient, auth: dict[str, str]) -> None:
    assert _titles(client, auth, status="done") == ["Buy milk"]
    assert set(_titles(client, auth, status=["todo", "in_progress"])) == {
        "Write the quarterly report", "Review pull requests", "Call the plumber", "Writing workshop"
    }  # fmt: skip
    assert _titles(client, auth, priority="urgent") == ["Review pull requests"]
    assert _titles(client, auth, tag=["work", "q3"]) == [
        "Write the quarterly report",
        "Writing workshop",
    ]  # every tag given
    assert _titles(
        client, auth, due_from="2030-06-16T00:00:00Z", due_to="2030-07-01T09:00:00Z"
    ) == ["Call the plumber"]  # from inclusive, to exclusive
    assert _titles(client, auth, tag="work", priority=["high", "urgent"], sort="due_at") == [
        "Review pull requests",
        "Write the quarterly report",
    ]


@pytest.mark.usefixtures("seeded")
def test_full_text_search_is_stemmed_and_uses_the_index(
    client: TestClient, auth: dict[str, str], events_api_env: EventsApiEnv
) -> None:
    # "write" finds "Write" and "Writing" (English stemming); the description counts too.
    assert set(_titles(client, auth, q="write")) == {
        "Write the quarterly report",
        "Writing workshop",
    }
    assert _titles(client, auth, q="leaking sink") == ["Call the plumber"]
    assert _titles(client, auth, q="finance -milk") == ["Write the quarterly report"]
    assert _titles(client, auth, q='"pull requests"') == ["Review pull requests"]
    assert _titles(client, auth, q="nothing-like-this") == []
    with psycopg.connect(events_api_env.database_url) as conn:
        conn.execute("SET enable_seqscan = off")  # a few rows: force what a big table does
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT id FROM tasks WHERE search @@ websearch_to_tsquery('english', 'x')"
            ).fetchall()
        )
    assert "tasks_search" in plan


@pytest.mark.usefixtures("seeded")
def test_sorts(client: TestClient, auth: dict[str, str]) -> None:
    assert _titles(client, auth, sort="due_at")[:3] == [
        "Review pull requests",
        "Call the plumber",
        "Write the quarterly report",
    ]
    assert _titles(client, auth, sort="-due_at")[:3] == [
        "Write the quarterly report",
        "Call the plumber",
        "Review pull requests",
    ]  # without a due date: last either way
    assert set(_titles(client, auth, sort="-due_at")[3:]) == {"Buy milk", "Writing workshop"}
    assert _titles(client, auth, sort="-priority")[:2] == [
        "Review pull requests",
        "Write the quarterly report",
    ]
    assert _titles(client, auth, sort="title")[0] == "Buy milk"
    assert _titles(client, auth, sort="-created_at")[0] == "Writing workshop"
    assert _titles(client, auth, sort="created_at")[0] == "Write the quarterly report"
    assert _titles(client, auth, sort="-updated_at")[0] == "Writing workshop"


@pytest.mark.usefixtures("seeded")
def test_a_cursor_belongs_to_its_query(client: TestClient, auth: dict[str, str]) -> None:
    page = client.get("/api/v1/tasks", params={"limit": 2, "sort": "due_at"}, headers=auth).json()
    other = client.get(
        "/api/v1/tasks", params={"limit": 2, "sort": "title", "cursor": page["next_cursor"]},
        headers=auth,
    )  # fmt: skip
    assert other.status_code == 422
    assert other.json()["detail"][0]["loc"] == ["query", "cursor"]


@pytest.mark.parametrize("sort", ["created_at", "-created_at", "due_at", "-priority", "title"])
def test_pages_stay_stable_while_tasks_are_inserted(
    client: TestClient, auth: dict[str, str], events_api_env: EventsApiEnv, sort: str
) -> None:
    """Every task that existed before paging began is seen exactly once, whatever is inserted
    meanwhile (by another replica: a second app on the same database)."""
    existing = set()
    for i in range(60):
        body = {"title": f"existing {i:02d}", "priority": ["low", "high"][i % 2]}
        if i % 3:
            body["due_at"] = f"2030-01-{1 + i % 28:02d}T09:00:00Z"
        existing.add(client.post("/api/v1/tasks", json=body, headers=auth).json()["id"])
    stop, writing = threading.Event(), threading.Event()
    inserted = []

    def insert_meanwhile() -> None:
        with TestClient(events_api_env.app(relay_enabled=False)) as other:
            i = 0
            while not stop.is_set():
                body = {"title": f"new {i}", "priority": "urgent", "due_at": "2030-01-15T09:00:00Z"}
                inserted.append(other.post("/api/v1/tasks", json=body, headers=auth).json()["id"])
                writing.set()
                i += 1

    writer = threading.Thread(target=insert_meanwhile)
    writer.start()
    # The second app starts slowly on a loaded machine: page once it is really inserting.
    assert writing.wait(60), "the second replica inserted nothing within 60 s"
    seen: list[str] = []
    cursor = None
    try:
        while True:
            params = {"limit": 7, "sort": sort, **({"cursor": cursor} if cursor else {})}
            page = client.get("/api/v1/tasks", params=params, headers=auth).json()
            seen += [t["id"] for t in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    finally:
        stop.set()
        writer.join(30)
    assert inserted, "nothing was inserted while paging"
    assert len(seen) == len(set(seen)), "a task was shown twice"
    assert existing <= set(seen), f"{len(existing - set(seen))} existing tasks were skipped"


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"limit": 101}, ["query", "limit"]),
        ({"priority": "critical"}, ["query", "priority", 0]),
        ({"series_id": "nope"}, ["query", "series_id"]),
        ({"q": ""}, ["query", "q"]),
        ({"q": "x" * 201}, ["query", "q"]),
        ({"tag": ""}, ["query", "tag", 0]),
        ({"due_to": "tomorrow"}, ["query", "due_to"]),
        ({"cursor": "eyJrIjoiMSJ9"}, ["query", "cursor"]),
    ],
)
def test_bad_parameters_are_422_naming_them(
    client: TestClient, auth: dict[str, str], params: dict[str, object], loc: list[object]
) -> None:
    response = client.get("/api/v1/tasks", params=params, headers=auth)  # type: ignore[arg-type]
    assert response.status_code == 422, response.text
    assert loc in [d["loc"] for d in response.json()["detail"]]


def test_a_key_without_the_tasks_scopes_is_403(
    client: TestClient, events_api_env: EventsApiEnv
) -> None:
    events_only = {"Authorization": f"Bearer {events_api_env.create_key(scopes=('events:write',))}"}
    listed = client.get("/api/v1/tasks", headers=events_only)
    assert listed.status_code == 403
    assert "tasks:read" in listed.json()["detail"]
    assert client.post("/api/v1/tasks", json={"title": "t"}, headers=events_only).status_code == 403
    reader = {"Authorization": f"Bearer {events_api_env.create_key(scopes=('tasks:read',))}"}
    assert client.get("/api/v1/tasks", headers=reader).status_code == 200
    assert client.post("/api/v1/tasks", json={"title": "t"}, headers=reader).status_code == 403
    sent = client.post("/api/v1/events", json={"category": "c", "message": "m"}, headers=reader)
    assert sent.status_code == 403 and "events:write" in sent.json()["detail"]
