"""What the notifier works on: one delivery = one envelope to one channel, and its Kafka record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from apps.common.attributes import from_attributes
from apps.common.envelope import EventEnvelope
from apps.common.kafka import consumed_headers


@dataclass(frozen=True)
class SourceRecord:
    """The Kafka record a delivery came from: what a dead letter republishes, byte for byte.

    Kept in the retry schedule too, so a retry made long after the offset was committed can
    still dead-letter the original (it satisfies `apps.common.kafka.ConsumedRecord`)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def of(cls, record: Any) -> SourceRecord:
        """From a kafka-python ConsumerRecord."""
        return from_attributes(cls, record, headers=consumed_headers(record))


@dataclass(frozen=True)
class Delivery:
    """One envelope to one channel. `order_key` is set when the channel needs per-key order:
    then no delivery of that key is sent while an earlier one is unresolved."""

    envelope: EventEnvelope
    channel: str
    source: SourceRecord
    order_key: str | None = None

    @property
    def id(self) -> tuple[UUID, str]:
        return (self.envelope.id, self.channel)

    @property
    def idempotency_key(self) -> str:
        """Sent on every attempt, so a receiver can drop a duplicate."""
        return f"{self.envelope.id}:{self.channel}"
