"""The facts channel for apps under test, built by the same function as a pod's
(`infra.contracts.app_environment`, through `platform_cli.local_facts`): the whole channel for a
test's broker and database (`app_env`), or only its database part (`db_env`); and the check
that a consumer's settings read every fact of its contract (`assert_reads_every_fact`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Protocol, TypeVar

import pytest

from apps.common.db import DbSettings
from infra.contracts import app_contract
from platform_cli.local_facts import Database, database_environment, local_app_environment


class Topics(Protocol):
    """The test's own topic names (tests.apps.conftest.TopicNames and the like)."""

    @property
    def events(self) -> str: ...
    @property
    def tasks(self) -> str: ...


def app_env(
    kafka_bootstrap: str, database_url: str, topics: Topics | None = None
) -> dict[str, str]:
    """Every fact and both credentials: the test's broker and database, plaintext Kafka, no
    tracing backend, no archive bucket (tests that need one set AUDIT_ARCHIVE_BUCKET after);
    with `topics`, the apps read and write the test's own events and tasks topics."""
    env = local_app_environment(
        kafka_bootstrap=kafka_bootstrap, database=Database.from_url(database_url)
    )
    if topics is not None:
        env |= {"EVENTS_TOPIC": topics.events, "TASKS_TOPIC": topics.tasks}
    return env


def db_env(database_url: str) -> dict[str, str]:
    """DB_HOST, DB_PORT, DB_NAME, DB_USER and DB_PASSWORD of the database at `database_url`."""
    return database_environment(Database.from_url(database_url))


def use_database(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    """Point this process's app settings at `database_url` for the test."""
    for key, value in db_env(database_url).items():
        monkeypatch.setenv(key, value)


def db_settings(database_url: str) -> DbSettings:
    """The app's database settings for `database_url`, as read from its environment."""
    return DbSettings(**asdict(Database.from_url(database_url)))


Config = TypeVar("Config")


def assert_reads_every_fact(
    monkeypatch: pytest.MonkeyPatch, app: str, load: Callable[[], Config], settings: Any
) -> Config:
    """Set each fact of `app`'s contract to a sentinel, load its config, and assert every
    sentinel lands in one of its settings and the contract's group, dead-letter topic, topics and
    port are the app's own defaults. Returns the config for app-specific checks."""
    contract = app_contract(app)
    for fact in contract.facts:
        monkeypatch.setenv(fact.value, f"sentinel-{fact.value.lower()}")
    typed = {"DB_PORT": "6543", "KAFKA_AUTH_MODE": "iam"}  # fields whose sentinel must parse
    for key, value in typed.items():
        monkeypatch.setenv(key, value)
    config: Any = load()
    seen = " ".join(
        repr(part.model_dump()) for part in (config.app, config.kafka, config.db, config.tuning)
    )
    for fact in contract.facts:
        expected = typed.get(fact.value, f"sentinel-{fact.value.lower()}")
        assert expected in seen, f"{fact.value} is not read by {app}'s settings"
    assert contract.consumer_group == config.app.consumer_group
    assert contract.dead_letter_topic == config.app.dead_letter_topic
    assert set(contract.consumes) == set(config.app.topics)
    assert contract.port == settings.model_fields["port"].default
    return config
