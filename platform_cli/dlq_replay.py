"""Replay dead letters: republish selected records to the topic they were dead-lettered from.

What a replay sends is what the dead-letter topic holds: the ORIGINAL key and value bytes (the
consumers dead-letter them untouched, `apps.common.kafka.dead_letter`) and the original headers
minus the stale `dlq.*` ones, plus `dlq.replayed.from` naming the dead letter. The topic comes
from `dlq.original.topic`; with the same key the default partitioner picks the same partition,
so per-key order holds among the replayed records.

Why a replay is safe to run twice: the consumers of the original topic dedupe by event id
(audit: `ON CONFLICT (event_id) DO NOTHING`; notifier: one `notifier_deliveries` row per event
and channel that is never sent twice once `sent`). The notifier's `dead` rows are re-armed
first (`apps.notifier.redrive`), otherwise its dedupe would skip the very records the replay is
for.

Reading stops at the end of the topic as it was when the run started: records dead-lettered
after that (for instance by a replay whose cause is not fixed yet) wait for the next run,
instead of feeding this one forever.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from apps.common.attributes import from_attributes
from apps.common.envelope import EnvelopeError, decode
from apps.common.kafka import (
    DLQ_CONSUMER_GROUP,
    DLQ_ORIGINAL_OFFSET,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_TOPIC,
    DLQ_REASON,
    EVENT_ID_HEADER,
    KafkaSettings,
    connection_config,
    consumed_headers,
    header_dict,
    make_producer,
)

REPLAYED_FROM_HEADER = "dlq.replayed.from"
"""`<dlq topic>/<partition>/<offset>` of the dead letter a record was replayed from. A `dlq.*`
name on purpose: if the replayed record is dead-lettered again, the new dead letter drops it
with the other stale dead-letter headers."""

METADATA_TIMEOUT_S = 15.0
IDLE_POLL_MS = 1000
IDLE_POLLS_AT_END = 2


class ReplayError(RuntimeError):
    """The replay cannot start or finish; the message names the cause."""


class Action(StrEnum):
    REPLAY = "replay"
    NOT_SELECTED = "not selected"
    DUPLICATE = "duplicate"
    NO_ORIGIN = "no original topic"
    ORIGIN_MISSING = "original topic missing"


@dataclass(frozen=True)
class DeadLetter:
    """One record of a dead-letter topic, with its dead-letter headers decoded."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    reason: str
    original_topic: str | None
    original_partition: int | None
    original_offset: int | None
    consumer_group: str
    event_id: str | None

    @classmethod
    def of(cls, record: Any) -> DeadLetter:
        raw_headers = consumed_headers(record)
        h = header_dict(raw_headers)
        return from_attributes(
            cls,
            record,
            timestamp_ms=record.timestamp,
            headers=raw_headers,
            reason=h.get(DLQ_REASON, ""),
            original_topic=h.get(DLQ_ORIGINAL_TOPIC) or None,
            original_partition=_int_or_none(h.get(DLQ_ORIGINAL_PARTITION)),
            original_offset=_int_or_none(h.get(DLQ_ORIGINAL_OFFSET)),
            consumer_group=h.get(DLQ_CONSUMER_GROUP, ""),
            event_id=_event_id(h.get(EVENT_ID_HEADER), record.value),
        )

    @property
    def dead_lettered_at(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    @property
    def origin(self) -> str:
        if self.original_topic is None:
            return "?"
        return f"{self.original_topic}/{self.original_partition}/{self.original_offset}"

    def replay_headers(self, dlq_topic: str) -> list[tuple[str, bytes]]:
        kept = [(k, v) for k, v in self.headers if not k.startswith("dlq.")]
        source = f"{dlq_topic}/{self.partition}/{self.offset}".encode()
        return [*kept, (REPLAYED_FROM_HEADER, source)]


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


def _event_id(header: str | None, value: bytes | None) -> str | None:
    """The envelope id: from the `event_id` header, else from the value when it decodes."""
    if header:
        try:
            return str(uuid.UUID(header))
        except ValueError:
            pass
    try:
        return str(decode(value).id)
    except EnvelopeError:
        return None  # a poison record: it has no id to select or dedupe by


@dataclass(frozen=True)
class Selection:
    """Which dead letters to replay; every given filter must match."""

    since: datetime | None = None
    """Dead-lettered at or after (the dead letter's record timestamp)."""
    event_ids: frozenset[str] | None = None
    reasons: frozenset[str] | None = None

    def matches(self, letter: DeadLetter) -> bool:
        if self.since is not None and letter.dead_lettered_at < self.since:
            return False
        if self.event_ids is not None and letter.event_id not in self.event_ids:
            return False
        return self.reasons is None or letter.reason in self.reasons


@dataclass(frozen=True)
class Planned:
    letter: DeadLetter
    action: Action


@dataclass
class ReplayPlan:
    topic: str
    items: list[Planned]
    ended_at_ms: int
    """Dead letters stamped after this (the run's start) were left for the next run."""
    newer_skipped: int = 0

    def of(self, action: Action) -> list[Planned]:
        return [p for p in self.items if p.action is action]

    @property
    def to_replay(self) -> list[DeadLetter]:
        return [p.letter for p in self.of(Action.REPLAY)]

    def counts(self) -> dict[str, int]:
        counted = Counter(p.action.value for p in self.items)
        return {action.value: counted.get(action.value, 0) for action in Action}

    def rearm_ids(self, delivery_reasons: Iterable[str]) -> list[uuid.UUID]:
        """Event ids of the replayed delivery failures (the notifier rows to re-arm)."""
        reasons = set(delivery_reasons)
        return sorted(
            {
                uuid.UUID(letter.event_id)
                for letter in self.to_replay
                if letter.reason in reasons and letter.event_id is not None
            }
        )


def _partitions(consumer: KafkaConsumer, topic: str) -> set[int] | None:
    """The topic's partitions, or None when the broker does not have the topic."""
    deadline = time.monotonic() + METADATA_TIMEOUT_S
    while True:
        if topic not in consumer.topics():  # a fresh metadata request for every topic
            return None
        found = consumer.partitions_for_topic(topic)
        if found:
            return set(found)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)  # listed, but its partitions' metadata is not there yet


def read_dead_letters(
    consumer: KafkaConsumer, topic: str, *, started_ms: int, timeout_s: float = 120.0
) -> tuple[list[DeadLetter], int]:
    """Every dead letter of `topic` stamped up to `started_ms`, and how many later ones were seen.

    A partition is finished at its first record stamped after the start (and paused), or once
    it reached the end offset seen at the start and polls bring nothing more. Tansu, the test
    broker, reports the end as the last batch's BASE offset: a position at that offset may
    still have the last batch ahead, so the end counts as read only after
    `IDLE_POLLS_AT_END` polls in a row bring nothing (on Apache Kafka the offset alone would do).
    """
    partitions = _partitions(consumer, topic)
    if partitions is None:
        raise ReplayError(f"--topic: {topic!r} does not exist on the broker")
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    ends = consumer.end_offsets(tps)
    letters: list[DeadLetter] = []
    newer = 0
    finished: set[TopicPartition] = set()
    idle = 0
    deadline = time.monotonic() + timeout_s
    while True:
        if time.monotonic() > deadline:
            raise ReplayError(f"reading {topic!r} did not reach its end within {timeout_s:.0f} s")
        batch = consumer.poll(timeout_ms=IDLE_POLL_MS)
        for tp, records in batch.items():
            for record in records:
                if tp in finished or record.timestamp > started_ms:
                    newer += 1
                    finished.add(tp)
                    continue
                letters.append(DeadLetter.of(record))
        if finished:
            consumer.pause(*finished)
        open_tps = [tp for tp in tps if tp not in finished]
        idle = 0 if any(tp in batch for tp in open_tps) else idle + 1
        if not open_tps or (
            idle >= IDLE_POLLS_AT_END
            and all(consumer.position(tp) >= (ends.get(tp) or 0) for tp in open_tps)
        ):
            break
    letters.sort(key=lambda d: (d.timestamp_ms, d.partition, d.offset))
    return letters, newer


def plan_replay(
    letters: Sequence[DeadLetter],
    selection: Selection,
    topic_exists: Callable[[str], bool],
) -> list[Planned]:
    """Decide, per dead letter, whether it is replayed and why not."""
    planned: list[Planned] = []
    seen: set[tuple[Any, ...]] = set()
    exists: dict[str, bool] = {}
    for letter in letters:
        if not selection.matches(letter):
            planned.append(Planned(letter, Action.NOT_SELECTED))
            continue
        if letter.original_topic is None:
            planned.append(Planned(letter, Action.NO_ORIGIN))
            continue
        if letter.original_topic not in exists:
            exists[letter.original_topic] = topic_exists(letter.original_topic)
        if not exists[letter.original_topic]:
            planned.append(Planned(letter, Action.ORIGIN_MISSING))
            continue
        # One original record dead-lettered twice (two failed channels) is replayed once:
        # the consumers handle every channel of an event from one record.
        identity = (
            (letter.original_topic, letter.original_partition, letter.original_offset)
            if letter.original_offset is not None
            else ("dlq", letter.partition, letter.offset)
        )
        if identity in seen:
            planned.append(Planned(letter, Action.DUPLICATE))
            continue
        seen.add(identity)
        planned.append(Planned(letter, Action.REPLAY))
    return planned


def open_consumer(settings: KafkaSettings) -> KafkaConsumer:
    """A group-less reader: a replay commits no offsets, it is safe by the consumers' dedupe."""
    return KafkaConsumer(
        **connection_config(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        reconnect_backoff_max_ms=2_000,
        # An operator waiting at a prompt: say "unreachable" after 10 s (the producers' bound,
        # apps.common.kafka.make_producer), not kafka-python's 30 s.
        bootstrap_timeout_ms=10_000,
    )


def build_plan(
    settings: KafkaSettings,
    topic: str,
    selection: Selection,
    *,
    started_ms: int | None = None,
    timeout_s: float = 120.0,
) -> ReplayPlan:
    started = started_ms if started_ms is not None else int(time.time() * 1000)
    consumer = open_consumer(settings)
    try:
        letters, newer = read_dead_letters(consumer, topic, started_ms=started, timeout_s=timeout_s)
        items = plan_replay(
            letters, selection, lambda name: _partitions(consumer, name) is not None
        )
    finally:
        consumer.close()
    return ReplayPlan(topic, items, started, newer)


@dataclass
class ReplayResult:
    published: int = 0
    failed: list[tuple[DeadLetter, str]] = field(default_factory=list)


def publish(
    producer: KafkaProducer,
    plan: ReplayPlan,
    on_published: Callable[[DeadLetter], None] | None = None,
    timeout_s: float = 30.0,
) -> ReplayResult:
    """Republish every planned replay; waits for each broker ack (acks=all)."""
    result = ReplayResult()
    pending = []
    for letter in plan.to_replay:
        assert letter.original_topic is not None
        future = producer.send(
            letter.original_topic,
            key=letter.key,
            value=letter.value,
            headers=letter.replay_headers(plan.topic),
        )
        pending.append((letter, future))
    producer.flush(timeout=timeout_s)
    for letter, future in pending:
        try:
            future.get(timeout=timeout_s)
        except Exception as exc:  # the broker's or the client's error, reported per record
            result.failed.append((letter, repr(exc)))
            continue
        result.published += 1
        if on_published is not None:
            on_published(letter)
    return result


def replay_producer(settings: KafkaSettings) -> KafkaProducer:
    return make_producer(settings, client_id=f"{settings.client_id}-dlq-replay")
