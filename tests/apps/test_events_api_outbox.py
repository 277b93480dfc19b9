"""Transactional outbox: nothing accepted is lost while Kafka is down, and relays on several
replicas publish each row once, in per-subject order."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import psycopg
import pytest
from fastapi.testclient import TestClient

from apps.common.envelope import decode, new_envelope
from apps.events_api.outbox import OutboxRelay, OutboxRow, acknowledged, publishable
from apps.events_api.storage import enqueue
from platform_cli.embedded import KafkaBroker, create_topics
from tests.apps.conftest import EventsApiEnv, read_topic, skip_if_external


def _row(row_id: int, subject: str) -> OutboxRow:
    return OutboxRow(row_id, "t", subject, b"", [])


def test_publishable_stops_a_subject_at_a_row_held_elsewhere() -> None:
    claimed = [_row(2, "a"), _row(3, "b"), _row(5, "a"), _row(6, "c")]
    pending = [(1, "b"), (2, "a"), (3, "b"), (4, "a"), (5, "a"), (6, "c")]
    # b: row 1 is not ours (another relay has it) -> hold 3; a: 4 is not ours -> 2 only.
    assert [r.id for r in publishable(claimed, pending)] == [2, 6]


def test_acknowledged_keeps_later_rows_of_a_failed_subject_pending() -> None:
    rows = [_row(1, "a"), _row(2, "b"), _row(3, "a"), _row(4, "b")]
    assert [r.id for r in acknowledged(rows, [False, True, True, True])] == [2, 4]


def _pending(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()
    return int(row[0]) if row else -1


@pytest.mark.slow
def test_api_keeps_accepting_while_kafka_is_down_and_delivers_everything_after(
    events_api_env: EventsApiEnv, kafka: KafkaBroker
) -> None:
    skip_if_external(kafka)
    headers = {"Authorization": f"Bearer {events_api_env.create_key()}"}
    sent = 200
    with TestClient(events_api_env.app()) as client:
        kafka.stop()
        down_since = time.monotonic()
        try:
            accepted = []
            for i in range(sent):
                response = client.post(
                    "/api/v1/events", json={"category": "c", "message": f"m{i}"}, headers=headers
                )
                assert response.status_code == 202, response.text
                accepted.append(response.json()["id"])
            # Accepting does not depend on Kafka, and the API stays ready (the outbox buffers).
            assert client.get("/readyz").status_code == 200
            # Keep the broker away ~10 s in all; the relay tries, fails and backs off meanwhile.
            time.sleep(max(0.0, 10 - (time.monotonic() - down_since)))
            assert _pending(events_api_env.database_url) == sent
            assert "events_api_outbox_pending 200.0" in client.get("/metrics").text
        finally:
            kafka.start()
        # Tansu keeps topics in memory only: recreate them, as the platform would on MSK.
        create_topics(kafka.bootstrap, events_api_env.topics.all())
        deadline = time.monotonic() + 60
        while _pending(events_api_env.database_url) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _pending(events_api_env.database_url) == 0
    records = read_topic(events_api_env.bootstrap, events_api_env.topics.events, sent)
    ids = [decode(r.value).subject for r in records]
    assert sorted(ids) == sorted(accepted)  # every accepted event, exactly once
    assert len(set(ids)) == sent


def test_two_relays_publish_each_row_once_in_per_subject_order(
    events_api_env: EventsApiEnv,
) -> None:
    topic = events_api_env.topics.tasks
    subjects = [f"task-{n}" for n in range(8)]
    total = 400
    with psycopg.connect(events_api_env.database_url) as conn:
        for seq in range(total):
            subject = subjects[seq % len(subjects)]
            envelope = new_envelope(
                "task.updated",
                source="test",
                subject=subject,
                correlation_id="c",
                data={"seq": seq},
            )
            with conn.transaction():
                enqueue(conn, topic, envelope)
    relays = [
        OutboxRelay(
            events_api_env.settings.model_copy(
                update={"relay_batch_size": 25, "relay_idle_s": 0.01, "relay_max_backoff_s": 5.0}
            )
        )
        for _ in range(2)
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=relay.run, args=(stop,)) for relay in relays]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 60
        while _pending(events_api_env.database_url) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        for relay in relays:
            relay.stop()
    assert _pending(events_api_env.database_url) == 0
    records = read_topic(events_api_env.bootstrap, topic, total)
    assert len(records) == total
    per_subject: dict[str, list[int]] = defaultdict(list)
    for record in records:
        envelope = decode(record.value)
        per_subject[envelope.subject].append(int(envelope.data["seq"]))
    assert sum(len(v) for v in per_subject.values()) == total
    for subject, seqs in per_subject.items():
        assert seqs == sorted(seqs), f"{subject} out of order"
        assert len(seqs) == len(set(seqs)), f"{subject} duplicated"
    # Both relays did work (otherwise the test proves nothing about concurrency), and no row
    # needed a second attempt.
    assert all(relay.published > 0 for relay in relays)
    assert sum(relay.published for relay in relays) == total
    with psycopg.connect(events_api_env.database_url) as conn:
        assert conn.execute("SELECT max(attempts) FROM outbox").fetchone() == (1,)
