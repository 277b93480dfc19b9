"""Structured JSON logs carrying the correlation id (and trace id) of the work in hand.

Plain stdlib logging with a JSON formatter: every library's log records come out as one JSON
object per line, and `extra={...}` fields become top-level keys.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

correlation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "correlation_id", default=None
)

# Attributes every LogRecord has; anything else on a record came from `extra=` and is emitted.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime", "taskName"}
)


def get_correlation_id() -> str | None:
    return correlation_id_var.get()


@contextlib.contextmanager
def correlation_scope(correlation_id: str | None) -> Iterator[None]:
    """Log records emitted inside this block carry `correlation_id`."""
    token = correlation_id_var.set(correlation_id)
    try:
        yield
    finally:
        correlation_id_var.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, ids and `extra` fields."""

    def __init__(self, service: str | None = None) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self.service:
            entry["service"] = self.service
        correlation_id = getattr(record, "correlation_id", None) or correlation_id_var.get()
        if correlation_id:
            entry["correlation_id"] = correlation_id
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
            entry["span_id"] = format(span.span_id, "016x")
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at emit time, not the object seen at setup.

    Test runners and CLI harnesses swap and close `sys.stderr`; a handler bound to the old
    object would then fail on every record ("I/O operation on closed file").
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(service: str, level: str | int = "INFO") -> None:
    """Send every logger's records to stderr as JSON (idempotent: replaces root handlers)."""
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level if isinstance(level, int) else level.upper())
    # kafka-python logs every reconnect attempt at WARNING/ERROR; the relay reports outages itself.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
