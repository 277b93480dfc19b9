"""Rebuild `audit_log` from the S3 archive that `audit archive` wrote.

Safety properties, and where each comes from:
- Idempotent: rows go in with `ON CONFLICT (event_id) DO NOTHING`, so restoring an object whose
  rows are (partly) still there adds only the missing ones; every row ends up there once.
- Resumable: a run (`audit_restore_runs`) records each finished object
  (`audit_restore_objects`) in the SAME transaction as its rows. A run killed at any point has
  either committed an object completely, recorded, or not at all; a rerun continues the open run
  after its last finished object. A finished run is not reopened: the next `audit restore`
  starts a new run and re-checks every object (cheap: the inserts find their rows present).
- Verified: each object's bytes must match the sha256 the archiver recorded (object metadata),
  its line count must match the recorded `rows`, and after the insert every one of its event
  ids must be present in `audit_log`. A mismatch stops the run before that object is recorded.
- Works on a dropped table: `audit_log` is recreated from the migration that declares it (every
  statement there is `IF NOT EXISTS`), because `schema_migrations` still lists that version
  and `audit migrate` would not run it again.

The archive bookkeeping (`audit_archive`) is restored too, from the object keys and metadata,
so the hourly archiver does not export the restored windows a second time.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import psycopg

from apps.audit.archive import SPOOL_IN_MEMORY_BYTES
from apps.common.db import migrate

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
AUDIT_LOG_MIGRATION = MIGRATIONS / "0001_audit_log.sql"
"""Declares `audit_log` and `audit_archive`, only with `IF NOT EXISTS`: safe to run again."""

RESTORE_LOCK_KEY = 0x41555253  # "AURS": one restore at a time per database
BATCH_ROWS = 2000

_KEY_TAIL = re.compile(
    r"/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/(?P<stamp>\d{8}T\d{6}Z)_(?P<w>\d+)s\.jsonl\.gz$"
)


class RestoreError(RuntimeError):
    """The archive or the database does not allow a faithful restore; the message says why."""


@dataclass(frozen=True)
class ArchiveObject:
    """One archived window as listed in S3, with what the archiver recorded about it."""

    key: str
    window_start: datetime
    window_s: int
    row_count: int
    sha256: str
    size: int

    @property
    def window_end(self) -> datetime:
        return self.window_start + timedelta(seconds=self.window_s)


@dataclass(frozen=True)
class RestoredObject:
    key: str
    row_count: int
    inserted: int
    """Rows that were missing and are back; row_count - inserted were already present."""


@dataclass
class RestoreReport:
    run_id: int
    resumed: bool
    objects: list[ArchiveObject]
    already_done: int
    """Objects this run had finished before a crash (skipped on resume)."""
    restored: list[RestoredObject]
    ignored_keys: list[str]
    """Keys under the prefix that are not archive windows (left alone, reported)."""

    @property
    def rows_expected(self) -> int:
        return sum(o.row_count for o in self.objects)

    @property
    def rows_inserted(self) -> int:
        return sum(r.inserted for r in self.restored)


def parse_object_key(prefix: str, key: str) -> tuple[datetime, int] | None:
    """(window start, window seconds) of an archive key (`apps.audit.archive.object_key`)."""
    root = prefix.strip("/")
    if not key.startswith(f"{root}/"):
        return None
    match = _KEY_TAIL.search(key[len(root) :])
    if match is None or match.start() != 0:
        return None
    start = datetime.strptime(match["stamp"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if (match["y"], match["m"], match["d"]) != (f"{start:%Y}", f"{start:%m}", f"{start:%d}"):
        return None  # the date folder must be the window's own date
    return start, int(match["w"])


def list_archive(
    s3: Any,
    bucket: str,
    prefix: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[list[ArchiveObject], list[str]]:
    """Archive objects under `prefix`, oldest window first, and the keys that are not windows.

    `since`/`until` select windows by their start (inclusive / exclusive).
    """
    objects: list[ArchiveObject] = []
    ignored: list[str] = []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=f"{prefix.strip('/')}/"):
        for item in page.get("Contents", []):
            key = item["Key"]
            parsed = parse_object_key(prefix, key)
            if parsed is None:
                ignored.append(key)
                continue
            start, window_s = parsed
            if (since and start < since) or (until and start >= until):
                continue
            metadata = s3.head_object(Bucket=bucket, Key=key).get("Metadata", {})
            rows, digest = metadata.get("rows"), metadata.get("sha256")
            if rows is None or not rows.isdigit() or not digest:
                raise RestoreError(
                    f"s3://{bucket}/{key}: no recorded row count/sha256 (metadata 'rows' and "
                    f"'sha256', written by `audit archive`); got {metadata!r}"
                )
            objects.append(
                ArchiveObject(key, start, window_s, int(rows), digest, int(item.get("Size", 0)))
            )
    objects.sort(key=lambda o: (o.window_start, o.key))
    return objects, ignored


def ensure_schema(conninfo: str) -> bool:
    """Apply pending audit migrations, and recreate `audit_log` if it was dropped.

    Returns True when the table had to be recreated.
    """
    migrate(conninfo, "audit", MIGRATIONS)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass('audit_log') IS NULL").fetchone()
        if not row or not row[0]:
            return False
        conn.execute(AUDIT_LOG_MIGRATION.read_text(encoding="utf-8").encode())
    log.warning("audit_log was missing; recreated it from %s", AUDIT_LOG_MIGRATION.name)
    return True


# --- the database side ---------------------------------------------------------------------------

# The archive line is {"envelope": ..., "recorded_at": ..., "kafka": {...}}; PostgreSQL extracts
# the columns exactly as the consumer's insert does, plus the original recorded_at (archive
# windows are cut on it, so it must survive a restore unchanged).
_INSERT_LINES = """
INSERT INTO audit_log (event_id, event_type, version, source, subject, correlation_id,
                       occurred_at, recorded_at, kafka_topic, kafka_partition, kafka_offset,
                       envelope)
SELECT (l->'envelope'->>'id')::uuid, l->'envelope'->>'type', (l->'envelope'->>'version')::int,
       l->'envelope'->>'source', l->'envelope'->>'subject', l->'envelope'->>'correlation_id',
       (l->'envelope'->>'occurred_at')::timestamptz, (l->>'recorded_at')::timestamptz,
       l->'kafka'->>'topic', (l->'kafka'->>'partition')::int, (l->'kafka'->>'offset')::bigint,
       l->'envelope'
  FROM jsonb_array_elements(%s::jsonb) AS l
ON CONFLICT (event_id) DO NOTHING
"""


def _open_run(conn: psycopg.Connection[Any], bucket: str, prefix: str) -> tuple[int, bool]:
    row = conn.execute(
        "SELECT run_id FROM audit_restore_runs"
        " WHERE bucket = %s AND prefix = %s AND finished_at IS NULL",
        (bucket, prefix),
    ).fetchone()
    if row is not None:
        return int(row[0]), True
    row = conn.execute(
        "INSERT INTO audit_restore_runs (bucket, prefix) VALUES (%s, %s) RETURNING run_id",
        (bucket, prefix),
    ).fetchone()
    assert row is not None
    return int(row[0]), False


def _done_keys(conn: psycopg.Connection[Any], run_id: int) -> set[str]:
    rows = conn.execute(
        "SELECT object_key FROM audit_restore_objects WHERE run_id = %s", (run_id,)
    ).fetchall()
    return {str(r[0]) for r in rows}


def _recorded_windows(conn: psycopg.Connection[Any]) -> dict[str, tuple[int, str]]:
    """What audit_archive (if it survived) says about each object: (row_count, sha256)."""
    rows = conn.execute("SELECT object_key, row_count, sha256 FROM audit_archive").fetchall()
    return {str(key): (int(count), str(digest)) for key, count, digest in rows}


def _insert_and_verify(conn: psycopg.Connection[Any], key: str, lines: list[bytes]) -> int:
    ids: list[str] = []
    for number, line in enumerate(lines, 1):
        try:
            ids.append(str(json.loads(line)["envelope"]["id"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise RestoreError(
                f"{key}: line {number} of the batch is not an archived audit row ({exc})"
            ) from None
    cursor = conn.execute(_INSERT_LINES, ((b"[" + b",".join(lines) + b"]").decode("utf-8"),))
    inserted = cursor.rowcount
    present = conn.execute(
        "SELECT count(*) FROM audit_log WHERE event_id = ANY(%s::uuid[])", (ids,)
    ).fetchone()
    if not present or int(present[0]) != len(set(ids)) or len(set(ids)) != len(ids):
        raise RestoreError(
            f"{key}: {len(ids)} archived rows but {present[0] if present else 0} of their "
            "event ids are in audit_log after the insert"
        )
    return inserted


def _download(s3: Any, bucket: str, obj: ArchiveObject, spool: IO[bytes]) -> None:
    digest = hashlib.sha256()
    body = s3.get_object(Bucket=bucket, Key=obj.key)["Body"]
    for chunk in iter(lambda: body.read(1024 * 1024), b""):
        digest.update(chunk)
        spool.write(chunk)
    if digest.hexdigest() != obj.sha256:
        raise RestoreError(
            f"s3://{bucket}/{obj.key}: sha256 {digest.hexdigest()} does not match the "
            f"archiver's {obj.sha256}; the object changed after it was archived"
        )
    spool.seek(0)


def _batches(spool: IO[bytes]) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    with gzip.GzipFile(fileobj=spool, mode="rb") as gz:
        for raw in gz:
            line = raw.rstrip(b"\n")
            if not line:
                continue
            batch.append(line)
            if len(batch) >= BATCH_ROWS:
                yield batch
                batch = []
    if batch:
        yield batch


def restore_object(
    conn: psycopg.Connection[Any],
    s3: Any,
    bucket: str,
    obj: ArchiveObject,
    run_id: int,
    on_rows: Callable[[int], None] | None = None,
) -> RestoredObject:
    """Restore one object in one transaction: its rows, its archive row and its restore row."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES) as spool:
        _download(s3, bucket, obj, spool)
        lines = inserted = 0
        with conn.transaction():
            for batch in _batches(spool):
                inserted += _insert_and_verify(conn, obj.key, batch)
                lines += len(batch)
                if on_rows is not None:
                    on_rows(len(batch))
            if lines != obj.row_count:
                raise RestoreError(
                    f"s3://{bucket}/{obj.key}: {lines} rows in the object, the archiver "
                    f"recorded {obj.row_count}"
                )
            conn.execute(
                """
                INSERT INTO audit_archive (window_start, window_end, object_key, row_count, sha256)
                VALUES (%s, %s, %s, %s, %s) ON CONFLICT (window_start) DO NOTHING
                """,
                (obj.window_start, obj.window_end, obj.key, obj.row_count, obj.sha256),
            )
            conn.execute(
                """
                INSERT INTO audit_restore_objects
                    (run_id, object_key, window_start, row_count, rows_inserted, sha256)
                VALUES (%s, %s, %s, %s, %s, %s)
                """,
                (run_id, obj.key, obj.window_start, obj.row_count, inserted, obj.sha256),
            )
    log.info(
        "restored audit archive object",
        extra={"object_key": obj.key, "rows": obj.row_count, "inserted": inserted},
    )
    return RestoredObject(obj.key, obj.row_count, inserted)


@dataclass(frozen=True)
class ArchiveSelection:
    """The archive objects a restore (or its dry run) reads: those under `s3://bucket/prefix`
    whose window starts at or after `since` and before `until`."""

    s3: Any
    bucket: str
    prefix: str = "audit"
    since: datetime | None = None
    until: datetime | None = None

    def listing(self) -> tuple[list[ArchiveObject], list[str]]:
        """`list_archive` of this selection: its objects and the keys that are not windows."""
        return list_archive(self.s3, self.bucket, self.prefix, since=self.since, until=self.until)


@dataclass(frozen=True)
class RestoreProgress:
    """Callbacks the CLI turns into a progress display; all optional."""

    on_plan: Callable[[list[ArchiveObject], int], None] | None = None
    """(objects of the run, how many were already done) once the run is planned."""
    on_rows: Callable[[int], None] | None = None
    on_object: Callable[[RestoredObject], None] | None = None


def restore_archive(
    conninfo: str, selection: ArchiveSelection, progress: RestoreProgress | None = None
) -> RestoreReport:
    """Restore every archive object of `selection` into audit_log."""
    progress = progress or RestoreProgress()
    ensure_schema(conninfo)
    objects, ignored = selection.listing()
    bucket = selection.bucket
    with psycopg.connect(conninfo, autocommit=True) as conn:
        locked = conn.execute("SELECT pg_try_advisory_lock(%s)", (RESTORE_LOCK_KEY,)).fetchone()
        if not locked or not locked[0]:
            raise RestoreError("another `audit restore` holds the lock on this database")
        try:
            _check_against_bookkeeping(conn, bucket, objects)
            run_id, resumed = _open_run(conn, bucket, selection.prefix)
            done = _done_keys(conn, run_id)
            todo = [o for o in objects if o.key not in done]
            already = len(objects) - len(todo)
            if progress.on_plan is not None:
                progress.on_plan(objects, already)
            restored: list[RestoredObject] = []
            for obj in todo:
                result = restore_object(conn, selection.s3, bucket, obj, run_id, progress.on_rows)
                restored.append(result)
                if progress.on_object is not None:
                    progress.on_object(result)
            conn.execute(
                "UPDATE audit_restore_runs SET finished_at = now() WHERE run_id = %s", (run_id,)
            )
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (RESTORE_LOCK_KEY,))
    return RestoreReport(run_id, resumed, objects, already, restored, ignored)


def _check_against_bookkeeping(
    conn: psycopg.Connection[Any], bucket: str, objects: list[ArchiveObject]
) -> None:
    """Where audit_archive survived, it must agree with the objects' own metadata."""
    recorded = _recorded_windows(conn)
    for obj in objects:
        if obj.key in recorded and recorded[obj.key] != (obj.row_count, obj.sha256):
            count, digest = recorded[obj.key]
            raise RestoreError(
                f"s3://{bucket}/{obj.key}: audit_archive recorded {count} rows / sha256 "
                f"{digest}, the object says {obj.row_count} / {obj.sha256}"
            )


def plan_restore(
    conninfo: str, selection: ArchiveSelection
) -> tuple[list[ArchiveObject], set[str], list[str]]:
    """What a restore would do, touching nothing: objects, keys the open run finished, ignored."""
    objects, ignored = selection.listing()
    done: set[str] = set()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('audit_restore_runs') IS NOT NULL").fetchone()
        if exists and exists[0]:
            row = conn.execute(
                "SELECT run_id FROM audit_restore_runs"
                " WHERE bucket = %s AND prefix = %s AND finished_at IS NULL",
                (selection.bucket, selection.prefix),
            ).fetchone()
            if row is not None:
                done = _done_keys(conn, int(row[0]))
    return objects, done, ignored
