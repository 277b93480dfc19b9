"""Reads for GET /api/v1/events/{id} and GET /api/v1/audit (asyncio connections).

Delivery status is the notifier's table and the audit trail is the audit app's: both live in
the one database every app shares (a single DB_NAME fact), each in its app's schema where the
apps have their own roles (their migrations grant events-api SELECT on exactly these tables);
`stream_storage.status_tables` finds them, or says they are not readable here (then the answers
say "unknown", never fail).

Tenancy: an audit entry belongs to the tenant named in its envelope's `data.tenant` (events-api
writes it on every event and task change; the reminders app copies it onto reminders), indexed
by the audit app's migration 0003.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from apps.events_api.cursors import decode_cursor, encode_cursor
from apps.events_api.stream_storage import StatusTables, on_table, status_tables

_EVENT = """
SELECT id, category, message, description, fields, correlation_id, received_at
FROM events WHERE id = %s AND api_key_id = %s
"""
_DELIVERIES = """
SELECT channel, status, attempts, last_status_code, left(last_error, 500) AS last_error,
       first_attempt_at, sent_at
FROM {} WHERE event_id = %s ORDER BY channel
"""
_AUDITED = "SELECT recorded_at FROM {} WHERE event_id = %s"


async def tables(conn: psycopg.AsyncConnection) -> StatusTables:
    return await status_tables(conn)


async def event_with_status(
    conn: psycopg.AsyncConnection, key_id: uuid.UUID, event_id: uuid.UUID
) -> dict[str, Any] | None:
    """The caller's event with its per-channel deliveries and audit state, or None."""
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(_EVENT, (event_id, key_id))
    event = await cur.fetchone()
    if event is None:
        return None
    present = await status_tables(conn)
    event["deliveries"] = None
    event["audited"] = None
    event["audited_at"] = None
    if present.deliveries:
        await cur.execute(on_table(_DELIVERIES, present.deliveries_table), (event_id,))
        event["deliveries"] = await cur.fetchall()
    if present.audit:
        await cur.execute(on_table(_AUDITED, present.audit_table), (event_id,))
        row = await cur.fetchone()
        event["audited"] = row is not None
        event["audited_at"] = row["recorded_at"] if row else None
    return event


# --- the audit trail -----------------------------------------------------------------------------


class AuditCursorError(ValueError):
    pass


@dataclass(frozen=True)
class AuditQuery:
    tenant: str
    subject: str | None = None
    event_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50
    after: tuple[datetime, uuid.UUID] | None = None

    def shape(self) -> list[Any]:
        return [self.subject, self.event_type, str(self.since), str(self.until)]

    def cursor_after(self, row: dict[str, Any]) -> str:
        payload = {
            "t": row["occurred_at"].isoformat(),
            "i": str(row["event_id"]),
            "f": self.shape(),
        }
        return encode_cursor(payload)

    def with_cursor(self, cursor: str) -> AuditQuery:
        try:
            payload = decode_cursor(cursor)
            after = (datetime.fromisoformat(payload["t"]), uuid.UUID(payload["i"]))
            shape = payload["f"]
        except (ValueError, KeyError, TypeError, UnicodeEncodeError):
            raise AuditCursorError("is not a cursor this API returned") from None
        if shape != self.shape() or after[0].tzinfo is None:
            raise AuditCursorError("was returned for other filters; start again")
        return AuditQuery(**{**self.__dict__, "after": after})


# Unset filters are NULL and drop out: one statement (the table named by `status_tables`).
# Entries of the tenant only.
_AUDIT_PAGE = """
SELECT event_id, event_type AS type, subject, source, correlation_id, occurred_at, recorded_at,
       envelope -> 'data' AS data
FROM {}
WHERE (envelope -> 'data' ->> 'tenant') = %(tenant)s
  AND (%(subject)s::text IS NULL OR subject = %(subject)s::text)
  AND (%(type)s::text IS NULL OR event_type = %(type)s::text)
  AND (%(since)s::timestamptz IS NULL OR occurred_at >= %(since)s::timestamptz)
  AND (%(until)s::timestamptz IS NULL OR occurred_at < %(until)s::timestamptz)
  AND (%(after_t)s::timestamptz IS NULL
       OR (occurred_at, event_id) > (%(after_t)s::timestamptz, %(after_id)s::uuid))
ORDER BY occurred_at, event_id
LIMIT %(limit)s
"""


async def audit_page(
    conn: psycopg.AsyncConnection, tables: StatusTables, query: AuditQuery
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the tenant's audit entries, oldest first, and the next cursor."""
    after_t, after_id = query.after if query.after else (None, None)
    cur = conn.cursor(row_factory=dict_row)
    await cur.execute(
        on_table(_AUDIT_PAGE, tables.audit_table),
        {
            "tenant": query.tenant,
            "subject": query.subject,
            "type": query.event_type,
            "since": query.since,
            "until": query.until,
            "after_t": after_t,
            "after_id": after_id,
            "limit": query.limit + 1,
        },
    )
    rows = await cur.fetchall()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return rows, (query.cursor_after(rows[-1]) if more and rows else None)
