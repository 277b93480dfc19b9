"""Archiving closed audit windows to S3 (moto's server, or LocalStack) as gzip JSON Lines."""

from __future__ import annotations

import gzip
import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from apps.audit import store
from apps.audit.archive import archive_closed_windows, object_key
from apps.audit.cli import MIGRATIONS, app, s3_client
from apps.common.db import migrate
from apps.common.envelope import new_envelope
from tests.apps.app_env import use_database
from tests.conftest import use_aws_emulator

HOUR = timedelta(hours=1)


@pytest.fixture
def aws_env(aws_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    use_aws_emulator(monkeypatch, aws_endpoint, "us-east-1")
    return aws_endpoint


@pytest.fixture
def s3(aws_env: str) -> Any:
    return s3_client("us-east-1", aws_env)


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"audit-archive-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    migrate(database_url, "audit", MIGRATIONS)
    with psycopg.connect(database_url, autocommit=True) as c:
        yield c


def _seed(conn: psycopg.Connection[Any], recorded_at: datetime, n: int) -> list[str]:
    """Insert n envelopes and stamp them as recorded at `recorded_at` (+ i seconds)."""
    envelopes = [
        new_envelope("task.created", source="t", subject=f"task-{i}", correlation_id="c", data={})
        for i in range(n)
    ]
    store.insert_batch(
        conn, [store.AuditRecord.of(e, "tasks", 0, i) for i, e in enumerate(envelopes)]
    )
    for i, e in enumerate(envelopes):
        conn.execute(
            "UPDATE audit_log SET recorded_at = %s WHERE event_id = %s",
            (recorded_at + timedelta(seconds=i), e.id),
        )
    return [str(e.id) for e in envelopes]


def _objects(s3: Any, bucket: str) -> dict[str, Any]:
    listing = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: o for o in listing}


def _lines(s3: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return [json.loads(line) for line in gzip.decompress(body).splitlines()]


def test_closed_windows_are_archived_once_and_open_ones_wait(
    conn: psycopg.Connection[Any], s3: Any, bucket: str
) -> None:
    now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    two_ago = this_hour - 2 * HOUR
    one_ago = this_hour - HOUR
    ids_two = _seed(conn, two_ago + timedelta(minutes=5), 3)
    ids_one = _seed(conn, one_ago + timedelta(minutes=1), 2)
    _seed(conn, now, 4)  # the current hour is still open

    done = archive_closed_windows(conn, s3, bucket, grace=timedelta(0), now=now)

    assert [(w.start, w.rows) for w in done] == [(two_ago, 3), (one_ago, 2)]
    objects = _objects(s3, bucket)
    assert sorted(objects) == sorted(
        [object_key("audit", two_ago, 3600), object_key("audit", one_ago, 3600)]
    )
    assert object_key("audit", two_ago, 3600).startswith(f"audit/{two_ago:%Y/%m/%d}/")
    lines = _lines(s3, bucket, object_key("audit", two_ago, 3600))
    assert [line["envelope"]["id"] for line in lines] == ids_two
    assert lines[0]["kafka"] == {"topic": "tasks", "partition": 0, "offset": 0}
    assert [line["envelope"]["id"] for line in _lines(s3, bucket, done[1].key)] == ids_one
    body = s3.get_object(Bucket=bucket, Key=done[0].key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == done[0].sha256

    # Re-running uploads nothing new and leaves the objects untouched.
    assert archive_closed_windows(conn, s3, bucket, grace=timedelta(0), now=now) == []
    again = _objects(s3, bucket)
    assert {k: o["ETag"] for k, o in again.items()} == {k: o["ETag"] for k, o in objects.items()}
    assert conn.execute("SELECT count(*) FROM audit_archive").fetchone()[0] == 2  # type: ignore[index]

    # An hour later the then-current window has closed and is archived on its own.
    later = archive_closed_windows(conn, s3, bucket, grace=timedelta(0), now=now + HOUR)
    assert [(w.start, w.rows) for w in later] == [(this_hour, 4)]


def test_grace_period_keeps_a_just_closed_window_open(
    conn: psycopg.Connection[Any], s3: Any, bucket: str
) -> None:
    now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    _seed(conn, this_hour - HOUR, 1)
    just_after = this_hour + timedelta(minutes=2)
    assert (
        archive_closed_windows(conn, s3, bucket, grace=timedelta(minutes=5), now=just_after) == []
    )
    assert (
        len(
            archive_closed_windows(
                conn, s3, bucket, grace=timedelta(minutes=5), now=this_hour + timedelta(minutes=6)
            )
        )
        == 1
    )


def test_a_crash_between_upload_and_bookkeeping_rewrites_identical_bytes(
    conn: psycopg.Connection[Any], s3: Any, bucket: str
) -> None:
    now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    start = now.replace(minute=0, second=0, microsecond=0) - 3 * HOUR
    _seed(conn, start, 5)
    (first,) = archive_closed_windows(conn, s3, bucket, grace=timedelta(0), now=now)
    conn.execute("DELETE FROM audit_archive")  # as if the process died before recording it
    (second,) = archive_closed_windows(conn, s3, bucket, grace=timedelta(0), now=now)
    assert (second.key, second.sha256, second.rows) == (first.key, first.sha256, 5)
    assert len(_objects(s3, bucket)) == 1


def test_archive_command_uses_the_bucket_from_settings(
    conn: psycopg.Connection[Any],
    s3: Any,
    bucket: str,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    _seed(conn, now - 5 * HOUR, 2)
    use_database(monkeypatch, database_url)
    monkeypatch.setenv("AUDIT_ARCHIVE_BUCKET", bucket)
    first = CliRunner().invoke(app, ["archive"])
    second = CliRunner().invoke(app, ["archive"])
    assert first.exit_code == 0, first.output
    assert "archived 1 window(s)" in first.output
    assert "archived 0 window(s)" in second.output
    assert len(_objects(s3, bucket)) == 1


def test_archive_command_without_a_bucket_fails_clearly(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_database(monkeypatch, database_url)
    monkeypatch.delenv("AUDIT_ARCHIVE_BUCKET", raising=False)
    result = CliRunner().invoke(app, ["archive"])
    assert result.exit_code == 2
    assert "AUDIT_ARCHIVE_BUCKET" in result.output
