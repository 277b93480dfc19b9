"""OpenTelemetry: OTLP/HTTP export when configured, W3C trace context carried in Kafka headers.

With `OTEL_EXPORTER_OTLP_ENDPOINT` unset, spans are still created (so trace ids appear in logs
and `traceparent` headers) but nothing is exported: local runs and tests need no collector.

Spans are exported in batches from a background thread. A process that exits through a
re-raised signal (uvicorn re-raises SIGTERM after its graceful stop) never runs the SDK's
exit-time flush, so services call `shutdown_tracing()` at the end of their own shutdown.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, SpanContext

TRACEPARENT_HEADER = "traceparent"
FLUSH_TIMEOUT_MS = 5_000
"""How long a shutdown waits for the exporter to deliver the spans still queued."""
_configured: TracerProvider | None = None
log = logging.getLogger(__name__)


def setup_tracing(service_name: str, endpoint: str | None = None) -> TracerProvider:
    """Install the global tracer provider once per process (later calls return the first one)."""
    global _configured
    if _configured is not None:
        return _configured
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    endpoint = endpoint if endpoint is not None else os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        traces_url = endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url)))
    trace.set_tracer_provider(provider)
    _configured = provider
    return provider


def flush_tracing(timeout_ms: int = FLUSH_TIMEOUT_MS) -> bool:
    """Export the spans queued so far (True when all were handed over within the timeout)."""
    if _configured is None:
        return True
    done = _configured.force_flush(timeout_ms)
    if not done:
        log.warning("spans still queued after the flush timeout", extra={"timeout_ms": timeout_ms})
    return bool(done)


def shutdown_tracing(timeout_ms: int = FLUSH_TIMEOUT_MS) -> None:
    """Flush, then stop the exporter: the last step of a service's shutdown."""
    if _configured is not None:
        flush_tracing(timeout_ms)
        _configured.shutdown()


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def inject_headers(context: Context | None = None) -> list[tuple[str, bytes]]:
    """The current (or given) trace context as Kafka headers (`traceparent`, maybe `tracestate`)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return [(key, value.encode()) for key, value in carrier.items()]


def is_trace_header(name: str) -> bool:
    """A header the configured propagators write (`traceparent`, `tracestate`, `baggage`)."""
    return name in propagate.get_global_textmap().fields


def extract_context(headers: Iterable[tuple[str, bytes | None]] | None) -> Context:
    """A context whose parent is the producer's span, so the consumer's span joins its trace."""
    carrier = {
        key: (value or b"").decode("utf-8", errors="replace") for key, value in (headers or ())
    }
    return propagate.extract(carrier)


def span_context_of(headers: Iterable[tuple[str, bytes | None]] | None) -> SpanContext:
    """The producer's span context carried in a record's headers (invalid if none)."""
    return trace.get_current_span(extract_context(headers)).get_span_context()


def max_span_links() -> int:
    """Links one span may hold: the SDK's limit (OTEL_SPAN_LINK_COUNT_LIMIT, default 128); the
    SDK silently drops links beyond it."""
    limit = SpanLimits().max_links
    return limit if isinstance(limit, int) and limit > 0 else 128


def link_chunks(contexts: Sequence[SpanContext], size: int | None = None) -> Iterator[list[Link]]:
    """The valid contexts as links, in chunks of at most the SDK's link limit: a batch of more
    records than one span may link gets one span per chunk, so every record is linked."""
    links = [Link(c) for c in contexts if c.is_valid]
    step = size or max_span_links()
    for start in range(0, len(links), step):
        yield links[start : start + step]
