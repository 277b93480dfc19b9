"""Channel formatters: the exact request each provider expects, and nothing secret in the clear."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from apps.common.envelope import EventEnvelope, new_envelope
from apps.notifier.channels import (
    DISCORD_CONTENT_LIMIT,
    IDEMPOTENCY_HEADER,
    TELEGRAM_TEXT_LIMIT,
    DiscordChannel,
    SlackChannel,
    TelegramChannel,
    WebhookChannel,
    WhatsAppChannel,
)
from apps.notifier.summary import summarize

KEY = "idem-1"


def _event(message: str = "disk full on db-1", **data: object) -> EventEnvelope:
    return EventEnvelope(
        id=uuid.UUID("00000000-0000-4000-8000-000000000001"),
        type="event.received",
        version=1,
        source="events-api",
        occurred_at=datetime(2026, 11, 21, 12, 0, tzinfo=UTC),
        correlation_id="corr-1",
        subject="svc-billing",
        data={"category": "alert", "message": message, "fields": {"host": "db-1"}, **data},
    )


def _task() -> EventEnvelope:
    return new_envelope(
        "task.updated",
        source="events-api",
        subject="task-9",
        correlation_id="c",
        data={"title": "Rotate keys", "status": "done", "priority": "high"},
        occurred_at=datetime(2026, 11, 21, tzinfo=UTC),
    )


def test_generic_webhook_posts_the_envelope_signed() -> None:
    channel = WebhookChannel(
        url="https://hooks.example.com/in?token=abc", signing_secret=SecretStr("s3")
    )
    request = channel.build(_event(), KEY)
    assert request.json()["id"] == "00000000-0000-4000-8000-000000000001"
    assert request.json()["data"]["message"] == "disk full on db-1"
    assert request.headers[IDEMPOTENCY_HEADER] == KEY
    expected = hmac.new(b"s3", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Signature-256"] == f"sha256={expected}"
    assert request.safe_url == "https://hooks.example.com/in"  # query (may hold a token) dropped


def test_slack_incoming_webhook_payload() -> None:
    secret_url = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
    request = SlackChannel(webhook_url=SecretStr(secret_url)).build(_event(), KEY)
    body = request.json()
    assert body["text"].startswith("[alert] svc-billing\ndisk full on db-1")
    assert body["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "[alert] svc-billing"},
    }
    assert {"type": "mrkdwn", "text": "*host*\ndb-1"} in body["blocks"][2]["fields"]
    assert request.url == secret_url
    assert "XXXXSECRET" not in request.safe_url


def test_discord_webhook_payload_disables_mentions() -> None:
    request = DiscordChannel(webhook_url=SecretStr("https://discord.com/api/webhooks/1/tok")).build(
        _event("@everyone look"), KEY
    )
    body = request.json()
    assert body["content"] == "[alert] svc-billing"
    assert body["allowed_mentions"] == {"parse": []}
    embed = body["embeds"][0]
    assert embed["description"] == "@everyone look"
    assert embed["fields"] == [{"name": "host", "value": "db-1", "inline": True}]
    assert embed["timestamp"] == "2026-11-21T12:00:00+00:00"


def test_telegram_send_message_body_and_masked_token() -> None:
    channel = TelegramChannel(
        bot_token=SecretStr("123:ABC"), chat_id="-100200", api_base="https://tg.test"
    )
    request = channel.build(_task(), KEY)
    assert request.url == "https://tg.test/bot123:ABC/sendMessage"
    assert request.safe_url == "https://tg.test/bot***/sendMessage"
    assert request.json() == {
        "chat_id": "-100200",
        "text": "Task updated: Rotate keys\nstatus: done\npriority: high",
        "disable_web_page_preview": True,
    }


def test_whatsapp_cloud_api_messages_body() -> None:
    channel = WhatsAppChannel(
        access_token=SecretStr("EAAG-secret"),
        phone_number_id="1055",
        recipient="4915112345678",
        api_base="https://graph.test/v21.0",
    )
    request = channel.build(_event(), KEY)
    assert request.url == "https://graph.test/v21.0/1055/messages"
    assert request.headers["Authorization"] == "Bearer EAAG-secret"
    body = request.json()
    assert body["messaging_product"] == "whatsapp"
    assert body["to"] == "4915112345678"
    assert body["type"] == "text"
    assert body["text"]["body"].startswith("[alert] svc-billing")
    assert "EAAG-secret" not in repr(channel)


def test_summary_of_a_task_deletion_uses_the_subject_when_untitled() -> None:
    envelope = _task().model_copy(update={"type": "task.deleted", "data": {}})
    assert summarize(envelope).title == "Task deleted: task-9"


@given(st.text(min_size=0, max_size=12_000))
def test_long_event_text_is_truncated_to_provider_limits(message: str) -> None:
    event = _event(message)
    telegram = TelegramChannel(bot_token=SecretStr("t"), chat_id="1").build(event, KEY).json()
    discord = DiscordChannel(webhook_url=SecretStr("https://d/x")).build(event, KEY).json()
    assert len(telegram["text"]) <= TELEGRAM_TEXT_LIMIT
    assert len(discord["content"]) <= DISCORD_CONTENT_LIMIT
    assert len(discord["embeds"][0].get("description", "")) <= 4096


def _reminder(late_ms: int) -> EventEnvelope:
    return new_envelope(
        "task.reminder.due",
        source="reminders",
        subject="task-9",
        correlation_id="c",
        occurred_at=datetime(2026, 11, 21, 8, 50, tzinfo=UTC),
        data={
            "title": "Rotate keys",
            "due_at": "2026-11-21T09:00:00+00:00",
            "late": late_ms > 1000,
            "late_ms": late_ms,
        },
    )


def test_a_due_reminder_reads_as_one_and_says_how_late_it_is() -> None:
    on_time = summarize(_reminder(120))
    assert on_time.title == "Reminder: Rotate keys"
    assert on_time.fields == (("due_at", "2026-11-21T09:00:00+00:00"),)
    late = summarize(_reminder(6500))
    assert ("late_by", "6.5 s") in late.fields
    slack = SlackChannel(webhook_url=SecretStr("https://hooks.slack.com/services/T/B/x"))
    assert "Reminder: Rotate keys" in slack.build(_reminder(6500), KEY).json()["text"]


def test_the_prod_route_sends_reminders_to_slack_too() -> None:
    from apps.notifier.routing import channels_for, parse_routes
    from infra.gitops.catalog import APP_SPECS

    (notifier,) = [s for s in APP_SPECS if s.name == "notifier"]
    routes = parse_routes(json.dumps([r.to_setting() for r in notifier.routes["prod"]]))
    assert channels_for(_reminder(0), routes) == ["webhook", "slack"]
    assert channels_for(_task(), routes) == ["webhook"]
