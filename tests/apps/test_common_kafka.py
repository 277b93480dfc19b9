"""Kafka factory against the real broker: keyed produce/consume, headers, dead letters, IAM."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from apps.common.envelope import decode, encode, new_envelope
from apps.common.kafka import (
    CORRELATION_ID_HEADER,
    KafkaSettings,
    connection_config,
    dead_letter,
    envelope_headers,
    header_dict,
    make_consumer,
    make_producer,
)
from platform_cli.embedded import KafkaBroker
from tests.apps.conftest import FAST_GROUP_SETTINGS


def _drain(consumer: Any, want: int, timeout_ms: int = 15_000) -> list[Any]:
    got: list[Any] = []
    for _ in range(30):
        for records in consumer.poll(timeout_ms=timeout_ms // 30).values():
            got.extend(records)
        if len(got) >= want:
            break
    return got


def test_settings_read_the_facts_channel_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "b-1:9098, b-2:9098")
    monkeypatch.setenv("KAFKA_AUTH_MODE", "iam")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    settings = KafkaSettings()
    assert settings.servers == ["b-1:9098", "b-2:9098"]
    config = connection_config(settings)
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "AWS_MSK_IAM"


def test_plaintext_is_the_local_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_AUTH_MODE", raising=False)
    assert connection_config(KafkaSettings())["security_protocol"] == "PLAINTEXT"


def test_iam_mode_signs_with_kafka_pythons_own_msk_mechanism(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The mechanism name must be one kafka-python registers, and our settings must give it what
    # it needs (SASL_SSL, a region from AWS_REGION) to sign a kafka-cluster:Connect request.
    from kafka.net.sasl import get_sasl_mechanism

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    settings = KafkaSettings(bootstrap_servers="b-1:9098", auth_mode="iam", region="eu-west-1")
    config = connection_config(settings)
    mechanism = get_sasl_mechanism(config["sasl_mechanism"])(host="b-1", **config)
    first_message = json.loads(mechanism.auth_bytes())
    assert first_message["action"] == "kafka-cluster:Connect"
    assert "/eu-west-1/kafka-cluster/" in first_message["x-amz-credential"]


def test_keyed_records_round_trip_with_headers(
    kafka: KafkaBroker, make_topics: Callable[..., list[str]]
) -> None:
    (topic,) = make_topics("events")
    settings = KafkaSettings(bootstrap_servers=kafka.bootstrap)
    producer = make_producer(settings)
    sent = [
        new_envelope(
            "task.updated", source="t", subject="task-7", correlation_id=f"c{i}", data={"n": i}
        )
        for i in range(5)
    ]
    try:
        for env in sent:
            headers = envelope_headers(
                event_id=str(env.id), event_type=env.type, correlation_id=env.correlation_id
            )
            producer.send(topic, key=env.subject.encode(), value=encode(env), headers=headers)
        producer.flush(10)
    finally:
        producer.close()
    consumer = make_consumer(settings, "g-roundtrip", [topic], **FAST_GROUP_SETTINGS)
    try:
        records = _drain(consumer, 5)
    finally:
        consumer.close()
    assert [decode(r.value) for r in records] == sent  # one key: order preserved
    assert {r.key for r in records} == {b"task-7"}
    assert [header_dict(r.headers)[CORRELATION_ID_HEADER] for r in records] == [
        f"c{i}" for i in range(5)
    ]


def test_dead_letter_keeps_original_bytes_and_explains_why(
    kafka: KafkaBroker, make_topics: Callable[..., list[str]]
) -> None:
    source, dlq = make_topics("events", "events.dlq")
    settings = KafkaSettings(bootstrap_servers=kafka.bootstrap)
    producer = make_producer(settings)
    try:
        producer.send(source, key=b"k1", value=b"{broken", headers=[("x", b"y")]).get(10)
        consumer = make_consumer(settings, "g-dlq", [source], **FAST_GROUP_SETTINGS)
        try:
            (original,) = _drain(consumer, 1)
        finally:
            consumer.close()
        dead_letter(
            producer,
            original,
            topic=dlq,
            reason="invalid_json",
            detail="Expecting value" * 200,
            consumer_group="g-dlq",
        )
    finally:
        producer.close()
    reader = make_consumer(settings, "g-dlq-reader", [dlq], **FAST_GROUP_SETTINGS)
    try:
        (dead,) = _drain(reader, 1)
    finally:
        reader.close()
    headers = header_dict(dead.headers)
    assert (dead.key, dead.value) == (b"k1", b"{broken")
    assert headers["x"] == "y"
    assert headers["dlq.reason"] == "invalid_json"
    assert len(headers["dlq.detail"]) == 1000
    assert headers["dlq.attempts"] == "1"
    assert headers["dlq.original.topic"] == source
    assert headers["dlq.original.partition"] == "0"
    assert headers["dlq.original.offset"] == str(original.offset)
    assert headers["dlq.consumer.group"] == "g-dlq"
