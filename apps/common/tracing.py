"""OpenTelemetry: OTLP/HTTP export when configured, W3C trace context carried in Kafka headers.

With `OTEL_EXPORTER_OTLP_ENDPOINT` unset, spans are still created (so trace ids appear in logs
and `traceparent` headers) but nothing is exported: local runs and tests need no collector.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

TRACEPARENT_HEADER = "traceparent"
_configured: TracerProvider | None = None


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


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def inject_headers(context: Context | None = None) -> list[tuple[str, bytes]]:
    """The current (or given) trace context as Kafka headers (`traceparent`, maybe `tracestate`)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=context)
    return [(key, value.encode()) for key, value in carrier.items()]


def extract_context(headers: Iterable[tuple[str, bytes | None]] | None) -> Context:
    """A context whose parent is the producer's span, so the consumer's span joins its trace."""
    carrier = {
        key: (value or b"").decode("utf-8", errors="replace") for key, value in (headers or ())
    }
    return propagate.extract(carrier)
