"""`audit restore`: rebuild audit_log from the S3 archive, on real PostgreSQL and the emulator.

Every scenario archives real rows with `archive_closed_windows`, destroys them (DROP TABLE,
TRUNCATE, a brand-new database, or SIGKILL of the restore itself) and checks that every archived
row is back exactly once, column for column.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from apps.audit import restore, store
from apps.audit.archive import archive_closed_windows, object_key
from apps.audit.cli import MIGRATIONS, app, s3_client
from apps.common.db import migrate
from apps.common.envelope import new_envelope
from platform_cli.embedded import PostgresServer, free_port
from tests.apps.app_env import db_env, use_database
from tests.apps.consumer_harness import REPO_ROOT
from tests.conftest import use_aws_emulator

HOUR = timedelta(hours=1)
ALL_COLUMNS = (
    "SELECT event_id, event_type, version, source, subject, correlation_id, occurred_at,"
    " recorded_at, kafka_topic, kafka_partition, kafka_offset, envelope FROM audit_log"
    " ORDER BY event_id"
)


@pytest.fixture
def aws_env(aws_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return use_aws_emulator(monkeypatch, aws_endpoint, "us-east-1")


@pytest.fixture
def s3(aws_env: dict[str, str]) -> Any:
    return s3_client("us-east-1", aws_env["AWS_ENDPOINT_URL"])


@pytest.fixture
def bucket(s3: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"audit-restore-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    monkeypatch.setenv("AUDIT_ARCHIVE_BUCKET", name)
    return name


@pytest.fixture
def conn(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[psycopg.Connection[Any]]:
    migrate(database_url, "audit", MIGRATIONS)
    use_database(monkeypatch, database_url)
    with psycopg.connect(database_url, autocommit=True) as c:
        yield c


def _seed(
    conn: psycopg.Connection[Any], recorded_at: datetime, n: int, topic: str = "tasks"
) -> None:
    envelopes = [
        new_envelope(
            "task.created",
            source="restore-test",
            subject=f"task-{i % 5}",
            correlation_id=f"c-{uuid.uuid4().hex[:6]}",
            data={"n": i, "text": "héllo"},
        )
        for i in range(n)
    ]
    records = [store.AuditRecord.of(e, topic, i % 3, 1000 + i) for i, e in enumerate(envelopes)]
    with conn.transaction():
        store.insert_batch(conn, records)
        conn.execute(
            "UPDATE audit_log SET recorded_at = %s + (kafka_offset - 1000) * interval '1 second'"
            " WHERE event_id = ANY(%s::uuid[])",
            (recorded_at, [str(e.id) for e in envelopes]),
        )


def _archive_hours(conn: psycopg.Connection[Any], s3: Any, bucket: str, sizes: list[int]) -> int:
    """Seed one closed hourly window per size (oldest first) and archive them all."""
    now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    first = now.replace(minute=0, second=0, microsecond=0) - (len(sizes) + 1) * HOUR
    for i, size in enumerate(sizes):
        _seed(conn, first + i * HOUR + timedelta(minutes=3), size)
    done = archive_closed_windows(conn, s3, bucket, grace=timedelta(0), now=now)
    assert [w.rows for w in done] == sizes
    return sum(sizes)


def _rows(conn: psycopg.Connection[Any]) -> list[tuple[Any, ...]]:
    return conn.execute(ALL_COLUMNS).fetchall()


def _restore(*args: str) -> Any:
    return CliRunner().invoke(app, ["restore", *args])


def test_dropped_table_is_rebuilt_with_every_row_once(
    conn: psycopg.Connection[Any], s3: Any, bucket: str
) -> None:
    total = _archive_hours(conn, s3, bucket, [5, 3, 4])
    before = _rows(conn)
    assert len(before) == total

    conn.execute("DROP TABLE audit_log")
    result = _restore()
    assert result.exit_code == 0, result.output
    assert "3 archive object(s), 12 archived rows" in result.output
    assert "12 row(s) inserted" in result.output
    assert _rows(conn) == before  # every column, recorded_at and Kafka coordinates included

    again = _restore()  # a finished run is not reopened: a new one re-checks, inserts nothing
    assert again.exit_code == 0, again.output
    assert "(started)" in again.output and "0 row(s) inserted" in again.output
    assert _rows(conn) == before
    runs = conn.execute("SELECT count(*) FROM audit_restore_runs WHERE finished_at IS NOT NULL")
    assert runs.fetchone()[0] == 2  # type: ignore[index]


def test_truncated_table_with_survivors_gets_only_the_missing_rows(
    conn: psycopg.Connection[Any], s3: Any, bucket: str
) -> None:
    total = _archive_hours(conn, s3, bucket, [6, 6])
    before = _rows(conn)
    survivors = before[:4]
    conn.execute("TRUNCATE audit_log")
    with conn.transaction():
        for row in survivors:
            conn.execute(
                "INSERT INTO audit_log VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (*row[:-1], json.dumps(row[-1])),
            )

    result = _restore()
    assert result.exit_code == 0, result.output
    assert f"{total - len(survivors)} row(s) inserted" in result.output
    assert _rows(conn) == before


def test_a_new_database_gets_the_rows_and_the_archive_bookkeeping(
    conn: psycopg.Connection[Any],
    s3: Any,
    bucket: str,
    postgres: PostgresServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The RDS-lost case: an empty database, no migrations applied yet."""
    _archive_hours(conn, s3, bucket, [2, 7])
    before = _rows(conn)
    name = f"t_{uuid.uuid4().hex[:12]}"
    fresh_url = postgres.create_database(name)
    try:
        use_database(monkeypatch, fresh_url)
        result = _restore()
        assert result.exit_code == 0, result.output
        with psycopg.connect(fresh_url, autocommit=True) as fresh:
            assert _rows(fresh) == before
            windows = fresh.execute("SELECT object_key, row_count FROM audit_archive").fetchall()
            assert sorted(r[1] for r in windows) == [2, 7]
            # The archiver knows these windows are exported: it uploads nothing again.
            now = fresh.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
            assert archive_closed_windows(fresh, s3, bucket, grace=timedelta(0), now=now) == []
    finally:
        postgres.drop_database(name)


def test_killed_mid_run_resumes_and_every_row_is_back_once(
    conn: psycopg.Connection[Any],
    s3: Any,
    bucket: str,
    aws_env: dict[str, str],
    database_url: str,
) -> None:
    sizes = [400] * 24
    _archive_hours(conn, s3, bucket, sizes)
    before = _rows(conn)
    conn.execute("DROP TABLE audit_log")

    env = {**os.environ, **aws_env, **db_env(database_url), "AUDIT_ARCHIVE_BUCKET": bucket}
    process = subprocess.Popen(
        [sys.executable, "-m", "apps.audit.cli", "restore"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line or b"restored audit archive object" in line:
                break
        process.kill()  # SIGKILL: no handler, no cleanup, a transaction possibly in flight
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()

    done = conn.execute(
        "SELECT count(*), coalesce(sum(row_count), 0) FROM audit_restore_objects"
    ).fetchone()
    assert done is not None
    assert 0 < done[0] < len(sizes), f"the kill did not land mid-run: {done[0]} objects done"
    # The object in flight rolled back with its bookkeeping: rows present = rows recorded.
    assert conn.execute("SELECT count(*) FROM audit_log").fetchone()[0] == done[1]  # type: ignore[index]

    result = _restore()
    assert result.exit_code == 0, result.output
    assert "(resumed)" in result.output
    assert f"{done[0]} object(s) finished before a restart" in result.output
    assert _rows(conn) == before
    per_run = conn.execute(
        "SELECT count(DISTINCT run_id), count(*) FROM audit_restore_objects"
    ).fetchone()
    assert per_run == (1, len(sizes))  # one run, each object restored once


def test_a_failure_inside_an_object_keeps_none_of_its_rows(
    conn: psycopg.Connection[Any], s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _archive_hours(conn, s3, bucket, [3, 5])
    before = _rows(conn)
    (second,) = [o for o in restore.list_archive(s3, bucket, "audit")[0] if o.row_count == 5]
    # Rewrite the second object with a broken 4th line, its metadata made consistent, so the
    # failure comes after earlier batches of the same object were inserted.
    lines = gzip.decompress(s3.get_object(Bucket=bucket, Key=second.key)["Body"].read()).split(
        b"\n"
    )
    lines[3] = b'{"not": "an audit row"}'
    body = gzip.compress(b"\n".join(lines), mtime=0)
    s3.put_object(
        Bucket=bucket,
        Key=second.key,
        Body=body,
        Metadata={"rows": "5", "sha256": hashlib.sha256(body).hexdigest()},
    )
    conn.execute("DELETE FROM audit_archive")  # the sha256 in the bookkeeping would differ
    conn.execute("TRUNCATE audit_log")
    monkeypatch.setattr(restore, "BATCH_ROWS", 2)

    result = _restore()
    assert result.exit_code == 1
    assert "line 2 of the batch is not an archived audit row" in result.output
    assert "Nothing of the failing object was kept" in result.output
    assert len(_rows(conn)) == 3  # the first object only; the half-inserted second rolled back
    assert conn.execute("SELECT object_key FROM audit_restore_objects").fetchall() != []
    keys = {r[0] for r in conn.execute("SELECT object_key FROM audit_restore_objects")}
    assert second.key not in keys
    assert before  # the seed really had rows


def _rewrite_the_archived_hour(
    conn: psycopg.Connection[Any], s3: Any, bucket: str, body: Callable[[bytes], bytes], rows: str
) -> None:
    """Archive one hour (4 rows), then put its object back as `body(original)` with `rows` in
    its metadata (the archiver's sha256 kept), as a later edit of the bucket would."""
    _archive_hours(conn, s3, bucket, [4])
    (obj,) = restore.list_archive(s3, bucket, "audit")[0]
    original = s3.get_object(Bucket=bucket, Key=obj.key)["Body"].read()
    s3.put_object(
        Bucket=bucket,
        Key=obj.key,
        Body=body(original),
        Metadata={"rows": rows, "sha256": obj.sha256},
    )


def _assert_refused_restoring_nothing(conn: psycopg.Connection[Any], reason: str) -> None:
    result = _restore()
    assert result.exit_code == 1
    assert reason in result.output
    assert _rows(conn) == []


def _drop_last_row(gzipped: bytes) -> bytes:
    lines = gzip.decompress(gzipped).splitlines()
    return gzip.compress(b"\n".join(lines[:-1]) + b"\n", mtime=0)


def test_an_object_changed_after_archiving_is_refused(
    conn: psycopg.Connection[Any], s3: Any, bucket: str
) -> None:
    _rewrite_the_archived_hour(conn, s3, bucket, _drop_last_row, rows="4")
    conn.execute("TRUNCATE audit_log")
    _assert_refused_restoring_nothing(conn, "does not match the archiver's")


def test_row_count_must_match_what_the_archiver_recorded(
    conn: psycopg.Connection[Any], s3: Any, bucket: str
) -> None:
    _rewrite_the_archived_hour(conn, s3, bucket, lambda body: body, rows="5")
    conn.execute("DELETE FROM audit_archive")
    conn.execute("TRUNCATE audit_log")
    _assert_refused_restoring_nothing(conn, "4 rows in the object, the archiver recorded 5")


def test_dry_run_lists_the_plan_and_changes_nothing(
    conn: psycopg.Connection[Any], s3: Any, bucket: str
) -> None:
    _archive_hours(conn, s3, bucket, [2, 3])
    s3.put_object(Bucket=bucket, Key="audit/README.txt", Body=b"not a window")
    conn.execute("TRUNCATE audit_log")

    result = _restore("--dry-run")
    assert result.exit_code == 0, result.output
    assert "dry run: 2 of 2 object(s) to restore (5 rows); 1 other key(s) ignored" in result.output
    assert _rows(conn) == []
    assert conn.execute("SELECT count(*) FROM audit_restore_runs").fetchone()[0] == 0  # type: ignore[index]


def test_since_and_until_select_windows_by_start(
    conn: psycopg.Connection[Any], s3: Any, bucket: str
) -> None:
    _archive_hours(conn, s3, bucket, [1, 2, 3])
    objects = restore.list_archive(s3, bucket, "audit")[0]
    conn.execute("TRUNCATE audit_log")
    middle = objects[1].window_start
    result = _restore("--since", middle.isoformat(), "--until", (middle + HOUR).isoformat())
    assert result.exit_code == 0, result.output
    assert len(_rows(conn)) == 2

    bad = _restore("--since", "yesterday")
    assert bad.exit_code == 2
    assert "not an ISO-8601 time" in bad.output


def test_restore_without_a_bucket_fails_clearly(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_database(monkeypatch, database_url)
    monkeypatch.delenv("AUDIT_ARCHIVE_BUCKET", raising=False)
    result = _restore()
    assert result.exit_code == 2
    assert "AUDIT_ARCHIVE_BUCKET" in result.output


@given(
    start=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ).map(lambda d: d.replace(microsecond=0)),
    window_s=st.integers(min_value=60, max_value=86_400),
    prefix=st.sampled_from(["audit", "audit/", "archive/audit", "/x/y/"]),
)
def test_object_keys_parse_back_to_their_window(
    start: datetime, window_s: int, prefix: str
) -> None:
    key = object_key(prefix, start, window_s)
    assert restore.parse_object_key(prefix, key) == (start, window_s)


@pytest.mark.parametrize(
    "key",
    [
        "audit/README.txt",
        "audit/2026/03/05/20260305T100000Z_3600s.jsonl",  # not gzip JSON Lines
        "audit/2026/03/06/20260305T100000Z_3600s.jsonl.gz",  # date folder is not the window's
        "audit/extra/2026/03/05/20260305T100000Z_3600s.jsonl.gz",
        "other/2026/03/05/20260305T100000Z_3600s.jsonl.gz",
    ],
)
def test_keys_that_are_not_archive_windows_are_ignored(key: str) -> None:
    assert restore.parse_object_key("audit", key) is None


def test_a_missing_bucket_or_database_stops_with_a_clear_line(
    conn: psycopg.Connection[Any], s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    result = _restore("--bucket", missing)
    assert result.exit_code == 1
    assert f"restore stopped: s3://{missing}: NoSuchBucket" in result.output

    use_database(monkeypatch, f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    s3.create_bucket(Bucket=missing)
    down = _restore("--bucket", missing)
    assert down.exit_code == 1
    assert "restore stopped: database 127.0.0.1:" in down.output
