"""`GET /api/v1/stream` against a real uvicorn, PostgreSQL and Tansu.

- scoped to the caller's key; task changes and events in order; history for a new client;
- resume with Last-Event-ID: exactly the rows after it, none twice;
- gap-free when transactions commit out of id order (the reason for the xid cursor);
- a slow reader overflows its bounded queue, resumes from the database, and misses nothing;
- delivered per channel and audited, with every app's migrations in one database;
- wrong key, malformed Last-Event-ID and a full hub answer 4xx/503 with detail.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import h11
import httpx
import psycopg
import pytest
from prometheus_client import REGISTRY

from apps.common.envelope import new_envelope
from apps.events_api.storage import enqueue
from tests.apps.app_env import app_env
from tests.apps.conftest import EventsApiEnv
from tests.apps.consumer_harness import ConsumerProcess, wait_until
from tests.apps.live_server import live_server
from tests.apps.sse_client import SseReader
from tests.apps.webhook_sink import WebhookSink, webhook_sink


@pytest.fixture
def api(events_api_env: EventsApiEnv) -> Iterator[str]:
    app = events_api_env.app(stream_poll_s=0.1, stream_status_poll_s=0.2)
    with live_server(app) as url:
        yield url


def _post_event(base: str, key: str, message: str, **extra: object) -> str:
    response = httpx.post(
        f"{base}/api/v1/events",
        json={"category": "test", "message": message, **extra},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _key_id(env: EventsApiEnv, key: str) -> uuid.UUID:
    from apps.events_api.keys import find_key

    with psycopg.connect(env.database_url) as conn:
        found = find_key(conn, key)
    assert found is not None
    return found.id


def test_stream_is_scoped_to_the_key_and_carries_events_and_task_changes(
    api: str, events_api_env: EventsApiEnv
) -> None:
    mine, theirs = events_api_env.create_key(), events_api_env.create_key()
    auth = {"Authorization": f"Bearer {mine}"}
    before = _post_event(api, mine, "before the client connected")
    with SseReader(f"{api}/api/v1/stream", mine) as reader:
        assert reader.response_headers is not None
        assert reader.response_headers["content-type"].startswith("text/event-stream")
        assert reader.response_headers["x-accel-buffering"] == "no"
        hello = reader.wait_for(lambda m: m.event == "hello")[-1].json()
        assert hello == {"statuses": {"deliveries": False, "audit": False}}
        history = reader.activities(1)
        assert history[0]["id"] == before  # a new client gets the key's recent history

        _post_event(api, theirs, "someone else's")
        task = httpx.post(f"{api}/api/v1/tasks", json={"title": "stream me"}, headers=auth).json()
        httpx.put(
            f"{api}/api/v1/tasks/{task['id']}",
            json={"title": "streamed", "status": "done"},
            headers=auth,
        )
        httpx.delete(f"{api}/api/v1/tasks/{task['id']}", headers=auth)
        mine_after = _post_event(api, mine, "after", fields={"plan": "pro"})
        live = reader.activities(4)

    assert [a["type"] for a in live] == [
        "task.created",
        "task.updated",
        "task.deleted",
        "event.received",
    ]
    assert {a["subject"] for a in live[:3]} == {task["id"]}
    assert live[1]["data"]["title"] == "streamed"
    assert live[3]["id"] == mine_after
    assert live[3]["data"] == {
        "category": "test",
        "message": "after",
        "description": None,
        "fields": {"plan": "pro"},
    }  # the key's name is not echoed
    assert live[3]["status"] == {"audited": None, "deliveries": None}  # no such tables here
    cursors = [history[0]["cursor"], *(a["cursor"] for a in live)]
    parsed = [tuple(int(p) for p in c.split("-")) for c in cursors]
    assert parsed == sorted(parsed) and len(set(parsed)) == len(parsed)


def test_reconnect_with_last_event_id_resumes_without_gaps_or_repeats(
    api: str, events_api_env: EventsApiEnv
) -> None:
    key = events_api_env.create_key()
    url = f"{api}/api/v1/stream"
    with SseReader(url, key) as reader:
        first = [_post_event(api, key, f"m{i}") for i in range(3)]
        seen = reader.activities(3)
    assert [a["id"] for a in seen] == first
    last_id = seen[-1]["cursor"]

    while_away = [_post_event(api, key, f"away{i}") for i in range(5)]
    with SseReader(url, key, last_event_id=last_id) as reader:
        resumed = reader.activities(5)
        after_resume = _post_event(api, key, "live again")
        live = reader.activities(1)
        extra = [m for m in reader.drain(0.8) if m.event == "activity"]
    assert [a["id"] for a in resumed] == while_away
    assert live[0]["id"] == after_resume
    assert extra == []


def test_rows_committed_out_of_id_order_are_not_skipped(
    api: str, events_api_env: EventsApiEnv
) -> None:
    key = events_api_env.create_key()
    key_id = _key_id(events_api_env, key)
    topic = events_api_env.topics.tasks

    def envelope(label: str) -> object:
        return new_envelope(
            "task.updated", source="test", subject=label, correlation_id="c", data={"l": label}
        )

    with SseReader(f"{api}/api/v1/stream", key) as reader:
        reader.wait_for(lambda m: m.event == "hello")
        slow = psycopg.connect(events_api_env.database_url)
        try:
            slow_tx = slow.transaction()
            slow_tx.__enter__()
            enqueue(slow, topic, envelope("slow"), key_id)  # takes the lower outbox id
            with psycopg.connect(events_api_env.database_url) as fast:
                enqueue(fast, topic, envelope("fast"), key_id)  # higher id, commits first
            # Ordering by id alone would deliver "fast" now and then never "slow".
            early = [m for m in reader.drain(1.0) if m.event == "activity"]
            assert early == [], "a row was streamed while an older transaction was open"
            slow_tx.__exit__(None, None, None)
        finally:
            slow.close()
        got = reader.activities(2)
    assert [a["subject"] for a in got] == ["slow", "fast"]


def test_a_slow_reader_overflows_its_bounded_queue_and_still_misses_nothing(
    events_api_env: EventsApiEnv,
) -> None:
    """The client stops reading; the server's queue for it (bounded at 24 KB: two ~10 KB
    frames) overflows, and the client later receives all 60 events, in order, from the
    database catch-up."""
    key = events_api_env.create_key()
    app = events_api_env.app(stream_poll_s=0.05, stream_queue_bytes=24_000, stream_history=0)
    catchups = "events_api_stream_catchups_total"
    before = REGISTRY.get_sample_value(catchups) or 0.0
    with live_server(app, send_buffer_bytes=16_384) as api:
        host, port = urlsplit(api).hostname, urlsplit(api).port
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: no growth
        sock.connect((host, port))
        # h11 (httpx's own HTTP/1.1 parser) on a raw socket: the test decides when to read.
        http = h11.Connection(our_role=h11.CLIENT)
        request = h11.Request(
            method="GET",
            target="/api/v1/stream",
            headers=[("Host", f"{host}:{port}"), ("Authorization", f"Bearer {key}")],
        )
        clients = REGISTRY.get_sample_value("events_api_stream_clients") or 0.0
        sock.sendall(http.send(request) + http.send(h11.EndOfMessage()))
        # Subscribed before the first event (the stream keeps no history here: an event
        # committed before the subscription is, rightly, not this stream's).
        assert wait_until(
            lambda: (REGISTRY.get_sample_value("events_api_stream_clients") or 0) > clients, 20
        )
        big = "x" * 10_000  # ~10 KB frames: the small socket buffers fill after a few
        ids = [_post_event(api, key, f"m{i}", description=big) for i in range(60)]
        assert wait_until(lambda: (REGISTRY.get_sample_value(catchups) or 0) > before, 20)

        received = bytearray()
        sock.settimeout(1.0)
        deadline = time.monotonic() + 30
        while len(_activity_ids(received)) < len(ids) and time.monotonic() < deadline:
            event = http.next_event()
            if event is h11.NEED_DATA:
                with contextlib.suppress(TimeoutError):
                    http.receive_data(sock.recv(1 << 16))
            elif isinstance(event, h11.Response):
                assert event.status_code == 200
            elif isinstance(event, h11.Data):
                received.extend(event.data)
            else:
                break
        sock.close()
    streamed = _activity_ids(received)
    assert streamed == ids


def _activity_ids(received: bytes) -> list[str]:
    """The ids of the complete `activity` messages in a raw event-stream body."""
    complete = received.decode()[: received.decode().rfind("\n\n") + 1]
    return [
        json.loads(line[len("data: ") :])["id"]
        for block in complete.split("\n\n")
        if "event: activity" in block
        for line in block.splitlines()
        if line.startswith("data: ")
    ]


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with webhook_sink() as s:
        yield s


def _consumer(app: str, env: EventsApiEnv, tmp_path: Path, **extra: str) -> ConsumerProcess:
    topics = env.topics
    return ConsumerProcess(
        app,
        {
            **app_env(env.bootstrap, env.database_url),
            "EVENTS_TOPIC": topics.events,
            "TASKS_TOPIC": topics.tasks,
            "DEAD_LETTER_TOPIC": topics.notifier_dlq if app == "notifier" else topics.audit_dlq,
            "CONSUMER_GROUP": f"{app}-{uuid.uuid4().hex[:6]}",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "",
            "KAFKA_AUTO_OFFSET_RESET": "earliest",
            **extra,
        },
        tmp_path / f"{app}.log",
    ).start()


@pytest.mark.slow
def test_an_event_shows_as_delivered_per_channel_and_audited(
    one_database: EventsApiEnv, sink: WebhookSink, tmp_path: Path
) -> None:
    env = one_database
    notifier = _consumer("notifier", env, tmp_path, NOTIFIER_WEBHOOK_URL=f"{sink.url}/hook")
    audit = _consumer("audit", env, tmp_path)
    try:
        assert wait_until(lambda: notifier.ready() and audit.ready(), 60), notifier.log()
        key = env.create_key()
        app = env.app(stream_poll_s=0.1, stream_status_poll_s=0.2)
        with live_server(app) as api, SseReader(f"{api}/api/v1/stream", key) as reader:
            hello = reader.wait_for(lambda m: m.event == "hello")[-1].json()
            assert hello == {"statuses": {"deliveries": True, "audit": True}}
            event_id = _post_event(api, key, "deliver me")
            accepted = reader.activities(1)[0]
            assert accepted["id"] == event_id
            assert accepted["status"] == {"audited": False, "deliveries": []}

            def settled(message: object) -> bool:
                data = message.json() if message.event == "status" else {}  # type: ignore[attr-defined]
                sent = [d for d in data.get("deliveries") or [] if d["status"] == "sent"]
                return data.get("id") == event_id and data.get("audited") is True and bool(sent)

            last = reader.wait_for(settled, timeout_s=60)[-1].json()
        assert last["deliveries"] == [{"channel": "webhook", "status": "sent", "attempts": 1}]
        assert any(r.path == "/hook" for r in sink.requests)
    finally:
        notifier.stop_quietly()
        audit.stop_quietly()


def test_stream_refuses_bad_requests_with_detail(
    events_api_env: EventsApiEnv,
) -> None:
    key = events_api_env.create_key()
    with live_server(events_api_env.app(stream_max_clients=1)) as api:
        url = f"{api}/api/v1/stream"
        wrong = httpx.get(url, headers={"Authorization": "Bearer evk_wrong"})
        assert wrong.status_code == 401
        assert wrong.json() == {"detail": "invalid API key"}

        for bad in ("not-a-cursor", "99999999999999999999-1"):
            response = httpx.get(
                url, headers={"Authorization": f"Bearer {key}", "Last-Event-ID": bad}
            )
            assert response.status_code == 422, (bad, response.text)
            assert response.json()["detail"][0]["loc"] == ["header", "Last-Event-ID"]

        with SseReader(url, key) as first:
            assert first.status_code == 200
            second = httpx.get(url, headers={"Authorization": f"Bearer {key}"})
            assert second.status_code == 503
            assert second.headers["retry-after"] == "10"
            assert "at most 1 clients" in second.json()["detail"]
        # The first client's slot is given back when it disconnects.
        assert wait_until(lambda: _one_more_connects(url, key), 10)


def _one_more_connects(url: str, key: str) -> bool:
    done = threading.Event()
    with SseReader(url, key) as reader:
        done.set()
        return reader.status_code == 200
