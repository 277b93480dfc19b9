"""Publish a batch and learn, per record, whether the broker acknowledged it.

The outbox relay (events_api) and the reminders scheduler both publish rows they hold locked
and then mark exactly the acknowledged ones: send in order, stop at the first send that raises
(e.g. a metadata timeout while the broker is away), flush within a deadline, then read each
future. That step is written once here; what a record is made of, and what a failure means for
the producer, stay with each caller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from kafka import KafkaProducer

T = TypeVar("T")


@dataclass(frozen=True)
class Sent:
    """What a batch's publish came to."""

    acked: list[bool]
    """One per item, in order; False for an item never sent or not acknowledged."""
    error: str | None
    """Why a send or the flush raised, if one did."""
    futures: list[Any]
    """The futures of the items that were sent (the first len(futures) of them)."""

    def first_failure(self) -> BaseException | None:
        """The broker's or client's error for the first record that failed, if any did."""
        return next((f.exception for f in self.futures if f.is_done and f.failed()), None)


def send_and_flush(
    producer: KafkaProducer,
    items: Sequence[T],
    send: Callable[[T], Any],
    timeout_s: float,
) -> Sent:
    """`send(item)` (a `producer.send(...)` returning its future) for each item in order,
    stopping at the first that raises; flush for at most `timeout_s`; report each item's ack."""
    futures: list[Any] = []
    error: str | None = None
    for item in items:
        try:
            futures.append(send(item))
        except Exception as exc:  # e.g. a metadata timeout while the broker is away
            error = f"send: {type(exc).__name__}: {exc}"
            break
    try:
        producer.flush(timeout=timeout_s)
    except Exception as exc:
        error = error or f"flush: {type(exc).__name__}: {exc}"
    acked = [bool(f.is_done and f.succeeded()) for f in futures]
    acked += [False] * (len(items) - len(acked))
    return Sent(acked, error, futures)
