"""Request dependencies: the pools, the caller's API key (401/429), the correlation id.

The small ones are `async def` on purpose: FastAPI runs a plain `def` dependency in the
threadpool, and a threadpool hop (thread handoff, GIL churn) costs more than the work itself.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from apps.events_api.keys import (
    ApiKey,
    KeyCache,
    find_key_by_digest,
    find_key_by_digest_async,
    hash_key,
)
from apps.events_api.limits import admit_request, limit_time
from apps.events_api.settings import ApiSettings

_bearer = HTTPBearer(auto_error=False, description="An API key from `events-api create-key`.")
MAX_KEY_LENGTH = 200


async def get_pool(request: Request) -> ConnectionPool:
    pool: ConnectionPool = request.app.state.pool
    return pool


async def get_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


async def correlation_id(request: Request) -> str:
    return str(getattr(request.state, "correlation_id", None) or uuid.uuid4().hex)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


async def get_key_cache(request: Request) -> KeyCache:
    cache: KeyCache = request.app.state.key_cache
    return cache


def _presented_digest(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None:
        raise _unauthorized("missing bearer API key")
    presented = credentials.credentials
    if not presented or len(presented) > MAX_KEY_LENGTH:
        raise _unauthorized("invalid API key")
    return hash_key(presented)


def api_key(
    request: Request,
    pool: Annotated[ConnectionPool, Depends(get_pool)],
    cache: Annotated[KeyCache, Depends(get_key_cache)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    """The caller's active key, admitted by its per-minute rate limit."""
    digest = _presented_digest(credentials)
    key = cache.get(digest)
    # The pool is in autocommit mode: the rate upsert is atomic on its own, and its row lock
    # lasts one statement, not a transaction.
    with pool.connection() as conn:
        if key is None:
            key = find_key_by_digest(conn, digest)
            if key is None:
                raise _unauthorized("invalid API key")
            cache.put(digest, key)
        admit_request(conn, key, limit_time(request.app.state))
    return key


async def event_key(request: Request, credentials: HTTPAuthorizationCredentials | None) -> ApiKey:
    """The caller's active key, NOT yet counted: `events_api_accept_event` counts rate and
    quota itself, in the statement that stores the event. A cached key costs no round trip.

    A plain helper rather than a dependency tree: FastAPI resolves each dependency per request
    at a cost comparable to the whole database round trip of this route.
    """
    digest = _presented_digest(credentials)
    cache: KeyCache = request.app.state.key_cache
    key = cache.get(digest)
    if key is None:
        pool: AsyncConnectionPool = request.app.state.async_pool
        async with pool.connection() as conn:
            key = await find_key_by_digest_async(conn, digest)
        if key is None:
            raise _unauthorized("invalid API key")
        cache.put(digest, key)
    return key


Pool = Annotated[ConnectionPool, Depends(get_pool)]
Settings = Annotated[ApiSettings, Depends(get_settings)]
CallerKey = Annotated[ApiKey, Depends(api_key)]


def missing_scope(scope: str) -> HTTPException:
    return HTTPException(403, f"this API key lacks the {scope!r} scope")


def _scoped(scope: str) -> Any:
    async def check(key: CallerKey) -> ApiKey:
        if scope not in key.scopes:
            raise missing_scope(scope)
        return key

    return Depends(check)


TasksReader = Annotated[ApiKey, _scoped("tasks:read")]
TasksWriter = Annotated[ApiKey, _scoped("tasks:write")]
EventsReader = Annotated[ApiKey, _scoped("events:read")]
AuditReader = Annotated[ApiKey, _scoped("audit:read")]


class _EventKeyBearer(HTTPBearer):
    """The bearer scheme (documented in OpenAPI like `_bearer`) that resolves straight to the
    caller's key: one dependency node, resolved before the body is validated (401 before 422,
    as on every other route)."""

    async def __call__(self, request: Request) -> ApiKey:  # type: ignore[override]
        key = await event_key(request, await super().__call__(request))
        if "events:write" not in key.scopes:
            raise missing_scope("events:write")
        return key


EventCallerKey = Annotated[
    ApiKey,
    Depends(
        _EventKeyBearer(
            scheme_name="HTTPBearer",  # one scheme in the OpenAPI document, shared with `_bearer`
            auto_error=False,
            description="An API key from `events-api create-key`.",
        )
    ),
]
CorrelationId = Annotated[str, Depends(correlation_id)]
