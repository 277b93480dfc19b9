"""notifier settings, from the environment (the facts channel plus NOTIFIER_* variables).

Credentials (`*_URL` of Slack/Discord, which embed their secret, the Telegram bot token, the
WhatsApp access token, the webhook signing secret) are `SecretStr`: they print as `**********`
and are revealed only where a request is built. In Kubernetes they come from a Secret, either as
environment variables or as files in `NOTIFIER_SECRETS_DIR` (one file per setting, named like
the variable, e.g. `NOTIFIER_TELEGRAM_BOT_TOKEN`: a Secret mounted as a volume).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from pydantic import Field, SecretStr, model_validator

from apps.common.consumer import ConsumerSettings, ConsumerTuning, env
from apps.common.db import DbSettings
from apps.common.kafka import KafkaSettings
from apps.notifier.channels import (
    Channel,
    DiscordChannel,
    SlackChannel,
    TelegramChannel,
    WebhookChannel,
    WhatsAppChannel,
)
from apps.notifier.retry import BackoffPolicy
from apps.notifier.routing import Route, parse_routes


class NotifierTuning(ConsumerTuning):
    """Group timings plus the poll batch."""

    max_poll_records: int = Field(2000, ge=1, validation_alias=env("KAFKA_MAX_POLL_RECORDS"))
    """Records per batch. Large, because each batch's first claim and last outcome are round
    trips no request overlaps (~10% of a 500-record batch's time here, ~3% at 2,000); a stop
    still ends within two claim chunks, not a whole batch."""

    def overrides(self) -> dict[str, int]:
        return {**super().overrides(), "max_poll_records": self.max_poll_records}


class NotifierSettings(ConsumerSettings):
    consumer_group: str = Field("notifier", validation_alias=env("CONSUMER_GROUP"))
    dead_letter_topic: str = Field("notifier.dlq", validation_alias=env("DEAD_LETTER_TOPIC"))
    port: int = Field(8001, validation_alias=env("PORT", "NOTIFIER_PORT"))
    routes_json: str | None = Field(None, validation_alias=env("NOTIFIER_ROUTES"))
    max_attempts: int = Field(5, ge=1, validation_alias=env("NOTIFIER_MAX_ATTEMPTS"))
    backoff_base_s: float = Field(0.5, gt=0, validation_alias=env("NOTIFIER_BACKOFF_BASE_S"))
    backoff_max_s: float = Field(30.0, gt=0, validation_alias=env("NOTIFIER_BACKOFF_MAX_S"))
    http_timeout_s: float = Field(10.0, gt=0, validation_alias=env("NOTIFIER_HTTP_TIMEOUT_S"))
    lease_s: float = Field(30.0, gt=0, validation_alias=env("NOTIFIER_LEASE_S"))
    concurrency: int = Field(16, ge=1, le=256, validation_alias=env("NOTIFIER_CONCURRENCY"))
    """Requests in flight at once (different keys; one key's deliveries go one at a time), for
    new records and, separately, for due retries."""
    retry_batch: int = Field(100, ge=1, le=10_000, validation_alias=env("NOTIFIER_RETRY_BATCH"))
    """Due retries the scheduler takes per round."""
    retry_idle_s: float = Field(1.0, gt=0, le=60, validation_alias=env("NOTIFIER_RETRY_IDLE_S"))
    """Longest the scheduler sleeps between looks at the schedule (another replica may have
    scheduled something)."""

    webhook_url: str | None = Field(None, validation_alias=env("NOTIFIER_WEBHOOK_URL"))
    webhook_ordered: bool = Field(True, validation_alias=env("NOTIFIER_WEBHOOK_ORDERED"))
    webhook_signing_secret: SecretStr | None = Field(
        None, validation_alias=env("NOTIFIER_WEBHOOK_SIGNING_SECRET")
    )
    slack_webhook_url: SecretStr | None = Field(
        None, validation_alias=env("NOTIFIER_SLACK_WEBHOOK_URL")
    )
    discord_webhook_url: SecretStr | None = Field(
        None, validation_alias=env("NOTIFIER_DISCORD_WEBHOOK_URL")
    )
    telegram_bot_token: SecretStr | None = Field(
        None, validation_alias=env("NOTIFIER_TELEGRAM_BOT_TOKEN")
    )
    telegram_chat_id: str | None = Field(None, validation_alias=env("NOTIFIER_TELEGRAM_CHAT_ID"))
    telegram_api_base: str = Field(
        "https://api.telegram.org", validation_alias=env("NOTIFIER_TELEGRAM_API_BASE")
    )
    whatsapp_access_token: SecretStr | None = Field(
        None, validation_alias=env("NOTIFIER_WHATSAPP_ACCESS_TOKEN")
    )
    whatsapp_phone_number_id: str | None = Field(
        None, validation_alias=env("NOTIFIER_WHATSAPP_PHONE_NUMBER_ID")
    )
    whatsapp_recipient: str | None = Field(
        None, validation_alias=env("NOTIFIER_WHATSAPP_RECIPIENT")
    )
    whatsapp_api_base: str = Field(
        "https://graph.facebook.com/v21.0", validation_alias=env("NOTIFIER_WHATSAPP_API_BASE")
    )

    @model_validator(mode="after")
    def _routes_name_configured_channels(self) -> NotifierSettings:
        # Fail at start-up, not on the first matching event, when a route names a channel
        # whose credentials are missing.
        configured = set(self.channels())
        for route in self.routes():
            missing = [c for c in route.channels if c not in configured]
            if missing:
                raise ValueError(
                    f"NOTIFIER_ROUTES names channel(s) {missing} that are not configured; "
                    f"configured: {sorted(configured) or 'none'}"
                )
        return self

    def backoff(self) -> BackoffPolicy:
        return BackoffPolicy(self.max_attempts, self.backoff_base_s, self.backoff_max_s)

    def channels(self) -> dict[str, Channel]:
        found: dict[str, Channel] = {}
        if self.webhook_url:
            found["webhook"] = WebhookChannel(
                url=self.webhook_url,
                signing_secret=self.webhook_signing_secret,
                ordered=self.webhook_ordered,
            )
        if self.slack_webhook_url:
            found["slack"] = SlackChannel(webhook_url=self.slack_webhook_url)
        if self.discord_webhook_url:
            found["discord"] = DiscordChannel(webhook_url=self.discord_webhook_url)
        if self.telegram_bot_token and self.telegram_chat_id:
            found["telegram"] = TelegramChannel(
                bot_token=self.telegram_bot_token,
                chat_id=self.telegram_chat_id,
                api_base=self.telegram_api_base,
            )
        if self.whatsapp_access_token and self.whatsapp_phone_number_id and self.whatsapp_recipient:
            found["whatsapp"] = WhatsAppChannel(
                access_token=self.whatsapp_access_token,
                phone_number_id=self.whatsapp_phone_number_id,
                recipient=self.whatsapp_recipient,
                api_base=self.whatsapp_api_base,
            )
        return found

    def routes(self) -> tuple[Route, ...]:
        """Configured routes; without NOTIFIER_ROUTES every configured channel gets everything."""
        if self.routes_json:
            return parse_routes(self.routes_json)
        names = tuple(self.channels())
        return (Route(channels=names),) if names else ()


@dataclass(frozen=True)
class NotifierConfig:
    """Everything the notifier reads from its environment, loaded once at start-up."""

    app: NotifierSettings = field(default_factory=lambda: load_app_settings())
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    db: DbSettings = field(default_factory=DbSettings)
    tuning: NotifierTuning = field(default_factory=NotifierTuning)


def load_app_settings() -> NotifierSettings:
    secrets_dir = os.environ.get("NOTIFIER_SECRETS_DIR")
    if secrets_dir:
        return NotifierSettings(_secrets_dir=secrets_dir)
    return NotifierSettings()
