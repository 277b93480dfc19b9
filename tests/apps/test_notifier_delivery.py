"""Deliverer and retry scheduler against a real HTTP server and a real PostgreSQL: retries off the
loop, idempotency, dead letters, leases.

No broker here: the Kafka loop only hands deliveries in and commits afterwards, so the delivery
rules are proven on their own (the consumer tests cover the loop). Dead letters go to a recorder
with the sink's call signature; the Kafka side of dead-lettering is tested in
test_common_kafka.py and the consumer tests.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from psycopg_pool import ConnectionPool
from pydantic import SecretStr

from apps.common.envelope import EventEnvelope, encode, new_envelope
from apps.notifier.channels import IDEMPOTENCY_HEADER, Channel, TelegramChannel, WebhookChannel
from apps.notifier.cli import MIGRATIONS, quiet_http_client_logs
from apps.notifier.delivery import Deliverer
from apps.notifier.model import Delivery, SourceRecord
from apps.notifier.retry import BackoffPolicy
from apps.notifier.scheduler import RetryScheduler
from apps.notifier.store import ClaimState, DeliveryStore, Finished
from tests.apps.consumer_harness import wait_until
from tests.apps.webhook_sink import WebhookSink, webhook_sink

FAST = BackoffPolicy(max_attempts=3, base_s=0.01, max_s=0.05)


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with webhook_sink() as s:
        yield s


@pytest.fixture
def pool(database_url: str) -> Iterator[ConnectionPool]:
    from apps.common.db import make_pool, migrate

    migrate(database_url, "notifier", MIGRATIONS)
    p = make_pool(database_url, max_size=3, name="test-notifier")
    yield p
    p.close()


@dataclass
class DeadLetters:
    """Records dead-letter calls; `fail_next` makes the next n calls raise (a refused publish)."""

    calls: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0

    def send(self, record: Any, *, reason: str, detail: str, attempts: int = 1, **_: Any) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("broker refused the dead letter")
        self.calls.append(
            {"offset": record.offset, "reason": reason, "detail": detail, "attempts": attempts}
        )


@dataclass
class Rig:
    store: DeliveryStore
    deliverer: Deliverer
    dead: DeadLetters
    stop: threading.Event
    scheduler: RetryScheduler | None = None

    def retries(self) -> RetryScheduler:
        """Start the retry scheduler (its own Deliverer, as in the app)."""
        self.scheduler = RetryScheduler(self.store, self.deliverer, self.stop, idle_s=0.05).start()
        return self.scheduler


@pytest.fixture
def rig_factory(pool: ConnectionPool) -> Iterator[Any]:
    made: list[tuple[Rig, httpx.Client]] = []

    def _make(
        channels: dict[str, Channel],
        policy: BackoffPolicy = FAST,
        owner: str = "test-owner",
        timeout_s: float = 2.0,
    ) -> Rig:
        store = DeliveryStore(pool, owner=owner, lease_s=30)
        client = httpx.Client(timeout=timeout_s)
        dead, stop = DeadLetters(), threading.Event()
        deliverer = Deliverer(channels, store, client, policy, dead, stop, concurrency=4)
        rig = Rig(store, deliverer, dead, stop)
        made.append((rig, client))
        return rig

    yield _make
    for rig, client in made:
        rig.stop.set()
        if rig.scheduler is not None:
            rig.scheduler.close()
        rig.deliverer.close()
        client.close()


def _event(**data: Any) -> EventEnvelope:
    return new_envelope(
        "event.received",
        source="test",
        subject=f"svc-{uuid.uuid4().hex[:6]}",
        correlation_id=f"corr-{uuid.uuid4().hex[:6]}",
        data={"category": "alert", "message": "disk full", "fields": {"host": "db-1"}, **data},
    )


def _delivery(
    event: EventEnvelope, channel: str, offset: int = 0, ordered: bool = True
) -> Delivery:
    source = SourceRecord("events", 0, offset, event.subject.encode(), encode(event))
    return Delivery(event, channel, source, event.subject if ordered else None)


def test_success_is_recorded_and_a_redelivery_sends_nothing(
    sink: WebhookSink, rig_factory: Any
) -> None:
    rig = rig_factory({"webhook": WebhookChannel(url=f"{sink.url}/hook")})
    event = _event()
    first = rig.deliverer.deliver([_delivery(event, "webhook")])
    again = rig.deliverer.deliver([_delivery(event, "webhook")])  # Kafka redelivered it
    assert [r.status for r in first] == ["sent"]
    assert [r.status for r in again] == ["skipped"]
    assert len(sink.received("/hook")) == 1
    assert rig.store.status(event.id, "webhook") == ("sent", 1)
    assert rig.dead.calls == []
    request = sink.received("/hook")[0]
    assert request.headers[IDEMPOTENCY_HEADER] == f"{event.id}:webhook"
    assert request.json()["id"] == str(event.id)


def test_a_transient_failure_is_scheduled_not_waited_for_and_the_scheduler_delivers_it(
    sink: WebhookSink, rig_factory: Any
) -> None:
    sink.plan("/hook", fail_first=2, fail_status=503)
    # A backoff of an hour: `deliver` must come back at once with the retry scheduled.
    slow = BackoffPolicy(max_attempts=3, base_s=3600, max_s=3600)
    rig = rig_factory({"webhook": WebhookChannel(url=f"{sink.url}/hook")}, policy=slow)
    event = _event()
    (result,) = rig.deliverer.deliver([_delivery(event, "webhook")])
    assert (result.status, result.attempts, result.reason) == ("scheduled", 1, "http_503")
    assert rig.store.status(event.id, "webhook") == ("scheduled", 1)
    assert 1800 <= (rig.store.next_due_in() or 0) <= 3600
    assert len(sink.received("/hook")) == 1

    fast = rig_factory({"webhook": WebhookChannel(url=f"{sink.url}/hook")})
    with fast.store._pool.connection() as conn:  # bring the retry forward instead of waiting
        conn.execute("UPDATE notifier_retry_schedule SET next_attempt_at = now()")
    fast.retries()
    assert wait_until(lambda: fast.store.status(event.id, "webhook") == ("sent", 3), timeout=20)
    assert [r.status for r in sink.received("/hook")] == [503, 503, 200]
    # Every attempt carried the same idempotency key, so a receiver can drop a duplicate.
    assert {r.headers[IDEMPOTENCY_HEADER] for r in sink.received("/hook")} == {
        f"{event.id}:webhook"
    }
    assert fast.store.next_due_in() is None  # the schedule is empty again


def test_always_failing_target_is_dead_lettered_after_max_attempts(
    sink: WebhookSink, rig_factory: Any
) -> None:
    sink.plan("/hook", always=500)
    rig = rig_factory({"webhook": WebhookChannel(url=f"{sink.url}/hook")})
    event = _event()
    rig.deliverer.deliver([_delivery(event, "webhook", offset=7)])
    rig.retries()
    assert wait_until(lambda: rig.store.status(event.id, "webhook") == ("dead", 3), timeout=20)
    again = rig.deliverer.deliver([_delivery(event, "webhook", offset=7)])
    assert len(sink.received("/hook")) == FAST.max_attempts
    assert rig.dead.calls == [
        {
            "offset": 7,
            "reason": "delivery_attempts_exhausted",
            "detail": "channel=webhook last=http_500",
            "attempts": 3,
        }
    ]
    assert again[0].status == "skipped"  # a dead delivery is not retried by a redelivery


def test_client_error_is_permanent_and_dead_lettered_at_once(
    sink: WebhookSink, rig_factory: Any
) -> None:
    sink.plan("/hook", always=400)
    rig = rig_factory({"webhook": WebhookChannel(url=f"{sink.url}/hook")})
    (result,) = rig.deliverer.deliver([_delivery(_event(), "webhook")])
    assert (result.status, result.attempts) == ("dead", 1)
    assert len(sink.received("/hook")) == 1
    assert [c["reason"] for c in rig.dead.calls] == ["delivery_rejected"]


def test_timeouts_and_refused_connections_are_retried(sink: WebhookSink, rig_factory: Any) -> None:
    from platform_cli.embedded import free_port

    sink.plan("/slow", delay_s=0.5)
    refused = f"http://127.0.0.1:{free_port()}/nobody"
    rig = rig_factory(
        {"slow": WebhookChannel(url=f"{sink.url}/slow"), "down": WebhookChannel(url=refused)},
        timeout_s=0.1,
    )
    event = _event()
    results = rig.deliverer.deliver([_delivery(event, "slow"), _delivery(event, "down")])
    assert [r.status for r in results] == ["scheduled", "scheduled"]
    rig.retries()
    assert wait_until(lambda: len(rig.dead.calls) == 2, timeout=20)
    assert sorted(c["detail"] for c in rig.dead.calls) == [
        "channel=down last=ConnectError",
        "channel=slow last=timeout",
    ]
    assert {c["attempts"] for c in rig.dead.calls} == {3}


def test_channels_are_independent(sink: WebhookSink, rig_factory: Any) -> None:
    sink.plan("/bad", always=404)
    rig = rig_factory(
        {
            "good": WebhookChannel(url=f"{sink.url}/good"),
            "bad": WebhookChannel(url=f"{sink.url}/bad"),
        }
    )
    event = _event()
    results = rig.deliverer.deliver([_delivery(event, "bad"), _delivery(event, "good")])
    assert {r.channel: r.status for r in results} == {"bad": "dead", "good": "sent"}


def test_a_live_lease_parks_a_second_replicas_delivery_instead_of_sending_it(
    sink: WebhookSink, rig_factory: Any
) -> None:
    channels: dict[str, Channel] = {"webhook": WebhookChannel(url=f"{sink.url}/hook")}
    first, second = rig_factory(channels, owner="a"), rig_factory(channels, owner="b")
    event = _event()
    delivery = _delivery(event, "webhook")
    (claim,) = first.store.claim([delivery])  # replica a is about to send (a rebalance overlap)
    assert claim.state is ClaimState.CLAIMED
    (busy,) = second.store.claim([delivery])
    assert busy.state is ClaimState.BUSY
    assert 25 < busy.retry_in_s <= 30
    (parked,) = second.deliverer.deliver([delivery])  # b's copy of the record: not sent
    assert parked.status == "scheduled"
    assert sink.received("/hook") == []
    assert second.store.next_due_in() is not None  # waiting behind a's lease
    first.store.resolve([Finished(delivery, "sent", 200)])  # a's send went through
    assert first.store.next_due_in() is None  # so the parked copy is gone
    assert second.store.claim([delivery])[0].state is ClaimState.DONE


def test_a_refused_dead_letter_keeps_the_other_outcomes_and_is_retried_without_resending(
    sink: WebhookSink, rig_factory: Any
) -> None:
    sink.plan("/bad", always=400)
    rig = rig_factory(
        {"good": WebhookChannel(url=f"{sink.url}/ok"), "bad": WebhookChannel(url=f"{sink.url}/bad")}
    )
    event = _event()
    rig.dead.fail_next = 1
    with pytest.raises(RuntimeError):
        rig.deliverer.deliver([_delivery(event, "good"), _delivery(event, "bad")])
    assert rig.store.status(event.id, "good") == ("sent", 1)  # recorded despite the error
    assert rig.store.status(event.id, "bad") == ("sending", 1)
    # The record is redelivered: its attempts are used up, so it is dead-lettered unsent.
    policy = BackoffPolicy(max_attempts=1, base_s=0.01, max_s=0.05)
    retry = rig_factory(
        {
            "good": WebhookChannel(url=f"{sink.url}/ok"),
            "bad": WebhookChannel(url=f"{sink.url}/bad"),
        },
        policy=policy,
    )
    results = retry.deliverer.deliver([_delivery(event, "good"), _delivery(event, "bad")])
    assert [r.status for r in results] == ["skipped", "dead"]
    assert len(sink.received("/bad")) == 1
    assert retry.dead.calls[0]["reason"] == "delivery_attempts_exhausted"
    assert retry.dead.calls[0]["detail"] == "channel=bad last=http_400"


def test_tokens_never_reach_the_logs(
    sink: WebhookSink, rig_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    token = "123456:SUPER-SECRET-BOT-TOKEN"
    sink.plan(f"/bot{token}/sendMessage", fail_first=1, fail_status=502)
    channel = TelegramChannel(bot_token=SecretStr(token), chat_id="42", api_base=sink.url)
    quiet_http_client_logs()
    rig = rig_factory({"telegram": channel})
    event = _event()
    with caplog.at_level(logging.DEBUG):
        rig.deliverer.deliver([_delivery(event, "telegram")])
        rig.retries()
        assert wait_until(lambda: rig.store.status(event.id, "telegram") == ("sent", 2), 20)
    assert sink.received(f"/bot{token}/sendMessage", status=200)  # the token was used...
    assert any("retry scheduled" in r.getMessage() for r in caplog.records)  # ...logged...
    for record in caplog.records:  # ...and no log line, message or field, carries it.
        assert token not in record.getMessage()
        assert token not in repr(vars(record))
    assert token not in repr(channel)


def test_text_postgresql_cannot_store_does_not_block_a_delivery(
    sink: WebhookSink, rig_factory: Any
) -> None:
    rig = rig_factory({"webhook": WebhookChannel(url=f"{sink.url}/hook")})
    event = _event().model_copy(update={"correlation_id": "corr\x00nul", "subject": "k\x00ey"})
    results = rig.deliverer.deliver([_delivery(event, "webhook")])
    assert results[0].status == "sent"
    assert rig.store.status(event.id, "webhook") == ("sent", 1)
