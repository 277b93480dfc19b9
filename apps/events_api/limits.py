"""Per-key rate limit and monthly quota, counted in PostgreSQL so every replica shares them.

Each check is one atomic upsert that increments only while under the limit; when the limit is
reached the upsert affects no row and the caller gets the seconds until the window resets.

`POST /api/v1/events` counts both inside the `events_api_accept_event` SQL function, in the
statement that stores the event (`apps/events_api/admission.py`). Every other API route counts
the rate here, as a single autocommit statement: a key's counter row is the hottest row in the
database, and a row lock held across client round trips would queue every request of that key
behind the slowest one; a single statement holds it only inside PostgreSQL.
"""

from __future__ import annotations

import math

import psycopg

from apps.events_api.keys import ApiKey


class LimitExceeded(Exception):
    """The key is over its rate limit or quota; retry after `retry_after_s` seconds."""

    def __init__(self, which: str, limit: int, retry_after_s: int) -> None:
        super().__init__(f"{which} limit of {limit} reached; retry in {retry_after_s}s")
        self.which = which
        self.limit = limit
        self.retry_after_s = max(1, retry_after_s)


# A single row per key holds the current minute; a new minute resets it in the same statement.
_ADMIT_RATE = """
INSERT INTO api_key_rate AS r (api_key_id, window_start, admitted)
VALUES (%(key)s, date_trunc('minute', clock_timestamp()), 1)
ON CONFLICT (api_key_id) DO UPDATE
    SET window_start = EXCLUDED.window_start,
        admitted = CASE WHEN r.window_start = EXCLUDED.window_start THEN r.admitted + 1 ELSE 1 END
    WHERE r.window_start <> EXCLUDED.window_start OR r.admitted < %(limit)s
RETURNING admitted
"""

_SECONDS_TO_NEXT_MINUTE = """
SELECT extract(epoch FROM date_trunc('minute', clock_timestamp()) + interval '1 minute'
                         - clock_timestamp())
"""


def _seconds(conn: psycopg.Connection, query: str) -> int:
    row = conn.execute(query).fetchone()
    return math.ceil(float(row[0])) if row else 60


def admit_request(conn: psycopg.Connection, key: ApiKey) -> None:
    """Count one request against the key's per-minute rate, or raise LimitExceeded."""
    if key.rate_per_minute <= 0 or (
        conn.execute(_ADMIT_RATE, {"key": key.id, "limit": key.rate_per_minute}).fetchone() is None
    ):
        raise LimitExceeded("rate", key.rate_per_minute, _seconds(conn, _SECONDS_TO_NEXT_MINUTE))
