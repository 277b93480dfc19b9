"""Scenario 1: the broker is down for ~10 s while events-api accepts 1,000 events; after it returns,
all of them reach the audit log exactly once (events-api and audit as real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest

from apps.audit.cli import MIGRATIONS as AUDIT_MIGRATIONS
from apps.common.db import migrate
from platform_cli.embedded import KafkaBroker, create_topics, free_port
from tests.apps.app_env import app_env
from tests.apps.conftest import EventsApiEnv, skip_if_external
from tests.apps.consumer_harness import REPO_ROOT, ConsumerProcess, group_caught_up, wait_until

pytestmark = pytest.mark.slow

OUTAGE_S = 10.0
EVENTS_DURING_OUTAGE = 1000
WARM_UP_EVENTS = 5
SERVE_ARGS = ("--host", "127.0.0.1", "--port")


@pytest.fixture
def api_base(events_api_env: EventsApiEnv, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        **app_env(
            events_api_env.bootstrap, events_api_env.database_url, topics=events_api_env.topics
        ),
        "OUTBOX_MAX_BACKOFF_SECONDS": "1",
        "LOG_LEVEL": "WARNING",
    }
    with (tmp_path / "events-api.log").open("ab") as log:
        process = subprocess.Popen(
            [*(sys.executable, "-m", "apps.events_api.cli", "serve"), *SERVE_ARGS, str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: _ready(base), timeout=30), (
            tmp_path / "events-api.log"
        ).read_text()
        yield base
    finally:
        process.kill()
        process.wait(10)


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _unsent(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()
    return int(row[0]) if row else -1


def _audit_ids(database_url: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        return [str(r[0]) for r in conn.execute("SELECT event_id FROM audit_log").fetchall()]


def test_broker_outage_while_api_accepts_1000_events_loses_and_duplicates_nothing(
    kafka: KafkaBroker, events_api_env: EventsApiEnv, api_base: str, tmp_path: Path
) -> None:
    skip_if_external(kafka)
    migrate(events_api_env.database_url, "audit", AUDIT_MIGRATIONS)
    topics = events_api_env.topics
    group = f"audit-{uuid.uuid4().hex[:6]}"
    audit = ConsumerProcess(
        "audit",
        {
            **app_env(kafka.bootstrap, events_api_env.database_url, topics=topics),
            "DEAD_LETTER_TOPIC": topics.audit_dlq,
            "CONSUMER_GROUP": group,
        },
        tmp_path / "audit.log",
    ).start()
    headers = {"Authorization": f"Bearer {events_api_env.create_key()}"}
    accepted: list[str] = []
    try:
        with httpx.Client(base_url=api_base, headers=headers, timeout=10) as client:

            def post(i: int) -> str:
                response = client.post("/api/v1/events", json={"category": "c", "message": f"m{i}"})
                assert response.status_code == 202, response.text
                return str(response.json()["id"])

            # The whole path works before the outage.
            accepted += [post(i) for i in range(WARM_UP_EVENTS)]
            assert wait_until(
                lambda: len(_audit_ids(events_api_env.database_url)) == WARM_UP_EVENTS, timeout=60
            ), audit.log()[-3000:]

            kafka.stop()
            down_at = time.monotonic()
            with ThreadPoolExecutor(max_workers=4) as pool:
                accepted += list(pool.map(post, range(EVENTS_DURING_OUTAGE)))
            accepting_took = time.monotonic() - down_at
            time.sleep(max(0.0, OUTAGE_S - accepting_took))
            # Tansu keeps topics in memory only, so they come back empty and must be recreated
            # (a real cluster keeps them); the consumer group starts over from the earliest.
            kafka.start()
            create_topics(kafka.bootstrap, topics.all())

        total = WARM_UP_EVENTS + EVENTS_DURING_OUTAGE
        back_at = time.monotonic()
        assert wait_until(
            lambda: len(_audit_ids(events_api_env.database_url)) >= total, timeout=120
        ), audit.log()[-3000:]
        print(
            f"outage: {EVENTS_DURING_OUTAGE} accepted in {accepting_took:.1f} s while the broker"
            f" was down {time.monotonic() - down_at - (time.monotonic() - back_at):.1f} s;"
            f" all in audit_log {time.monotonic() - back_at:.1f} s after it returned"
        )
        # The relay has published every outbox row and audit has committed every record: the
        # counts below are final (no waiting to see whether a late duplicate shows up).
        assert wait_until(
            lambda: (
                _unsent(events_api_env.database_url) == 0
                and group_caught_up(kafka.bootstrap, group, [topics.events, topics.tasks])
            ),
            timeout=60,
            interval=0.5,
        ), audit.log()[-3000:]
        assert audit.terminate() < 10
    finally:
        audit.stop_quietly()
    ids = _audit_ids(events_api_env.database_url)
    assert len(accepted) == total
    assert len(ids) == total
    assert sorted(ids) == sorted(accepted)
    assert accepting_took < OUTAGE_S + 20  # sanity: the API kept answering during the outage
