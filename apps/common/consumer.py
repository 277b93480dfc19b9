"""What every bundled consumer shares: its settings, group timings and database probe.

notifier and audit differ in what they do with a record, not in how they join the group, which
topics they read, where they report, or what "ready" means; those live here once, and the loop
itself in `apps.common.consumer_loop`.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def env(*names: str) -> AliasChoices:
    """The environment variable(s) a setting is read from (first match wins)."""
    return AliasChoices(*names)


class ConsumerTuning(BaseSettings):
    """Group-membership and fetch timings; tests and the benchmark lower the group ones (Tansu
    joins take ~3 beats)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    heartbeat_interval_ms: int = Field(3000, validation_alias=env("KAFKA_HEARTBEAT_INTERVAL_MS"))
    session_timeout_ms: int = Field(45000, validation_alias=env("KAFKA_SESSION_TIMEOUT_MS"))
    max_poll_interval_ms: int = Field(300_000, validation_alias=env("KAFKA_MAX_POLL_INTERVAL_MS"))
    fetch_max_wait_ms: int = Field(100, ge=1, validation_alias=env("KAFKA_FETCH_MAX_WAIT_MS"))
    """How long the broker may hold a fetch that found no new record. Apache Kafka answers as
    soon as a record arrives, so this only paces idle fetches there; Tansu (the local and test
    broker) holds the fetch for the whole wait, which at kafka-python's default of 500 ms put
    ~130 ms (p50) between a record's produce and its consumption (~28 ms at 100 ms)."""

    def overrides(self) -> dict[str, int]:
        """kafka-python consumer arguments."""
        return {
            "heartbeat_interval_ms": self.heartbeat_interval_ms,
            "session_timeout_ms": self.session_timeout_ms,
            "max_poll_interval_ms": self.max_poll_interval_ms,
            "fetch_max_wait_ms": self.fetch_max_wait_ms,
        }


class ConsumerSettings(BaseSettings):
    """Settings every consumer reads; subclasses set their group, dead-letter topic and port."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    environment: str = Field("local", validation_alias=env("PLATFORM_ENVIRONMENT"))
    otlp_endpoint: str | None = Field(None, validation_alias=env("OTEL_EXPORTER_OTLP_ENDPOINT"))
    events_topic: str = Field("events", validation_alias=env("EVENTS_TOPIC"))
    tasks_topic: str = Field("tasks", validation_alias=env("TASKS_TOPIC"))
    reminders_topic: str = Field("reminders", validation_alias=env("REMINDERS_TOPIC"))
    log_level: str = Field("INFO", validation_alias=env("LOG_LEVEL"))

    @property
    def topics(self) -> tuple[str, ...]:
        """What the notifier and audit read: events, task changes and fired reminders."""
        return (self.events_topic, self.tasks_topic, self.reminders_topic)


def database_ready(pool: Any) -> bool:
    """`/readyz`'s database check: a pooled connection answers `SELECT 1` within 2 s."""
    if pool is None:
        return False
    try:
        with pool.connection(timeout=2) as conn:
            return conn.execute("SELECT 1").fetchone() is not None
    except Exception:  # any failure means "not ready"
        return False
