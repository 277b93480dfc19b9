"""The live stream's queries: outbox rows in cursor order, and their delivery/audit status.

The cursor is `(stream_xid, id)` (migration 0003 says why): rows are read only below the oldest
running transaction (`pg_snapshot_xmin`), so everything up to a cursor is final and a resumed
stream has no gaps. Delivery (`notifier_deliveries`) and audit (`audit_log`) rows are other
apps' tables in the same database (one DB_NAME for all apps); where they do not exist, status
is reported as unknown rather than failing.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

_CURSOR = re.compile(r"^(\d{1,20})-(\d{1,20})$")
MAX_CURSOR_PART = 2**63 - 1


@dataclass(frozen=True, order=True)
class Cursor:
    """A position in the stream, sent as the SSE `id:` (`<xid>-<outbox id>`)."""

    xid: int
    id: int

    def __str__(self) -> str:
        return f"{self.xid}-{self.id}"

    @classmethod
    def parse(cls, raw: str) -> Cursor:
        match = _CURSOR.match(raw.strip())
        if match is None:
            raise ValueError("must look like <xid>-<id> (two decimal numbers), as the stream sent")
        xid, row_id = int(match[1]), int(match[2])
        if xid > MAX_CURSOR_PART or row_id > MAX_CURSOR_PART:
            raise ValueError("is out of range")
        return cls(xid, row_id)


START = Cursor(0, 0)


@dataclass(frozen=True)
class OutboxItem:
    cursor: Cursor
    api_key_id: uuid.UUID | None
    event_id: uuid.UUID
    envelope: dict[str, Any] | None  # None when the hub did not ask for the payload


# `stream_xid < pg_snapshot_xmin(pg_current_snapshot())` in the two queries below: only rows
# whose transaction is older than every transaction still running, i.e. final.
_HEAD = """
SELECT stream_xid::text, id FROM outbox
WHERE stream_xid < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY stream_xid DESC, id DESC LIMIT 1
"""
# Every key's new rows (the hub's one query per wake-up); payloads only for keys with clients.
_AFTER = """
SELECT stream_xid::text, id, api_key_id, event_id,
       CASE WHEN api_key_id = ANY(%s) THEN payload END
FROM outbox
WHERE (stream_xid, id) > (%s::text::xid8, %s)
  AND stream_xid < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY stream_xid, id LIMIT %s
"""
_KEY_RANGE = """
SELECT stream_xid::text, id, api_key_id, event_id, payload FROM outbox
WHERE api_key_id = %s
  AND (stream_xid, id) > (%s::text::xid8, %s) AND (stream_xid, id) <= (%s::text::xid8, %s)
ORDER BY stream_xid, id LIMIT %s
"""
_KEY_LATEST = """
SELECT stream_xid::text, id, api_key_id, event_id, payload FROM outbox
WHERE api_key_id = %s AND (stream_xid, id) <= (%s::text::xid8, %s)
ORDER BY stream_xid DESC, id DESC LIMIT %s
"""
_OLDEST = "SELECT stream_xid::text, id FROM outbox ORDER BY stream_xid, id LIMIT 1"
# Where the other apps' tables are, and whether this session may read them: in the public
# schema (a database shared by one role, as in the tests), or each in its app's schema (the
# per-app roles of deployed envs, where the notifier's and audit's migrations grant events-api
# SELECT on exactly these tables). The schema on this session's search path wins.
_STATUS_TABLES = """
SELECT c.relname, n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname IN ('notifier_deliveries', 'audit_log') AND c.relkind IN ('r', 'p')
  AND has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT')
ORDER BY n.nspname = ANY(current_schemas(false)) DESC, n.nspname
"""
_DELIVERIES = """
SELECT event_id, channel, status, attempts FROM {}
WHERE event_id = ANY(%s) ORDER BY event_id, channel
"""
_AUDITED = "SELECT event_id FROM {} WHERE event_id = ANY(%s)"
_KEY_ACTIVE = "SELECT 1 FROM api_keys WHERE id = %s AND revoked_at IS NULL"


def _item(row: tuple[Any, ...]) -> OutboxItem:
    xid, row_id, key_id, event_id, payload = row
    envelope = json.loads(bytes(payload)) if payload is not None else None
    return OutboxItem(Cursor(int(xid), int(row_id)), key_id, event_id, envelope)


async def head(conn: psycopg.AsyncConnection) -> Cursor:
    """The last final row's cursor: every row committed later sorts after it."""
    row = await (await conn.execute(_HEAD)).fetchone()
    return Cursor(int(row[0]), int(row[1])) if row else START


async def oldest(conn: psycopg.AsyncConnection) -> Cursor | None:
    row = await (await conn.execute(_OLDEST)).fetchone()
    return Cursor(int(row[0]), int(row[1])) if row else None


async def read_after(
    conn: psycopg.AsyncConnection, after: Cursor, wanted_keys: list[uuid.UUID], limit: int
) -> list[OutboxItem]:
    cur = await conn.execute(_AFTER, (wanted_keys, str(after.xid), after.id, limit))
    return [_item(row) for row in await cur.fetchall()]


async def read_key_range(
    conn: psycopg.AsyncConnection,
    key_id: uuid.UUID,
    after: Cursor,
    upto: Cursor,
    limit: int,
) -> list[OutboxItem]:
    """One key's rows in (after, upto], oldest first."""
    cur = await conn.execute(
        _KEY_RANGE, (key_id, str(after.xid), after.id, str(upto.xid), upto.id, limit)
    )
    return [_item(row) for row in await cur.fetchall()]


async def read_key_latest(
    conn: psycopg.AsyncConnection, key_id: uuid.UUID, upto: Cursor, limit: int
) -> list[OutboxItem]:
    """One key's last `limit` rows up to `upto`, oldest first (a new client's history)."""
    cur = await conn.execute(_KEY_LATEST, (key_id, str(upto.xid), upto.id, limit))
    return [_item(row) for row in reversed(await cur.fetchall())]


@dataclass(frozen=True)
class StatusTables:
    """The notifier's and audit's tables as this session can read them (None: not here)."""

    deliveries_table: sql.Identifier | None = None
    audit_table: sql.Identifier | None = None

    @property
    def deliveries(self) -> bool:
        return self.deliveries_table is not None

    @property
    def audit(self) -> bool:
        return self.audit_table is not None


async def status_tables(conn: psycopg.AsyncConnection) -> StatusTables:
    found: dict[str, sql.Identifier] = {}
    for relname, schema in await (await conn.execute(_STATUS_TABLES)).fetchall():
        found.setdefault(str(relname), sql.Identifier(str(schema), str(relname)))
    return StatusTables(found.get("notifier_deliveries"), found.get("audit_log"))


def on_table(template: str, table: sql.Identifier | None) -> sql.Composed:
    """A statement over one of the other apps' tables (named by `status_tables`)."""
    assert table is not None
    return sql.SQL(template).format(table)


async def statuses(
    conn: psycopg.AsyncConnection, tables: StatusTables, event_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    """`{event_id: {"audited": bool|None, "deliveries": [...]|None}}`; None = not tracked in
    this database (the app's table is absent)."""
    found: dict[uuid.UUID, dict[str, Any]] = {
        event_id: {
            "audited": False if tables.audit else None,
            "deliveries": [] if tables.deliveries else None,
        }
        for event_id in event_ids
    }
    if not event_ids:
        return found
    if tables.deliveries:
        cur = await conn.execute(on_table(_DELIVERIES, tables.deliveries_table), (event_ids,))
        for event_id, channel, status, attempts in await cur.fetchall():
            found[event_id]["deliveries"].append(
                {"channel": channel, "status": status, "attempts": attempts}
            )
    if tables.audit:
        cur = await conn.execute(on_table(_AUDITED, tables.audit_table), (event_ids,))
        for (event_id,) in await cur.fetchall():
            found[event_id]["audited"] = True
    return found


async def key_active(conn: psycopg.AsyncConnection, key_id: uuid.UUID) -> bool:
    return await (await conn.execute(_KEY_ACTIVE, (key_id,))).fetchone() is not None
