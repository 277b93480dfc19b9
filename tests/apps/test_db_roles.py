"""Least-privilege data access on real PostgreSQL, with credentials in moto's Secrets Manager.

- `python -m apps.db_roles ensure` (the db-roles Job) gives each app a NOLOGIN owner role, its
  own schema and two login roles, and publishes the first credentials to the app's secret;
- an app's login can work in its own schema only (no other app's tables, nothing in `public`,
  and its objects belong to the owner role);
- rotation under load, with one pool that is never restarted: the alternating-users rotation
  fails no connection; a plain password change of the role in use (the database first, the
  secret a second later) fails only the logins inside that window, and no request.

PostgreSQL here checks passwords (scram-sha-256 for every user but the superuser on loopback),
so a wrong or stale password really is refused.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import psycopg
import pytest
from psycopg import sql

from apps.common.db import DbSettings, make_pool, read_credentials
from apps.db_roles import roles
from apps.db_roles.__main__ import SECRETS_ENV, SecretStore, main
from platform_cli.embedded import PostgresServer, aws_emulator, postgres_server
from tests.conftest import use_aws_emulator

REGION = "eu-west-1"
APPS = {"events_api": "plat-test/db/events-api", "audit": "plat-test/db/audit"}
HBA = (
    "host all postgres 127.0.0.1/32 trust",
    "host all all 127.0.0.1/32 scram-sha-256",
)
DATABASE = "platform"
MASTER, MASTER_PASSWORD = "master", "master-password"


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with postgres_server(hba=HBA, allow_external=False) as pg:
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            # RDS's master user: may create roles and owns the database, but is no superuser.
            conn.execute(f"CREATE ROLE {MASTER} LOGIN CREATEROLE PASSWORD '{MASTER_PASSWORD}'")
            conn.execute(f"CREATE DATABASE {DATABASE} OWNER {MASTER}")
        yield pg


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with aws_emulator(allow_external=False) as emulator:
        yield emulator.endpoint


@pytest.fixture
def aws(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    use_aws_emulator(monkeypatch, endpoint, REGION)
    client = boto3.client("secretsmanager", region_name=REGION, endpoint_url=endpoint)
    for secret_id in APPS.values():
        # Pulumi declares each app's secret without a value; the Job publishes the first one.
        with contextlib.suppress(client.exceptions.ResourceNotFoundException):
            client.delete_secret(SecretId=secret_id, ForceDeleteWithoutRecovery=True)
        client.create_secret(Name=secret_id)
    return client


@pytest.fixture
def provisioned(
    server: PostgresServer, aws: Any, monkeypatch: pytest.MonkeyPatch
) -> PostgresServer:
    """The Job's run: master credentials from `DB_SECRET_REF`, every app's roles and secret."""
    master = aws.create_secret(
        Name=f"rds-master-{time.monotonic_ns()}",
        SecretString=json.dumps({"username": MASTER, "password": MASTER_PASSWORD}),
    )
    env = {
        "DB_HOST": "127.0.0.1",
        "DB_PORT": str(server.port),
        "DB_NAME": DATABASE,
        "DB_SSLMODE": "disable",
        "DB_SECRET_REF": master["ARN"],
        SECRETS_ENV: json.dumps(APPS),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["ensure"]) == 0
    return server


def app_settings(server: PostgresServer, app: str) -> DbSettings:
    return DbSettings(
        DB_HOST="127.0.0.1",
        DB_PORT=server.port,
        DB_NAME=DATABASE,
        DB_SSLMODE="disable",
        DB_CREDENTIALS_SECRET=APPS[app],
        AWS_REGION=REGION,
    )


def test_ensure_publishes_credentials_and_is_idempotent(provisioned: PostgresServer) -> None:
    first = read_credentials(APPS["events_api"], REGION)
    assert first[0] == "events_api_a" and len(first[1]) >= 40
    assert main(["ensure"]) == 0  # a second sync changes nothing
    assert read_credentials(APPS["events_api"], REGION) == first
    with psycopg.connect(app_settings(provisioned, "events_api").conninfo()) as conn:
        row = conn.execute("SELECT current_user, session_user, current_schemas(false)").fetchone()
    assert row == ("events_api", "events_api_a", ["events_api"])


def test_an_app_owns_only_its_own_schema(provisioned: PostgresServer) -> None:
    with psycopg.connect(app_settings(provisioned, "audit").conninfo(), autocommit=True) as conn:
        conn.execute("CREATE TABLE audit_log (id int PRIMARY KEY)")
        owner = conn.execute(
            "SELECT tableowner, schemaname FROM pg_tables WHERE tablename = 'audit_log'"
        ).fetchone()
        assert owner == ("audit", "audit")
    with psycopg.connect(
        app_settings(provisioned, "events_api").conninfo(), autocommit=True
    ) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM audit.audit_log")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE public.stray (id int)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE TABLE audit.intruder (id int)")
        member_of = conn.execute(
            "SELECT array_agg(b.rolname ORDER BY b.rolname) FROM pg_auth_members m "
            "JOIN pg_roles b ON b.oid = m.roleid JOIN pg_roles u ON u.oid = m.member "
            "WHERE u.rolname = session_user"
        ).fetchone()
        assert member_of == (["events_api"],)  # not the admin, not another app
        superuser = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (MASTER,))
        assert superuser.fetchone() == (False,)  # what the Job needs works without superuser


def test_a_wrong_password_is_refused(provisioned: PostgresServer) -> None:
    user, _ = read_credentials(APPS["audit"], REGION)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            f"postgresql://{user}:wrong@127.0.0.1:{provisioned.port}/{DATABASE}?sslmode=disable"
        )


def test_rotate_needs_a_known_app(provisioned: PostgresServer) -> None:
    assert main(["rotate", "--app", "nope"]) == 2


# --- Rotation under load ---------------------------------------------------------------------


@dataclass
class Load:
    """Workers querying through one pool whose connections are replaced every `lifetime_s`
    (so new logins happen all the time, as they do over days in production)."""

    pool: Any
    ok: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def work(self) -> None:
        while not self.stop.is_set():
            try:
                with self.pool.connection() as conn:
                    conn.execute("SELECT count(*) FROM work").fetchone()
                with self.lock:
                    self.ok += 1
            except Exception as exc:
                with self.lock:
                    self.failed += 1
                    self.errors.append(str(exc)[:120])
            time.sleep(0.005)

    def connection_errors(self) -> int:
        return int(self.pool.get_stats().get("connections_errors", 0))


@pytest.fixture
def load(provisioned: PostgresServer) -> Iterator[Load]:
    settings = app_settings(provisioned, "events_api")
    with psycopg.connect(settings.conninfo(), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS work (id int)")
    pool = make_pool(
        settings.conninfo,  # the callable: every new connection reads the secret
        min_size=3,
        max_size=3,
        name="rotation",
        max_lifetime=1.0,
        timeout=10.0,
        reconnect_timeout=30,
    )
    pool.wait(timeout=10)
    state = Load(pool)
    workers = [threading.Thread(target=state.work, daemon=True) for _ in range(4)]
    for worker in workers:
        worker.start()
    try:
        yield state
    finally:
        state.stop.set()
        for worker in workers:
            worker.join(timeout=15)
        pool.close()


def _admin(server: PostgresServer) -> psycopg.Connection:
    return psycopg.connect(server.url(DATABASE), autocommit=True)


def test_alternating_rotation_under_load_fails_nothing(
    provisioned: PostgresServer, load: Load
) -> None:
    store = SecretStore(REGION)
    time.sleep(1.5)
    before_ok, logins_before = load.ok, load.connection_errors()
    users = []
    with _admin(provisioned) as admin:
        for _ in range(3):
            current = store.read(APPS["events_api"])
            assert current is not None
            nxt = roles.rotate(
                admin, "events_api", current, lambda c: store.publish(APPS["events_api"], c)
            )
            users.append(nxt.username)
            time.sleep(1.5)  # connections age out and log in again with the new secret
    figures = {
        "requests_ok": load.ok - before_ok,
        "requests_failed": load.failed,
        "failed_logins": load.connection_errors() - logins_before,
    }
    print(f"\nalternating rotation x3 under load: {figures}")
    assert users == ["events_api_b", "events_api_a", "events_api_b"]
    assert figures["requests_failed"] == 0, load.errors[:3]
    assert figures["failed_logins"] == 0
    assert figures["requests_ok"] > 100
    # The pool now logs in as the latest role: the rotation reached it without a restart.
    with load.pool.connection() as conn:
        assert conn.execute("SELECT session_user").fetchone() == ("events_api_b",)


WINDOW_S = 1.0


def test_changing_the_password_in_use_costs_only_the_logins_in_the_window(
    provisioned: PostgresServer, load: Load
) -> None:
    """The database changes first and the secret follows `WINDOW_S` later (the order a manual
    `ALTER ROLE` or a one-user rotation has): logins in between are refused and retried by the
    pool; requests keep being served by the connections already open."""
    store = SecretStore(REGION)
    time.sleep(1.5)
    current = store.read(APPS["events_api"])
    assert current is not None
    before_ok, logins_before = load.ok, load.connection_errors()
    new = roles.Credentials(current.username, roles.new_password())
    with _admin(provisioned) as admin:
        roles.set_password(admin, new.username, new.password)
    time.sleep(WINDOW_S)
    store.publish(APPS["events_api"], new)
    time.sleep(3.0)  # the pool's reconnect backoff catches up
    figures = {
        "requests_ok": load.ok - before_ok,
        "requests_failed": load.failed,
        "failed_logins": load.connection_errors() - logins_before,
    }
    print(f"\npassword of the role in use changed, secret {WINDOW_S}s later: {figures}")
    assert figures["requests_failed"] == 0, load.errors[:3]
    assert figures["failed_logins"] >= 1  # the window is real: stale logins were refused
    assert figures["failed_logins"] <= 12  # 3 connections, reconnect backoff from 1 s
    with load.pool.connection() as conn:
        conn.execute("SELECT 1").fetchone()
    # A fresh login with what the app reads now works: no restart needed.
    with psycopg.connect(app_settings(provisioned, "events_api").conninfo()) as conn:
        assert conn.execute("SELECT session_user").fetchone() == (new.username,)


def test_ensure_restores_the_published_password_after_a_reset(provisioned: PostgresServer) -> None:
    """A database restored from a snapshot (older passwords) gets the published ones back."""
    user, password = read_credentials(APPS["audit"], REGION)
    with _admin(provisioned) as admin:
        admin.execute(sql.SQL("ALTER ROLE {} PASSWORD 'stale'").format(sql.Identifier(user)))
    assert main(["ensure", "--app", "audit"]) == 0
    with psycopg.connect(app_settings(provisioned, "audit").conninfo()) as conn:
        assert conn.execute("SELECT session_user").fetchone() == (user,)
    assert read_credentials(APPS["audit"], REGION) == (user, password)
