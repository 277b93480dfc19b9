"""events-api settings, from the environment (names are the facts channel's keys)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from apps.common.db import DbSettings
from apps.common.kafka import KafkaSettings
from apps.events_api.server_limits import (
    DEFAULT_HEAD_TIMEOUT_S,
    DEFAULT_MAX_HEAD_BYTES,
    DEFAULT_MAX_HEADERS,
    HeadLimits,
)

APP_NAME = "events-api"
DEFAULT_PORT = 8000
MAX_BODY_BYTES = 64 * 1024
CONSOLE_DIR = Path(__file__).parent / "console"
"""The web console's build output (`npm --prefix apps/web run build`, apps/web/vite.config.ts):
inside the package, so the image that copies apps/events_api/ ships it."""


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class ApiSettings(BaseSettings):
    """Everything events-api reads; Kafka and database parts come from the shared settings."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    environment: str = Field(default="local", validation_alias=_env("PLATFORM_ENVIRONMENT"))
    host: str = Field(default="0.0.0.0", validation_alias=_env("EVENTS_API_HOST"))  # noqa: S104
    # PORT is what the rendered config map and the image set; EVENTS_API_PORT still wins locally.
    port: int = Field(default=DEFAULT_PORT, validation_alias=_env("EVENTS_API_PORT", "PORT"))
    workers: int = Field(default=1, ge=1, validation_alias=_env("EVENTS_API_WORKERS"))
    log_level: str = Field(default="INFO", validation_alias=_env("LOG_LEVEL"))
    otel_endpoint: str | None = Field(
        default=None, validation_alias=_env("OTEL_EXPORTER_OTLP_ENDPOINT")
    )

    events_topic: str = Field(default="events", validation_alias=_env("EVENTS_TOPIC"))
    tasks_topic: str = Field(default="tasks", validation_alias=_env("TASKS_TOPIC"))

    max_body_bytes: int = Field(default=MAX_BODY_BYTES, validation_alias=_env("MAX_BODY_BYTES"))
    # The request head (apps/events_api/server_limits.py): size, header count, time to arrive.
    max_head_bytes: int = Field(
        default=DEFAULT_MAX_HEAD_BYTES, ge=1024, validation_alias=_env("MAX_HEAD_BYTES")
    )
    max_headers: int = Field(
        default=DEFAULT_MAX_HEADERS, ge=8, validation_alias=_env("MAX_HEADERS")
    )
    head_timeout_s: float = Field(
        default=DEFAULT_HEAD_TIMEOUT_S, gt=0, le=300, validation_alias=_env("HEAD_TIMEOUT_SECONDS")
    )
    key_cache_seconds: float = Field(
        default=10.0, ge=0, validation_alias=_env("API_KEY_CACHE_SECONDS")
    )
    db_pool_min: int = Field(default=2, validation_alias=_env("DB_POOL_MIN"))
    db_pool_max: int = Field(default=10, validation_alias=_env("DB_POOL_MAX"))

    relay_enabled: bool = Field(default=True, validation_alias=_env("OUTBOX_RELAY_ENABLED"))
    relay_batch_size: int = Field(default=200, ge=1, validation_alias=_env("OUTBOX_BATCH_SIZE"))
    relay_idle_s: float = Field(default=1.0, gt=0, validation_alias=_env("OUTBOX_IDLE_SECONDS"))
    """The relay's fallback poll: commits wake it at once (LISTEN/NOTIFY); with no notification
    it still looks for rows this often."""
    relay_max_backoff_s: float = Field(
        default=5.0, gt=0, validation_alias=_env("OUTBOX_MAX_BACKOFF_SECONDS")
    )
    relay_idempotent: bool = Field(
        default=True, validation_alias=_env("OUTBOX_IDEMPOTENT_PRODUCER")
    )
    """kafka-python's idempotent producer for the relay (outbox.py). Turn it off against Tansu,
    the local and test broker, which can lose acknowledged records across its own crash with
    it on."""
    relay_retention_hours: float = Field(
        default=24.0, gt=0, validation_alias=_env("OUTBOX_RETENTION_HOURS")
    )

    # The live stream (GET /api/v1/stream, apps/events_api/stream.py) and the web console.
    stream_poll_s: float = Field(
        default=0.5, gt=0, le=60, validation_alias=_env("STREAM_POLL_SECONDS")
    )
    stream_status_poll_s: float = Field(
        default=1.0, gt=0, le=60, validation_alias=_env("STREAM_STATUS_POLL_SECONDS")
    )
    stream_queue_bytes: int = Field(
        default=1 << 20, ge=1024, le=1 << 30, validation_alias=_env("STREAM_QUEUE_BYTES")
    )
    stream_max_clients: int = Field(
        default=500, ge=1, le=100_000, validation_alias=_env("STREAM_MAX_CLIENTS")
    )
    stream_heartbeat_s: float = Field(
        default=15.0, gt=0, le=300, validation_alias=_env("STREAM_HEARTBEAT_SECONDS")
    )
    stream_history: int = Field(default=50, ge=0, le=500, validation_alias=_env("STREAM_HISTORY"))
    console_dir: Path = Field(default=CONSOLE_DIR, validation_alias=_env("CONSOLE_DIR"))

    @property
    def head_limits(self) -> HeadLimits:
        return HeadLimits(self.max_head_bytes, self.max_headers, self.head_timeout_s)

    # Nested settings read their own variables (KAFKA_*, AWS_REGION, DB_*);
    # tests pass explicit instances instead.
    kafka: KafkaSettings = Field(default_factory=lambda: KafkaSettings(client_id=APP_NAME))
    db: DbSettings = Field(default_factory=DbSettings)
