"""Kafka client factory: PLAINTEXT locally, SASL_SSL + AWS_MSK_IAM on MSK, chosen by settings.

The producer is configured for "no loss, per-key order": acks=all, retries with a single
in-flight request per connection (so a retry can never reorder two records of one key), and
the caller keys every record by the envelope's `subject`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any, Literal, Protocol

from kafka import KafkaConsumer, KafkaProducer
from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Headers = list[tuple[str, bytes]]

CORRELATION_ID_HEADER = "correlation_id"
EVENT_TYPE_HEADER = "event_type"
EVENT_ID_HEADER = "event_id"

DLQ_REASON = "dlq.reason"
DLQ_DETAIL = "dlq.detail"
DLQ_ATTEMPTS = "dlq.attempts"
DLQ_ORIGINAL_TOPIC = "dlq.original.topic"
DLQ_ORIGINAL_PARTITION = "dlq.original.partition"
DLQ_ORIGINAL_OFFSET = "dlq.original.offset"
DLQ_CONSUMER_GROUP = "dlq.consumer.group"

MAX_DETAIL_BYTES = 1000
"""Dead-letter detail is truncated: a header is for a human to read, not for a stack dump."""


class KafkaSettings(BaseSettings):
    """Connection settings, read from the facts channel's environment variables."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092", validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS")
    )
    auth_mode: Literal["plaintext", "iam"] = Field(
        default="plaintext", validation_alias=AliasChoices("KAFKA_AUTH_MODE")
    )
    region: str | None = Field(default=None, validation_alias=AliasChoices("AWS_REGION"))
    client_id: str = Field(
        default="event-platform", validation_alias=AliasChoices("KAFKA_CLIENT_ID")
    )

    @property
    def servers(self) -> list[str]:
        return [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]


def connection_config(settings: KafkaSettings) -> dict[str, Any]:
    """Options shared by producers, consumers and admin clients."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.servers,
        "client_id": settings.client_id,
    }
    if settings.auth_mode == "iam":
        # kafka-python's AWS_MSK_IAM signs with botocore's default credential chain (EKS Pod
        # Identity in the cluster) and reads the region from botocore's config, which knows
        # AWS_DEFAULT_REGION but not our AWS_REGION fact.
        if settings.region:
            os.environ.setdefault("AWS_DEFAULT_REGION", settings.region)
        config |= {"security_protocol": "SASL_SSL", "sasl_mechanism": "AWS_MSK_IAM"}
    else:
        config["security_protocol"] = "PLAINTEXT"
    return config


def make_producer(settings: KafkaSettings, **overrides: Any) -> KafkaProducer:
    """A producer that only reports success once every in-sync replica has the record."""
    config = connection_config(settings) | {
        "acks": "all",
        "retries": 5,
        "max_in_flight_requests_per_connection": 1,  # retries cannot reorder a key's records
        "linger_ms": 5,
        "request_timeout_ms": 10_000,
        "max_block_ms": 10_000,
        "retry_backoff_ms": 200,
        "bootstrap_timeout_ms": 10_000,
        # kafka-python backs off reconnects up to 30 s by default; after a broker restart we
        # want to be back within a couple of seconds.
        "reconnect_backoff_max_ms": 2_000,
    }
    return KafkaProducer(**(config | overrides))


def make_consumer(
    settings: KafkaSettings, group_id: str, topics: Sequence[str], **overrides: Any
) -> KafkaConsumer:
    """A group consumer that commits only when told to (after the work is durable)."""
    config = connection_config(settings) | {
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "reconnect_backoff_max_ms": 2_000,
    }
    return KafkaConsumer(*topics, **(config | overrides))


# --- headers -----------------------------------------------------------------------------------


def header_dict(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Decode record headers to text (last value wins; undecodable bytes are replaced)."""
    return {key: (value or b"").decode("utf-8", errors="replace") for key, value in (headers or ())}


def header_value(headers: Iterable[tuple[str, bytes | None]] | None, name: str) -> str | None:
    return header_dict(headers).get(name)


def consumed_headers(record: Any) -> tuple[tuple[str, bytes], ...]:
    """A kafka-python ConsumerRecord's headers as kept and republished: kafka-python gives an
    empty list or None for none, and None for a header without a value (kept as b"")."""
    return tuple((key, value or b"") for key, value in (record.headers or ()))


def envelope_headers(
    *, event_id: str, event_type: str, correlation_id: str, trace: Headers | None = None
) -> Headers:
    """Headers every envelope record carries: ids for routing without parsing, plus trace."""
    headers: Headers = [
        (EVENT_ID_HEADER, event_id.encode()),
        (EVENT_TYPE_HEADER, event_type.encode()),
        (CORRELATION_ID_HEADER, correlation_id.encode()),
    ]
    return headers + list(trace or [])


# --- dead letters ------------------------------------------------------------------------------


class ConsumedRecord(Protocol):
    """The parts of kafka-python's ConsumerRecord that dead-lettering needs."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]] | None: ...


def dead_letter_headers(
    record: ConsumedRecord,
    *,
    reason: str,
    detail: str,
    attempts: int,
    consumer_group: str | None = None,
) -> Headers:
    """The original headers (minus stale dlq.*), then why and where the record came from."""
    kept = [(k, v) for k, v in (record.headers or ()) if not k.startswith("dlq.")]
    clipped = detail.encode("utf-8", errors="replace")[:MAX_DETAIL_BYTES]
    return [
        *kept,
        (DLQ_REASON, reason.encode()),
        (DLQ_DETAIL, clipped),
        (DLQ_ATTEMPTS, str(attempts).encode()),
        (DLQ_ORIGINAL_TOPIC, record.topic.encode()),
        (DLQ_ORIGINAL_PARTITION, str(record.partition).encode()),
        (DLQ_ORIGINAL_OFFSET, str(record.offset).encode()),
        (DLQ_CONSUMER_GROUP, (consumer_group or "").encode()),
    ]


def dead_letter(
    producer: KafkaProducer,
    record: ConsumedRecord,
    *,
    topic: str,
    reason: str,
    detail: str,
    attempts: int = 1,
    consumer_group: str | None = None,
    timeout_s: float = 30.0,
) -> None:
    """Publish the ORIGINAL key and bytes of `record` to `topic` and wait for the broker's ack.

    Raises the producer's error if the ack does not come: the caller must then not commit the
    offset, so the record is retried rather than lost. Consumers call this through their loop's
    `DeadLetterSink` (apps.common.consumer_loop), which adds the metric and the log line.
    """
    future = producer.send(
        topic,
        key=record.key,
        value=record.value,
        headers=dead_letter_headers(
            record,
            reason=reason,
            detail=detail,
            attempts=attempts,
            consumer_group=consumer_group,
        ),
    )
    producer.flush(timeout=timeout_s)
    future.get(timeout=timeout_s)
