"""The read APIs with per-app roles and schemas, as deployed (apps/db_roles): events-api logs in
as its own role, yet sees the notifier's deliveries and audit's log, because their migrations
grant it SELECT on exactly those tables; and nothing else of theirs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote

import psycopg
import pytest
from fastapi.testclient import TestClient

from apps.audit import store as audit_store
from apps.audit.cli import MIGRATIONS as AUDIT_MIGRATIONS
from apps.common.db import DbSettings, migrate
from apps.common.envelope import decode
from apps.db_roles.roles import Credentials, provision
from apps.events_api.cli import MIGRATIONS_DIR as EVENTS_API_MIGRATIONS
from apps.notifier.cli import MIGRATIONS as NOTIFIER_MIGRATIONS
from platform_cli.embedded import PostgresServer
from tests.apps.conftest import EventsApiEnv, read_topic
from tests.apps.delivery_records import record_deliveries


def _login_url(postgres: PostgresServer, database: str, login: Credentials) -> str:
    admin = psycopg.conninfo.conninfo_to_dict(postgres.url(database))
    return (
        f"postgresql://{quote(login.username)}:{quote(login.password)}@{admin['host']}:"
        f"{admin['port']}/{database}"
    )


@pytest.fixture
def per_app(postgres: PostgresServer, events_api_env: EventsApiEnv) -> Iterator[dict[str, str]]:
    """A database with a role and schema per app (as the db-roles Job makes them), each app
    migrated as itself; yields each app's login URL."""
    if postgres.external:
        pytest.skip("needs to create roles on the embedded PostgreSQL")
    name = f"roles_{uuid.uuid4().hex[:8]}"
    admin_url = postgres.create_database(name)
    logins: dict[str, str] = {}
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for owner in ("events_api", "notifier", "audit"):
            login = provision(conn, owner, name, None, lambda _c: None)
            logins[owner] = _login_url(postgres, name, login)
    migrate(logins["events_api"], "events-api", EVENTS_API_MIGRATIONS)
    migrate(logins["notifier"], "notifier", NOTIFIER_MIGRATIONS)
    migrate(logins["audit"], "audit", AUDIT_MIGRATIONS)
    try:
        yield logins
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'REVOKE ALL ON DATABASE "{name}" FROM events_api, notifier, audit')
        postgres.drop_database(name)
        with psycopg.connect(postgres.dsn, autocommit=True) as conn:
            for owner in ("events_api", "notifier", "audit"):
                for role in (f"{owner}_a", f"{owner}_b", owner):
                    conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_events_api_reads_deliveries_and_the_audit_log_in_their_apps_schemas(
    per_app: dict[str, str], events_api_env: EventsApiEnv
) -> None:
    from apps.events_api.keys import SCOPES, create_key

    with psycopg.connect(per_app["events_api"]) as conn:
        _, key = create_key(conn, "roles", 1000, 1000, scopes=SCOPES, tenant="acme")
    info = psycopg.conninfo.conninfo_to_dict(per_app["events_api"])
    db = DbSettings(
        host=info["host"], port=int(info["port"]), name=info["dbname"],
        user=info["user"], password=info["password"], sslmode="disable",
    )  # fmt: skip
    auth = {"Authorization": f"Bearer {key}"}
    with TestClient(events_api_env.app(db=db)) as client:
        event_id = client.post(
            "/api/v1/events", json={"category": "c", "message": "per-app roles"}, headers=auth
        ).json()["id"]
        record = next(
            r
            for r in read_topic(events_api_env.bootstrap, events_api_env.topics.events, 1)
            if decode(r.value).id == uuid.UUID(event_id)
        )
        record_deliveries(per_app["notifier"], record, sent={"webhook": 200}, failing={})
        with psycopg.connect(per_app["audit"]) as conn, conn.transaction():
            audit_store.insert_batch(
                conn,
                [audit_store.AuditRecord.of(decode(record.value), record.topic, 0, record.offset)],
            )
        found = client.get(f"/api/v1/events/{event_id}", headers=auth).json()
        trail = client.get("/api/v1/audit", headers=auth)
    assert [d["status"] for d in found["deliveries"]] == ["sent"]
    assert found["audited"] is True
    assert trail.status_code == 200, trail.text
    assert [e["event_id"] for e in trail.json()["items"]] == [event_id]
    # Exactly those tables: the rest of the notifier's and audit's schemas stay closed.
    with psycopg.connect(per_app["events_api"]) as conn:
        for table in ("notifier.notifier_retry_schedule", "audit.audit_archive"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT 1 FROM {table} LIMIT 1")
            conn.rollback()
