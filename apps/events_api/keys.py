"""API keys: generated once, shown once, stored only as a SHA-256 digest.

Why SHA-256 and not bcrypt/argon2: those are for low-entropy passwords, where slowing down each
guess matters. Our keys are 256 random bits; no amount of hashing speed makes guessing
feasible, and a fast hash lets every request be authenticated with one indexed lookup.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

import psycopg

KEY_PREFIX = "evk_"
"""A visible prefix so leaked keys are easy to spot in logs and by secret scanners."""


@dataclass(frozen=True)
class ApiKey:
    id: uuid.UUID
    name: str
    monthly_quota: int
    rate_per_minute: int


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)  # 32 bytes = 256 bits of entropy


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(
    conn: psycopg.Connection, name: str, monthly_quota: int, rate_per_minute: int
) -> tuple[ApiKey, str]:
    """Store a new key's digest; return the record and the plaintext key (shown once)."""
    plaintext = generate_key()
    key = ApiKey(uuid.uuid4(), name, monthly_quota, rate_per_minute)
    conn.execute(
        "INSERT INTO api_keys (id, name, key_hash, monthly_quota, rate_per_minute)"
        " VALUES (%s, %s, %s, %s, %s)",
        (key.id, name, hash_key(plaintext), monthly_quota, rate_per_minute),
    )
    return key, plaintext


def find_key(conn: psycopg.Connection, plaintext: str) -> ApiKey | None:
    """The active key whose digest matches, or None (unknown and revoked look the same)."""
    row = conn.execute(
        "SELECT id, name, monthly_quota, rate_per_minute FROM api_keys"
        " WHERE key_hash = %s AND revoked_at IS NULL",
        (hash_key(plaintext),),
    ).fetchone()
    return ApiKey(*row) if row else None


def revoke_key(conn: psycopg.Connection, name: str) -> bool:
    cur = conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL", (name,)
    )
    return cur.rowcount == 1
