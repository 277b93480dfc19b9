"""The facts channel for apps under test, built by the same function as a pod's
(`infra.contracts.app_environment`, through `platform_cli.local_facts`): the whole channel for a
test's broker and database (`app_env`), or only its database part (`db_env`)."""

from __future__ import annotations

import pytest

from apps.common.db import DbSettings
from platform_cli.local_facts import Database, database_environment, local_app_environment


def app_env(kafka_bootstrap: str, database_url: str) -> dict[str, str]:
    """Every fact and both credentials: the test's broker and database, plaintext Kafka, no
    tracing backend, no archive bucket (tests that need one set AUDIT_ARCHIVE_BUCKET after)."""
    return local_app_environment(
        kafka_bootstrap=kafka_bootstrap, database=Database.from_url(database_url)
    )


def db_env(database_url: str) -> dict[str, str]:
    """DB_HOST, DB_PORT, DB_NAME, DB_USER and DB_PASSWORD of the database at `database_url`."""
    return database_environment(Database.from_url(database_url))


def use_database(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    """Point this process's app settings at `database_url` for the test."""
    for key, value in db_env(database_url).items():
        monkeypatch.setenv(key, value)


def db_settings(database_url: str) -> DbSettings:
    """The app's database settings for `database_url`, as read from its environment."""
    database = Database.from_url(database_url)
    return DbSettings(
        host=database.host,
        port=database.port,
        name=database.name,
        user=database.user,
        password=database.password,
    )
