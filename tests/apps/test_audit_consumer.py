"""audit's Kafka loop on the real broker and database (in-process; the subprocess scenarios are
in test_reliability_*)."""

from __future__ import annotations

import json
import threading
from typing import Any

import psycopg
from prometheus_client import generate_latest

from apps.audit.cli import MIGRATIONS
from apps.audit.consumer import AuditService
from apps.audit.settings import AuditConfig, AuditSettings, ConsumerTuning
from apps.common.db import migrate
from apps.common.envelope import EventEnvelope, encode
from apps.common.kafka import KafkaSettings, header_dict
from platform_cli.embedded import KafkaBroker
from tests.apps.app_env import db_settings
from tests.apps.conftest import TopicNames
from tests.apps.consumer_harness import (
    envelopes,
    group_caught_up,
    metric_value,
    produce,
    read_topic,
    registry_metric,
    running_in_thread,
    wait_until,
)


def _config(kafka: KafkaBroker, database_url: str, topics: TopicNames) -> AuditConfig:
    return AuditConfig(
        app=AuditSettings.model_validate(
            {
                "events_topic": topics.events,
                "tasks_topic": topics.tasks,
                "dead_letter_topic": topics.audit_dlq,
                "batch_size": 50,
            }
        ),
        kafka=KafkaSettings(bootstrap_servers=kafka.bootstrap),
        db=db_settings(database_url),
        tuning=ConsumerTuning(heartbeat_interval_ms=300, session_timeout_ms=6000),
    )


def _caught_up(kafka: KafkaBroker, topics: TopicNames) -> bool:
    """audit committed every record: its dead letters were acked before, so they are all in."""
    return group_caught_up(kafka.bootstrap, "audit", [topics.events, topics.tasks])


def _rows(database_url: str) -> list[tuple[str, str]]:
    with psycopg.connect(database_url) as conn:
        return [
            (str(r[0]), r[1])
            for r in conn.execute("SELECT event_id, kafka_topic FROM audit_log").fetchall()
        ]


def test_every_envelope_is_written_once_and_redelivery_changes_nothing(
    kafka: KafkaBroker, database_url: str, unique_topics: TopicNames
) -> None:
    migrate(database_url, "audit", MIGRATIONS)
    events = envelopes(120)
    tasks = envelopes(30, type_="task.updated")
    produce(kafka.bootstrap, unique_topics.events, events)
    produce(kafka.bootstrap, unique_topics.tasks, tasks)
    produce(kafka.bootstrap, unique_topics.events, events[:20])  # duplicates, as after a crash
    stop = threading.Event()
    service = AuditService(_config(kafka, database_url, unique_topics), stop)
    with running_in_thread(service, stop):
        assert wait_until(
            lambda: (
                registry_metric(service.metrics.registry, "audit_messages_processed_total") == 170
            ),
            timeout=40,
        )
    rows = _rows(database_url)
    assert sorted(r[0] for r in rows) == sorted(str(e.id) for e in events + tasks)
    assert sum(1 for r in rows if r[1] == unique_topics.tasks) == 30
    metrics = generate_latest(service.metrics.registry).decode()
    assert metric_value(metrics, "audit_rows_inserted_total") == 150
    assert metric_value(metrics, "audit_duplicates_total") == 20
    assert metric_value(metrics, "audit_messages_consumed_total") == 170


def _audit_keeps_only(
    kafka: KafkaBroker, database_url: str, topics: TopicNames, good: list[EventEnvelope]
) -> list[Any]:
    """Run audit over what was produced until it has stored `good` and committed everything;
    assert it stored exactly those, and return its dead letters."""
    stop = threading.Event()
    service = AuditService(_config(kafka, database_url, topics), stop)
    with running_in_thread(service, stop):
        assert wait_until(lambda: len(_rows(database_url)) == len(good), timeout=40)
        assert wait_until(lambda: _caught_up(kafka, topics), timeout=20, interval=0.5)
    assert sorted(r[0] for r in _rows(database_url)) == sorted(str(e.id) for e in good)
    return read_topic(kafka.bootstrap, topics.audit_dlq)


def test_poison_records_are_dead_lettered_with_reasons_and_good_ones_kept(
    kafka: KafkaBroker, database_url: str, unique_topics: TopicNames
) -> None:
    migrate(database_url, "audit", MIGRATIONS)
    good = envelopes(6)
    v2 = json.loads(encode(good[0]))
    v2.update(id="00000000-0000-4000-8000-0000000000ff", version=2)
    missing_type = json.loads(encode(good[0]))
    missing_type.pop("type")
    missing_type["id"] = "00000000-0000-4000-8000-0000000000fe"
    poison = [b"\xff\xfe not utf-8", json.dumps(v2).encode(), json.dumps(missing_type).encode()]
    produce(
        kafka.bootstrap,
        unique_topics.events,
        [good[0], poison[0], good[1], good[2], poison[1], good[3], poison[2], good[4], good[5]],
    )
    dead = _audit_keeps_only(kafka, database_url, unique_topics, good)
    by_offset = {int(header_dict(r.headers)["dlq.original.offset"]): r for r in dead}
    assert sorted(by_offset) == [1, 4, 6]
    assert [header_dict(by_offset[o].headers)["dlq.reason"] for o in (1, 4, 6)] == [
        "invalid_json",
        "unsupported_version",
        "schema_violation",
    ]
    assert by_offset[1].value == poison[0]  # the original bytes, untouched
    assert "type" in header_dict(by_offset[6].headers)["dlq.detail"]
    assert all(header_dict(r.headers)["dlq.consumer.group"] == "audit" for r in dead)


def test_a_record_the_database_refuses_is_dead_lettered_not_retried_forever(
    kafka: KafkaBroker, database_url: str, unique_topics: TopicNames
) -> None:
    migrate(database_url, "audit", MIGRATIONS)
    good = envelopes(8)
    # A valid envelope PostgreSQL cannot store: text and jsonb cannot hold a NUL character.
    (refused,) = envelopes(1, note="nul \x00 inside")
    produce(kafka.bootstrap, unique_topics.events, [*good[:4], refused, *good[4:]])
    dead = _audit_keeps_only(kafka, database_url, unique_topics, good)
    assert len(dead) == 1
    headers = header_dict(dead[0].headers)
    assert headers["dlq.reason"] == "storage_rejected"
    assert headers["dlq.original.offset"] == "4"
    assert json.loads(dead[0].value)["id"] == str(refused.id)


def test_a_clean_stop_leaves_every_offset_committed(
    kafka: KafkaBroker, database_url: str, unique_topics: TopicNames
) -> None:
    """Commits are asynchronous while running; leaving the group must still hand back nothing."""
    from kafka import KafkaConsumer, TopicPartition

    migrate(database_url, "audit", MIGRATIONS)
    produce(kafka.bootstrap, unique_topics.events, envelopes(300))
    stop = threading.Event()
    config = _config(kafka, database_url, unique_topics)
    service = AuditService(config, stop)
    with running_in_thread(service, stop):
        assert wait_until(
            lambda: registry_metric(service.metrics.registry, "audit_rows_inserted_total") == 300,
            timeout=40,
        )
    probe = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap,
        group_id=config.app.consumer_group,
        enable_auto_commit=False,
    )
    try:
        partitions = [
            TopicPartition(unique_topics.events, p)
            for p in sorted(probe.partitions_for_topic(unique_topics.events) or ())
        ]
        committed = {tp: probe.committed(tp) for tp in partitions}
    finally:
        probe.close()
    # One partition holding offsets 0..299: the next offset to read is 300. (Compared with the
    # count, not end_offsets(): Tansu's ListOffsets answers the last batch's base offset.)
    assert list(committed.values()) == [300]
