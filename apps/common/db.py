"""PostgreSQL settings and a tiny versioned migration runner shared by the apps.

Migrations are ordered files `apps/<app>/migrations/NNNN_name.sql`. Each runs in its own
transaction together with its `schema_migrations` row, under a per-app advisory lock, so two
replicas starting at once apply each file exactly once and a failed file leaves no trace.

Why not Alembic: the apps use plain SQL through psycopg (no ORM), and the whole runner is
~40 lines; Alembic would add an ORM-shaped dependency to three small images.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg_pool import ConnectionPool
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

MIGRATION_FILE = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")


class DbSettings(BaseSettings):
    """The facts channel's DB_* parts and the `platform-db` Secret's DB_USER/DB_PASSWORD: the
    same variables wherever the app runs (a pod, `platform local`, compose, the tests).

    On RDS the login is the app's own instead: with `DB_CREDENTIALS_SECRET` the user and password
    are read from that Secrets Manager secret (JSON `username`/`password`, written by the db-roles
    Job) each time a connection is opened, so a rotation reaches the next connection without a
    restart.
    """

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("DB_HOST"))
    port: int = Field(default=5432, validation_alias=AliasChoices("DB_PORT"))
    name: str = Field(default="postgres", validation_alias=AliasChoices("DB_NAME"))
    user: str = Field(default="postgres", validation_alias=AliasChoices("DB_USER"))
    password: SecretStr = Field(default=SecretStr(""), validation_alias=AliasChoices("DB_PASSWORD"))
    sslmode: str = Field(default="prefer", validation_alias=AliasChoices("DB_SSLMODE"))
    connect_timeout_s: int = Field(default=5, validation_alias=AliasChoices("DB_CONNECT_TIMEOUT"))
    credentials_secret: str | None = Field(
        default=None, validation_alias=AliasChoices("DB_CREDENTIALS_SECRET")
    )
    aws_region: str | None = Field(default=None, validation_alias=AliasChoices("AWS_REGION"))

    def credentials(self) -> tuple[str, str]:
        """(user, password): the secret's current values, or the static settings."""
        if not self.credentials_secret:
            return self.user, self.password.get_secret_value()
        return read_credentials(self.credentials_secret, self.aws_region)

    def conninfo(self) -> str:
        """A libpq URL; the password is percent-encoded, never logged (see `redacted`).

        Pass the bound method (`settings.db.conninfo`) to a pool: it calls it for every new
        connection, which is how a rotated password is picked up.
        """
        user, secret = self.credentials()
        auth = quote(user, safe="") + (f":{quote(secret, safe='')}" if secret else "")
        return (
            f"postgresql://{auth}@{self.host}:{self.port}/{quote(self.name, safe='')}"
            f"?sslmode={self.sslmode}&connect_timeout={self.connect_timeout_s}"
        )

    async def conninfo_async(self) -> str:
        """`conninfo` off the event loop (the secret read is a blocking HTTPS call)."""
        return await asyncio.to_thread(self.conninfo)

    def redacted(self) -> str:
        """Where we connect, for logs: host, port and database only."""
        return f"{self.host}:{self.port}/{self.name}"


CREDENTIAL_KEYS = ("username", "password")


def read_credentials(secret_id: str, region: str | None = None) -> tuple[str, str]:
    """The `username`/`password` of a Secrets Manager secret (AWSCURRENT), read now.

    No cache on purpose: pools open connections rarely, and a cached password is exactly what
    makes a rotation fail until a restart. Pod Identity (or the SDK's default chain) signs it.
    """
    import boto3  # imported here: local runs without a secret never need the SDK

    client = boto3.client("secretsmanager", region_name=region)
    value = client.get_secret_value(SecretId=secret_id)["SecretString"]
    document = json.loads(value)
    missing = [key for key in CREDENTIAL_KEYS if not document.get(key)]
    if missing:
        raise ValueError(f"secret {secret_id!r} lacks {', '.join(missing)}")
    return str(document["username"]), str(document["password"])


Conninfo = str | Callable[[], str]


def make_pool(
    conninfo: Conninfo,
    *,
    min_size: int = 1,
    max_size: int = 10,
    name: str = "app",
    **kwargs: Any,
) -> ConnectionPool:
    """An open pool that does not block start-up on the database being reachable.

    `conninfo` may be a callable (e.g. `DbSettings.conninfo`): the pool calls it for each new
    connection, so rotated credentials are used from the next connection on.

    By default `check` revalidates a connection on checkout, so a PostgreSQL restart costs no
    failed work; latency-sensitive callers may pass `check=None` (one extra round trip saved
    per checkout; a broken connection then fails one request and is discarded). Other keyword
    arguments go to `ConnectionPool` (e.g. `kwargs={"autocommit": True}`).
    """
    options: dict[str, Any] = {
        "min_size": min_size,
        "max_size": max_size,
        "name": name,
        "open": True,
        "timeout": 5.0,
        "reconnect_timeout": 3600,
        "check": ConnectionPool.check_connection,
    }
    return ConnectionPool(conninfo, **(options | kwargs))


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Path) -> list[Migration]:
    """Every `NNNN_name.sql` file in `directory`, by version; duplicate versions are an error."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = MIGRATION_FILE.match(path.name)
        if match is None:
            raise ValueError(f"migration file {path.name!r} is not named NNNN_lower_snake.sql")
        version = int(match["version"])
        if version in found:
            raise ValueError(f"two migrations with version {version:04d} in {directory}")
        found[version] = Migration(version, match["name"], path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    app        text        NOT NULL,
    version    integer     NOT NULL,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app, version)
)
"""


def _lock_key(app: str) -> int:
    # A stable signed 64-bit key per app for pg_advisory_lock.
    return int.from_bytes(
        hashlib.sha256(f"migrate:{app}".encode()).digest()[:8], "big", signed=True
    )


def migrate(conninfo: str, app: str, directory: Path) -> list[int]:
    """Apply pending migrations of `app`; return the versions applied (empty when up to date).

    A migration already applied with different content is reported, not re-run: versions are
    immutable once released.
    """
    migrations = load_migrations(directory)
    applied_now: list[int] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_lock_key(app),))
        try:
            # All apps share one database: their runners may start together, and two concurrent
            # CREATE TABLE IF NOT EXISTS can still collide, so this one takes a shared lock.
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key("bookkeeping"),))
                conn.execute(_BOOKKEEPING)
            rows = conn.execute(
                "SELECT version, checksum FROM schema_migrations WHERE app = %s", (app,)
            ).fetchall()
            done = {int(version): str(checksum) for version, checksum in rows}
            for migration in migrations:
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        log.warning(
                            "applied migration changed on disk; not re-running it",
                            extra={"app": app, "version": migration.version},
                        )
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (app, version, name, checksum)"
                        " VALUES (%s, %s, %s, %s)",
                        (app, migration.version, migration.name, migration.checksum),
                    )
                applied_now.append(migration.version)
                log.info("applied migration", extra={"app": app, "version": migration.version})
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_lock_key(app),))
    return applied_now


def applied_versions(conninfo: str, app: str) -> list[int]:
    with psycopg.connect(conninfo) as conn:
        exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return []
        rows = conn.execute(
            "SELECT version FROM schema_migrations WHERE app = %s ORDER BY version", (app,)
        ).fetchall()
        return [int(r[0]) for r in rows]
