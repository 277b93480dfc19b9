"""reminders settings, from the environment (the facts channel plus REMINDERS_* variables)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import Field

from apps.common.consumer import ConsumerSettings, ConsumerTuning, env
from apps.common.db import DbSettings
from apps.common.kafka import KafkaSettings

APP_NAME = "reminders"


class RemindersSettings(ConsumerSettings):
    consumer_group: str = Field("reminders", validation_alias=env("CONSUMER_GROUP"))
    dead_letter_topic: str = Field("reminders.dlq", validation_alias=env("DEAD_LETTER_TOPIC"))
    port: int = Field(8003, validation_alias=env("PORT", "REMINDERS_PORT"))
    fire_batch: int = Field(500, ge=1, le=5000, validation_alias=env("REMINDERS_FIRE_BATCH"))
    """Due reminders claimed (and published) per scheduler transaction."""
    idle_s: float = Field(0.2, gt=0, le=5, validation_alias=env("REMINDERS_IDLE_SECONDS"))
    """Longest wait between two looks at the schedule: another replica's new reminder (which
    cannot wake this one) is picked up at most this late."""
    max_backoff_s: float = Field(
        2.0, gt=0, le=60, validation_alias=env("REMINDERS_MAX_BACKOFF_SECONDS")
    )
    publish_timeout_s: float = Field(
        5.0, gt=0, le=60, validation_alias=env("REMINDERS_PUBLISH_TIMEOUT_SECONDS")
    )
    late_after_ms: int = Field(1000, ge=0, validation_alias=env("REMINDERS_LATE_AFTER_MS"))
    """A reminder that goes out later than this after its time is marked `late` in its event."""
    poll_timeout_ms: int = Field(200, ge=1, validation_alias=env("REMINDERS_POLL_TIMEOUT_MS"))

    @property
    def topics(self) -> tuple[str, ...]:
        """Only task changes: reminders are scheduled from them."""
        return (self.tasks_topic,)


@dataclass(frozen=True)
class RemindersConfig:
    """Everything reminders reads from its environment, loaded once at start-up."""

    app: RemindersSettings = field(default_factory=RemindersSettings)
    kafka: KafkaSettings = field(default_factory=lambda: KafkaSettings(client_id=APP_NAME))
    db: DbSettings = field(default_factory=DbSettings)
    tuning: ConsumerTuning = field(default_factory=ConsumerTuning)
