"""Request dependencies: the pool, the caller's API key (401/429), the correlation id."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import ConnectionPool

from apps.events_api.keys import ApiKey, KeyCache, find_key_by_digest, hash_key
from apps.events_api.limits import admit_request
from apps.events_api.settings import ApiSettings

_bearer = HTTPBearer(auto_error=False, description="An API key from `events-api create-key`.")
MAX_KEY_LENGTH = 200


def get_pool(request: Request) -> ConnectionPool:
    pool: ConnectionPool = request.app.state.pool
    return pool


def get_settings(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


def correlation_id(request: Request) -> str:
    return str(getattr(request.state, "correlation_id", None) or uuid.uuid4().hex)


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


def get_key_cache(request: Request) -> KeyCache:
    cache: KeyCache = request.app.state.key_cache
    return cache


def api_key(
    pool: Annotated[ConnectionPool, Depends(get_pool)],
    cache: Annotated[KeyCache, Depends(get_key_cache)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    """The caller's active key, admitted by its per-minute rate limit."""
    if credentials is None:
        raise _unauthorized("missing bearer API key")
    presented = credentials.credentials
    if not presented or len(presented) > MAX_KEY_LENGTH:
        raise _unauthorized("invalid API key")
    digest = hash_key(presented)
    key = cache.get(digest)
    # The pool is in autocommit mode: the rate upsert is atomic on its own, and its row lock
    # lasts one statement, not a transaction.
    with pool.connection() as conn:
        if key is None:
            key = find_key_by_digest(conn, digest)
            if key is None:
                raise _unauthorized("invalid API key")
            cache.put(digest, key)
        admit_request(conn, key)
    return key


Pool = Annotated[ConnectionPool, Depends(get_pool)]
Settings = Annotated[ApiSettings, Depends(get_settings)]
CallerKey = Annotated[ApiKey, Depends(api_key)]
CorrelationId = Annotated[str, Depends(correlation_id)]
