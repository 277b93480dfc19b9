"""A test database as the apps receive one: the facts channel's DB_* variables plus the
`platform-db` keys, built by the same function as a pod's (`platform_cli.local_facts`)."""

from __future__ import annotations

import pytest

from apps.common.db import DbSettings
from platform_cli.local_facts import Database, database_environment


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
