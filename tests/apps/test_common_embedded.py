"""The embedded parts themselves: each starts, answers, stops and comes back."""

from __future__ import annotations

import socket
import uuid

import boto3
import psycopg
import pytest
from kafka import KafkaConsumer, KafkaProducer

from platform_cli.embedded import KafkaBroker, PostgresServer, create_topics
from tests.apps.conftest import skip_if_external


def _roundtrip(bootstrap: str, topic: str, value: bytes) -> list[bytes]:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        producer.send(topic, value).get(timeout=10)
    finally:
        producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        batches = consumer.poll(timeout_ms=10_000, max_records=10)
        return [record.value for records in batches.values() for record in records]
    finally:
        consumer.close()


def test_broker_round_trip_and_restart_on_same_port(kafka: KafkaBroker) -> None:
    skip_if_external(kafka)
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    create_topics(kafka.bootstrap, [topic])
    assert _roundtrip(kafka.bootstrap, topic, b"one") == [b"one"]

    bootstrap = kafka.bootstrap
    kafka.stop()
    assert not kafka.running
    host, _, port = bootstrap.rpartition(":")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=2)
    kafka.start()
    assert kafka.bootstrap == bootstrap
    # Tansu is memory-only: the topic is gone after a restart and must be created again.
    create_topics(kafka.bootstrap, [topic])
    assert _roundtrip(kafka.bootstrap, topic, b"two") == [b"two"]


def test_postgres_fresh_database_and_restart(postgres: PostgresServer, database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (v int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    skip_if_external(postgres)
    postgres.restart()
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT v FROM kept").fetchall() == [(42,)]


def test_aws_emulator_serves_s3(aws_endpoint: str) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=aws_endpoint,
        region_name="eu-west-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    bucket = f"smoke-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"
