"""Deliver one envelope to its channels: claim, send, retry with backoff, record the outcome.

Kafka plays no part here; the consumer loop hands in an envelope and a `dead_letter` callback
and learns, per channel, whether the outcome is durable. That keeps the retry and idempotency
rules testable with a real HTTP server and a real database but no broker.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import httpx
import psycopg

from apps.common.envelope import EventEnvelope
from apps.notifier.channels import Channel, OutboundRequest
from apps.notifier.retry import (
    BackoffPolicy,
    Outcome,
    Verdict,
    classify_exception,
    classify_response,
)
from apps.notifier.store import ClaimState, DeliveryStore

log = logging.getLogger(__name__)

T = TypeVar("T")

DB_RETRY_S = 0.5
DB_RETRY_MAX_S = 5.0


class HandBack(Exception):
    """Stop was requested before this message's outcome was durable: do not commit its offset."""


@dataclass(frozen=True)
class ChannelResult:
    channel: str
    status: str  # "sent", "dead", "skipped" (already done earlier)
    attempts: int
    reason: str = ""


DeadLetter = Callable[[str, Outcome, int], None]
"""Called as dead_letter(channel, outcome, attempts); must be durable (flushed) on return."""


class Deliverer:
    def __init__(
        self,
        channels: dict[str, Channel],
        store: DeliveryStore,
        http: httpx.Client,
        policy: BackoffPolicy,
        stop: threading.Event,
        on_failed_attempt: Callable[[str, Outcome], None] | None = None,
    ) -> None:
        self._on_failed_attempt = on_failed_attempt
        self._channels = channels
        self._store = store
        self._http = http
        self._policy = policy
        self._stop = stop

    def deliver(
        self, envelope: EventEnvelope, channel_names: list[str], dead_letter: DeadLetter
    ) -> list[ChannelResult]:
        """Deliver to every channel; raises HandBack when stopping mid-way."""
        return [self._deliver_one(envelope, name, dead_letter) for name in channel_names]

    def _deliver_one(
        self, envelope: EventEnvelope, name: str, dead_letter: DeadLetter
    ) -> ChannelResult:
        channel = self._channels[name]
        key = f"{envelope.id}:{name}"
        last = Outcome(Verdict.TRANSIENT, "not_attempted")
        while True:
            if self._stop.is_set():
                self._durably(lambda: self._store.release(envelope.id, name))
                raise HandBack(key)
            claim = self._durably(
                lambda: self._store.claim(envelope.id, name, envelope.type, envelope.correlation_id)
            )
            if claim.state is ClaimState.DONE:
                return ChannelResult(name, "skipped", 0, claim.status)
            if claim.state is ClaimState.BUSY:
                self._stop.wait(claim.retry_in_s)
                continue
            if claim.attempt > self._policy.max_attempts:
                # Attempts were used up before a crash/restart; finish the dead-lettering.
                return self._dead(envelope, name, last, claim.attempt - 1, dead_letter)
            request = channel.build(envelope, key)
            last = self._send(request)
            if last.verdict is not Verdict.DELIVERED and self._on_failed_attempt is not None:
                self._on_failed_attempt(name, last)
            if last.verdict is Verdict.DELIVERED:
                self._durably(partial(self._store.mark_sent, envelope.id, name, last.status_code))
                log.info(
                    "delivered",
                    extra={"event_id": str(envelope.id), "channel": name, "attempt": claim.attempt},
                )
                return ChannelResult(name, "sent", claim.attempt)
            if last.verdict is Verdict.PERMANENT or claim.attempt >= self._policy.max_attempts:
                return self._dead(envelope, name, last, claim.attempt, dead_letter)
            self._durably(
                partial(
                    self._store.record_failure, envelope.id, name, last.reason, last.status_code
                )
            )
            wait = self._policy.wait_for(last, claim.attempt)
            log.warning(
                "delivery failed, will retry",
                extra={
                    "event_id": str(envelope.id),
                    "channel": name,
                    "attempt": claim.attempt,
                    "reason": last.reason,
                    "retry_in_s": round(wait, 3),
                    "target": request.safe_url,  # secrets masked; never request.url
                },
            )
            self._stop.wait(wait)

    def _dead(
        self,
        envelope: EventEnvelope,
        name: str,
        outcome: Outcome,
        attempts: int,
        dead_letter: DeadLetter,
    ) -> ChannelResult:
        # Dead-letter first, then record: a crash in between leaves the row `sending` with its
        # attempts used up, and the redelivery dead-letters again rather than never.
        dead_letter(name, outcome, attempts)
        self._durably(
            lambda: self._store.mark_dead(envelope.id, name, outcome.reason, outcome.status_code)
        )
        log.error(
            "delivery dead-lettered",
            extra={
                "event_id": str(envelope.id),
                "channel": name,
                "attempts": attempts,
                "reason": outcome.reason,
            },
        )
        return ChannelResult(name, "dead", attempts, outcome.reason)

    def _send(self, request: OutboundRequest) -> Outcome:
        try:
            response = self._http.post(request.url, content=request.body, headers=request.headers)
        except httpx.HTTPError as exc:
            return classify_exception(exc)
        return classify_response(response)

    def _durably(self, action: Callable[[], T]) -> T:
        """Run a database step, retrying through outages (e.g. a PostgreSQL restart).

        Giving up here would mean either re-sending an already-sent message or losing its
        record, so the step is retried until it succeeds or a stop is requested.
        """
        delay = DB_RETRY_S
        while True:
            try:
                return action()
            except psycopg.OperationalError as exc:
                if self._stop.is_set():
                    raise HandBack("database unavailable while stopping") from exc
                log.warning("database unavailable, retrying", extra={"error": type(exc).__name__})
                self._stop.wait(delay)
                delay = min(DB_RETRY_MAX_S, delay * 2)
