"""The reminders app: task changes (re)schedule and cancel reminders; the scheduler fires each
due one once, through the broker, with its lateness; replicas never fire the same one twice.

Real PostgreSQL and the real broker (Tansu); the service runs in a thread of the test."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from apps.common.consumer import ConsumerTuning
from apps.common.kafka import KafkaSettings, make_producer
from apps.reminders.consumer import RemindersService
from apps.reminders.handler import handle
from apps.reminders.metrics import RemindersMetrics
from apps.reminders.scheduler import Scheduler
from apps.reminders.settings import RemindersConfig, RemindersSettings
from platform_cli.embedded import KafkaBroker
from tests.apps.app_env import db_settings
from tests.apps.conftest import EventsApiEnv
from tests.apps.consumer_harness import produce, running_in_thread, wait_until
from tests.apps.reminders_harness import (
    fired_records,
    lateness_ms,
    migrated,
    schedule,
    statuses,
    task_change,
)

FAST_TUNING = ConsumerTuning(heartbeat_interval_ms=300, session_timeout_ms=6000)


def _pending(database_url: str, task_id: uuid.UUID) -> list[tuple[int, datetime]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT offset_s, fire_at FROM reminders WHERE task_id = %s AND status = 'pending'"
            " ORDER BY offset_s",
            (task_id,),
        ).fetchall()
    return [(int(o), f) for o, f in rows]


def test_changes_schedule_move_and_cancel_reminders(database_url: str) -> None:
    url = migrated(database_url)
    task = uuid.uuid4()
    due = datetime.now(UTC) + timedelta(days=2)
    schedule(url, [task_change(task, due_at=due, reminders=("PT1H", "PT10M"))])
    assert _pending(url, task) == [
        (600, due - timedelta(minutes=10)),
        (3600, due - timedelta(hours=1)),
    ]

    # Moving the due date moves both; dropping an offset cancels its reminder.
    later = due + timedelta(hours=3)
    schedule(
        url, [task_change(task, version=2, due_at=later, reminders=("PT1H",), kind="task.updated")]
    )
    assert _pending(url, task) == [(3600, later - timedelta(hours=1))]
    # A redelivered older version changes nothing.
    schedule(url, [task_change(task, version=1, due_at=due, reminders=("PT1H", "PT10M"))])
    assert _pending(url, task) == [(3600, later - timedelta(hours=1))]
    # Completing the task cancels what is left.
    schedule(
        url,
        [task_change(task, version=3, due_at=later, status="done", kind="task.updated")],
    )
    assert _pending(url, task) == []
    assert statuses(url) == Counter({"cancelled": 3})

    deleted = uuid.uuid4()
    schedule(url, [task_change(deleted, due_at=due, reminders=("PT5M",))])
    schedule(url, [task_change(deleted, version=2, due_at=None, kind="task.deleted")])
    assert _pending(url, deleted) == []


def test_an_offset_already_past_when_the_change_was_made_is_not_scheduled(
    database_url: str,
) -> None:
    url = migrated(database_url)
    task = uuid.uuid4()
    now = datetime.now(UTC)
    # Due in 10 minutes, reminders 1 h and 5 min before: only the 5-minute one is still ahead.
    schedule(
        url,
        [
            task_change(
                task,
                due_at=now + timedelta(minutes=10),
                reminders=("PT1H", "PT5M"),
                occurred_at=now,
            )
        ],
    )
    assert [o for o, _ in _pending(url, task)] == [300]


def test_bad_task_data_is_refused_for_the_dead_letter_topic(database_url: str) -> None:
    from apps.reminders.handler import BadTaskEvent

    url = migrated(database_url)
    envelope = task_change(uuid.uuid4(), due_at=datetime.now(UTC)).model_copy(
        update={"data": {"id": "not-a-uuid", "version": 1}}
    )
    with psycopg.connect(url) as conn, pytest.raises(BadTaskEvent):
        handle(conn, envelope)


def _scheduler(url: str, kafka: KafkaBroker, topic: str, batch: int = 100) -> Scheduler:
    from apps.common.db import make_pool

    pool = make_pool(url, min_size=1, max_size=3, name="reminders-test")
    settings = KafkaSettings(bootstrap_servers=kafka.bootstrap)
    app = RemindersSettings(reminders_topic=topic, fire_batch=batch)
    return Scheduler(pool, lambda: make_producer(settings), RemindersMetrics(), app)


def test_due_reminders_fire_once_each_with_their_lateness(
    database_url: str, kafka: KafkaBroker, make_topics: Callable[..., list[str]]
) -> None:
    (topic,) = make_topics("reminders")
    url = migrated(database_url)
    now = datetime.now(UTC)
    overdue = [uuid.uuid4() for _ in range(5)]
    future = uuid.uuid4()
    schedule(
        url,
        [
            task_change(
                t, due_at=now - timedelta(seconds=30), occurred_at=now - timedelta(minutes=5)
            )
            for t in overdue
        ]
        + [task_change(future, due_at=now + timedelta(hours=1))],
    )
    scheduler = _scheduler(url, kafka, topic)
    first = scheduler.run_once()
    assert (first.claimed, first.published, first.error) == (5, 5, None)
    assert scheduler.run_once().claimed == 0  # nothing else is due; none fires twice
    records = fired_records(kafka.bootstrap, topic, 5)
    assert sorted(uuid.UUID(r.subject) for r in records) == sorted(overdue)
    assert {r.type for r in records} == {"task.reminder.due"}
    assert all(r.data["late"] and r.data["late_ms"] >= 30_000 for r in records)
    assert all(r.data["tenant"] == "acme" for r in records)
    assert statuses(url) == Counter({"fired": 5, "pending": 1})
    assert all(late >= 30_000 for late in lateness_ms(url))


def test_two_schedulers_share_the_due_reminders_and_fire_each_once(
    database_url: str, kafka: KafkaBroker, make_topics: Callable[..., list[str]]
) -> None:
    (topic,) = make_topics("reminders", partitions=3)
    url = migrated(database_url)
    now = datetime.now(UTC)
    tasks = [uuid.uuid4() for _ in range(600)]
    schedule(url, [task_change(t, due_at=now - timedelta(seconds=1)) for t in tasks])
    replicas = [_scheduler(url, kafka, topic, batch=50) for _ in range(2)]

    def drain(scheduler: Scheduler) -> int:
        fired = 0
        while (result := scheduler.run_once()).claimed:
            assert result.error is None
            fired += result.published
        return fired

    with ThreadPoolExecutor(2) as pool:
        counts = list(pool.map(drain, replicas))
    assert sum(counts) == 600
    assert all(c > 0 for c in counts), counts  # both replicas took part
    records = fired_records(kafka.bootstrap, topic, 600)
    assert len(records) == 600
    assert len({r.id for r in records}) == 600
    assert statuses(url) == Counter({"fired": 600})


def test_a_task_due_in_seconds_fires_through_events_api_and_the_service(
    events_api_env: EventsApiEnv, kafka: KafkaBroker, make_topics: Callable[..., list[str]]
) -> None:
    """events-api writes the task; the service consumes its change and fires the reminder."""
    (reminders_topic, dlq) = make_topics("reminders", "reminders.dlq")
    migrated(events_api_env.database_url)  # one database for all apps, as deployed
    headers = {"Authorization": f"Bearer {events_api_env.create_key(tenant='acme')}"}
    config = RemindersConfig(
        app=RemindersSettings(
            tasks_topic=events_api_env.topics.tasks,
            reminders_topic=reminders_topic,
            dead_letter_topic=dlq,
            consumer_group=f"reminders-{uuid.uuid4().hex[:6]}",
            idle_s=0.05,
        ),
        kafka=KafkaSettings(bootstrap_servers=kafka.bootstrap),
        db=db_settings(events_api_env.database_url),
        tuning=FAST_TUNING,
    )
    stop = threading.Event()
    service = RemindersService(config, stop)
    # The API stays up (its relay publishes the task change) while the service runs.
    with TestClient(events_api_env.app()) as client, running_in_thread(service, stop):
        due = datetime.now(UTC) + timedelta(seconds=6)
        created = client.post(
            "/api/v1/tasks",
            json={"title": "Call back", "due_at": due.isoformat(), "reminders": ["PT0S", "PT1S"]},
            headers=headers,
        )
        assert created.status_code == 201, created.text
        assert created.json()["reminders"] == ["PT1S", "PT0S"]
        records = fired_records(kafka.bootstrap, reminders_topic, 2, timeout=60)
        assert wait_until(lambda: service.ready()["scheduler"], 10)
    assert [r.data["before_due_s"] for r in records] == [1, 0]
    assert {r.subject for r in records} == {created.json()["id"]}
    assert all(r.data["title"] == "Call back" and r.data["tenant"] == "acme" for r in records)
    # On time: published within a second of its time (a loaded machine may be later).
    assert all(r.data["late_ms"] < 5000 for r in records), [r.data["late_ms"] for r in records]


def test_poison_records_go_to_the_dead_letter_topic(
    database_url: str, kafka: KafkaBroker, make_topics: Callable[..., list[str]]
) -> None:
    tasks_topic, reminders_topic, dlq = make_topics("tasks", "reminders", "reminders.dlq")
    url = migrated(database_url)
    task = uuid.uuid4()
    produce(kafka.bootstrap, tasks_topic, [b"{not json"], key=b"poison")
    produce(
        kafka.bootstrap,
        tasks_topic,
        [task_change(task, due_at=datetime.now(UTC) + timedelta(hours=1))],
    )
    config = RemindersConfig(
        app=RemindersSettings(
            tasks_topic=tasks_topic,
            reminders_topic=reminders_topic,
            dead_letter_topic=dlq,
            consumer_group=f"reminders-{uuid.uuid4().hex[:6]}",
        ),
        kafka=KafkaSettings(bootstrap_servers=kafka.bootstrap),
        db=db_settings(url),
        tuning=FAST_TUNING,
    )
    stop = threading.Event()
    with running_in_thread(RemindersService(config, stop), stop):
        dead = fired_records_raw(kafka.bootstrap, dlq, 1)
        assert wait_until(lambda: len(_pending(url, task)) == 1, 30)
    assert [r.value for r in dead] == [b"{not json"]
    assert dict(dead[0].headers)["dlq.reason"] == b"invalid_json"


def fired_records_raw(bootstrap: str, topic: str, expect: int) -> list[object]:
    from tests.apps.consumer_harness import read_topic

    return read_topic(bootstrap, topic, expect, timeout=60)
