"""Real parts for the app tests: Tansu (Kafka protocol), PostgreSQL and an AWS emulator.

Session-scoped servers start once per test run on free loopback ports and are stopped at the
end; each test gets a fresh database (`database_url`) and may ask for unique topic names
(`unique_topics`) so tests never see each other's data. Set `KAFKA_BOOTSTRAP_SERVERS`,
`DB_HOST` (with the other DB_* facts) or `LOCALSTACK_ENDPOINT` to run against external services
instead. Apps get a database as pods do, through the DB_* variables (`tests/apps/db_env.py`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from platform_cli.embedded import (
    AwsEmulator,
    KafkaBroker,
    PostgresServer,
    aws_emulator,
    create_topics,
    kafka_broker,
    postgres_server,
)
from tests.apps.app_env import db_settings

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from apps.events_api.settings import ApiSettings

FAST_GROUP_SETTINGS = {"heartbeat_interval_ms": 500, "session_timeout_ms": 6000}
"""kafka-python consumer overrides: the first group join on Tansu takes ~3 heartbeats."""


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaBroker]:
    """The broker: `.bootstrap`, and `.stop()`/`.start()` on the same port for outage tests."""
    with kafka_broker() as broker:
        yield broker


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The PostgreSQL server: `.dsn`, `.restart()`, `.create_database(name)`."""
    with postgres_server() as server:
        yield server


@pytest.fixture(
    scope="session", params=["moto", pytest.param("localstack", marks=pytest.mark.localstack)]
)
def aws_endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    """Endpoint URL of moto's server, then of real LocalStack (tests/conftest.py; skipped with
    the reason where it cannot run): every boto3 test runs against both emulators."""
    if request.param == "localstack":
        yield request.getfixturevalue("localstack_endpoint")
        return
    emulator: AwsEmulator
    with aws_emulator() as emulator:
        yield emulator.endpoint


def skip_if_external(part: KafkaBroker | PostgresServer) -> None:
    """For a test that stops or restarts `part`: skipped when it is an external service, which
    the tests never stop or restart, as they did not start it."""
    if part.external:
        which = (
            "broker (KAFKA_BOOTSTRAP_SERVERS)"
            if isinstance(part, KafkaBroker)
            else "database (DB_HOST)"
        )
        pytest.skip(f"external {which}: tests never stop or restart what they did not start")


@pytest.fixture
def database_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for this test, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = postgres.create_database(name)
    yield url
    postgres.drop_database(name)


@dataclass(frozen=True)
class TopicNames:
    """Per-test topic names, created on the broker before the test body runs."""

    events: str
    tasks: str
    notifier_dlq: str
    audit_dlq: str

    def all(self) -> tuple[str, ...]:
        return (self.events, self.tasks, self.notifier_dlq, self.audit_dlq)

    @classmethod
    def create(cls, bootstrap: str) -> TopicNames:
        """Fresh names (`events-<id>`, ...), created on the broker at `bootstrap`."""
        suffix = uuid.uuid4().hex[:8]
        names = cls(
            events=f"events-{suffix}",
            tasks=f"tasks-{suffix}",
            notifier_dlq=f"notifier.dlq-{suffix}",
            audit_dlq=f"audit.dlq-{suffix}",
        )
        create_topics(bootstrap, names.all())
        return names


@pytest.fixture
def unique_topics(kafka: KafkaBroker) -> TopicNames:
    """Fresh topic names (`events-<id>`, ...) so tests sharing one broker never mix records."""
    return TopicNames.create(kafka.bootstrap)


@pytest.fixture
def make_topics(kafka: KafkaBroker) -> Callable[..., list[str]]:
    """Create topics with unique names from the given prefixes: `make_topics("events", n=3)`."""

    def _make(*prefixes: str, partitions: int = 1) -> list[str]:
        suffix = uuid.uuid4().hex[:8]
        names = [f"{prefix}-{suffix}" for prefix in prefixes]
        create_topics(kafka.bootstrap, names, partitions=partitions)
        return names

    return _make


# --- events-api --------------------------------------------------------------------------------


@dataclass
class EventsApiEnv:
    """A migrated database, per-test topics and a way to mint API keys for events-api."""

    settings: Any
    database_url: str
    topics: TopicNames
    bootstrap: str

    def create_key(
        self,
        name: str = "",
        monthly_quota: int = 1_000_000,
        rate: int = 100_000,
        *,
        scopes: tuple[str, ...] | None = None,
        tenant: str | None = None,
    ) -> str:
        import psycopg

        from apps.events_api.keys import DEFAULT_SCOPES, create_key

        with psycopg.connect(self.database_url) as conn:
            _, plaintext = create_key(
                conn,
                name or uuid.uuid4().hex[:8],
                monthly_quota,
                rate,
                scopes=scopes or DEFAULT_SCOPES,
                tenant=tenant,
            )
        return plaintext

    def app(self, **overrides: Any) -> Any:
        """A new app object (its own pool and relay) on the same database: another replica."""
        from apps.events_api.app import create_app

        return create_app(self.settings.model_copy(update=overrides))


def migrated_events_api_settings(
    bootstrap: str, database_url: str, topics: TopicNames, client_id: str, **tuning: Any
) -> ApiSettings:
    """events-api's settings for a test's broker, database (migrated here) and topics, with a
    relay that polls every 20 ms, and `tuning` (other ApiSettings fields) on top."""
    from apps.common.kafka import KafkaSettings
    from apps.events_api.cli import apply_migrations
    from apps.events_api.settings import ApiSettings

    settings = ApiSettings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, client_id=client_id),
        db=db_settings(database_url),
        events_topic=topics.events,
        tasks_topic=topics.tasks,
        relay_idle_s=0.02,
        **tuning,
    )
    apply_migrations(settings)
    return settings


@pytest.fixture
def events_api_env(
    kafka: KafkaBroker, database_url: str, unique_topics: TopicNames
) -> EventsApiEnv:
    settings = migrated_events_api_settings(
        kafka.bootstrap,
        database_url,
        unique_topics,
        "events-api-test",
        relay_max_backoff_s=1.0,
        db_pool_min=1,
        db_pool_max=4,
    )
    return EventsApiEnv(settings, database_url, unique_topics, kafka.bootstrap)


@pytest.fixture
def client(events_api_env: EventsApiEnv) -> Iterator[TestClient]:
    """An in-process events-api (relay on) for the test's database and topics."""
    from fastapi.testclient import TestClient

    with TestClient(events_api_env.app()) as test_client:
        yield test_client


@pytest.fixture
def auth(events_api_env: EventsApiEnv) -> dict[str, str]:
    """Headers with a fresh API key of the default scopes."""
    return {"Authorization": f"Bearer {events_api_env.create_key()}"}


@pytest.fixture
def one_database(events_api_env: EventsApiEnv) -> EventsApiEnv:
    """Every app's migrations in the events-api test database: the deployed shape (one DB)."""
    from apps.audit.cli import MIGRATIONS as AUDIT_MIGRATIONS
    from apps.common.db import migrate
    from apps.notifier.cli import MIGRATIONS as NOTIFIER_MIGRATIONS

    migrate(events_api_env.database_url, "notifier", NOTIFIER_MIGRATIONS)
    migrate(events_api_env.database_url, "audit", AUDIT_MIGRATIONS)
    return events_api_env


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> list[Any]:
    """Every record of a single-partition topic from the start, once `expected` have arrived
    (or the timeout passed); no consumer group, so no group-join delay."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek_to_beginning(partition)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()
