"""Export closed windows of the audit log to S3 as gzip JSON Lines, idempotently.

Idempotency has two legs:
- Object keys are a pure function of the window (`audit/YYYY/MM/DD/<start>_<seconds>s.jsonl.gz`)
  and the bytes are reproducible (rows in a fixed order, gzip header without a timestamp), so a
  re-upload after a crash between upload and bookkeeping writes the very same object.
- `audit_archive` records every finished window; a re-run skips them and uploads nothing.

A window is "closed" once it ended more than `grace` ago by the DATABASE clock (the clock that
stamps `recorded_at`), leaving room for batch transactions still in flight at the boundary.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from apps.audit import store

log = logging.getLogger(__name__)

ARCHIVE_LOCK_KEY = 0x41554454  # "AUDT": one archiver at a time, across replicas and cron runs
SPOOL_IN_MEMORY_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class ArchivedWindow:
    start: datetime
    end: datetime
    key: str
    rows: int
    sha256: str


def object_key(prefix: str, start: datetime, window_s: int) -> str:
    stamp = start.strftime("%Y%m%dT%H%M%SZ")
    return f"{prefix.strip('/')}/{start:%Y/%m/%d}/{stamp}_{window_s}s.jsonl.gz"


def archive_closed_windows(
    conn: psycopg.Connection[Any],
    s3: Any,
    bucket: str,
    *,
    prefix: str = "audit",
    window_s: int = 3600,
    grace: timedelta = timedelta(minutes=5),
    now: datetime | None = None,
    on_window: Callable[[ArchivedWindow], None] | None = None,
) -> list[ArchivedWindow]:
    """Upload every closed, not yet archived window; return what was uploaded this run.

    `conn` must be in autocommit mode: each window is bookkept in its own transaction, so a
    failure half-way keeps the windows already done.
    """
    if not conn.execute("SELECT pg_try_advisory_lock(%s)", (ARCHIVE_LOCK_KEY,)).fetchone()[0]:  # type: ignore[index]
        log.warning("another audit archive run holds the lock; nothing done")
        return []
    try:
        if now is None:
            now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        assert now is not None
        closed_before = now - grace
        width = timedelta(seconds=window_s)
        done: list[ArchivedWindow] = []
        for start in store.pending_windows(conn, window_s, closed_before):
            if start + width > closed_before:
                continue  # still open
            window = _archive_window(conn, s3, bucket, prefix, start, window_s)
            done.append(window)
            if on_window is not None:
                on_window(window)
        return done
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (ARCHIVE_LOCK_KEY,))


def _archive_window(
    conn: psycopg.Connection[Any], s3: Any, bucket: str, prefix: str, start: datetime, window_s: int
) -> ArchivedWindow:
    end = start + timedelta(seconds=window_s)
    key = object_key(prefix, start, window_s)
    digest = hashlib.sha256()
    rows = 0
    # Spool to disk beyond a few MB: an hour of a busy platform does not fit comfortably in RAM.
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES) as spool:
        # mtime=0 and no file name in the header make the gzip bytes reproducible.
        with (
            gzip.GzipFile(fileobj=spool, mode="wb", mtime=0, filename="") as gz,
            conn.transaction(),
        ):
            for row in store.window_rows(conn, start, end):
                gz.write(store.encode_jsonl_line(row))
                rows += 1
        spool.seek(0)
        for chunk in iter(lambda: spool.read(1024 * 1024), b""):
            digest.update(chunk)
        spool.seek(0)
        s3.upload_fileobj(
            spool,
            bucket,
            key,
            ExtraArgs={
                "ContentType": "application/gzip",
                "Metadata": {"rows": str(rows), "sha256": digest.hexdigest()},
            },
        )
    with conn.transaction():
        store.record_archived(conn, start, end, key, rows, digest.hexdigest())
    log.info(
        "archived audit window", extra={"window_start": start.isoformat(), "rows": rows, "key": key}
    )
    return ArchivedWindow(start=start, end=end, key=key, rows=rows, sha256=digest.hexdigest())
