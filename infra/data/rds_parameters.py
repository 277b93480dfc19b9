"""PostgreSQL parameter-group settings and RDS argument rules, as pure functions."""

from __future__ import annotations

import re

SLOW_STATEMENT_MS = 1000
"""Statements slower than this are logged with their duration (for the slow-query log)."""

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_PINNED_VERSION = re.compile(r"^\d+\.\d+$")
_DATABASE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def postgres_parameters(slow_statement_ms: int = SLOW_STATEMENT_MS) -> dict[str, str]:
    """Parameters we set on top of the family defaults.

    All of them are dynamic, so they apply without a reboot. `rds.force_ssl` makes the server
    refuse any connection that is not TLS; TLS 1.2 is the oldest protocol accepted.
    """
    return {
        "rds.force_ssl": "1",
        "ssl_min_protocol_version": "TLSv1.2",
        "log_min_duration_statement": str(slow_statement_ms),
        "log_connections": "1",
        "log_disconnections": "1",
        "log_lock_waits": "1",
        "log_statement": "ddl",
    }


def final_snapshot_identifier(identifier: str) -> str:
    """Name of the snapshot RDS takes on delete: deterministic, so runbooks can find it."""
    return f"{identifier}-final"


def valid_performance_insights_retention(days: int) -> bool:
    """RDS accepts 7 (free tier), a whole number of months (31 * n up to 23) or 731."""
    return days in (7, 731) or (days % 31 == 0 and 1 <= days // 31 <= 23)


def check_identifier(identifier: str) -> None:
    if not _IDENTIFIER.match(identifier) or "--" in identifier or identifier.endswith("-"):
        raise ValueError(
            f"identifier: {identifier!r}; allowed: 1-63 lowercase letters, digits and single "
            "hyphens, starting with a letter and not ending with a hyphen"
        )


def check_engine_version(engine_version: str, parameter_group_family: str) -> None:
    if not _PINNED_VERSION.match(engine_version):
        raise ValueError(
            f"engine_version: {engine_version!r}; allowed: a pinned major.minor such as '16.6'"
        )
    expected = f"postgres{engine_version.split('.')[0]}"
    if parameter_group_family != expected:
        raise ValueError(
            f"parameter_group_family: {parameter_group_family!r} does not match engine_version "
            f"{engine_version!r}; allowed: {expected!r}"
        )


def check_database_name(database_name: str) -> None:
    if not _DATABASE_NAME.match(database_name):
        raise ValueError(
            f"database_name: {database_name!r}; allowed: 1-63 lowercase letters, digits and "
            "underscores, starting with a letter"
        )
