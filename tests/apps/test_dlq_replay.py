"""`platform dlq replay` on the real Tansu broker.

- Selection, headers, dry run and bad input, on dead letters written with the consumers' own
  `dead_letter_headers`.
- The real thing: the notifier and audit consumers as processes, a channel that fails until it
  is fixed, then a replay run twice: each event reaches each channel exactly once and audit
  keeps one row per event.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka import KafkaProducer
from typer.testing import CliRunner

from apps.audit.cli import MIGRATIONS as AUDIT_MIGRATIONS
from apps.common.db import migrate
from apps.common.envelope import encode
from apps.common.kafka import dead_letter_headers, header_dict
from apps.notifier.cli import MIGRATIONS as NOTIFIER_MIGRATIONS
from apps.notifier.redrive import count_dead
from platform_cli.dlq_replay import REPLAYED_FROM_HEADER
from platform_cli.embedded import KafkaBroker, free_port
from platform_cli.main import app
from tests.apps.app_env import app_env, db_env
from tests.apps.conftest import TopicNames
from tests.apps.consumer_harness import (
    ConsumerProcess,
    envelopes,
    group_caught_up,
    metric_value,
    notifier_idle,
    produce,
    read_topic,
    wait_until,
)
from tests.apps.webhook_sink import WebhookSink, webhook_sink


@dataclass(frozen=True)
class Consumed:
    """The parts of a consumed record that `dead_letter_headers` reads."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def _write_dead_letters(
    bootstrap: str, dlq: str, letters: list[tuple[Consumed, str, int | None]]
) -> None:
    """Write (original record, reason, timestamp_ms) as the consumers' `dead_letter` would."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for record, reason, timestamp_ms in letters:
            headers = dead_letter_headers(
                record, reason=reason, detail="detail", attempts=1, consumer_group="notifier"
            )
            producer.send(
                dlq, key=record.key, value=record.value, headers=headers, timestamp_ms=timestamp_ms
            )
        producer.flush(10)
    finally:
        producer.close(5)


def _replay(bootstrap: str, *args: str, **env: str) -> Any:
    return CliRunner().invoke(
        app,
        ["dlq", "replay", *args],
        env={"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "COLUMNS": "300", **env},
    )


@pytest.fixture
def dlq_topics(make_topics: Callable[..., list[str]]) -> tuple[str, str]:
    dlq, origin = make_topics("notifier.dlq", "events")
    return dlq, origin


def _originals(origin: str, n: int) -> list[Consumed]:
    out = []
    for i, envelope in enumerate(envelopes(n)):
        headers = [
            ("event_id", str(envelope.id).encode()),
            ("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ]
        out.append(
            Consumed(origin, 0, 100 + i, envelope.subject.encode(), encode(envelope), headers)
        )
    return out


def test_replay_republishes_key_value_and_headers_to_the_original_topic(
    kafka: KafkaBroker, dlq_topics: tuple[str, str]
) -> None:
    dlq, origin = dlq_topics
    good = _originals(origin, 3)
    poison = Consumed(origin, 0, 200, b"k-poison", b"{not json", [])
    twice = good[0]  # dead-lettered for two channels: two dead letters, one original record
    nowhere = Consumed("events-that-never-existed", 0, 5, b"k", good[1].value, [])
    _write_dead_letters(
        kafka.bootstrap,
        dlq,
        [
            (good[0], "delivery_attempts_exhausted", None),
            (good[1], "delivery_rejected", None),
            (twice, "delivery_rejected", None),
            (good[2], "schema_violation", None),
            (poison, "invalid_json", None),
            (nowhere, "invalid_json", None),
        ],
    )
    produce(kafka.bootstrap, dlq, [b"no dlq headers at all"], key=b"x")

    result = _replay(kafka.bootstrap, "--topic", dlq, "--no-rearm")
    assert result.exit_code == 0, result.output
    assert (
        "read 7 dead letter(s): 4 to replay, 0 not selected, 1 duplicate(s), 1 without an "
        "original topic, 1 whose original topic is missing" in result.output
    )
    assert "replayed 4 of 4 dead letter(s)" in result.output

    replayed = read_topic(kafka.bootstrap, origin, expect=4, timeout=30)
    assert sorted((r.key, r.value) for r in replayed) == sorted(
        [(c.key, c.value) for c in good] + [(poison.key, poison.value)]
    )
    for record in replayed:
        headers = header_dict(record.headers)
        assert not any(k.startswith("dlq.") and k != REPLAYED_FROM_HEADER for k in headers)
        assert headers[REPLAYED_FROM_HEADER].startswith(f"{dlq}/0/")
        if record.value != poison.value:
            assert headers["traceparent"].startswith("00-0af7")  # original headers kept
            assert headers["event_id"] == json.loads(record.value)["id"]


def test_ids_since_and_reason_select_and_dry_run_publishes_nothing(
    kafka: KafkaBroker, dlq_topics: tuple[str, str]
) -> None:
    dlq, origin = dlq_topics
    originals = _originals(origin, 4)
    base = int(time.time() * 1000) - 3_600_000  # an hour ago, a minute apart
    _write_dead_letters(
        kafka.bootstrap,
        dlq,
        [
            (o, "schema_violation" if i == 3 else "invalid_json", base + i * 60_000)
            for i, o in enumerate(originals)
        ],
    )
    ids = [json.loads(o.value or b"{}")["id"] for o in originals]

    dry = _replay(kafka.bootstrap, "--topic", dlq, "--ids", f"{ids[0]}, {ids[2]}", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "2 to replay, 2 not selected" in dry.output
    assert ids[0] in dry.output and "dry run: nothing published" in dry.output
    assert read_topic(kafka.bootstrap, origin) == []  # the command has returned: all it did

    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((base + 90_000) / 1000))  # naive=UTC
    by_time = _replay(kafka.bootstrap, "--topic", dlq, "--since", since, "--reason", "invalid_json")
    assert by_time.exit_code == 0, by_time.output
    assert "1 to replay, 3 not selected" in by_time.output  # #2 only: #3 has another reason
    (record,) = read_topic(kafka.bootstrap, origin, expect=1, timeout=30)
    assert json.loads(record.value)["id"] == ids[2]


def test_dead_letters_newer_than_the_run_wait_for_the_next_one(
    kafka: KafkaBroker, dlq_topics: tuple[str, str]
) -> None:
    dlq, origin = dlq_topics
    now = int(time.time() * 1000)
    old, new = _originals(origin, 2)
    _write_dead_letters(
        kafka.bootstrap,
        dlq,
        [(old, "invalid_json", now - 1000), (new, "invalid_json", now + 3_600_000)],
    )
    result = _replay(kafka.bootstrap, "--topic", dlq)
    assert result.exit_code == 0, result.output
    assert "1 to replay" in result.output
    assert "1 newer than this run left for the next" in result.output


def test_delivery_failures_are_not_replayed_when_the_notifier_db_is_unreachable(
    kafka: KafkaBroker, dlq_topics: tuple[str, str]
) -> None:
    dlq, origin = dlq_topics
    (original,) = _originals(origin, 1)
    _write_dead_letters(kafka.bootstrap, dlq, [(original, "delivery_attempts_exhausted", None)])
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    result = _replay(kafka.bootstrap, "--topic", dlq, **db_env(closed), DB_CONNECT_TIMEOUT="2")
    assert result.exit_code == 1
    assert "cannot re-arm the notifier's dead deliveries" in result.output
    assert "Nothing was published" in result.output
    assert read_topic(kafka.bootstrap, origin) == []  # the command has returned: all it did


@pytest.mark.parametrize(
    ("args", "field", "says"),
    [
        (["--ids", "42"], "--ids", "is not an event id"),
        (["--ids", " , "], "--ids", "empty"),
        (["--since", "last tuesday"], "--since", "is not an ISO-8601 time"),
        (["--reason", "bored"], "--reason", "allowed: invalid_json, unsupported_version"),
    ],
)
def test_bad_input_names_the_option(
    kafka: KafkaBroker, dlq_topics: tuple[str, str], args: list[str], field: str, says: str
) -> None:
    result = _replay(kafka.bootstrap, "--topic", dlq_topics[0], *args)
    assert result.exit_code == 2
    assert field in result.output and says in result.output


def test_an_unknown_topic_is_a_clear_error(kafka: KafkaBroker) -> None:
    result = _replay(kafka.bootstrap, "--topic", f"nope-{uuid.uuid4().hex[:6]}.dlq")
    assert result.exit_code == 2
    assert "--topic" in result.output and "does not exist on the broker" in result.output


# --- with the real consumers -------------------------------------------------------------------

SLACK_PATH = "/services/T0/B0/secret"


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with webhook_sink() as s:
        yield s


def _delivered(sink: WebhookSink, path: str) -> Counter[str]:
    """Successful deliveries per idempotency key (`<event id>:<channel>`)."""
    return Counter(
        {k.lower(): v for k, v in r.headers.items()}["idempotency-key"]
        for r in sink.received(path, status=200)
    )


def _audit_rows(database_url: str) -> Counter[str]:
    with psycopg.connect(database_url) as conn:
        return Counter(str(r[0]) for r in conn.execute("SELECT event_id FROM audit_log"))


@pytest.mark.slow
def test_replay_twice_delivers_each_event_once_with_the_real_consumers(
    kafka: KafkaBroker,
    database_url: str,
    unique_topics: TopicNames,
    sink: WebhookSink,
    tmp_path: Path,
) -> None:
    migrate(database_url, "audit", AUDIT_MIGRATIONS)
    migrate(database_url, "notifier", NOTIFIER_MIGRATIONS)
    sink.plan(SLACK_PATH, always=503)  # Slack is down; the webhook channel works
    events = envelopes(10)
    tasks = envelopes(5, type_="task.created")
    ids = {str(e.id) for e in events + tasks}
    notifier_group, audit_group = (
        f"notifier-{uuid.uuid4().hex[:6]}",
        f"audit-{uuid.uuid4().hex[:6]}",
    )
    base = {
        **app_env(kafka.bootstrap, database_url, topics=unique_topics),
    }
    notifier = ConsumerProcess(
        "notifier",
        {
            **base,
            "DEAD_LETTER_TOPIC": unique_topics.notifier_dlq,
            "CONSUMER_GROUP": notifier_group,
            "NOTIFIER_WEBHOOK_URL": f"{sink.url}/hook",
            "NOTIFIER_SLACK_WEBHOOK_URL": f"{sink.url}{SLACK_PATH}",
            "NOTIFIER_MAX_ATTEMPTS": "2",
            "NOTIFIER_BACKOFF_BASE_S": "0.02",
            "NOTIFIER_BACKOFF_MAX_S": "0.1",
        },
        tmp_path / "notifier.log",
    ).start()
    audit = ConsumerProcess(
        "audit",
        {
            **base,
            "DEAD_LETTER_TOPIC": unique_topics.audit_dlq,
            "CONSUMER_GROUP": audit_group,
        },
        tmp_path / "audit.log",
    ).start()
    sources = [unique_topics.events, unique_topics.tasks]
    idle = partial(notifier_idle, database_url, kafka.bootstrap, notifier_group, sources)
    audit_caught_up = partial(group_caught_up, kafka.bootstrap, audit_group, sources)
    try:
        produce(kafka.bootstrap, unique_topics.events, events)
        produce(kafka.bootstrap, unique_topics.tasks, tasks)
        read_topic(kafka.bootstrap, unique_topics.notifier_dlq, expect=15, timeout=90)
        assert wait_until(idle, timeout=60, interval=0.5), notifier.log()[-3000:]
        dead = read_topic(kafka.bootstrap, unique_topics.notifier_dlq)
        assert len(dead) == 15, notifier.log()[-3000:]
        assert {header_dict(r.headers)["dlq.reason"] for r in dead} == {
            "delivery_attempts_exhausted"
        }
        assert wait_until(lambda: len(_audit_rows(database_url)) == 15, timeout=60)
        assert set(_delivered(sink, "/hook").values()) == {1}
        assert _delivered(sink, SLACK_PATH) == Counter()

        sink.plan(SLACK_PATH)  # the channel is fixed: 200 from now on
        env = db_env(database_url)
        dry = _replay(kafka.bootstrap, "--topic", unique_topics.notifier_dlq, "--dry-run", **env)
        assert dry.exit_code == 0, dry.output
        assert "15 to replay" in dry.output
        assert "would re-arm the dead notifier deliveries of 15 event(s): 15 dead" in dry.output
        # The dry run published nothing (the command has returned) and re-armed nothing.
        assert len(read_topic(kafka.bootstrap, unique_topics.events)) == len(events)
        assert len(read_topic(kafka.bootstrap, unique_topics.tasks)) == len(tasks)
        with psycopg.connect(database_url) as conn:
            assert count_dead(conn, [uuid.UUID(i) for i in ids]) == 15

        first = _replay(kafka.bootstrap, "--topic", unique_topics.notifier_dlq, **env)
        assert first.exit_code == 0, first.output
        assert "replayed 15 of 15 dead letter(s); re-armed 15 dead notifier deliveries" in (
            first.output
        )
        assert wait_until(lambda: len(_delivered(sink, SLACK_PATH)) == 15, timeout=60), (
            notifier.log()[-3000:]
        )

        second = _replay(kafka.bootstrap, "--topic", unique_topics.notifier_dlq, **env)
        assert second.exit_code == 0, second.output
        assert "replayed 15 of 15 dead letter(s); re-armed 0 dead notifier deliveries" in (
            second.output
        )
        # Both consumers have seen all 45 records (15 originals + 2 x 15 replays) ...
        assert wait_until(
            lambda: (
                metric_value(notifier.metrics(), "notifier_messages_processed_total") >= 45
                and metric_value(audit.metrics(), "audit_messages_processed_total") >= 45
            ),
            timeout=60,
        ), (notifier.log()[-2000:], audit.log()[-2000:])
        # Both have committed every record and no delivery is pending: the counts are final.
        assert wait_until(idle, timeout=60, interval=0.5), notifier.log()[-2000:]
        assert wait_until(audit_caught_up, timeout=60, interval=0.5), audit.log()[-2000:]
        assert notifier.terminate() < 10
        assert audit.terminate() < 10
    finally:
        notifier.stop_quietly()
        audit.stop_quietly()

    # ... and each event reached each channel exactly once, and audit kept one row per event.
    assert _delivered(sink, "/hook") == Counter({f"{i}:webhook": 1 for i in ids})
    assert _delivered(sink, SLACK_PATH) == Counter({f"{i}:slack": 1 for i in ids})
    assert _audit_rows(database_url) == Counter({i: 1 for i in ids})
    # Nothing was dead-lettered again: the replays went through.
    assert len(read_topic(kafka.bootstrap, unique_topics.notifier_dlq)) == 15


def test_an_unreachable_broker_is_a_clear_error() -> None:
    closed = f"127.0.0.1:{free_port()}"
    result = _replay(closed, "--topic", "notifier.dlq")
    assert result.exit_code == 1
    assert f"cannot read notifier.dlq from {closed} (KAFKA_BOOTSTRAP_SERVERS)" in result.output
