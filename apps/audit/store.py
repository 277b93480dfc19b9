"""SQL of the audit log: batch insert, query, and the reads/writes the archiver needs."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from apps.common.envelope import EventEnvelope, encode


@dataclass(frozen=True)
class AuditRecord:
    """One validated envelope, as JSON, plus where Kafka had it; ready to insert."""

    envelope_json: bytes
    """UTF-8 JSON of a valid envelope (`apps.common.envelope.canonical_json`)."""
    topic: str
    partition: int
    offset: int

    @classmethod
    def of(cls, envelope: EventEnvelope, topic: str, partition: int, offset: int) -> AuditRecord:
        return cls(encode(envelope), topic, partition, offset)


# One statement per batch. The envelopes travel as ONE jsonb array (their JSON joined, no
# per-row encoding in Python) and PostgreSQL extracts the columns, in its own process: the
# consumer's GIL is the audit sink's bottleneck, the database has a core of its own. ROWS FROM
# zips the array with the Kafka coordinates by position.
_INSERT_BATCH = """
INSERT INTO audit_log (event_id, event_type, version, source, subject, correlation_id,
                       occurred_at, kafka_topic, kafka_partition, kafka_offset, envelope)
SELECT (e->>'id')::uuid, e->>'type', (e->>'version')::int, e->>'source', e->>'subject',
       e->>'correlation_id', (e->>'occurred_at')::timestamptz, t, p, o, e
  FROM ROWS FROM (jsonb_array_elements(%s::jsonb), unnest(%s::text[]), unnest(%s::int[]),
                  unnest(%s::bigint[])) AS b(e, t, p, o)
ON CONFLICT (event_id) DO NOTHING
"""


def insert_batch(conn: psycopg.Connection[Any], records: Sequence[AuditRecord]) -> int:
    """Insert the batch (idempotently); returns how many rows were new.

    The sink's write: COPY into a staging table, then one INSERT .. ON CONFLICT DO NOTHING from
    it (`copy_batch`), the faster of the two idempotent bulk loads `bench/run.py` measures on
    the same rows (the other is `insert_batch_json`)."""
    return copy_batch(conn, records)


def insert_batch_json(conn: psycopg.Connection[Any], records: Sequence[AuditRecord]) -> int:
    """The batch as ONE jsonb array parameter, unpacked by INSERT .. SELECT; returns how many
    rows were new. Runs in the caller's transaction."""
    if not records:
        return 0
    # Valid UTF-8 by construction (the envelopes were validated), so one decode of the joined
    # bytes is safe and far cheaper than one per record.
    envelopes = b"[" + b",".join(r.envelope_json for r in records) + b"]"
    cursor = conn.execute(
        _INSERT_BATCH,
        (
            envelopes.decode("utf-8"),
            [r.topic for r in records],
            [r.partition for r in records],
            [r.offset for r in records],
        ),
    )
    return cursor.rowcount


# COPY cannot skip a duplicate key, so the batch is copied into a per-session staging table
# and moved from there by one INSERT .. ON CONFLICT DO NOTHING. The envelopes travel as
# binary COPY `bytea` (their bytes as they came from Kafka: no escaping, no decoding in
# Python) and PostgreSQL reads them as jsonb. The staged rows are consumed by the statement
# that inserts them (DELETE .. RETURNING), so the table is empty again whatever transaction
# the caller holds, and ON COMMIT DELETE ROWS truncates it at every commit (temporary tables
# are never vacuumed: a plain DELETE would leave their dead rows behind).
_CREATE_STAGE = """
CREATE TEMPORARY TABLE IF NOT EXISTS audit_stage (
    envelope        bytea   NOT NULL,
    kafka_topic     text    NOT NULL,
    kafka_partition integer NOT NULL,
    kafka_offset    bigint  NOT NULL
) ON COMMIT DELETE ROWS
"""
_COPY_STAGE = (
    "COPY audit_stage (envelope, kafka_topic, kafka_partition, kafka_offset)"
    " FROM STDIN (FORMAT BINARY)"
)
_STAGE_TYPES = ("bytea", "text", "int4", "int8")
_INSERT_STAGED = """
WITH staged AS (
    DELETE FROM audit_stage
    RETURNING convert_from(envelope, 'UTF8')::jsonb AS e, kafka_topic AS t,
              kafka_partition AS p, kafka_offset AS o
)
INSERT INTO audit_log (event_id, event_type, version, source, subject, correlation_id,
                       occurred_at, kafka_topic, kafka_partition, kafka_offset, envelope)
SELECT (e->>'id')::uuid, e->>'type', (e->>'version')::int, e->>'source', e->>'subject',
       e->>'correlation_id', (e->>'occurred_at')::timestamptz, t, p, o, e
  FROM staged
ON CONFLICT (event_id) DO NOTHING
"""


def copy_batch(conn: psycopg.Connection[Any], records: Sequence[AuditRecord]) -> int:
    """COPY the batch into the staging table and INSERT it from there, in one transaction (a
    savepoint inside the caller's, if any); returns how many rows were new."""
    if not records:
        return 0
    with conn.transaction(), conn.cursor() as cursor:
        # IF NOT EXISTS every time: a staging table created in a transaction that later rolled
        # back is gone again, and a cached "created" flag would not know it.
        cursor.execute(_CREATE_STAGE)
        with cursor.copy(_COPY_STAGE) as copy:
            copy.set_types(_STAGE_TYPES)
            for r in records:
                copy.write_row((r.envelope_json, r.topic, r.partition, r.offset))
        cursor.execute(_INSERT_STAGED)
        return cursor.rowcount


@dataclass(frozen=True)
class AuditQuery:
    entity: str | None = None
    event_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100


# Unset filters are NULL and drop out; one static statement, no SQL built from input.
_QUERY = """
SELECT event_id, event_type, subject, occurred_at, recorded_at, correlation_id, envelope
  FROM audit_log
 WHERE (%(entity)s::text IS NULL OR subject = %(entity)s::text)
   AND (%(type)s::text IS NULL OR event_type = %(type)s::text)
   AND (%(since)s::timestamptz IS NULL OR occurred_at >= %(since)s::timestamptz)
   AND (%(until)s::timestamptz IS NULL OR occurred_at < %(until)s::timestamptz)
 ORDER BY occurred_at, event_id
 LIMIT %(limit)s
"""


def query(conn: psycopg.Connection[Any], q: AuditQuery) -> list[dict[str, Any]]:
    """Entries matching every given filter, oldest first; `since` inclusive, `until` exclusive."""
    rows = conn.execute(
        _QUERY,
        {
            "entity": q.entity,
            "type": q.event_type,
            "since": q.since,
            "until": q.until,
            "limit": q.limit,
        },
    ).fetchall()
    return [
        {
            "event_id": str(r[0]),
            "type": r[1],
            "entity": r[2],
            "occurred_at": r[3].isoformat(),
            "recorded_at": r[4].isoformat(),
            "correlation_id": r[5],
            "envelope": r[6],
        }
        for r in rows
    ]


def count_rows(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM audit_log").fetchone()
    return int(row[0]) if row else 0


# --- archive support ---------------------------------------------------------------------------


ARCHIVE_ORIGIN = "2000-01-01 00:00:00+00"
"""Windows are aligned to this instant (midnight UTC), so hourly windows start on the hour."""


def pending_windows(
    conn: psycopg.Connection[Any], window_s: int, closed_before: datetime
) -> list[datetime]:
    """Starts of windows that hold rows, ended before `closed_before`, and are not archived yet."""
    rows = conn.execute(
        """
        SELECT DISTINCT date_bin(make_interval(secs => %(w)s), l.recorded_at,
                                 %(origin)s::timestamptz) AS window_start
          FROM audit_log l
         WHERE l.recorded_at < %(closed)s
           AND NOT EXISTS (SELECT 1 FROM audit_archive a
                            WHERE l.recorded_at >= a.window_start
                              AND l.recorded_at < a.window_end)
         ORDER BY window_start
        """,
        {"w": window_s, "origin": ARCHIVE_ORIGIN, "closed": closed_before},
    ).fetchall()
    return [r[0] for r in rows]


def window_rows(
    conn: psycopg.Connection[Any], start: datetime, end: datetime
) -> Iterator[dict[str, Any]]:
    """Rows recorded in [start, end) in a stable order, so the exported file is reproducible."""
    with conn.cursor(name="audit_window") as cursor:
        cursor.execute(
            """
            SELECT envelope, recorded_at, kafka_topic, kafka_partition, kafka_offset
              FROM audit_log WHERE recorded_at >= %s AND recorded_at < %s
             ORDER BY recorded_at, event_id
            """,
            (start, end),
        )
        for envelope, recorded_at, topic, partition, offset in cursor:
            yield {
                "envelope": envelope,
                "recorded_at": recorded_at.isoformat(),
                "kafka": {"topic": topic, "partition": partition, "offset": offset},
            }


def record_archived(
    conn: psycopg.Connection[Any],
    start: datetime,
    end: datetime,
    object_key: str,
    row_count: int,
    sha256: str,
) -> None:
    conn.execute(
        """
        INSERT INTO audit_archive (window_start, window_end, object_key, row_count, sha256)
        VALUES (%s, %s, %s, %s, %s) ON CONFLICT (window_start) DO NOTHING
        """,
        (start, end, object_key, row_count, sha256),
    )


def encode_jsonl_line(row: dict[str, Any]) -> bytes:
    return (
        json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    )


def event_ids(conn: psycopg.Connection[Any]) -> list[UUID]:
    return [r[0] for r in conn.execute("SELECT event_id FROM audit_log").fetchall()]
