"""Deliver a round of deliveries: claim, send (concurrently), record each outcome. Never wait.

A transient failure with attempts left is not retried here: it becomes a `Later` in the retry
schedule (PostgreSQL) and the scheduler (`apps.notifier.scheduler`) sends it when it is due, so
a failing target costs the consumer loop one HTTP round trip, not its backoff. A round holds at
most one delivery per (channel, key): the caller sends a key's deliveries in order, one round
after another, and the store keeps later ones behind an unresolved earlier one.

Kafka plays no part here beyond the dead-letter sink; the consumer handler hands in deliveries
and learns, per delivery, that its outcome is durable. That keeps the retry and idempotency
rules testable with a real HTTP server and a real database but no broker.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import httpx
import psycopg
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from apps.common.consumer_loop import HandBack
from apps.common.kafka import ConsumedRecord
from apps.common.tracing import extract_context
from apps.notifier.channels import Channel, OutboundRequest
from apps.notifier.metrics import NotifierMetrics
from apps.notifier.model import Delivery
from apps.notifier.retry import (
    BackoffPolicy,
    Outcome,
    Verdict,
    classify_exception,
    classify_response,
)
from apps.notifier.store import ClaimState, DeliveryStore, Finished, Later

log = logging.getLogger(__name__)
tracer = trace.get_tracer("apps.notifier")

T = TypeVar("T")

DB_RETRY_S = 0.5
DB_RETRY_MAX_S = 5.0

ATTEMPTS_EXHAUSTED = "delivery_attempts_exhausted"
REJECTED = "delivery_rejected"


class DeadLetters(Protocol):
    """`apps.common.consumer_loop.DeadLetterSink`'s call: durable (acked) on return."""

    def send(
        self,
        record: ConsumedRecord,
        *,
        reason: str,
        detail: str,
        attempts: int = 1,
        **context: Any,
    ) -> None: ...


@dataclass(frozen=True)
class ChannelResult:
    delivery: Delivery
    status: str  # "sent", "dead", "scheduled" (a retry to come), "skipped" (done earlier)
    attempts: int = 0
    reason: str = ""

    @property
    def channel(self) -> str:
        return self.delivery.channel


CHUNK_PER_THREAD = 16
"""Deliveries claimed at a time per sender thread: enough queued work that the senders never
wait for the next claim, few enough that a claim stays a short statement."""

Claimed = tuple[Delivery, int, "str | None"]
"""A delivery we hold the lease of, its attempt number, and the last attempt's error."""


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    sent: bool = True
    """False when the attempts were already used up and nothing was sent."""
    target: str = ""
    """The request's loggable URL (secrets masked); never the real one."""


@dataclass
class _Chunk:
    """Part of a round: claimed (and being sent), parked, or already done."""

    claimed: list[Claimed] = field(default_factory=list)
    parked: list[Later] = field(default_factory=list)
    results: list[ChannelResult] = field(default_factory=list)
    sends: list[Future[Attempt]] = field(default_factory=list)


class Deliverer:
    def __init__(
        self,
        channels: dict[str, Channel],
        store: DeliveryStore,
        http: httpx.Client,
        policy: BackoffPolicy,
        dead_letters: DeadLetters,
        stop: threading.Event,
        metrics: NotifierMetrics | None = None,
        concurrency: int = 8,
        name: str = "notifier-send",
        traced: bool = True,
    ) -> None:
        self._channels = channels
        self._store = store
        self._http = http
        self._policy = policy
        self._dead_letters = dead_letters
        self._stop = stop
        self._metrics = metrics
        self._concurrency = concurrency
        self._traced = traced
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=name)

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def deliver(self, deliveries: Sequence[Delivery]) -> list[ChannelResult]:
        """Claim and deliver one round (at most one delivery per (event, channel)).

        Pipelined in chunks: while one chunk's requests are out, the next chunk is claimed and
        the previous one's outcomes are recorded, so the database round trips overlap the HTTP
        ones instead of adding to them. Within a round every key is distinct, so the chunks
        need no order among themselves. A stop request ends the round after the chunks in
        flight: the deliveries not claimed get no result (their records are handed back)."""
        size = self._concurrency * CHUNK_PER_THREAD
        in_flight: deque[_Chunk] = deque()
        results: list[ChannelResult] = []
        errors: list[Exception] = []
        try:
            for start in range(0, len(deliveries), size):
                if self._stop.is_set():
                    break  # the rest is handed back: not claimed, so its records stay uncommitted
                in_flight.append(self._start(deliveries[start : start + size]))
                while len(in_flight) > 1:
                    results += self._finish(in_flight.popleft(), errors)
        finally:
            # Whatever happened, record the outcome of every request already sent.
            while in_flight:
                results += self._finish(in_flight.popleft(), errors)
        if errors:
            raise errors[0]
        return results

    def run(self, claimed: Sequence[Claimed], parked: Sequence[Later] = ()) -> list[ChannelResult]:
        """Send what we hold the lease of and record every outcome, `parked` included."""
        errors: list[Exception] = []
        results = self._record(claimed, self._send_all(claimed), parked, errors)
        if errors:
            raise errors[0]
        return results

    def _start(self, deliveries: Sequence[Delivery]) -> _Chunk:
        claims = self._durably(lambda: self._store.claim(deliveries))
        chunk = _Chunk()
        for delivery, claim in zip(deliveries, claims, strict=True):
            if claim.state is ClaimState.CLAIMED:
                chunk.claimed.append((delivery, claim.attempt, claim.last_error))
            elif claim.state is ClaimState.DONE:
                chunk.results.append(ChannelResult(delivery, "skipped", 0, claim.status))
            else:
                # BLOCKED: behind an earlier delivery of its key; BUSY: behind another
                # replica's lease. Either way the schedule takes it from here.
                chunk.parked.append(Later(delivery, delay_s=claim.retry_in_s))
                chunk.results.append(ChannelResult(delivery, "scheduled", 0, claim.state.value))
        chunk.sends = [self._executor.submit(self._attempt, item) for item in chunk.claimed]
        return chunk

    def _finish(self, chunk: _Chunk, errors: list[Exception]) -> list[ChannelResult]:
        attempts_made = [send.result() for send in chunk.sends]
        return chunk.results + self._record(chunk.claimed, attempts_made, chunk.parked, errors)

    def _record(
        self,
        claimed: Sequence[Claimed],
        attempts_made: Sequence[Attempt],
        parked: Sequence[Later],
        errors: list[Exception],
    ) -> list[ChannelResult]:
        """Record every outcome (and `parked`) in one transaction, dead letters first.

        If a dead-letter publish fails, every other outcome is still recorded and the error is
        added to `errors`: the failed delivery stays `sending` under our lease, and whoever takes
        it next (a Kafka redelivery, or the scheduler once the lease expires) dead-letters it
        again without sending, its attempts being used up."""
        finished: list[Finished] = []
        later: list[Later] = list(parked)
        failed: list[Finished] = []
        results: list[ChannelResult] = []
        for (delivery, attempt, _), made in zip(claimed, attempts_made, strict=True):
            outcome = made.outcome
            attempts = attempt if made.sent else attempt - 1
            if outcome.verdict is Verdict.DELIVERED:
                finished.append(Finished(delivery, "sent", outcome.status_code))
                results.append(ChannelResult(delivery, "sent", attempt))
                continue
            if self._metrics is not None and made.sent:
                self._metrics.failed_attempts.labels(delivery.channel, outcome.reason).inc()
            if (
                made.sent
                and outcome.verdict is Verdict.TRANSIENT
                and attempt < self._policy.max_attempts
            ):
                wait = self._policy.wait_for(outcome, attempt)
                later.append(Later(delivery, wait, outcome.reason, outcome.status_code))
                results.append(ChannelResult(delivery, "scheduled", attempt, outcome.reason))
                self._log_retry(delivery, attempt, made, wait)
                continue
            try:
                self._dead_letter(delivery, outcome, attempts)
            except Exception as exc:
                errors.append(exc)
                failed.append(Finished(delivery, "sending", outcome.status_code, outcome.reason))
                continue
            finished.append(Finished(delivery, "dead", outcome.status_code, outcome.reason))
            results.append(ChannelResult(delivery, "dead", attempts, outcome.reason))
        self._durably(lambda: self._store.resolve(finished, later, failed))
        self._count(results)
        return results

    # --- sending -------------------------------------------------------------------------------

    def _send_all(self, claimed: Sequence[Claimed]) -> list[Attempt]:
        if len(claimed) <= 1:
            return [self._attempt(item) for item in claimed]
        return list(self._executor.map(self._attempt, claimed))

    def _attempt(self, item: Claimed) -> Attempt:
        delivery, attempt, last_error = item
        if attempt > self._policy.max_attempts:
            # Attempts were used up before a crash or a failed dead-letter publish; finish the
            # dead-lettering without sending again.
            return Attempt(Outcome(Verdict.TRANSIENT, last_error or "not_attempted"), sent=False)
        envelope, source = delivery.envelope, delivery.source
        if not self._traced:
            request = self._channels[delivery.channel].build(envelope, delivery.idempotency_key)
            return Attempt(self._send(request), target=request.safe_url)
        attributes: dict[str, AttributeValue] = {
            "messaging.destination.name": source.topic,
            "messaging.kafka.offset": source.offset,
            "event.id": str(envelope.id),
            "notifier.channel": delivery.channel,
            "notifier.attempt": attempt,
        }
        # A child of the producer's span (its context came in the record's headers). Not made
        # current: nothing logs inside it, and attaching a context costs as much as the span.
        span = tracer.start_span(
            "notifier.process",
            context=extract_context(source.headers),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        )
        try:
            request = self._channels[delivery.channel].build(envelope, delivery.idempotency_key)
            outcome = self._send(request)
            span.set_attribute("notifier.outcome", outcome.reason)
        finally:
            span.end()
        return Attempt(outcome, target=request.safe_url)

    def _send(self, request: OutboundRequest) -> Outcome:
        try:
            response = self._http.post(request.url, content=request.body, headers=request.headers)
        except httpx.HTTPError as exc:
            return classify_exception(exc)
        return classify_response(response)

    # --- outcomes ------------------------------------------------------------------------------

    def _dead_letter(self, delivery: Delivery, outcome: Outcome, attempts: int) -> None:
        reason = ATTEMPTS_EXHAUSTED if outcome.verdict is Verdict.TRANSIENT else REJECTED
        self._dead_letters.send(
            delivery.source,
            reason=reason,
            detail=f"channel={delivery.channel} last={outcome.reason}",
            attempts=attempts,
            event_id=str(delivery.envelope.id),
            channel=delivery.channel,
            correlation_id=delivery.envelope.correlation_id,
        )

    def _log_retry(self, delivery: Delivery, attempt: int, made: Attempt, wait: float) -> None:
        log.warning(
            "delivery failed, retry scheduled",
            extra={
                "event_id": str(delivery.envelope.id),
                "channel": delivery.channel,
                "attempt": attempt,
                "reason": made.outcome.reason,
                "retry_in_s": round(wait, 3),
                "target": made.target,  # secrets masked; never request.url
                "correlation_id": delivery.envelope.correlation_id,
            },
        )

    def _count(self, results: Sequence[ChannelResult]) -> None:
        log_sent = log.isEnabledFor(logging.INFO)  # the line costs more than a cheap delivery
        for result in results:
            if result.status == "sent" and log_sent:
                log.info(
                    "delivered",
                    extra={
                        "event_id": str(result.delivery.envelope.id),
                        "channel": result.channel,
                        "attempt": result.attempts,
                        "correlation_id": result.delivery.envelope.correlation_id,
                    },
                )
            if self._metrics is None:
                continue
            if result.status == "scheduled":
                self._metrics.retries_scheduled.labels(result.channel).inc()
            else:
                self._metrics.delivery(result.channel, result.status).inc()

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
