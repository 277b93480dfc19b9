"""Deliverer against a real HTTP server and a real PostgreSQL: retries, idempotency, dead letters.

No broker here: the Kafka loop only hands envelopes in and commits afterwards, so the delivery
rules are proven on their own (the consumer tests cover the loop).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from pydantic import SecretStr

from apps.common.db import make_pool, migrate
from apps.common.envelope import EventEnvelope, new_envelope
from apps.notifier.channels import IDEMPOTENCY_HEADER, Channel, TelegramChannel, WebhookChannel
from apps.notifier.cli import MIGRATIONS, quiet_http_client_logs
from apps.notifier.delivery import Deliverer, HandBack
from apps.notifier.retry import BackoffPolicy, Outcome, Verdict
from apps.notifier.store import ClaimState, DeliveryStore
from tests.apps.webhook_sink import WebhookSink, webhook_sink

FAST = BackoffPolicy(max_attempts=3, base_s=0.01, max_s=0.05)


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with webhook_sink() as s:
        yield s


@pytest.fixture
def pool(database_url: str) -> Iterator[object]:
    migrate(database_url, "notifier", MIGRATIONS)
    p = make_pool(database_url, max_size=2, name="test-notifier")
    yield p
    p.close()


@dataclass
class DeadLetters:
    calls: list[tuple[str, Outcome, int]] = field(default_factory=list)

    def __call__(self, channel: str, outcome: Outcome, attempts: int) -> None:
        self.calls.append((channel, outcome, attempts))


def _event() -> EventEnvelope:
    return new_envelope(
        "event.received",
        source="test",
        subject="svc-1",
        correlation_id=f"corr-{uuid.uuid4().hex[:6]}",
        data={"category": "alert", "message": "disk full", "fields": {"host": "db-1"}},
    )


def _deliverer(
    pool: object,
    channels: dict[str, Channel],
    policy: BackoffPolicy = FAST,
    stop: threading.Event | None = None,
    owner: str = "test-owner",
    timeout_s: float = 2.0,
) -> tuple[Deliverer, DeliveryStore, httpx.Client]:
    store = DeliveryStore(pool, owner=owner, lease_s=30)  # type: ignore[arg-type]
    client = httpx.Client(timeout=timeout_s)
    return Deliverer(channels, store, client, policy, stop or threading.Event()), store, client


def test_success_is_recorded_and_a_redelivery_sends_nothing(
    sink: WebhookSink, pool: object
) -> None:
    deliverer, store, client = _deliverer(pool, {"webhook": WebhookChannel(url=f"{sink.url}/hook")})
    event, dlq = _event(), DeadLetters()
    first = deliverer.deliver(event, ["webhook"], dlq)
    again = deliverer.deliver(event, ["webhook"], dlq)  # Kafka redelivered the same record
    client.close()
    assert [r.status for r in first] == ["sent"]
    assert [r.status for r in again] == ["skipped"]
    assert len(sink.received("/hook")) == 1
    assert store.status(event.id, "webhook") == ("sent", 1)
    assert dlq.calls == []
    request = sink.received("/hook")[0]
    assert request.headers[IDEMPOTENCY_HEADER] == f"{event.id}:webhook"
    assert request.json()["id"] == str(event.id)


def test_transient_failures_are_retried_until_delivered_once(
    sink: WebhookSink, pool: object
) -> None:
    sink.plan("/hook", fail_first=2, fail_status=503)
    deliverer, store, client = _deliverer(pool, {"webhook": WebhookChannel(url=f"{sink.url}/hook")})
    event = _event()
    results = deliverer.deliver(event, ["webhook"], DeadLetters())
    client.close()
    assert results[0].status == "sent"
    assert results[0].attempts == 3
    assert [r.status for r in sink.received("/hook")] == [503, 503, 200]
    # Every attempt carried the same idempotency key, so a receiver can drop a duplicate.
    assert {r.headers[IDEMPOTENCY_HEADER] for r in sink.received("/hook")} == {
        f"{event.id}:webhook"
    }
    assert store.status(event.id, "webhook") == ("sent", 3)


def test_always_failing_target_is_dead_lettered_after_max_attempts(
    sink: WebhookSink, pool: object
) -> None:
    sink.plan("/hook", always=500)
    deliverer, store, client = _deliverer(pool, {"webhook": WebhookChannel(url=f"{sink.url}/hook")})
    event, dlq = _event(), DeadLetters()
    results = deliverer.deliver(event, ["webhook"], dlq)
    again = deliverer.deliver(event, ["webhook"], dlq)
    client.close()
    assert results[0].status == "dead"
    assert len(sink.received("/hook")) == FAST.max_attempts
    assert [(c, o.reason, n) for c, o, n in dlq.calls] == [("webhook", "http_500", 3)]
    assert again[0].status == "skipped"  # a dead delivery is not retried by a redelivery
    assert store.status(event.id, "webhook") == ("dead", 3)


def test_client_error_is_permanent_and_dead_lettered_at_once(
    sink: WebhookSink, pool: object
) -> None:
    sink.plan("/hook", always=400)
    deliverer, _, client = _deliverer(pool, {"webhook": WebhookChannel(url=f"{sink.url}/hook")})
    dlq = DeadLetters()
    results = deliverer.deliver(_event(), ["webhook"], dlq)
    client.close()
    assert (results[0].status, results[0].attempts) == ("dead", 1)
    assert len(sink.received("/hook")) == 1
    assert dlq.calls[0][1].verdict is Verdict.PERMANENT


def test_timeouts_and_refused_connections_are_retried(sink: WebhookSink, pool: object) -> None:
    sink.plan("/slow", delay_s=0.5)
    refused = f"http://127.0.0.1:{_closed_port()}/nobody"
    deliverer, _, client = _deliverer(
        pool,
        {"slow": WebhookChannel(url=f"{sink.url}/slow"), "down": WebhookChannel(url=refused)},
        timeout_s=0.1,
    )
    dlq = DeadLetters()
    results = deliverer.deliver(_event(), ["slow", "down"], dlq)
    client.close()
    assert [r.status for r in results] == ["dead", "dead"]
    assert [(c, o.reason, n) for c, o, n in dlq.calls] == [
        ("slow", "timeout", 3),
        ("down", "ConnectError", 3),
    ]


def test_channels_are_independent(sink: WebhookSink, pool: object) -> None:
    sink.plan("/bad", always=404)
    deliverer, _, client = _deliverer(
        pool,
        {
            "good": WebhookChannel(url=f"{sink.url}/good"),
            "bad": WebhookChannel(url=f"{sink.url}/bad"),
        },
    )
    results = deliverer.deliver(_event(), ["bad", "good"], DeadLetters())
    client.close()
    assert {r.channel: r.status for r in results} == {"bad": "dead", "good": "sent"}


def test_stop_during_backoff_hands_the_record_back_and_releases_the_lease(
    sink: WebhookSink, pool: object
) -> None:
    sink.plan("/hook", always=503)
    stop = threading.Event()
    slow = BackoffPolicy(max_attempts=5, base_s=5, max_s=5)
    deliverer, _, client = _deliverer(
        pool, {"webhook": WebhookChannel(url=f"{sink.url}/hook")}, policy=slow, stop=stop
    )
    event = _event()
    threading.Timer(0.3, stop.set).start()
    with pytest.raises(HandBack):
        deliverer.deliver(event, ["webhook"], DeadLetters())
    client.close()
    assert len(sink.received("/hook")) == 1
    # Another replica can take over at once instead of waiting for the lease to expire.
    other = DeliveryStore(pool, owner="other", lease_s=30)  # type: ignore[arg-type]
    claim = other.claim(event.id, "webhook", event.type, event.correlation_id)
    assert (claim.state, claim.attempt) == (ClaimState.CLAIMED, 2)


def test_a_live_lease_keeps_a_second_replica_from_sending(pool: object) -> None:
    event = _event()
    first = DeliveryStore(pool, owner="a", lease_s=30)  # type: ignore[arg-type]
    second = DeliveryStore(pool, owner="b", lease_s=30)  # type: ignore[arg-type]
    assert first.claim(event.id, "slack", event.type, "c").state is ClaimState.CLAIMED
    busy = second.claim(event.id, "slack", event.type, "c")
    assert busy.state is ClaimState.BUSY
    assert 25 < busy.retry_in_s <= 30
    first.mark_sent(event.id, "slack", 200)
    assert second.claim(event.id, "slack", event.type, "c").state is ClaimState.DONE


def test_tokens_never_reach_the_logs(
    sink: WebhookSink, pool: object, caplog: pytest.LogCaptureFixture
) -> None:
    token = "123456:SUPER-SECRET-BOT-TOKEN"
    sink.plan(f"/bot{token}/sendMessage", fail_first=1, fail_status=502)
    channel = TelegramChannel(bot_token=SecretStr(token), chat_id="42", api_base=sink.url)
    quiet_http_client_logs()
    deliverer, _, client = _deliverer(pool, {"telegram": channel})
    with caplog.at_level(logging.DEBUG):
        results = deliverer.deliver(_event(), ["telegram"], DeadLetters())
    client.close()
    assert results[0].status == "sent"
    assert sink.received(f"/bot{token}/sendMessage", status=200)  # the token was used...
    assert caplog.records  # ...the retry was logged...
    for record in caplog.records:  # ...and no log line, message or field, carries it.
        assert token not in record.getMessage()
        assert token not in repr(vars(record))
    assert token not in repr(channel)


def _closed_port() -> int:
    from platform_cli.embedded import free_port

    return free_port()


def test_text_postgresql_cannot_store_does_not_block_a_delivery(
    sink: WebhookSink, pool: object
) -> None:
    deliverer, store, client = _deliverer(pool, {"webhook": WebhookChannel(url=f"{sink.url}/hook")})
    event = _event().model_copy(update={"correlation_id": "corr\x00nul"})
    results = deliverer.deliver(event, ["webhook"], DeadLetters())
    client.close()
    assert results[0].status == "sent"
    assert store.status(event.id, "webhook") == ("sent", 1)
