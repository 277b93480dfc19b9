"""Reliability of audit as a real process: SIGKILL x3, SIGTERM under load, PostgreSQL restart.

Each scenario asserts exact counts: audit rows == events sent, every id present once, checked
once audit has committed every record (so no late duplicate can still arrive).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import psycopg
import pytest

from apps.audit.cli import MIGRATIONS
from apps.common.db import migrate
from platform_cli.embedded import KafkaBroker, PostgresServer
from tests.apps.app_env import app_env
from tests.apps.conftest import skip_if_external
from tests.apps.consumer_harness import (
    ConsumerProcess,
    PacedProducer,
    assert_stops_cleanly_on_sigterm,
    group_caught_up,
    process_starter,
    wait_until,
)

pytestmark = pytest.mark.slow


def _counts(database_url: str) -> tuple[int, int]:
    """(rows, distinct event ids) in audit_log; -1s while the database is unreachable."""
    try:
        with psycopg.connect(database_url, connect_timeout=2) as conn:
            row = conn.execute(
                "SELECT count(*), count(DISTINCT event_id) FROM audit_log"
            ).fetchone()
    except psycopg.OperationalError:
        return (-1, -1)
    assert row is not None
    return int(row[0]), int(row[1])


def _reached(database_url: str, rows: int) -> bool:
    return _counts(database_url)[0] >= rows


def _ids(database_url: str) -> set[str]:
    with psycopg.connect(database_url) as conn:
        return {str(r[0]) for r in conn.execute("SELECT event_id FROM audit_log").fetchall()}


@pytest.fixture
def topics(make_topics: Callable[..., list[str]]) -> list[str]:
    # Three partitions: a restart reassigns several partitions, the interesting case.
    return make_topics("events", "tasks", "audit.dlq", partitions=3)


@pytest.fixture
def group() -> str:
    return f"audit-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def caught_up(kafka: KafkaBroker, group: str, topics: list[str]) -> Callable[[], bool]:
    """Every record of the topics committed by audit: nothing more can land in audit_log."""
    return partial(group_caught_up, kafka.bootstrap, group, topics[:2])


@dataclass(frozen=True)
class AuditRig:
    """What every scenario here uses: the events topic, the database, the process starter."""

    bootstrap: str
    events_topic: str
    database_url: str
    start: Callable[[], ConsumerProcess]
    caught_up: Callable[[], bool]

    def rows(self) -> int:
        return _counts(self.database_url)[0]

    def produce(self, total: int, rate: float) -> PacedProducer:
        return PacedProducer(self.bootstrap, self.events_topic, total=total, rate=rate).start()

    def wait_for_rows(self, process: ConsumerProcess, rows: int, timeout: float) -> None:
        reached = wait_until(partial(_reached, self.database_url, rows), timeout=timeout)
        assert reached, process.log()[-3000:]

    def assert_every_event_written_once(
        self, process: ConsumerProcess, producer: PacedProducer
    ) -> None:
        """Once the producer is done and audit has committed everything: exact counts."""
        producer.join()
        total = len(producer.envelopes)
        self.wait_for_rows(process, total, timeout=90)
        assert wait_until(self.caught_up, timeout=30, interval=0.5), process.log()[-3000:]
        assert _counts(self.database_url) == (total, total)
        assert _ids(self.database_url) == producer.ids


@pytest.fixture
def rig(
    kafka: KafkaBroker,
    database_url: str,
    topics: list[str],
    group: str,
    caught_up: Callable[[], bool],
    tmp_path: Path,
) -> Iterator[AuditRig]:
    migrate(database_url, "audit", MIGRATIONS)
    events, tasks, dlq = topics
    env = {
        **app_env(kafka.bootstrap, database_url),
        "EVENTS_TOPIC": events,
        "TASKS_TOPIC": tasks,
        "DEAD_LETTER_TOPIC": dlq,
        "CONSUMER_GROUP": group,
        "AUDIT_BATCH_SIZE": "100",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "",
    }
    with process_starter("audit", env, tmp_path / "audit.log") as start:
        yield AuditRig(kafka.bootstrap, events, database_url, start, caught_up)


def test_sigkill_three_times_mid_stream_loses_and_duplicates_nothing(rig: AuditRig) -> None:
    total = 5000
    # ~62 s of production: long enough that all three kills land while events still arrive
    # (a restart takes ~10 s here, up to ~20 s on a loaded machine: interpreter start, then the
    # group waits for the killed member's 6 s session to expire before it rebalances; at 37 s
    # of production the third kill once came after the last event was sent).
    producer = rig.produce(total, rate=80)
    process = rig.start()
    kills: list[tuple[int, int]] = []  # (rows written, events sent) at each kill
    rows = 0
    for _ in range(3):
        # Kill once this incarnation has made progress of its own (joined and written).
        rig.wait_for_rows(process, rows + 100, timeout=60)
        process.kill()
        rows = rig.rows()
        kills.append((rows, producer.sent))
        process = rig.start()
    rig.assert_every_event_written_once(process, producer)
    assert all(sent < total for _, sent in kills), kills  # every kill was mid-stream
    print(f"SIGKILLs at (rows written, events sent): {kills}")
    assert process.terminate() < 10


def test_sigterm_under_load_exits_cleanly_and_loses_nothing_on_restart(rig: AuditRig) -> None:
    total = 2000
    producer = rig.produce(total, rate=250)
    process = rig.start()
    rig.wait_for_rows(process, 500, timeout=60)
    assert_stops_cleanly_on_sigterm(process)
    assert rig.rows() < total  # it was stopped under load
    process = rig.start()
    rig.assert_every_event_written_once(process, producer)
    assert process.terminate() < 10


def test_postgres_restart_under_load_recovers_without_loss(
    rig: AuditRig, postgres: PostgresServer
) -> None:
    skip_if_external(postgres)
    producer = rig.produce(2000, rate=250)
    process = rig.start()
    rig.wait_for_rows(process, 300, timeout=60)
    # Down longer than the pool's 5 s checkout wait, so the outage surfaces as errors that
    # the app must ride out (a shorter one is absorbed by the pool without any error).
    postgres.restart(down_for_s=6)
    rig.assert_every_event_written_once(process, producer)
    assert process.returncode() is None  # it rode out the outage instead of crashing
    assert "database unavailable; retrying batch" in process.log()
    assert process.terminate() < 10
