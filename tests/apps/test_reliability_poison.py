"""Poison messages: both consumers, as real processes, dead-letter every bad record with its reason
and process every good record around them."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from functools import partial
from pathlib import Path

import psycopg
import pytest

from apps.audit.cli import MIGRATIONS as AUDIT_MIGRATIONS
from apps.common.db import migrate
from apps.common.envelope import EventEnvelope, encode
from apps.common.kafka import header_dict
from apps.notifier.cli import MIGRATIONS as NOTIFIER_MIGRATIONS
from platform_cli.embedded import KafkaBroker
from tests.apps.app_env import app_env
from tests.apps.conftest import TopicNames
from tests.apps.consumer_harness import (
    ConsumerProcess,
    envelopes,
    group_caught_up,
    produce,
    read_topic,
    wait_until,
)
from tests.apps.webhook_sink import webhook_sink

pytestmark = pytest.mark.slow


def _poison() -> list[tuple[bytes, str]]:
    """(record value, expected dlq.reason) for every kind of bad record we know of."""
    good = json.loads(encode(envelopes(1)[0]))

    def variant(**changes: object) -> bytes:
        body = {**good, "id": str(uuid.uuid4()), **changes}
        return json.dumps({k: v for k, v in body.items() if v is not None}).encode()

    return [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe\x00binary", "invalid_json"),
        (b"", "invalid_json"),
        (b"[1, 2, 3]", "schema_violation"),
        (variant(version=2), "unsupported_version"),
        (variant(version=99), "unsupported_version"),
        (variant(version="1"), "schema_violation"),
        (variant(type="order.placed"), "schema_violation"),
        (variant(occurred_at="2026-11-21T10:00:00"), "schema_violation"),  # naive time
        (variant(id="not-a-uuid"), "schema_violation"),
        (variant(surprise="field"), "schema_violation"),  # unknown fields are rejected
        (variant(subject=""), "schema_violation"),
    ]


def test_poison_is_dead_lettered_by_both_consumers_and_good_records_flow(
    kafka: KafkaBroker, database_url: str, unique_topics: TopicNames, tmp_path: Path
) -> None:
    migrate(database_url, "audit", AUDIT_MIGRATIONS)
    migrate(database_url, "notifier", NOTIFIER_MIGRATIONS)
    poison = _poison()
    good = envelopes(30)
    tasks = envelopes(10, type_="task.created")
    # Interleave: good, poison, good, poison, ... so every bad record has good neighbours.
    mixed: list[bytes | EventEnvelope] = []
    for i, envelope in enumerate(good):
        mixed.append(envelope)
        if i < len(poison):
            mixed.append(poison[i][0])
    produce(kafka.bootstrap, unique_topics.events, mixed)
    produce_tombstone(kafka.bootstrap, unique_topics.events)  # a None value: poison too
    produce(kafka.bootstrap, unique_topics.tasks, tasks)

    base_env = {
        **app_env(kafka.bootstrap, database_url, topics=unique_topics),
    }
    with webhook_sink() as sink:
        audit = ConsumerProcess(
            "audit",
            {**base_env, "DEAD_LETTER_TOPIC": unique_topics.audit_dlq, "CONSUMER_GROUP": "audit-p"},
            tmp_path / "audit.log",
        ).start()
        notifier = ConsumerProcess(
            "notifier",
            {
                **base_env,
                "DEAD_LETTER_TOPIC": unique_topics.notifier_dlq,
                "CONSUMER_GROUP": "notifier-p",
                "NOTIFIER_WEBHOOK_URL": f"{sink.url}/hook",
            },
            tmp_path / "notifier.log",
        ).start()
        try:
            expected_dead = len(poison) + 1  # + the tombstone
            assert wait_until(lambda: len(sink.received("/hook")) >= 40, timeout=60)
            assert wait_until(lambda: _rows(database_url) >= 40, timeout=30), audit.log()[-2000:]
            # Both have committed every record, each after its dead letter was acked: the
            # dead-letter topics are complete and nothing more can be delivered or written.
            sources = [unique_topics.events, unique_topics.tasks]
            for group, process in (("audit-p", audit), ("notifier-p", notifier)):
                caught_up = partial(group_caught_up, kafka.bootstrap, group, sources)
                assert wait_until(caught_up, timeout=30, interval=0.5), process.log()[-2000:]
            audit_dead = read_topic(kafka.bootstrap, unique_topics.audit_dlq)
            notifier_dead = read_topic(kafka.bootstrap, unique_topics.notifier_dlq)
            assert audit.terminate() < 10
            assert notifier.terminate() < 10
        finally:
            audit.stop_quietly()
            notifier.stop_quietly()

    expected_reasons = Counter(reason for _, reason in poison) + Counter({"invalid_json": 1})
    for dead in (audit_dead, notifier_dead):
        assert len(dead) == expected_dead
        assert Counter(header_dict(r.headers)["dlq.reason"] for r in dead) == expected_reasons
        assert all(header_dict(r.headers)["dlq.attempts"] == "1" for r in dead)
        assert all(header_dict(r.headers)["dlq.detail"] for r in dead)
        values = Counter(r.value for r in dead)
        assert values == Counter([v for v, _ in poison] + [None])
    assert _rows(database_url) == 40
    delivered = Counter(r.json()["id"] for r in sink.received("/hook"))
    assert set(delivered) == {str(e.id) for e in good + tasks}
    assert set(delivered.values()) == {1}


def produce_tombstone(bootstrap: str, topic: str) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    producer.send(topic, key=b"gone", value=None)
    producer.flush(10)
    producer.close(5)


def _rows(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM audit_log").fetchone()
    return int(row[0]) if row else 0
