"""audit settings, from the environment (the facts channel plus AUDIT_* variables)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import Field

from apps.common.consumer import ConsumerSettings, ConsumerTuning, env
from apps.common.db import DbSettings
from apps.common.kafka import KafkaSettings


class AuditSettings(ConsumerSettings):
    consumer_group: str = Field("audit", validation_alias=env("CONSUMER_GROUP"))
    dead_letter_topic: str = Field("audit.dlq", validation_alias=env("DEAD_LETTER_TOPIC"))
    port: int = Field(8002, validation_alias=env("PORT", "AUDIT_PORT"))
    batch_size: int = Field(5000, ge=1, le=20_000, validation_alias=env("AUDIT_BATCH_SIZE"))
    fetch_partition_bytes: int = Field(
        512 * 1024, ge=64 * 1024, validation_alias=env("AUDIT_FETCH_PARTITION_BYTES")
    )
    """kafka-python fetches again only once a poll drained its buffer; a fetch that fits in one
    batch (here ~1,500 envelopes per partition) is re-requested at every poll, so the broker's
    round trip overlaps the validation and inserts instead of stalling them."""
    writers: int = Field(2, ge=1, le=8, validation_alias=env("AUDIT_WRITERS"))
    """Batch inserts running at once, each on its own connection: one PostgreSQL backend is
    the sink's ceiling (bench/README figures), two keep the database's cores busy."""
    poll_timeout_ms: int = Field(200, ge=1, validation_alias=env("AUDIT_POLL_TIMEOUT_MS"))

    archive_bucket: str | None = Field(None, validation_alias=env("AUDIT_ARCHIVE_BUCKET"))
    archive_prefix: str = Field("audit", validation_alias=env("AUDIT_ARCHIVE_PREFIX"))
    archive_window_s: int = Field(3600, ge=60, validation_alias=env("AUDIT_ARCHIVE_WINDOW_S"))
    archive_grace_s: int = Field(300, ge=0, validation_alias=env("AUDIT_ARCHIVE_GRACE_S"))
    aws_region: str = Field("us-east-1", validation_alias=env("AWS_REGION"))
    aws_endpoint_url: str | None = Field(
        None, validation_alias=env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
    )


@dataclass(frozen=True)
class AuditConfig:
    """Everything audit reads from its environment, loaded once at start-up."""

    app: AuditSettings = field(default_factory=AuditSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    db: DbSettings = field(default_factory=DbSettings)
    tuning: ConsumerTuning = field(default_factory=ConsumerTuning)
