"""The `events-api` command: migrate twice is a no-op, create-key prints a working key, and the
settings read every fact the platform provides to this app."""

from __future__ import annotations

import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from apps.common.db import applied_versions
from apps.events_api.cli import app as cli
from apps.events_api.settings import ApiSettings
from infra.contracts import DbSecretKey, Fact, app_contract
from tests.apps.app_env import use_database
from tests.apps.conftest import EventsApiEnv

runner = CliRunner()


def test_migrate_twice_is_a_no_op(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    use_database(monkeypatch, database_url)
    first = runner.invoke(cli, ["migrate"])
    assert first.exit_code == 0, first.output
    assert "applied [1, 2, 3, 4, 5, 6, 7, 8]" in first.output
    with psycopg.connect(database_url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables").fetchall()}
    assert {"api_keys", "events", "tasks", "outbox", "schema_migrations"} <= tables

    second = runner.invoke(cli, ["migrate"])
    assert second.exit_code == 0, second.output
    assert "up to date" in second.output
    assert applied_versions(database_url, "events-api") == [1, 2, 3, 4, 5, 6, 7, 8]


def test_create_key_prints_a_key_that_authenticates(
    events_api_env: EventsApiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_database(monkeypatch, events_api_env.database_url)
    args = ["create-key", "--name", "ops", "--monthly-quota", "10", "--rate-per-minute", "5"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    key = result.stdout.strip().splitlines()[-1]
    assert key.startswith("evk_")
    with psycopg.connect(events_api_env.database_url) as conn:
        stored = conn.execute("SELECT key_hash FROM api_keys WHERE name = 'ops'").fetchone()
    assert stored is not None and key not in stored[0]  # only the digest is stored
    with TestClient(events_api_env.app(relay_enabled=False)) as client:
        response = client.post(
            "/api/v1/events",
            json={"category": "c", "message": "m"},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert response.status_code == 202
    duplicate = runner.invoke(cli, args)
    assert duplicate.exit_code == 1


def test_create_key_grants_the_scopes_and_tenant_asked_for(
    events_api_env: EventsApiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_database(monkeypatch, events_api_env.database_url)
    base = ["create-key", "--monthly-quota", "10", "--rate-per-minute", "50"]
    auditor = runner.invoke(
        cli, [*base, "--name", "auditor", "--tenant", "acme", "--scope", "audit:read"]
    )
    assert auditor.exit_code == 0, auditor.output
    assert "tenant 'acme', scopes audit:read" in " ".join(auditor.output.split())  # rich wraps
    default = runner.invoke(cli, [*base, "--name", "writer"])
    assert "scopes events:read, events:write, tasks:read, tasks:write" in " ".join(
        default.output.split()
    )
    with psycopg.connect(events_api_env.database_url) as conn:
        rows = dict(conn.execute("SELECT name, tenant FROM api_keys").fetchall())
    assert rows == {"auditor": "acme", "writer": "writer"}
    key = auditor.stdout.strip().splitlines()[-1]
    with TestClient(events_api_env.app(relay_enabled=False)) as client:
        refused = client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 403
    bad = runner.invoke(cli, [*base, "--name", "x", "--scope", "tasks:delete"])
    assert bad.exit_code == 2 and "allowed: events:write" in " ".join(bad.output.split())


def test_settings_read_every_fact_the_platform_provides(monkeypatch: pytest.MonkeyPatch) -> None:
    contract = app_contract("events-api")
    values = {
        Fact.ENVIRONMENT: "staging",
        Fact.AWS_REGION: "eu-north-1",
        Fact.KAFKA_BOOTSTRAP_SERVERS: "b-1.msk:9098,b-2.msk:9098",
        Fact.KAFKA_AUTH_MODE: "iam",
        Fact.DB_HOST: "db.example.internal",
        Fact.DB_PORT: "6432",
        Fact.DB_NAME: "platform_db",
        Fact.DB_SSLMODE: "verify-full",
        Fact.OTEL_EXPORTER_OTLP_ENDPOINT: "http://otel-collector:4318",
    }
    assert set(contract.facts) <= set(values), "a new fact needs a value in this test"
    for fact in contract.facts:
        monkeypatch.setenv(fact.value, values[fact])
    settings = ApiSettings()
    read = {
        Fact.ENVIRONMENT: settings.environment,
        Fact.AWS_REGION: settings.kafka.region,
        Fact.KAFKA_BOOTSTRAP_SERVERS: settings.kafka.bootstrap_servers,
        Fact.KAFKA_AUTH_MODE: settings.kafka.auth_mode,
        Fact.DB_HOST: settings.db.host,
        Fact.DB_PORT: str(settings.db.port),
        Fact.DB_NAME: settings.db.name,
        Fact.DB_SSLMODE: settings.db.sslmode,
        Fact.OTEL_EXPORTER_OTLP_ENDPOINT: settings.otel_endpoint,
    }
    for fact in contract.facts:
        assert read[fact] == values[fact], f"{fact.value} is not read by events-api settings"
    info = psycopg.conninfo.conninfo_to_dict(settings.db.conninfo())
    assert (info["host"], info["port"], info["dbname"]) == (
        "db.example.internal",
        "6432",
        "platform_db",
    )


def test_settings_read_the_database_secret_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DbSecretKey.USER.value, "events_api")
    monkeypatch.setenv(DbSecretKey.PASSWORD.value, "s3cret")
    info = psycopg.conninfo.conninfo_to_dict(ApiSettings().db.conninfo())
    assert (info["user"], info["password"]) == ("events_api", "s3cret")
