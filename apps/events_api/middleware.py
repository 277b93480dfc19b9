"""Pure-ASGI middleware: request context (correlation id, trace span, latency metric) and the
body guard (415 for non-JSON, 413 for bodies over the limit, by header and by streamed size).

Pure ASGI rather than `BaseHTTPMiddleware` so the body can be counted as it streams in and
replayed to the app without buffering twice, and so context variables reach the endpoint.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from opentelemetry import trace
from opentelemetry.propagate import extract
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apps.common.logging import correlation_id_var
from apps.events_api import metrics

log = logging.getLogger(__name__)

CORRELATION_HEADER = "x-correlation-id"
_VALID_CORRELATION_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_tracer = trace.get_tracer("events-api")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _reply(send: Send, status: int, detail: str, extra: dict[str, str] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestContextMiddleware:
    """Correlation id in/out, a server span joined to any incoming `traceparent`, latency."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = _header(scope, CORRELATION_HEADER.encode())
        correlation_id = (
            offered if offered and _VALID_CORRELATION_ID.match(offered) else uuid.uuid4().hex
        )
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        token = correlation_id_var.set(correlation_id)
        status_holder = {"status": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((CORRELATION_HEADER.encode(), correlation_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        started = time.perf_counter()
        method = scope.get("method", "GET")
        try:
            with _tracer.start_as_current_span(
                f"{method} {scope.get('path', '')}",
                context=extract(carrier),
                kind=trace.SpanKind.SERVER,
                attributes={"correlation_id": correlation_id},
            ) as span:
                await self.app(scope, receive, send_with_id)
                span.set_attribute("http.status_code", status_holder["status"])
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics.REQUEST_LATENCY.labels(template, method, str(status_holder["status"])).observe(
                time.perf_counter() - started
            )
            correlation_id_var.reset(token)


class BodyGuardMiddleware:
    """415 unless JSON, 413 over `max_bytes` (declared or streamed), for API write methods."""

    def __init__(self, app: ASGIApp, max_bytes: int, prefix: str = "/api/") -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") not in _BODY_METHODS
            or not str(scope.get("path", "")).startswith(self.prefix)
        ):
            await self.app(scope, receive, send)
            return
        content_type = (_header(scope, b"content-type") or "").split(";", 1)[0].strip().lower()
        if content_type != "application/json":
            await _reply(send, 415, "Content-Type must be application/json")
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await _reply(send, 400, "invalid Content-Length header")
                return
            if int(declared) > self.max_bytes:
                await _reply(send, 413, f"request body exceeds {self.max_bytes} bytes")
                return
        # The header can lie or be absent (chunked): count what actually arrives.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _reply(send, 413, f"request body exceeds {self.max_bytes} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
