"""JSON logs with correlation ids, trace context through Kafka headers, the health server."""

from __future__ import annotations

import io
import json
import logging
import sys

import httpx
import pytest
from opentelemetry import trace
from prometheus_client import CollectorRegistry, Counter

from apps.common.health import HealthServer
from apps.common.logging import JsonFormatter, configure_logging, correlation_scope
from apps.common.tracing import extract_context, inject_headers, setup_tracing


def _capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("svc"))
    logger = logging.getLogger("test.json")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_log_lines_are_json_with_correlation_id_and_extras() -> None:
    logger, stream = _capture()
    with correlation_scope("corr-42"):
        logger.info("accepted %s", "event", extra={"event_id": "e1"})
    logger.info("outside")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["msg"] == "accepted event"
    assert first["correlation_id"] == "corr-42"
    assert first["event_id"] == "e1"
    assert first["service"] == "svc"
    assert "correlation_id" not in second


def test_trace_context_survives_a_trip_through_kafka_headers() -> None:
    setup_tracing("test")
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("produce") as producer_span:
        headers = inject_headers()
        logger, stream = _capture()
        logger.info("inside span")
    names = [k for k, _ in headers]
    assert "traceparent" in names
    with tracer.start_as_current_span("consume", context=extract_context(headers)) as span:
        assert span.get_span_context().trace_id == producer_span.get_span_context().trace_id
    line = json.loads(stream.getvalue())
    assert line["trace_id"] == format(producer_span.get_span_context().trace_id, "032x")


def test_health_server_endpoints() -> None:
    registry = CollectorRegistry()
    Counter("demo_processed", "demo", registry=registry).inc(3)
    state = {"db": True, "kafka": False}
    with HealthServer(0, lambda: state, host="127.0.0.1", registry=registry) as server:
        base = f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"{base}/healthz").status_code == 200
        not_ready = httpx.get(f"{base}/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json()["checks"] == {"db": True, "kafka": False}
        state["kafka"] = True
        assert httpx.get(f"{base}/readyz").status_code == 200
        assert "demo_processed_total 3.0" in httpx.get(f"{base}/metrics").text
        assert httpx.get(f"{base}/nope").status_code == 404


def test_readiness_check_that_raises_means_not_ready() -> None:
    def broken() -> bool:
        raise RuntimeError("db down")

    with HealthServer(0, broken, host="127.0.0.1", registry=CollectorRegistry()) as server:
        response = httpx.get(f"http://127.0.0.1:{server.port}/readyz")
    assert response.status_code == 503
    assert response.json()["error"] == "RuntimeError"


def test_configured_logging_follows_a_swapped_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    # CLI harnesses swap sys.stderr and close the old one; logging must not keep the old object.
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging("svc")
        first, second = io.StringIO(), io.StringIO()
        monkeypatch.setattr(sys, "stderr", first)
        logging.getLogger("swap").warning("one")
        first.close()
        monkeypatch.setattr(sys, "stderr", second)
        logging.getLogger("swap").warning("two")
        assert json.loads(second.getvalue())["msg"] == "two"
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
