"""One trace per accepted event, across processes and Kafka, and none of it lost to a SIGTERM.

events-api (with its outbox relay), notifier and audit run as real processes exporting
OTLP/HTTP to a receiver (tests/apps/otlp_receiver.py). For every accepted event the receiver
must hold, in ONE trace: the API's SERVER span for the request, the relay's PRODUCER span for
the publish (a child of it), the notifier's CONSUMER span (a child of the publish), and an audit
batch span linking the publish. The API is SIGTERMed as soon as its relay has published the
last events, well inside the SDK's 5 s export interval, so those spans reach the receiver only
if the shutdown flushes them (uvicorn re-raises the signal, which skips the SDK's own flush).
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from apps.audit.cli import MIGRATIONS as AUDIT_MIGRATIONS
from apps.common.db import migrate
from apps.notifier.cli import MIGRATIONS as NOTIFIER_MIGRATIONS
from tests.apps.api_process import ApiProcess
from tests.apps.app_env import app_env
from tests.apps.conftest import EventsApiEnv
from tests.apps.consumer_harness import ConsumerProcess, wait_until
from tests.apps.otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver
from tests.apps.webhook_sink import WebhookSink, webhook_sink

pytestmark = pytest.mark.slow

EARLY, LATE = 10, 10
"""Events accepted while all runs, then events accepted just before the API's SIGTERM."""


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as r:
        yield r


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with webhook_sink() as s:
        yield s


def _unsent(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()
    return int(row[0]) if row else -1


def _audited(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM audit_log").fetchone()
    return int(row[0]) if row else -1


def _by_id(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    return {s.span_id: s for s in spans}


def test_every_event_has_api_publish_notifier_and_audit_in_one_trace_across_a_sigterm(
    events_api_env: EventsApiEnv, receiver: OtlpReceiver, sink: WebhookSink, tmp_path: Path
) -> None:
    url = events_api_env.database_url
    topics = events_api_env.topics
    migrate(url, "audit", AUDIT_MIGRATIONS)
    migrate(url, "notifier", NOTIFIER_MIGRATIONS)
    suffix = uuid.uuid4().hex[:6]
    common = {
        **app_env(events_api_env.bootstrap, url, topics=topics),
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
    }
    api = ApiProcess("serve", common, tmp_path / "events-api.log")
    notifier = ConsumerProcess(
        "notifier",
        {
            **common,
            "DEAD_LETTER_TOPIC": topics.notifier_dlq,
            "CONSUMER_GROUP": f"notifier-{suffix}",
            "NOTIFIER_WEBHOOK_URL": f"{sink.url}/hook",
        },
        tmp_path / "notifier.log",
    )
    audit = ConsumerProcess(
        "audit",
        {**common, "DEAD_LETTER_TOPIC": topics.audit_dlq, "CONSUMER_GROUP": f"audit-{suffix}"},
        tmp_path / "audit.log",
    )
    accepted: dict[str, str] = {}  # event id -> correlation id
    try:
        api.start()
        notifier.start()
        audit.start()
        with api.client(events_api_env.create_key()) as client:

            def post(n: int) -> None:
                for i in range(n):
                    response = client.post(
                        "/api/v1/events", json={"category": "c", "message": f"{i}"}
                    )
                    assert response.status_code == 202, response.text
                    body = response.json()
                    accepted[body["id"]] = body["correlation_id"]

            post(EARLY)
            assert wait_until(lambda: _audited(url) == EARLY, timeout=60), audit.log()[-3000:]
            post(LATE)
        assert wait_until(lambda: _unsent(url) == 0, timeout=30), api.log()[-3000:]
        code, _ = api.terminate()  # at once: the last spans are still queued in the exporter
        assert code in (0, -signal.SIGTERM)
        total = EARLY + LATE
        assert wait_until(lambda: _audited(url) == total, timeout=60), audit.log()[-3000:]
        assert sink.wait_for(total, path="/hook", status=200, timeout=60)
        for consumer in (notifier, audit):
            assert consumer.terminate() < 15  # a normal exit runs the SDK's own flush
    finally:
        for process in (notifier, audit):
            process.stop_quietly()
        api.stop_quietly()

    def complete(spans: list[ReceivedSpan]) -> bool:
        publishes = [s for s in spans if s.kind == "PRODUCER" and s.service == "events-api"]
        return len({s.attributes.get("messaging.message.id") for s in publishes}) >= total

    assert receiver.wait_for(complete, timeout=30), "publish spans missing after the SIGTERM"
    spans = receiver.received()
    by_id = _by_id(spans)
    publishes = {
        s.attributes["messaging.message.id"]: s
        for s in spans
        if s.kind == "PRODUCER" and s.service == "events-api"
    }
    audit_links = {link for s in spans if s.service == "audit" for link in s.links}
    notifier_spans = [s for s in spans if s.service == "notifier" and s.kind == "CONSUMER"]
    for event_id, correlation_id in accepted.items():
        publish = publishes.get(event_id)
        assert publish is not None, f"no publish span for {event_id}"
        request = by_id.get(publish.parent_span_id)
        assert request is not None, f"the publish of {event_id} has no parent span"
        assert (request.service, request.kind) == ("events-api", "SERVER")
        assert request.name == "POST /api/v1/events"
        assert request.attributes["correlation_id"] == correlation_id
        assert request.trace_id == publish.trace_id
        consumed = [s for s in notifier_spans if s.parent_span_id == publish.span_id]
        assert len(consumed) == 1, f"notifier spans under the publish of {event_id}: {consumed}"
        assert consumed[0].trace_id == publish.trace_id
        assert (publish.trace_id, publish.span_id) in audit_links, f"audit lost {event_id}"
