"""Channel formatters: envelope -> the exact HTTP request each provider expects.

Each formatter is a pure function of its configuration and the envelope, so the payload shapes are
tested without a network. Credentials live in `SecretStr` fields and are revealed only while the
request is built; every request carries a `safe_url` with the secret parts masked, and that is
the only URL the notifier ever logs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, SecretStr

from apps.common.envelope import EventEnvelope
from apps.notifier.summary import summarize

IDEMPOTENCY_HEADER = "Idempotency-Key"

# Provider limits (characters); longer text is rejected by the provider with a 400, which would
# dead-letter an otherwise fine event, so the formatter truncates instead.
SLACK_TEXT_LIMIT = 3000
DISCORD_CONTENT_LIMIT = 2000
DISCORD_DESCRIPTION_LIMIT = 4096
DISCORD_FIELD_VALUE_LIMIT = 1024
TELEGRAM_TEXT_LIMIT = 4096
WHATSAPP_BODY_LIMIT = 4096


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class OutboundRequest:
    """One HTTP POST to a channel. `safe_url` is the loggable form of `url`."""

    url: str
    safe_url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)


def _json_request(
    url: str, safe_url: str, payload: dict[str, Any], idempotency_key: str, **headers: str
) -> OutboundRequest:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return OutboundRequest(
        url=url,
        safe_url=safe_url,
        body=body,
        headers={
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: idempotency_key,
            **headers,
        },
    )


def _mask_path(url: str) -> str:
    """`https://hooks.slack.com/services/T/B/secret` -> `https://hooks.slack.com/***`."""
    scheme, sep, rest = url.partition("://")
    host = rest.split("/", 1)[0] if sep else ""
    return f"{scheme}://{host}/***" if sep else "***"


class Channel(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def ordered(self) -> bool:
        """Deliveries of one key (the envelope's subject) must arrive in Kafka order: a later
        one waits while an earlier one is being retried."""
        ...

    def build(self, envelope: EventEnvelope, idempotency_key: str) -> OutboundRequest: ...


class _ChannelConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WebhookChannel(_ChannelConfig):
    """Generic webhook: the full envelope as JSON, optionally HMAC-signed.

    The signature (`X-Signature-256: sha256=<hex>` over the raw body) lets the receiver verify
    the sender without the secret ever travelling over the wire.
    """

    name: str = "webhook"
    url: str
    signing_secret: SecretStr | None = None
    ordered: bool = True
    """A receiver that orders by `occurred_at` itself may turn this off (NOTIFIER_WEBHOOK_ORDERED):
    then one key's later events do not wait for an earlier one's retries."""

    def build(self, envelope: EventEnvelope, idempotency_key: str) -> OutboundRequest:
        payload = envelope.model_dump(mode="json")
        request = _json_request(
            self.url,
            self.url.split("?", 1)[0],
            payload,
            idempotency_key,
            **{"X-Event-Type": envelope.type, "X-Event-Id": str(envelope.id)},
        )
        if self.signing_secret is not None:
            digest = hmac.new(
                self.signing_secret.get_secret_value().encode(), request.body, hashlib.sha256
            ).hexdigest()
            request.headers["X-Signature-256"] = f"sha256={digest}"
        return request


class _ChatWebhook(_ChannelConfig):
    """A chat's incoming webhook (Slack, Discord): the URL itself is the credential, so it is
    masked past the host in anything logged."""

    name: str
    ordered: bool = True  # read by people, in the order they arrive
    webhook_url: SecretStr

    def _post(self, payload: dict[str, Any], idempotency_key: str) -> OutboundRequest:
        url = self.webhook_url.get_secret_value()
        return _json_request(url, _mask_path(url), payload, idempotency_key)


class SlackChannel(_ChatWebhook):
    """Slack incoming webhook; the URL itself is the credential."""

    name: str = "slack"

    def build(self, envelope: EventEnvelope, idempotency_key: str) -> OutboundRequest:
        summary = summarize(envelope)
        text = _truncate(summary.as_text(), SLACK_TEXT_LIMIT)
        blocks: list[dict[str, Any]] = [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": _truncate(summary.title, 150)},
            }
        ]
        if summary.body:
            blocks.append(
                {
                    "type": "section",
                    "text": {"type": "plain_text", "text": _truncate(summary.body, 3000)},
                }
            )
        if summary.fields:
            blocks.append(
                {
                    "type": "section",
                    "fields": [
                        {"type": "mrkdwn", "text": f"*{key}*\n{value}"}
                        for key, value in summary.fields
                    ],
                }
            )
        return self._post({"text": text, "blocks": blocks}, idempotency_key)


class DiscordChannel(_ChatWebhook):
    """Discord webhook: `content` plus one embed; mentions disabled so event text cannot ping."""

    name: str = "discord"

    def build(self, envelope: EventEnvelope, idempotency_key: str) -> OutboundRequest:
        summary = summarize(envelope)
        embed: dict[str, Any] = {
            "title": _truncate(summary.title, 256),
            "timestamp": envelope.occurred_at.isoformat(),
            "fields": [
                {
                    "name": _truncate(key, 256),
                    "value": _truncate(value, DISCORD_FIELD_VALUE_LIMIT),
                    "inline": True,
                }
                for key, value in summary.fields
            ],
        }
        if summary.body:
            embed["description"] = _truncate(summary.body, DISCORD_DESCRIPTION_LIMIT)
        payload = {
            "content": _truncate(summary.title, DISCORD_CONTENT_LIMIT),
            "embeds": [embed],
            "allowed_mentions": {"parse": []},
        }
        return self._post(payload, idempotency_key)


class TelegramChannel(_ChannelConfig):
    """Telegram Bot API `sendMessage`; the bot token is part of the URL path."""

    name: str = "telegram"
    ordered: bool = True  # read by people, in the order they arrive
    bot_token: SecretStr
    chat_id: str
    api_base: str = "https://api.telegram.org"

    def build(self, envelope: EventEnvelope, idempotency_key: str) -> OutboundRequest:
        text = _truncate(summarize(envelope).as_text(), TELEGRAM_TEXT_LIMIT)
        base = self.api_base.rstrip("/")
        url = f"{base}/bot{self.bot_token.get_secret_value()}/sendMessage"
        # Plain text (no parse_mode): event text is user input and Markdown/HTML would need
        # escaping that, if wrong, turns into a permanent 400.
        payload = {"chat_id": self.chat_id, "text": text, "disable_web_page_preview": True}
        return _json_request(url, f"{base}/bot***/sendMessage", payload, idempotency_key)


class WhatsAppChannel(_ChannelConfig):
    """WhatsApp Cloud API `/{phone-number-id}/messages` text message."""

    name: str = "whatsapp"
    ordered: bool = True  # read by people, in the order they arrive
    access_token: SecretStr
    phone_number_id: str
    recipient: str
    api_base: str = "https://graph.facebook.com/v21.0"

    def build(self, envelope: EventEnvelope, idempotency_key: str) -> OutboundRequest:
        text = _truncate(summarize(envelope).as_text(), WHATSAPP_BODY_LIMIT)
        url = f"{self.api_base.rstrip('/')}/{self.phone_number_id}/messages"
        payload = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": self.recipient,
            "type": "text",
            "text": {"preview_url": False, "body": text},
        }
        return _json_request(
            url,
            url,
            payload,
            idempotency_key,
            Authorization=f"Bearer {self.access_token.get_secret_value()}",
        )
