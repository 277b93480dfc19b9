"""Routing configuration, retry classification and backoff, and the notifier's settings."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from apps.common.envelope import EventEnvelope
from apps.notifier.retry import BackoffPolicy, Verdict, classify_exception, classify_response
from apps.notifier.routing import Route, channels_for, parse_routes
from apps.notifier.settings import NotifierConfig, NotifierSettings
from tests.apps.app_env import assert_reads_every_fact


def _env(type_: str, **data: object) -> EventEnvelope:
    return EventEnvelope(
        id=uuid.uuid4(),
        type=type_,
        version=1,
        source="t",
        occurred_at=datetime.now(UTC),
        correlation_id="c",
        subject="s",
        data=dict(data),
    )


ROUTES = parse_routes(
    """[
      {"types": ["event.received"], "categories": ["alert"], "channels": ["slack", "telegram"]},
      {"types": ["task.*"], "channels": ["webhook"]},
      {"categories": ["alert", "billing"], "channels": ["webhook", "slack"]}
    ]"""
)


@pytest.mark.parametrize(
    ("envelope", "expected"),
    [
        (_env("event.received", category="alert"), ["slack", "telegram", "webhook"]),
        (_env("event.received", category="billing"), ["webhook", "slack"]),
        (_env("event.received", category="chatter"), []),
        (_env("task.created"), ["webhook"]),
        (_env("task.deleted", category="alert"), ["webhook", "slack"]),
    ],
)
def test_routes_select_channels_once_each_in_order(
    envelope: EventEnvelope, expected: list[str]
) -> None:
    assert channels_for(envelope, ROUTES) == expected


def test_a_route_without_channels_is_rejected() -> None:
    with pytest.raises(ValidationError):
        parse_routes('[{"types": ["task.*"], "channels": []}]')
    with pytest.raises(ValidationError):
        parse_routes('[{"type": "task.created", "channels": ["slack"]}]')  # typo'd key


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.DELIVERED),
        (204, Verdict.DELIVERED),
        (500, Verdict.TRANSIENT),
        (503, Verdict.TRANSIENT),
        (429, Verdict.TRANSIENT),
        (408, Verdict.TRANSIENT),
        (400, Verdict.PERMANENT),
        (401, Verdict.PERMANENT),
        (404, Verdict.PERMANENT),
        (301, Verdict.PERMANENT),
    ],
)
def test_http_status_classification(status: int, verdict: Verdict) -> None:
    assert classify_response(httpx.Response(status)).verdict is verdict


def test_retry_after_is_honoured_up_to_the_ceiling() -> None:
    policy = BackoffPolicy(max_attempts=5, base_s=0.5, max_s=10)
    outcome = classify_response(httpx.Response(429, headers={"Retry-After": "3"}))
    assert policy.wait_for(outcome, 1) == 3
    huge = classify_response(httpx.Response(503, headers={"Retry-After": "3600"}))
    assert policy.wait_for(huge, 1) == 10


def test_network_errors_are_transient() -> None:
    assert classify_exception(httpx.ReadTimeout("slow")).reason == "timeout"
    assert classify_exception(httpx.ConnectError("refused")).verdict is Verdict.TRANSIENT


@given(st.integers(min_value=1, max_value=40), st.integers(min_value=0, max_value=2**32))
def test_backoff_grows_exponentially_within_jitter_bounds(attempt: int, seed: int) -> None:
    policy = BackoffPolicy(max_attempts=50, base_s=0.5, max_s=30)
    ceiling = min(30, 0.5 * 2 ** (attempt - 1))
    delay = policy.delay(attempt, random.Random(seed))
    assert ceiling / 2 <= delay <= ceiling


def test_route_naming_an_unconfigured_channel_fails_at_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NOTIFIER_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    monkeypatch.setenv("NOTIFIER_ROUTES", '[{"channels": ["webhook", "slack"]}]')
    with pytest.raises(ValidationError, match=r"\['slack'\] that are not configured"):
        NotifierSettings()


def test_without_routes_every_configured_channel_gets_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NOTIFIER_ROUTES", raising=False)
    monkeypatch.setenv("NOTIFIER_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    monkeypatch.setenv("NOTIFIER_TELEGRAM_BOT_TOKEN", "1:x")
    monkeypatch.setenv("NOTIFIER_TELEGRAM_CHAT_ID", "7")
    settings = NotifierSettings()
    assert settings.routes() == (Route(channels=("webhook", "telegram")),)


def test_secrets_can_come_from_files(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    from pathlib import Path

    secrets = Path(str(tmp_path))
    (secrets / "NOTIFIER_SLACK_WEBHOOK_URL").write_text("https://hooks.slack.com/services/a/b/c")
    monkeypatch.setenv("NOTIFIER_SECRETS_DIR", str(secrets))
    monkeypatch.delenv("NOTIFIER_ROUTES", raising=False)
    config = NotifierConfig()
    assert "slack" in config.app.channels()
    assert "hooks.slack.com" not in repr(config.app)


def test_every_fact_of_the_contract_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each fact the platform provides the notifier lands in one of its settings."""
    assert_reads_every_fact(monkeypatch, "notifier", NotifierConfig, NotifierSettings)
