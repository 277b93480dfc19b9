"""Reliability of audit as a real process: SIGKILL x3, SIGTERM under load, PostgreSQL restart.

Each scenario asserts exact counts: audit rows == events sent, every id present once, checked
once audit has committed every record (so no late duplicate can still arrive).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import psycopg
import pytest

from apps.audit.cli import MIGRATIONS
from apps.common.db import migrate
from platform_cli.embedded import KafkaBroker, PostgresServer
from tests.apps.app_env import app_env
from tests.apps.consumer_harness import (
    ConsumerProcess,
    PacedProducer,
    group_caught_up,
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


@pytest.fixture
def audit_process(
    kafka: KafkaBroker, database_url: str, topics: list[str], group: str, tmp_path: Path
) -> Iterator[Callable[[], ConsumerProcess]]:
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
    started: list[ConsumerProcess] = []

    def _start() -> ConsumerProcess:
        process = ConsumerProcess("audit", env, tmp_path / "audit.log").start()
        started.append(process)
        return process

    yield _start
    for process in started:
        process.stop_quietly()


def test_sigkill_three_times_mid_stream_loses_and_duplicates_nothing(
    kafka: KafkaBroker,
    database_url: str,
    topics: list[str],
    audit_process: Callable[[], ConsumerProcess],
    caught_up: Callable[[], bool],
) -> None:
    total = 3000
    # ~37 s of production: long enough that all three kills land while events still arrive
    # (a restart takes ~10 s here: interpreter start, then the group waits for the killed
    # member's 6 s session to expire before it rebalances).
    producer = PacedProducer(kafka.bootstrap, topics[0], total=total, rate=80).start()
    process = audit_process()
    kills: list[tuple[int, int]] = []  # (rows written, events sent) at each kill
    rows = 0
    for _ in range(3):
        # Kill once this incarnation has made progress of its own (joined and written).
        assert wait_until(partial(_reached, database_url, rows + 100), timeout=60), process.log()[
            -3000:
        ]
        process.kill()
        rows = _counts(database_url)[0]
        kills.append((rows, producer.sent))
        process = audit_process()
    producer.join()
    assert wait_until(lambda: _counts(database_url)[0] >= total, timeout=90), process.log()[-3000:]
    assert wait_until(caught_up, timeout=30, interval=0.5), process.log()[-3000:]
    assert all(sent < total for _, sent in kills), kills  # every kill was mid-stream
    print(f"SIGKILLs at (rows written, events sent): {kills}")
    assert _counts(database_url) == (total, total)
    assert _ids(database_url) == producer.ids
    assert process.terminate() < 10


def test_sigterm_under_load_exits_cleanly_and_loses_nothing_on_restart(
    kafka: KafkaBroker,
    database_url: str,
    topics: list[str],
    audit_process: Callable[[], ConsumerProcess],
    caught_up: Callable[[], bool],
) -> None:
    total = 2000
    producer = PacedProducer(kafka.bootstrap, topics[0], total=total, rate=250).start()
    process = audit_process()
    assert wait_until(lambda: _counts(database_url)[0] >= 500, timeout=60), process.log()[-3000:]
    exit_seconds = process.terminate()
    print(f"audit exited {exit_seconds:.2f} s after SIGTERM under load")
    assert process.returncode() == 0
    assert exit_seconds < 10
    assert '"msg": "audit stopped"' in process.log()
    rows_at_stop = _counts(database_url)[0]
    assert rows_at_stop < total  # it was stopped under load
    process = audit_process()
    producer.join()
    assert wait_until(lambda: _counts(database_url)[0] >= total, timeout=90), process.log()[-3000:]
    assert wait_until(caught_up, timeout=30, interval=0.5), process.log()[-3000:]
    assert _counts(database_url) == (total, total)
    assert _ids(database_url) == producer.ids
    assert process.terminate() < 10


def test_postgres_restart_under_load_recovers_without_loss(
    kafka: KafkaBroker,
    postgres: PostgresServer,
    database_url: str,
    topics: list[str],
    audit_process: Callable[[], ConsumerProcess],
    caught_up: Callable[[], bool],
) -> None:
    if postgres.external:
        pytest.skip("DB_HOST names an external PostgreSQL, which tests never restart")
    total = 2000
    producer = PacedProducer(kafka.bootstrap, topics[0], total=total, rate=250).start()
    process = audit_process()
    assert wait_until(lambda: _counts(database_url)[0] >= 300, timeout=60), process.log()[-3000:]
    # Down longer than the pool's 5 s checkout wait, so the outage surfaces as errors that
    # the app must ride out (a shorter one is absorbed by the pool without any error).
    postgres.restart(down_for_s=6)
    producer.join()
    assert wait_until(lambda: _counts(database_url)[0] >= total, timeout=90), process.log()[-3000:]
    assert wait_until(caught_up, timeout=30, interval=0.5), process.log()[-3000:]
    assert _counts(database_url) == (total, total)
    assert _ids(database_url) == producer.ids
    assert process.returncode() is None  # it rode out the outage instead of crashing
    assert "database unavailable; retrying batch" in process.log()
    assert process.terminate() < 10
