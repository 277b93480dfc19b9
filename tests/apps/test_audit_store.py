"""audit_log SQL on a real PostgreSQL: idempotent batch insert and the query command."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from apps.audit import store
from apps.audit.cli import MIGRATIONS, app
from apps.common.db import migrate
from apps.common.envelope import (
    EnvelopeError,
    EventEnvelope,
    canonical_json,
    decode,
    encode,
    new_envelope,
)
from tests.apps.app_env import assert_reads_every_fact, use_database

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    migrate(database_url, "audit", MIGRATIONS)
    with psycopg.connect(database_url, autocommit=True) as c:
        yield c


def _records(envelopes: list[EventEnvelope], topic: str = "events") -> list[store.AuditRecord]:
    return [store.AuditRecord.of(e, topic, 0, i) for i, e in enumerate(envelopes)]


def _make(type_: str, subject: str, minutes: int) -> EventEnvelope:
    return new_envelope(
        type_,  # type: ignore[arg-type]
        source="test",
        subject=subject,
        correlation_id=f"c-{subject}-{minutes}",
        data={"minutes": minutes},
        occurred_at=T0 + timedelta(minutes=minutes),
    )


def test_batch_insert_is_idempotent_per_event_id(conn: psycopg.Connection[Any]) -> None:
    envelopes = [_make("task.created", "task-1", i) for i in range(50)]
    batch = _records(envelopes)
    assert store.insert_batch(conn, batch) == 50
    assert store.insert_batch(conn, batch) == 0  # a full redelivery
    assert store.insert_batch(conn, batch[:10] + batch[:10]) == 0  # duplicates inside a batch
    assert store.count_rows(conn) == 50
    stored = conn.execute(
        "SELECT envelope, kafka_offset FROM audit_log WHERE event_id = %s", (envelopes[7].id,)
    ).fetchone()
    assert stored is not None
    assert EventEnvelope.model_validate(stored[0]) == envelopes[7]
    assert stored[1] == 7


def test_database_reads_the_same_columns_as_decode(conn: psycopg.Connection[Any]) -> None:
    """The columns are extracted by PostgreSQL from the stored JSON; for every spelling a
    producer may send (fast path or normalised), they must equal what `decode` reads."""
    from tests.apps.test_common_envelope import VARIANTS, _raw

    accepted: dict[uuid.UUID, tuple[EventEnvelope, store.AuditRecord]] = {}
    for i, overrides in enumerate(VARIANTS):
        raw = _raw({"id": str(uuid.uuid4()), **overrides})
        try:
            envelope = decode(raw)
        except EnvelopeError:
            continue
        # The id spellings name one UUID: keep the first, as the database will.
        record = store.AuditRecord(canonical_json(raw), "tasks", 1, i)
        accepted.setdefault(envelope.id, (envelope, record))
    assert len(accepted) >= 10
    store.insert_batch(conn, [record for _, record in accepted.values()])
    for envelope, record in accepted.values():
        row = conn.execute(
            "SELECT event_type, version, source, subject, correlation_id, occurred_at,"
            " kafka_topic, kafka_partition, kafka_offset, envelope"
            " FROM audit_log WHERE event_id = %s",
            (envelope.id,),
        ).fetchone()
        assert row is not None, f"offset {record.offset} was not stored"
        assert row[:6] == (
            envelope.type,
            envelope.version,
            envelope.source,
            envelope.subject,
            envelope.correlation_id,
            envelope.occurred_at,
        )
        assert row[6:9] == ("tasks", 1, record.offset)
        # Parsed, not bytes: jsonb orders object keys its own way.
        assert json.loads(encode(EventEnvelope.model_validate(row[9]))) == json.loads(
            encode(envelope)
        )


def test_a_row_the_database_refuses_fails_the_batch_with_a_data_error(
    conn: psycopg.Connection[Any],
) -> None:
    """jsonb cannot hold NUL: the consumer relies on this error to dead-letter such a row."""
    bad = _make("task.created", "nul\u0000", 0)
    with pytest.raises(psycopg.DataError), conn.transaction():
        store.insert_batch(conn, _records([_make("task.created", "ok", 0), bad]))
    assert store.count_rows(conn) == 0


def test_query_filters_by_entity_type_and_time_range(conn: psycopg.Connection[Any]) -> None:
    envelopes = [
        _make("task.created", "task-1", 0),
        _make("task.updated", "task-1", 10),
        _make("task.updated", "task-2", 20),
        _make("task.deleted", "task-1", 30),
        _make("event.received", "svc", 40),
    ]
    store.insert_batch(conn, _records(envelopes))

    def ids(**kw: Any) -> list[str]:
        return [r["event_id"] for r in store.query(conn, store.AuditQuery(**kw))]

    assert ids(entity="task-1") == [str(envelopes[i].id) for i in (0, 1, 3)]
    assert ids(event_type="task.updated") == [str(envelopes[i].id) for i in (1, 2)]
    assert ids(since=T0 + timedelta(minutes=10), until=T0 + timedelta(minutes=30)) == [
        str(envelopes[i].id) for i in (1, 2)
    ]
    assert ids(entity="task-1", event_type="task.updated") == [str(envelopes[1].id)]
    assert ids(limit=2) == [str(envelopes[i].id) for i in (0, 1)]
    assert ids(entity="nobody") == []


def test_query_command_prints_json_lines(
    conn: psycopg.Connection[Any], database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    envelopes = [_make("task.created", "task-9", 0), _make("task.updated", "task-9", 5)]
    store.insert_batch(conn, _records(envelopes))
    use_database(monkeypatch, database_url)
    result = CliRunner().invoke(
        app,
        [
            *("query", "--entity", "task-9", "--type", "task.updated"),
            *("--since", "2026-11-01T00:00", "--json"),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["event_id"] for line in lines] == [str(envelopes[1].id)]
    assert lines[0]["envelope"]["data"] == {"minutes": 5}


def test_query_command_rejects_a_bad_time(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_database(monkeypatch, database_url)
    result = CliRunner().invoke(app, ["query", "--since", "yesterday-ish"])
    assert result.exit_code == 2
    assert "ISO-8601" in result.output


def test_migrate_command_is_idempotent(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    use_database(monkeypatch, database_url)
    first = CliRunner().invoke(app, ["migrate"])
    second = CliRunner().invoke(app, ["migrate"])
    assert first.exit_code == 0 and second.exit_code == 0
    assert "[1, 2, 3, 4]" in first.output  # log, restore bookkeeping, tenant index, reads
    assert "up to date" in second.output


def test_every_fact_of_the_contract_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    from apps.audit.settings import AuditConfig, AuditSettings

    config = assert_reads_every_fact(monkeypatch, "audit", AuditConfig, AuditSettings)
    assert config.app.archive_bucket == "sentinel-audit_archive_bucket"
