"""API keys: generated once, shown once, stored only as a SHA-256 digest.

Why SHA-256 and not bcrypt/argon2: those are for low-entropy passwords, where slowing down each
guess matters. Our keys are 256 random bits; no amount of hashing speed makes guessing
feasible, and a fast hash lets every request be authenticated with one indexed lookup.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg

KEY_PREFIX = "evk_"
"""A visible prefix so leaked keys are easy to spot in logs and by secret scanners."""


SCOPES: tuple[str, ...] = ("events:write", "events:read", "tasks:read", "tasks:write", "audit:read")
"""What a key may do (migration 0005 checks the same list)."""
DEFAULT_SCOPES: tuple[str, ...] = ("events:write", "events:read", "tasks:read", "tasks:write")
"""A new key's scopes unless told otherwise; `audit:read` is only ever granted explicitly."""


@dataclass(frozen=True)
class ApiKey:
    id: uuid.UUID
    name: str
    monthly_quota: int
    rate_per_minute: int
    tenant: str = ""
    """Whose data the key sees in the audit trail (keys of one tenant share it)."""
    scopes: frozenset[str] = frozenset(DEFAULT_SCOPES)

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> ApiKey:
        key_id, name, quota, rate, tenant, scopes = row
        return cls(key_id, str(name), int(quota), int(rate), str(tenant), frozenset(scopes))


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)  # 32 bytes = 256 bits of entropy


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(
    conn: psycopg.Connection,
    name: str,
    monthly_quota: int,
    rate_per_minute: int,
    *,
    scopes: tuple[str, ...] = DEFAULT_SCOPES,
    tenant: str | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key's digest; return the record and the plaintext key (shown once).
    `tenant` defaults to the key's own name (a tenant of one key)."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"scopes: unknown {unknown}; allowed: {', '.join(SCOPES)}")
    plaintext = generate_key()
    key = ApiKey(
        uuid.uuid4(), name, monthly_quota, rate_per_minute, tenant or name, frozenset(scopes)
    )
    conn.execute(
        "INSERT INTO api_keys (id, name, key_hash, monthly_quota, rate_per_minute, tenant, scopes)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            key.id,
            name,
            hash_key(plaintext),
            monthly_quota,
            rate_per_minute,
            key.tenant,
            sorted(key.scopes),
        ),
    )
    return key, plaintext


def find_key(conn: psycopg.Connection, plaintext: str) -> ApiKey | None:
    """The active key matching a presented key, or None (unknown and revoked look the same)."""
    return find_key_by_digest(conn, hash_key(plaintext))


_FIND_ACTIVE_KEY = (
    "SELECT id, name, monthly_quota, rate_per_minute, tenant, scopes FROM api_keys"
    " WHERE key_hash = %s AND revoked_at IS NULL"
)


def find_key_by_digest(conn: psycopg.Connection, digest: str) -> ApiKey | None:
    row = conn.execute(_FIND_ACTIVE_KEY, (digest,)).fetchone()
    return ApiKey.from_row(row) if row else None


async def find_key_by_digest_async(conn: psycopg.AsyncConnection, digest: str) -> ApiKey | None:
    cur = await conn.execute(_FIND_ACTIVE_KEY, (digest,))
    row = await cur.fetchone()
    return ApiKey.from_row(row) if row else None


class KeyCache:
    """Active keys by digest for a few seconds, saving a query per request.

    Only found keys are cached (an unknown key always asks the database), so the cost is that
    a revocation or a changed limit takes up to `ttl_s` to reach every replica.
    """

    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._entries: dict[str, tuple[ApiKey, float]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> ApiKey | None:
        if self._ttl_s <= 0:
            return None
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if entry[1] < time.monotonic():
                del self._entries[digest]
                return None
            return entry[0]

    def put(self, digest: str, key: ApiKey) -> None:
        if self._ttl_s <= 0:
            return
        with self._lock:
            if len(self._entries) >= self._max_entries:
                self._entries.clear()  # crude but bounded; refilled from the database
            self._entries[digest] = (key, time.monotonic() + self._ttl_s)


def revoke_key(conn: psycopg.Connection, name: str) -> bool:
    cur = conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL", (name,)
    )
    return cur.rowcount == 1
