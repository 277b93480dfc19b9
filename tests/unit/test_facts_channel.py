"""The facts channel's one mapping (`infra.contracts.app_environment`) and the local builder that
`platform local`, compose.yaml, the bench and the tests take their app environment from."""

from __future__ import annotations

import pytest

from infra.contracts import APPS, DbSecretKey, Fact, app_environment
from platform_cli.local_facts import (
    LOCAL_ENVIRONMENT,
    Database,
    database_environment,
    local_app_environment,
    local_database_name,
)

EVERY_FACT = {fact: f"value-of-{fact.value}" for fact in Fact}
CREDENTIALS = {DbSecretKey.USER: "app", DbSecretKey.PASSWORD: "s3cret"}


def test_every_fact_and_credential_becomes_the_variable_of_its_key() -> None:
    env = app_environment(EVERY_FACT, CREDENTIALS)
    assert env == {
        **{fact.value: f"value-of-{fact.value}" for fact in Fact},
        "DB_USER": "app",
        "DB_PASSWORD": "s3cret",
    }


def test_without_credentials_only_the_config_map_keys_are_written() -> None:
    assert set(app_environment(EVERY_FACT)) == {fact.value for fact in Fact}


@pytest.mark.parametrize("fact", list(Fact), ids=str)
def test_a_missing_fact_is_named(fact: Fact) -> None:
    partial = {f: v for f, v in EVERY_FACT.items() if f != fact}
    with pytest.raises(ValueError, match=f"missing {fact.value}; every key is required"):
        app_environment(partial, CREDENTIALS)


def test_a_missing_credential_is_named() -> None:
    with pytest.raises(ValueError, match="missing DB_PASSWORD"):
        app_environment(EVERY_FACT, {DbSecretKey.USER: "app"})


def test_an_unknown_key_is_refused_listing_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown key\(s\) DATABASE_URL; allowed: AUDIT_"):
        app_environment({**EVERY_FACT, "DATABASE_URL": "x"})  # type: ignore[dict-item]


def test_a_partial_environment_is_allowed_only_when_asked_for() -> None:
    only_db = {Fact.DB_HOST: "h", Fact.DB_PORT: "1", Fact.DB_NAME: "d"}
    assert app_environment(only_db, CREDENTIALS, complete=False) == {
        "DB_HOST": "h",
        "DB_PORT": "1",
        "DB_NAME": "d",
        "DB_USER": "app",
        "DB_PASSWORD": "s3cret",
    }
    with pytest.raises(ValueError, match="missing PLATFORM_ENVIRONMENT"):
        app_environment(only_db, CREDENTIALS)


def test_the_local_environment_carries_every_fact_each_app_reads() -> None:
    database = Database("127.0.0.1", 5433, local_database_name(), "postgres")
    env = local_app_environment(kafka_bootstrap="127.0.0.1:9092", database=database)
    for app in APPS:
        assert {fact.value for fact in app.facts} <= set(env), app.name
    assert env["PLATFORM_ENVIRONMENT"] == LOCAL_ENVIRONMENT
    assert env["KAFKA_AUTH_MODE"] == "plaintext"
    assert (env["DB_HOST"], env["DB_PORT"], env["DB_NAME"]) == ("127.0.0.1", "5433", "platform")
    assert (env["DB_USER"], env["DB_PASSWORD"]) == ("postgres", "")
    assert "DATABASE_URL" not in env


def test_the_apps_read_back_the_database_the_channel_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the app's settings make of the variables is the same database, password included
    (percent-encoded), with no DATABASE_URL in the way."""
    from apps.common.db import DbSettings

    database = Database("db.internal", 6543, "platform", "app user", "p@ss/word:1")
    for key, value in database_environment(database).items():
        monkeypatch.setenv(key, value)
    settings = DbSettings()
    assert (settings.host, settings.port, settings.name, settings.user) == (
        "db.internal",
        6543,
        "platform",
        "app user",
    )
    assert settings.password.get_secret_value() == "p@ss/word:1"
    assert Database.from_url(settings.conninfo()) == database
    assert Database.from_url(database.url) == database
