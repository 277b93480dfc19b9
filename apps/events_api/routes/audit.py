"""`GET /api/v1/audit`: the audit trail of the caller's tenant, cursor-paged.

Who owns it: the audit app owns the data (it writes `audit_log` and its schema); this read
route is served by events-api, the platform's one public API, so it shares its keys, scopes,
limits, error model and OpenAPI document instead of a second authenticated service with its own
copy of all that. It needs a key with the `audit:read` scope and returns only entries whose
tenant is the key's (`events-api create-key --tenant ... --scope audit:read`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from psycopg_pool import AsyncConnectionPool

from apps.common.envelope import EVENT_TYPES
from apps.events_api import read_storage
from apps.events_api.deps import AuditReader
from apps.events_api.routes import COMMON_RESPONSES
from apps.events_api.schemas import AuditEntry, AuditPage, Problem, UtcDatetime

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], responses=COMMON_RESPONSES)

EventTypeParam = Annotated[
    str | None,
    Query(alias="type", description=f"One of: {', '.join(EVENT_TYPES)}.", max_length=64),
]


def _invalid(name: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", name), "msg": message, "type": "value_error"}])


@router.get(
    "",
    response_model=AuditPage,
    responses={503: {"model": Problem, "description": "No audit log in this database."}},
)
async def audit_trail(
    request: Request,
    key: AuditReader,
    subject: Annotated[
        str | None, Query(min_length=1, max_length=200, description="A task or event id.")
    ] = None,
    event_type: EventTypeParam = None,
    since: Annotated[UtcDatetime | None, Query(alias="from", description="occurred_at >=")] = None,
    until: Annotated[UtcDatetime | None, Query(alias="to", description="occurred_at <")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=2000, description="From `next_cursor`.")] = None,
) -> AuditPage:
    """Audit entries of the key's tenant, oldest first."""
    if event_type is not None and event_type not in EVENT_TYPES:
        raise _invalid("type", f"unknown event type; allowed: {', '.join(EVENT_TYPES)}")
    if subject is not None and "\x00" in subject:
        raise _invalid("subject", "must not contain NUL characters")
    if since is not None and until is not None and until <= since:
        raise _invalid("to", "must be after from")
    query = read_storage.AuditQuery(key.tenant, subject, event_type, since, until, limit)
    if cursor is not None:
        try:
            query = query.with_cursor(cursor)
        except read_storage.AuditCursorError as exc:
            raise _invalid("cursor", str(exc)) from None
    pool: AsyncConnectionPool = request.app.state.async_pool
    async with pool.connection() as conn:
        tables = await read_storage.tables(conn)
        if not tables.audit:
            raise HTTPException(503, "the audit log is not readable in this database")
        rows, next_cursor = await read_storage.audit_page(conn, tables, query)
    return AuditPage(
        items=[AuditEntry.model_validate(r) for r in rows], limit=limit, next_cursor=next_cursor
    )
