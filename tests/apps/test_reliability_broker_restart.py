"""Scenario: the broker crashes (SIGKILL) and restarts twice while events-api accepts 1,000 events;
every accepted event reaches audit AND the notifier exactly once.

The broker is Tansu with its log in S3 (`--storage-engine s3://BUCKET/` against moto's server,
see platform_cli.embedded.BrokerStorage), so, as a real cluster, it comes back with its topics,
records and committed offsets. events-api (with its outbox relay), audit and notifier run as
real processes; nothing is recreated by hand between the crashes.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import psycopg
import pytest

from apps.audit.cli import MIGRATIONS as AUDIT_MIGRATIONS
from apps.common.db import migrate
from apps.events_api.cli import apply_migrations
from apps.notifier.cli import MIGRATIONS as NOTIFIER_MIGRATIONS
from platform_cli.embedded import (
    AwsEmulator,
    BrokerStorage,
    KafkaBroker,
    aws_emulator,
    create_topics,
    kafka_broker,
)
from tests.apps.api_process import ApiProcess
from tests.apps.app_env import app_env
from tests.apps.conftest import EventsApiEnv
from tests.apps.consumer_harness import ConsumerProcess, wait_until
from tests.apps.webhook_sink import WebhookSink, webhook_sink

pytestmark = pytest.mark.slow

EVENTS = 1000
CRASH_AFTER = (300, 650)
"""The broker is SIGKILLed once this many events have been accepted (then restarted)."""
DOWN_S = 2.0
WARM_UP = 10
PARTITIONS = 3


@pytest.fixture
def durable_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """Tansu keeping its log in a bucket of moto's S3."""
    emulator: AwsEmulator
    # moto's server logs every request it serves (Tansu makes several per produce and commit).
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with aws_emulator(allow_external=False) as emulator:
        bucket = f"tansu-{uuid.uuid4().hex[:8]}"
        storage = BrokerStorage(s3_bucket=bucket, endpoint=emulator.endpoint)
        boto3.client(
            "s3",
            endpoint_url=emulator.endpoint,
            region_name=storage.region,
            aws_access_key_id=storage.access_key_id,
            aws_secret_access_key=storage.secret_access_key,
        ).create_bucket(Bucket=bucket)
        with kafka_broker(
            log_path=tmp_path / "tansu.log", allow_external=False, storage=storage
        ) as broker:
            yield broker


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with webhook_sink() as s:
        yield s


def _audit_ids(database_url: str) -> Counter[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT event_id FROM audit_log").fetchall()
    return Counter(str(r[0]) for r in rows)


def _whereabouts(broker: KafkaBroker, topic: str, url: str, accepted: list[str]) -> str:
    """For a failure message: are the events audit lacks on the topic, and marked sent?"""
    from tests.apps.consumer_harness import read_topic

    missing = set(accepted) - set(_audit_ids(url))
    on_topic = {r.key.decode() for r in read_topic(broker.bootstrap, topic, len(accepted), 20)}
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE sent_at IS NULL) FROM outbox"
            " WHERE event_id = ANY(%s::uuid[])",
            (list(missing),),
        ).fetchone()
    return (
        f"{len(missing)} accepted events not in audit_log: {len(missing & on_topic)} of them on"
        f" the topic, {row[0] if row else '?'} still unsent in the outbox; "
    )


class Kubelet:
    """Restarts a consumer process that exited, as Kubernetes would (restartPolicy: Always),
    and counts the restarts: the invariant here is what reaches audit and the notifier, which
    a restarted consumer must still honour exactly once."""

    def __init__(self, *processes: ConsumerProcess) -> None:
        self.processes = processes
        self.restarts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="kubelet", daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            for process in self.processes:
                if process.returncode() is not None:
                    self.restarts[process.app] += 1
                    process.start()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)


def _delivered(sink: WebhookSink) -> Counter[str]:
    return Counter(r.json()["id"] for r in sink.received("/hook", status=200))


def test_broker_killed_twice_mid_stream_every_event_reaches_audit_and_notifier_once(
    durable_broker: KafkaBroker,
    events_api_env: EventsApiEnv,
    sink: WebhookSink,
    tmp_path: Path,
) -> None:
    url = events_api_env.database_url
    suffix = uuid.uuid4().hex[:6]
    topics = {
        "events": f"events-{suffix}",
        "tasks": f"tasks-{suffix}",
        "audit_dlq": f"audit.dlq-{suffix}",
        "notifier_dlq": f"notifier.dlq-{suffix}",
    }
    create_topics(durable_broker.bootstrap, topics.values(), partitions=PARTITIONS)
    apply_migrations(events_api_env.settings)
    migrate(url, "audit", AUDIT_MIGRATIONS)
    migrate(url, "notifier", NOTIFIER_MIGRATIONS)
    common = {
        **app_env(durable_broker.bootstrap, url),
        "EVENTS_TOPIC": topics["events"],
        "TASKS_TOPIC": topics["tasks"],
        "OTEL_EXPORTER_OTLP_ENDPOINT": "",
    }
    api = ApiProcess(
        "serve",
        {
            **common,
            "OUTBOX_MAX_BACKOFF_SECONDS": "1",
            # Tansu answers a batch retried across its crash "duplicate" without having stored
            # it: with the idempotent producer, acknowledged events went missing (outbox.py).
            "OUTBOX_IDEMPOTENT_PRODUCER": "false",
        },
        tmp_path / "events-api.log",
    )
    audit = ConsumerProcess(
        "audit",
        {
            **common,
            "DEAD_LETTER_TOPIC": topics["audit_dlq"],
            "CONSUMER_GROUP": f"audit-{suffix}",
        },
        tmp_path / "audit.log",
    )
    notifier = ConsumerProcess(
        "notifier",
        {
            **common,
            "DEAD_LETTER_TOPIC": topics["notifier_dlq"],
            "CONSUMER_GROUP": f"notifier-{suffix}",
            "NOTIFIER_WEBHOOK_URL": f"{sink.url}/hook",
            "NOTIFIER_HTTP_TIMEOUT_S": "5",
        },
        tmp_path / "notifier.log",
    )
    accepted: list[str] = []
    lock = threading.Lock()
    crashes: list[float] = []
    kubelet = Kubelet(audit, notifier)
    try:
        api.start()
        audit.start()
        notifier.start()
        kubelet.start()
        with api.client(events_api_env.create_key()) as client:

            def post(i: int) -> None:
                response = client.post("/api/v1/events", json={"category": "c", "message": f"{i}"})
                assert response.status_code == 202, response.text
                with lock:
                    accepted.append(str(response.json()["id"]))
                    n = len(accepted)
                if n in CRASH_AFTER:
                    # Mid-stream, from inside the stream: the other posters keep going.
                    durable_broker.kill()
                    crashes.append(time.monotonic())
                    time.sleep(DOWN_S)
                    durable_broker.start()

            # The whole path works (both consumers have joined their groups) before the stream.
            for i in range(WARM_UP):
                post(i)
            assert wait_until(lambda: len(_audit_ids(url)) == WARM_UP, timeout=60), audit.log()
            assert wait_until(lambda: len(_delivered(sink)) == WARM_UP, timeout=60), notifier.log()[
                -3000:
            ]
            with ThreadPoolExecutor(max_workers=4) as pool:
                list(pool.map(post, range(WARM_UP, EVENTS)))

        assert len(crashes) == len(CRASH_AFTER)
        assert wait_until(lambda: len(_audit_ids(url)) >= EVENTS, timeout=180), (
            _whereabouts(durable_broker, topics["events"], url, accepted) + audit.log()[-3000:]
        )
        assert wait_until(lambda: len(_delivered(sink)) >= EVENTS, timeout=180), (
            f"{len(_delivered(sink))} delivered; " + notifier.log()[-3000:]
        )
        wait_until(lambda: False, timeout=2.0)  # a late duplicate would land now
        kubelet.stop()
        api_exit = api.process.poll() if api.process else None
        print(f"consumer restarts after exiting during the crashes: {dict(kubelet.restarts)}")
    finally:
        kubelet.stop()
        for process in (audit, notifier):
            process.stop_quietly()
        api.stop_quietly()
    in_audit = _audit_ids(url)
    delivered = _delivered(sink)
    assert len(accepted) == EVENTS
    assert set(in_audit) == set(accepted)
    assert set(in_audit.values()) == {1}
    assert set(delivered) == set(accepted)
    assert set(delivered.values()) == {1}, "an event was delivered to the webhook twice"
    assert api_exit is None  # the API (and its relay) rode the crashes out
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone() == (0,)
