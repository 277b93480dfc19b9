"""Per-key rate limit and monthly quota, counted in PostgreSQL so every replica shares them.

The rate check has one home, the `events_api_admit_rate` SQL function (migration 0004): one
atomic upsert that increments only while under the limit and otherwise answers the seconds
until the key's window resets. `POST /api/v1/events` calls it inside `events_api_accept_event`,
in the statement that stores the event (`apps/events_api/admission.py`), together with the
quota. Every other API route calls it here, as a single autocommit statement: a key's counter
row is the hottest row in the database, and a row lock held across client round trips would
queue every request of that key behind the slowest one; a single statement holds it only
inside PostgreSQL.

Both paths count at the time `limit_time` gives: by default None, which the SQL reads as the
database's `clock_timestamp()` (one clock for every replica). A test pins it by setting
`app.state.limit_clock`, instead of sleeping past a minute boundary.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg

from apps.events_api.keys import ApiKey

LimitClock = Callable[[], "datetime | None"]


class LimitExceeded(Exception):
    """The key is over its rate limit or quota; retry after `retry_after_s` seconds."""

    def __init__(self, which: str, limit: int, retry_after_s: int) -> None:
        super().__init__(f"{which} limit of {limit} reached; retry in {retry_after_s}s")
        self.which = which
        self.limit = limit
        self.retry_after_s = max(1, retry_after_s)


def database_time() -> datetime | None:
    """The default clock: None, i.e. the database's `clock_timestamp()`."""
    return None


def limit_time(app_state: Any) -> datetime | None:
    """The time to count a request at: `app_state.limit_clock()` when a test set one."""
    clock: LimitClock = getattr(app_state, "limit_clock", database_time)
    return clock()


_ADMIT_RATE = """
SELECT events_api_admit_rate(%(key)s, %(limit)s, coalesce(%(at)s::timestamptz, clock_timestamp()))
"""


def admit_request(conn: psycopg.Connection, key: ApiKey, at: datetime | None = None) -> None:
    """Count one request against the key's per-minute rate, or raise LimitExceeded."""
    row = conn.execute(_ADMIT_RATE, {"key": key.id, "limit": key.rate_per_minute, "at": at})
    retry_after_s = row.fetchone()
    if retry_after_s is None or retry_after_s[0] != 0:
        raise LimitExceeded("rate", key.rate_per_minute, retry_after_s[0] if retry_after_s else 60)
