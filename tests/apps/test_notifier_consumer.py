"""The notifier's Kafka loop on the real broker, database and a real HTTP target."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import generate_latest

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
    metric_value,
    produce,
    read_topic,
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
        dead = read_topic(kafka.bootstrap, unique_topics.notifier_dlq, expect=1)
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
                metric_value(
                    generate_latest(service.metrics.registry).decode(),
                    "notifier_messages_processed_total",
                )
                == 3
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
    sink.plan("/hook", fail_first=3, fail_status=500)  # the first event exhausts its 3 attempts
    config = _config(kafka, database_url, unique_topics, sink)
    events = envelopes(3)
    produce(kafka.bootstrap, unique_topics.events, events)
    stop = threading.Event()
    with running_in_thread(NotifierService(config, stop), stop):
        dead = read_topic(kafka.bootstrap, unique_topics.notifier_dlq, expect=1, timeout=40)
        assert wait_until(lambda: len(sink.received("/hook", status=200)) >= 2, timeout=30)
    headers = header_dict(dead[0].headers)
    assert headers["dlq.reason"] == "delivery_attempts_exhausted"
    assert headers["dlq.attempts"] == "3"
    assert "channel=webhook" in headers["dlq.detail"]
    assert json.loads(dead[0].value)["id"] == str(events[0].id)
    assert sorted(r.json()["id"] for r in sink.received("/hook", status=200)) == sorted(
        str(e.id) for e in events[1:]
    )
