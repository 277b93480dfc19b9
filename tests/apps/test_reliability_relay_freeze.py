"""The outbox relay leaks nothing across broker outages.

A broker frozen with SIGSTOP (the process is there, its sockets accept, nothing answers) leaves
the relay's producer with unacknowledged records: the relay gives that producer up and starts a
new one. kafka-python's `close()` flushes first and raised on those records, so every outage
used to leak one sender thread and later print an "Exception ignored" traceback outside the
JSON log (`apps/events_api/producer_close.py`). Here the standalone relay (`events-api relay`,
the same OutboxRelay the API runs) lives through three freezes: its thread count is the same
after each recovery as before the first, every row is published, and every line it logged is
one JSON object.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from apps.common.envelope import decode, new_envelope
from apps.events_api.cli import apply_migrations
from apps.events_api.storage import enqueue
from platform_cli.embedded import KafkaBroker, create_topics, kafka_broker
from tests.apps.api_process import ApiProcess, unstructured_lines
from tests.apps.app_env import app_env
from tests.apps.conftest import EventsApiEnv
from tests.apps.consumer_harness import read_topic, wait_until

pytestmark = pytest.mark.slow

FREEZES = 3
FROZEN_S = 8.0
"""Longer than the relay's 5 s publish timeout, so each freeze fails a publish for certain."""
ROWS_PER_ROUND = 5


@pytest.fixture
def own_broker() -> Iterator[KafkaBroker]:
    """A broker of this test's own: freezing the session's would stall every other test."""
    with kafka_broker(allow_external=False) as broker:
        yield broker


def _enqueue(database_url: str, topic: str, n: int) -> list[str]:
    subjects = []
    with psycopg.connect(database_url) as conn:
        for _ in range(n):
            envelope = new_envelope(
                "event.received",
                source="test",
                subject=str(uuid.uuid4()),
                correlation_id=uuid.uuid4().hex,
                data={"category": "c", "message": "m"},
            )
            with conn.transaction():
                enqueue(conn, topic, envelope)
            subjects.append(envelope.subject)
    return subjects


def _pending(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()
    return int(row[0]) if row else -1


def test_three_broker_freezes_leak_no_thread_and_log_only_json(
    events_api_env: EventsApiEnv, own_broker: KafkaBroker, tmp_path: Path
) -> None:
    topic = f"freeze-{uuid.uuid4().hex[:8]}"
    create_topics(own_broker.bootstrap, [topic])
    apply_migrations(events_api_env.settings)
    url = events_api_env.database_url
    relay = ApiProcess(
        "relay",
        {
            **app_env(own_broker.bootstrap, url),
            "OUTBOX_MAX_BACKOFF_SECONDS": "1",
            "OUTBOX_IDLE_SECONDS": "0.5",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "",
        },
        tmp_path / "relay.log",
    ).start()
    published = _enqueue(url, topic, ROWS_PER_ROUND)
    try:
        assert wait_until(lambda: _pending(url) == 0, timeout=30), relay.log()[-3000:]
        time.sleep(1.0)  # the producer's threads are up and idle
        threads_before = relay.threads()
        for freeze in range(FREEZES):
            pid = own_broker.pid
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
            try:
                published += _enqueue(url, topic, ROWS_PER_ROUND)
                time.sleep(FROZEN_S)
                assert _pending(url) == ROWS_PER_ROUND, "published while the broker was frozen?"
            finally:
                os.kill(pid, signal.SIGCONT)
            assert wait_until(lambda: _pending(url) == 0, timeout=60), relay.log()[-3000:]
            time.sleep(1.0)
            assert relay.threads() == threads_before, f"thread leaked by freeze {freeze + 1}"
        code, took = relay.terminate()
    finally:
        relay.stop_quietly()
    assert code == 0
    assert took < 10
    log = relay.log()
    assert "outbox relay cycle failed; retrying" in log  # the freezes were felt
    assert unstructured_lines(log) == []
    assert "Exception ignored" not in log
    # Every row reached the topic (a publish acked just as the freeze began may appear twice:
    # delivery is at-least-once, and the consumers dedupe by envelope id).
    records = read_topic(own_broker.bootstrap, topic, len(published), timeout=30)
    assert {decode(r.value).subject for r in records} == set(published)
