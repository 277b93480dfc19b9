"""The ceilings the apps are measured against, taken in the same run on the same data.

- raw kafka-python produce and consume of the envelopes audit will read (references);
- the database ceiling of the audit sink: the fastest idempotent bulk load of the same rows
  into `audit_log`, with audit's batch size and writer count and no Kafka. Two loads are
  measured, interleaved, median of `runs` each: the jsonb-array INSERT .. SELECT
  (`store.insert_batch_json`) and COPY into a staging table + INSERT .. ON CONFLICT DO NOTHING
  (`store.copy_batch`); the ceiling is the faster.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import psycopg

from apps.audit import store
from apps.common.envelope import EventEnvelope, encode, new_envelope

PARTITIONS = 3

BULK_LOADS: dict[str, Callable[[psycopg.Connection[Any], Sequence[store.AuditRecord]], int]] = {
    "INSERT .. SELECT from one jsonb array": store.insert_batch_json,
    "COPY to a staging table + INSERT .. ON CONFLICT DO NOTHING": store.copy_batch,
}


def sample_envelopes(n: int) -> list[EventEnvelope]:
    """`n` events as events-api publishes them, each with its own subject."""
    return [
        new_envelope(
            "event.received",
            source="bench",
            subject=str(uuid.uuid4()),
            correlation_id=uuid.uuid4().hex,
            data={"category": "deploy", "message": f"release {i} rolled out", "fields": {"v": "1"}},
        )
        for i in range(n)
    ]


def sample_payloads(n: int) -> list[tuple[bytes, bytes]]:
    """`sample_envelopes` as (key, value) records, keyed by subject as events-api keys them."""
    return [(envelope.subject.encode(), encode(envelope)) for envelope in sample_envelopes(n)]


def raw_produce(bootstrap: str, topic: str, payloads: list[tuple[bytes, bytes]]) -> float:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    producer.send(topic, key=b"warm-up", value=payloads[0][1]).get(30)  # connect first
    started = time.perf_counter()
    for key, value in payloads:
        producer.send(topic, key=key, value=value)
    producer.flush(120)
    took = time.perf_counter() - started
    producer.close(5)
    return len(payloads) / took


def raw_consume(bootstrap: str, topic: str, expected: int) -> float:
    """Drain the topic from the beginning (no group); rate from the first record to the last.
    Back-to-back drains differ by up to 2x here: callers take the median of several."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    got, first_at, first_batch = 0, 0.0, 0
    deadline = time.monotonic() + 300
    while got < expected and time.monotonic() < deadline:
        batch = consumer.poll(timeout_ms=500, max_records=500)
        n = sum(len(records) for records in batch.values())
        if n and not first_at:
            first_at, first_batch = time.perf_counter(), n
        got += n
    took = time.perf_counter() - first_at
    consumer.close()
    return (got - first_batch) / took


def median_of(runs: int, measure: Callable[[], float]) -> tuple[float, list[float]]:
    values = [measure() for _ in range(runs)]
    return statistics.median(values), values


def bulk_load_rate(
    dsn: str,
    load: Callable[[psycopg.Connection[Any], Sequence[store.AuditRecord]], int],
    payloads: list[tuple[bytes, bytes]],
    batch: int,
    writers: int,
) -> float:
    """Rows/s of one bulk load of the envelopes into the empty audit_log, `writers`
    connections of `batch` rows; the table is emptied again afterwards."""
    records = [
        store.AuditRecord(v, "bench", i % PARTITIONS, i) for i, (_, v) in enumerate(payloads)
    ]
    chunks = [records[i : i + batch] for i in range(0, len(records), batch)]

    def write(part: list[list[store.AuditRecord]]) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for chunk in part:
                with conn.transaction():
                    load(conn, chunk)

    threads = [threading.Thread(target=write, args=(chunks[k::writers],)) for k in range(writers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - started
    with psycopg.connect(dsn, autocommit=True) as conn:
        loaded = conn.execute("SELECT count(*) FROM audit_log").fetchone()
        conn.execute("TRUNCATE audit_log")
    assert loaded == (len(records),), f"bulk load stored {loaded}, not {len(records)}"
    return len(records) / took


def database_ceilings(
    dsn: str, payloads: list[tuple[bytes, bytes]], batch: int, writers: int, runs: int
) -> dict[str, dict[str, Any]]:
    """Each bulk load, `runs` times, interleaved (so machine noise hits both alike)."""
    rates: dict[str, list[float]] = {name: [] for name in BULK_LOADS}
    for _ in range(runs):
        for name, load in BULK_LOADS.items():
            rates[name].append(bulk_load_rate(dsn, load, payloads, batch, writers))
    return {
        name: {"median": statistics.median(values), "runs": values}
        for name, values in rates.items()
    }
