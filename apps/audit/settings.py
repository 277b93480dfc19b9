"""audit settings, from the environment (the facts channel plus AUDIT_* variables)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from apps.common.db import DbSettings
from apps.common.kafka import KafkaSettings


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class ConsumerTuning(BaseSettings):
    """Group-membership timings; tests and the benchmark lower them (Tansu joins take ~3 beats)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    heartbeat_interval_ms: int = Field(3000, validation_alias=_env("KAFKA_HEARTBEAT_INTERVAL_MS"))
    session_timeout_ms: int = Field(45000, validation_alias=_env("KAFKA_SESSION_TIMEOUT_MS"))
    max_poll_interval_ms: int = Field(300_000, validation_alias=_env("KAFKA_MAX_POLL_INTERVAL_MS"))

    def overrides(self) -> dict[str, int]:
        return {
            "heartbeat_interval_ms": self.heartbeat_interval_ms,
            "session_timeout_ms": self.session_timeout_ms,
            "max_poll_interval_ms": self.max_poll_interval_ms,
        }


class AuditSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    environment: str = Field("local", validation_alias=_env("PLATFORM_ENVIRONMENT"))
    otlp_endpoint: str | None = Field(None, validation_alias=_env("OTEL_EXPORTER_OTLP_ENDPOINT"))
    events_topic: str = Field("events", validation_alias=_env("EVENTS_TOPIC"))
    tasks_topic: str = Field("tasks", validation_alias=_env("TASKS_TOPIC"))
    consumer_group: str = Field("audit", validation_alias=_env("CONSUMER_GROUP"))
    dead_letter_topic: str = Field("audit.dlq", validation_alias=_env("DEAD_LETTER_TOPIC"))
    port: int = Field(8002, validation_alias=_env("PORT", "AUDIT_PORT"))
    log_level: str = Field("INFO", validation_alias=_env("LOG_LEVEL"))

    batch_size: int = Field(500, ge=1, le=10_000, validation_alias=_env("AUDIT_BATCH_SIZE"))
    poll_timeout_ms: int = Field(200, ge=1, validation_alias=_env("AUDIT_POLL_TIMEOUT_MS"))

    archive_bucket: str | None = Field(None, validation_alias=_env("AUDIT_ARCHIVE_BUCKET"))
    archive_prefix: str = Field("audit", validation_alias=_env("AUDIT_ARCHIVE_PREFIX"))
    archive_window_s: int = Field(3600, ge=60, validation_alias=_env("AUDIT_ARCHIVE_WINDOW_S"))
    archive_grace_s: int = Field(300, ge=0, validation_alias=_env("AUDIT_ARCHIVE_GRACE_S"))
    aws_region: str = Field("us-east-1", validation_alias=_env("AWS_REGION"))
    aws_endpoint_url: str | None = Field(
        None, validation_alias=_env("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
    )

    @property
    def topics(self) -> tuple[str, str]:
        return (self.events_topic, self.tasks_topic)


@dataclass(frozen=True)
class AuditConfig:
    """Everything audit reads from its environment, loaded once at start-up."""

    app: AuditSettings = field(default_factory=AuditSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    db: DbSettings = field(default_factory=DbSettings)
    tuning: ConsumerTuning = field(default_factory=ConsumerTuning)
