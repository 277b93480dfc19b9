"""The notifier's Kafka loop on the real broker, database and a real HTTP target."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator

import psycopg
import pytest

from apps.common.db import make_pool, migrate
from apps.common.health import HealthServer
from apps.common.kafka import KafkaSettings, header_dict
from apps.notifier.cli import MIGRATIONS
from apps.notifier.consumer import NotifierService
from apps.notifier.settings import NotifierConfig, NotifierSettings, NotifierTuning
from platform_cli.embedded import KafkaBroker
from tests.apps.app_env import db_settings
from tests.apps.conftest import TopicNames
from tests.apps.consumer_harness import (
    envelopes,
    group_caught_up,
    metric_value,
    notifier_idle,
    produce,
    read_topic,
    registry_metric,
    running_in_thread,
    wait_until,
)
from tests.apps.webhook_sink import WebhookSink, webhook_sink


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with webhook_sink() as s:
        yield s


def _config(
    kafka: KafkaBroker, database_url: str, topics: TopicNames, sink: WebhookSink, **app: object
) -> NotifierConfig:
    settings = {
        "events_topic": topics.events,
        "tasks_topic": topics.tasks,
        "dead_letter_topic": topics.notifier_dlq,
        "webhook_url": f"{sink.url}/hook",
        "routes_json": '[{"types": ["event.received"], "channels": ["webhook"]},'
        ' {"types": ["task.*"], "channels": ["webhook"]}]',
        "max_attempts": 3,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        **app,
    }
    return NotifierConfig(
        app=NotifierSettings.model_validate(settings),
        kafka=KafkaSettings(bootstrap_servers=kafka.bootstrap),
        db=db_settings(database_url),
        tuning=NotifierTuning(heartbeat_interval_ms=300, session_timeout_ms=6000),
    )


def test_events_and_tasks_are_delivered_and_poison_is_dead_lettered(
    kafka: KafkaBroker, database_url: str, unique_topics: TopicNames, sink: WebhookSink
) -> None:
    migrate(database_url, "notifier", MIGRATIONS)
    config = _config(kafka, database_url, unique_topics, sink)
    events = envelopes(5)
    tasks = envelopes(3, type_="task.created")
    produce(kafka.bootstrap, unique_topics.events, [events[0], events[1], b"{not json", events[2]])
    produce(kafka.bootstrap, unique_topics.events, events[3:])
    produce(kafka.bootstrap, unique_topics.tasks, tasks)
    stop = threading.Event()
    service = NotifierService(config, stop)
    health = HealthServer(0, service.ready, host="127.0.0.1", registry=service.metrics.registry)
    with health, running_in_thread(service, stop):
        assert wait_until(lambda: len(sink.received("/hook")) >= 8, timeout=40)
        # Every record committed: its dead letter (if any) was acked before, so the dead-letter
        # topic is complete now, and no late delivery can follow.
        assert wait_until(lambda: _caught_up(kafka, unique_topics), timeout=20, interval=0.5)
        dead = read_topic(kafka.bootstrap, unique_topics.notifier_dlq)
        assert wait_until(lambda: service.ready()["consumer"], timeout=5)
        base = f"http://127.0.0.1:{health.port}"
        with urllib.request.urlopen(f"{base}/readyz", timeout=2) as r:
            assert json.load(r)["status"] == "ready"
        with urllib.request.urlopen(f"{base}/metrics", timeout=2) as r:
            metrics = r.read().decode()
    delivered_ids = sorted(r.json()["id"] for r in sink.received("/hook"))
    assert delivered_ids == sorted(str(e.id) for e in events + tasks)
    assert len(dead) == 1
    headers = header_dict(dead[0].headers)
    assert dead[0].value == b"{not json"
    assert headers["dlq.reason"] == "invalid_json"
    assert headers["dlq.original.topic"] == unique_topics.events
    assert headers["dlq.original.offset"] == "2"
    assert headers["dlq.consumer.group"] == "notifier"
    assert metric_value(metrics, "notifier_messages_consumed_total") == 9
    assert metric_value(metrics, "notifier_dead_lettered_total") == 1
    assert metric_value(metrics, "notifier_deliveries_total") == 8


def test_a_redelivered_record_is_not_sent_twice(
    kafka: KafkaBroker, database_url: str, unique_topics: TopicNames, sink: WebhookSink
) -> None:
    migrate(database_url, "notifier", MIGRATIONS)
    config = _config(kafka, database_url, unique_topics, sink)
    (event,) = envelopes(1)
    # The same envelope three times: what Kafka does after a crash before the offset commit.
    produce(kafka.bootstrap, unique_topics.events, [event, event, event])
    stop = threading.Event()
    service = NotifierService(config, stop)
    with running_in_thread(service, stop):
        assert wait_until(
            lambda: (
                registry_metric(service.metrics.registry, "notifier_messages_processed_total") == 3
            ),
            timeout=40,
        )
    assert len(sink.received("/hook")) == 1
    pool = make_pool(database_url, name="check")
    with pool.connection() as conn:
        row = conn.execute("SELECT status, attempts FROM notifier_deliveries").fetchall()
    pool.close()
    assert row == [("sent", 1)]


def test_failing_target_dead_letters_with_attempts_and_keeps_consuming(
    kafka: KafkaBroker, database_url: str, unique_topics: TopicNames, sink: WebhookSink
) -> None:
    migrate(database_url, "notifier", MIGRATIONS)
    events = envelopes(3)
    # The first event fails every attempt (3: one from the loop, two from the retry scheduler).
    sink.plan("/hook", fail_keys={f"{events[0].id}:webhook": 99}, fail_status=500)
    config = _config(kafka, database_url, unique_topics, sink)
    produce(kafka.bootstrap, unique_topics.events, events)
    stop = threading.Event()
    with running_in_thread(NotifierService(config, stop), stop):
        assert wait_until(
            lambda: _idle(database_url, kafka, unique_topics), timeout=40, interval=0.5
        )
    dead = read_topic(kafka.bootstrap, unique_topics.notifier_dlq)
    assert len(dead) == 1
    headers = header_dict(dead[0].headers)
    assert headers["dlq.reason"] == "delivery_attempts_exhausted"
    assert headers["dlq.attempts"] == "3"
    assert headers["dlq.detail"] == "channel=webhook last=http_500"
    assert headers["dlq.original.offset"] == "0"
    assert json.loads(dead[0].value)["id"] == str(events[0].id)
    assert len(sink.received("/hook", status=500)) == 3
    assert sorted(r.json()["id"] for r in sink.received("/hook", status=200)) == sorted(
        str(e.id) for e in events[1:]
    )


def test_a_retry_waits_off_the_loop_and_later_records_are_committed_meanwhile(
    kafka: KafkaBroker, database_url: str, unique_topics: TopicNames, sink: WebhookSink
) -> None:
    """One failing record must not stall the others: with a backoff far longer than the test,
    every other record is delivered and committed while the failed one waits in the schedule."""
    migrate(database_url, "notifier", MIGRATIONS)
    events = envelopes(12, subjects=12)  # twelve keys: none waits behind the failing one
    sink.plan("/hook", fail_keys={f"{events[0].id}:webhook": 1}, fail_status=503)
    config = _config(
        kafka, database_url, unique_topics, sink, backoff_base_s=600, backoff_max_s=600
    )
    produce(kafka.bootstrap, unique_topics.events, events)
    stop = threading.Event()
    with running_in_thread(NotifierService(config, stop), stop):
        assert wait_until(lambda: len(sink.received("/hook", status=200)) >= 11, timeout=40)
        assert wait_until(lambda: _caught_up(kafka, unique_topics), timeout=20, interval=0.5)
        with psycopg.connect(database_url) as conn:
            scheduled = conn.execute(
                "SELECT d.event_id::text, d.status, d.attempts, s.next_attempt_at > now()"
                "  FROM notifier_deliveries d"
                "  JOIN notifier_retry_schedule s USING (event_id, channel)"
            ).fetchall()
    assert scheduled == [(str(events[0].id), "scheduled", 1, True)]
    assert sorted(r.json()["id"] for r in sink.received("/hook", status=200)) == sorted(
        str(e.id) for e in events[1:]
    )


@pytest.mark.parametrize("ordered", [True, False])
def test_one_keys_order_is_kept_behind_a_retry_only_where_the_channel_needs_it(
    kafka: KafkaBroker,
    database_url: str,
    unique_topics: TopicNames,
    sink: WebhookSink,
    ordered: bool,
) -> None:
    migrate(database_url, "notifier", MIGRATIONS)
    events = envelopes(4, subjects=1)  # one key: entity-0
    sink.plan("/hook", fail_keys={f"{events[0].id}:webhook": 1}, fail_status=500)
    # The retry waits 1-2 s: long against the few milliseconds the later records take.
    config = _config(
        kafka,
        database_url,
        unique_topics,
        sink,
        backoff_base_s=2,
        backoff_max_s=2,
        webhook_ordered=ordered,
    )
    produce(kafka.bootstrap, unique_topics.events, events)
    stop = threading.Event()
    with running_in_thread(NotifierService(config, stop), stop):
        assert wait_until(
            lambda: _idle(database_url, kafka, unique_topics), timeout=40, interval=0.5
        )
    delivered = [r.json()["data"]["n"] for r in sink.received("/hook", status=200)]
    # Ordered: the later three wait behind the first one's retry. Unordered: they go at once.
    assert delivered == ([0, 1, 2, 3] if ordered else [1, 2, 3, 0])


def _caught_up(kafka: KafkaBroker, topics: TopicNames) -> bool:
    return group_caught_up(kafka.bootstrap, "notifier", [topics.events, topics.tasks])


def _idle(database_url: str, kafka: KafkaBroker, topics: TopicNames) -> bool:
    return notifier_idle(database_url, kafka.bootstrap, "notifier", [topics.events, topics.tasks])
