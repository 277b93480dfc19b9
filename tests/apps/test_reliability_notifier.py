"""Reliability of the notifier as a real process against a real HTTP target.

- A target answering 500s then 200 gets every event exactly once; an always-500 target's events
  are dead-lettered after exactly N attempts each.
- SIGTERM under load: clean exit in < 10 s, and after a restart every event delivered once.
- PostgreSQL restarted under load: the notifier rides it out, every event delivered once.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from apps.common.db import migrate
from apps.common.kafka import header_dict
from apps.notifier.cli import MIGRATIONS
from platform_cli.embedded import KafkaBroker, PostgresServer
from tests.apps.app_env import app_env
from tests.apps.conftest import TopicNames
from tests.apps.consumer_harness import (
    ConsumerProcess,
    PacedProducer,
    envelopes,
    produce,
    read_topic,
    wait_until,
)
from tests.apps.webhook_sink import WebhookSink, webhook_sink

pytestmark = pytest.mark.slow

MAX_ATTEMPTS = 4


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with webhook_sink() as s:
        yield s


@pytest.fixture
def notifier_process(
    kafka: KafkaBroker,
    database_url: str,
    unique_topics: TopicNames,
    sink: WebhookSink,
    tmp_path: Path,
) -> Iterator[Callable[..., ConsumerProcess]]:
    migrate(database_url, "notifier", MIGRATIONS)
    env = {
        **app_env(kafka.bootstrap, database_url),
        "EVENTS_TOPIC": unique_topics.events,
        "TASKS_TOPIC": unique_topics.tasks,
        "DEAD_LETTER_TOPIC": unique_topics.notifier_dlq,
        "CONSUMER_GROUP": f"notifier-{uuid.uuid4().hex[:6]}",
        "NOTIFIER_WEBHOOK_URL": f"{sink.url}/flaky",
        "NOTIFIER_SLACK_WEBHOOK_URL": f"{sink.url}/services/T0/B0/down",
        "NOTIFIER_ROUTES": json.dumps(
            [
                {"categories": ["ok"], "channels": ["webhook"]},
                {"categories": ["doomed"], "channels": ["slack"]},
            ]
        ),
        "NOTIFIER_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "NOTIFIER_BACKOFF_BASE_S": "0.02",
        "NOTIFIER_BACKOFF_MAX_S": "0.2",
        "NOTIFIER_HTTP_TIMEOUT_S": "2",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "",
    }
    started: list[ConsumerProcess] = []

    def _start(**extra: str) -> ConsumerProcess:
        process = ConsumerProcess("notifier", {**env, **extra}, tmp_path / "notifier.log").start()
        started.append(process)
        return process

    yield _start
    for process in started:
        process.stop_quietly()


def _delivered(sink: WebhookSink, path: str = "/flaky") -> Counter[str]:
    """How many 2xx deliveries each event id received."""
    return Counter(r.json()["id"] for r in sink.received(path, status=200))


def test_flaky_target_gets_each_event_once_and_a_dead_target_is_dead_lettered(
    kafka: KafkaBroker,
    unique_topics: TopicNames,
    sink: WebhookSink,
    notifier_process: Callable[..., ConsumerProcess],
) -> None:
    # Every event first meets MAX_ATTEMPTS - 1 failures, then success on its last attempt.
    sink.plan("/flaky", fail_each_first=MAX_ATTEMPTS - 1, fail_status=500)
    sink.plan("/services/T0/B0/down", always=500)
    ok = envelopes(20, category="ok")
    doomed = envelopes(5, category="doomed")
    produce(kafka.bootstrap, unique_topics.events, ok[:10] + doomed + ok[10:])
    process = notifier_process()
    dead = read_topic(kafka.bootstrap, unique_topics.notifier_dlq, expect=5, timeout=90)
    assert wait_until(lambda: len(_delivered(sink)) >= 20, timeout=60), process.log()[-3000:]
    wait_until(lambda: False, timeout=1.0)
    assert process.terminate() < 10

    delivered = _delivered(sink)
    assert set(delivered) == {str(e.id) for e in ok}
    assert set(delivered.values()) == {1}  # exactly once each
    assert len(sink.received("/flaky", status=500)) == 20 * (MAX_ATTEMPTS - 1)
    assert len(sink.received("/services/T0/B0/down")) == 5 * MAX_ATTEMPTS
    assert len(dead) == 5
    assert sorted(json.loads(r.value)["id"] for r in dead) == sorted(str(e.id) for e in doomed)
    for record in dead:
        headers = header_dict(record.headers)
        assert headers["dlq.reason"] == "delivery_attempts_exhausted"
        assert headers["dlq.attempts"] == str(MAX_ATTEMPTS)
        assert headers["dlq.detail"] == "channel=slack last=http_500"
        assert headers["dlq.original.topic"] == unique_topics.events
    # The Slack URL (its secret) never reached the logs.
    assert "/services/T0/B0/down" not in process.log()


def test_sigterm_under_load_exits_cleanly_and_restart_delivers_the_rest_once(
    kafka: KafkaBroker,
    unique_topics: TopicNames,
    sink: WebhookSink,
    notifier_process: Callable[..., ConsumerProcess],
) -> None:
    sink.plan("/flaky", delay_s=0.02)  # a realistic, not instant, receiver
    total = 300
    producer = PacedProducer(
        kafka.bootstrap, unique_topics.events, total=total, rate=60, category="ok"
    ).start()
    process = notifier_process()
    assert wait_until(lambda: len(_delivered(sink)) >= 60, timeout=60), process.log()[-3000:]
    exit_seconds = process.terminate()
    print(f"notifier exited {exit_seconds:.2f} s after SIGTERM under load")
    assert process.returncode() == 0
    assert exit_seconds < 10
    assert '"msg": "notifier stopped"' in process.log()
    assert len(_delivered(sink)) < total  # stopped under load
    process = notifier_process()
    producer.join()
    assert wait_until(lambda: len(_delivered(sink)) >= total, timeout=90), process.log()[-3000:]
    wait_until(lambda: False, timeout=1.0)
    assert process.terminate() < 10
    delivered = _delivered(sink)
    assert set(delivered) == producer.ids
    assert set(delivered.values()) == {1}


def test_postgres_restart_under_load_delivers_every_event_once(
    kafka: KafkaBroker,
    postgres: PostgresServer,
    database_url: str,
    unique_topics: TopicNames,
    sink: WebhookSink,
    notifier_process: Callable[..., ConsumerProcess],
) -> None:
    if postgres.external:
        pytest.skip("DB_HOST names an external PostgreSQL, which tests never restart")
    total = 300
    producer = PacedProducer(
        kafka.bootstrap, unique_topics.events, total=total, rate=60, category="ok"
    ).start()
    process = notifier_process()
    assert wait_until(lambda: len(_delivered(sink)) >= 50, timeout=60), process.log()[-3000:]
    # Down longer than the pool's 5 s checkout wait, so the outage surfaces as errors that
    # the app must ride out (a shorter one is absorbed by the pool without any error).
    postgres.restart(down_for_s=6)
    producer.join()
    assert wait_until(lambda: len(_delivered(sink)) >= total, timeout=90), process.log()[-3000:]
    wait_until(lambda: False, timeout=1.0)
    assert process.returncode() is None
    assert "database unavailable, retrying" in process.log()
    assert process.terminate() < 10
    delivered = _delivered(sink)
    assert set(delivered) == producer.ids
    assert set(delivered.values()) == {1}
    with psycopg.connect(database_url) as conn:
        statuses = conn.execute(
            "SELECT status, count(*) FROM notifier_deliveries GROUP BY status"
        ).fetchall()
    assert statuses == [("sent", total)]
