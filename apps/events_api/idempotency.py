"""`Idempotency-Key`: a retried write gets the first response back instead of writing twice.

Protocol (the IETF httpapi draft "The Idempotency-Key HTTP Header Field"):
- the key is scoped to the caller's API key and kept 24 h (`TTL`) in PostgreSQL, so every
  replica sees it; expired rows are ignored at once and deleted by `Purger`;
- the key's row is inserted in the SAME transaction as the write and filled with the response
  before the commit: it exists exactly when the write committed. A client that lost the
  response (connection dropped after the commit) retries, anywhere, and gets that response;
- a concurrent request with the same key waits on the row until the first commits, then
  replays it (or, if the first rolled back, proceeds as the first);
- the same key with a different request (method, path or body) is a 422, as the draft says
  ("SHOULD reply with 422 Unprocessable Content"), naming the header; a 409 is the draft's
  answer for a request still in flight, which cannot be observed here (the second request
  waits for the first instead).
The body is compared as the validated model in canonical JSON, so whitespace or key order
does not make a retry "different".
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import psycopg
from fastapi import Header
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from apps.common.background import BackgroundLoop
from apps.events_api.errors import SafeJSONResponse

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
TTL_S = 24 * 3600
PURGE_EVERY_S = 600.0
PURGE_BATCH = 10_000

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=HEADER,
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Makes the write safe to retry for 24 h: a repeat with the same key and "
        "request returns the first response; with another request it is a 422.",
    ),
]

_CLAIM = """
INSERT INTO idempotency_keys AS i (api_key_id, key, fingerprint, status_code, expires_at)
VALUES (%(owner)s, %(key)s, %(fingerprint)s, 0, now() + make_interval(secs => %(ttl)s))
ON CONFLICT (api_key_id, key) DO UPDATE
    SET fingerprint = EXCLUDED.fingerprint, status_code = 0, response = NULL,
        created_at = now(), expires_at = EXCLUDED.expires_at
    WHERE i.expires_at <= now()
RETURNING 1
"""
_EXISTING = """
SELECT fingerprint, status_code, response FROM idempotency_keys
WHERE api_key_id = %(owner)s AND key = %(key)s
"""
_RECORD = """
UPDATE idempotency_keys SET status_code = %(status)s, response = %(response)s
WHERE api_key_id = %(owner)s AND key = %(key)s
"""
_PURGE = """
DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM idempotency_keys WHERE expires_at < now() LIMIT %s))
"""


def fingerprint(method: str, path: str, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class Replay:
    status_code: int
    body: Any

    def response(self) -> Response:
        headers = {REPLAYED_HEADER: "true"}
        if self.status_code == 204:
            return Response(status_code=204, headers=headers)
        return SafeJSONResponse(self.body, status_code=self.status_code, headers=headers)


def _mismatch() -> RequestValidationError:
    return RequestValidationError(
        [
            {
                "loc": ("header", HEADER),
                "msg": "was already used for a different request in the last 24 h; "
                "use a new key for a new request",
                "type": "idempotency_key_reused",
            }
        ]
    )


@dataclass(frozen=True)
class Claim:
    owner: uuid.UUID
    key: str
    fingerprint: str


def claim(conn: psycopg.Connection, request: Claim) -> Replay | None:
    """Inside the write's transaction, before the write: None if this request owns the key
    (go ahead, then `record`), a Replay of the first response, or a 422 for another request."""
    params = {"owner": request.owner, "key": request.key, "fingerprint": request.fingerprint}
    if conn.execute(_CLAIM, {**params, "ttl": TTL_S}).fetchone() is not None:
        return None
    row = conn.execute(_EXISTING, params).fetchone()
    if row is None:  # pragma: no cover - the conflicting row cannot vanish in between
        raise RuntimeError("idempotency row disappeared")
    if row[0] != request.fingerprint:
        raise _mismatch()
    return Replay(int(row[1]), row[2])


async def claim_async(conn: psycopg.AsyncConnection, request: Claim) -> Replay | None:
    """`claim` on an asyncio connection (the events route)."""
    params = {"owner": request.owner, "key": request.key, "fingerprint": request.fingerprint}
    if await (await conn.execute(_CLAIM, {**params, "ttl": TTL_S})).fetchone() is not None:
        return None
    row = await (await conn.execute(_EXISTING, params)).fetchone()
    if row is None:  # pragma: no cover
        raise RuntimeError("idempotency row disappeared")
    if row[0] != request.fingerprint:
        raise _mismatch()
    return Replay(int(row[1]), row[2])


def _record_params(request: Claim, status_code: int, body: Any) -> dict[str, Any]:
    return {
        "owner": request.owner,
        "key": request.key,
        "status": status_code,
        "response": None if body is None else Jsonb(body),
    }


def record(conn: psycopg.Connection, request: Claim, status_code: int, body: Any) -> None:
    """Store the response in the same transaction, before it commits."""
    conn.execute(_RECORD, _record_params(request, status_code, body))


async def record_async(
    conn: psycopg.AsyncConnection, request: Claim, status_code: int, body: Any
) -> None:
    await conn.execute(_RECORD, _record_params(request, status_code, body))


def purge_expired(conn: psycopg.Connection, batch: int = PURGE_BATCH) -> int:
    """Delete expired keys in batches (short transactions); returns how many went."""
    total = 0
    while True:
        deleted = conn.execute(_PURGE, (batch,)).rowcount
        total += deleted
        if deleted < batch:
            return total


class Purger(BackgroundLoop):
    """Deletes expired keys every `every_s` on a daemon thread (each replica runs one: the
    deletes are idempotent, so replicas need no coordination)."""

    def __init__(self, pool: ConnectionPool, every_s: float = PURGE_EVERY_S) -> None:
        super().__init__("idempotency-purge")
        self._pool = pool
        self._every_s = every_s
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                with self._pool.connection() as conn:
                    purged = purge_expired(conn)
                if purged:
                    log.info("purged expired idempotency keys", extra={"deleted": purged})
            except Exception as exc:  # the database may be away; try again next round
                log.warning("idempotency purge failed", extra={"error": str(exc)[:200]})

    def stop(self) -> None:
        self._stop.set()
        self._join(5)
