"""Prometheus metrics of events-api (process-global registry, served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REQUEST_LATENCY = Histogram(
    "events_api_request_duration_seconds",
    "HTTP request latency by route template, method and status code.",
    ("route", "method", "status"),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
EVENTS_ACCEPTED = Counter("events_api_events_accepted_total", "Events stored with 202.")
LIMITED = Counter("events_api_limited_total", "Requests refused with 429.", ("limit",))

OUTBOX_PENDING = Gauge("events_api_outbox_pending", "Outbox rows not yet acknowledged by Kafka.")
OUTBOX_LAG = Gauge(
    "events_api_outbox_lag_seconds", "Age of the oldest unpublished outbox row (0 when empty)."
)
OUTBOX_PUBLISHED = Counter(
    "events_api_outbox_published_total", "Outbox rows acknowledged by Kafka.", ("topic",)
)
OUTBOX_PUBLISH_FAILURES = Counter(
    "events_api_outbox_publish_failures_total", "Outbox rows whose publish failed (retried)."
)
OUTBOX_RELAY_ERRORS = Counter(
    "events_api_outbox_relay_errors_total", "Relay cycles that failed (DB or Kafka unavailable)."
)

STREAM_CLIENTS = Gauge("events_api_stream_clients", "Connected live-stream clients.")
STREAM_ITEMS = Counter(
    "events_api_stream_items_total", "Outbox rows the stream hub read and fanned out."
)
STREAM_CATCHUPS = Counter(
    "events_api_stream_catchups_total",
    "Times a slow stream client's bounded queue overflowed and it resumed from the database.",
)
STREAM_REFUSED = Counter(
    "events_api_stream_refused_total", "Stream connections refused: too many clients (503)."
)
