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
    batch_size: int = Field(2000, ge=1, le=10_000, validation_alias=env("AUDIT_BATCH_SIZE"))
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
