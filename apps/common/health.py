"""`/healthz`, `/readyz` and `/metrics` for the consumer apps, on a stdlib HTTP server.

Why stdlib and not uvicorn+FastAPI: the consumers are synchronous poll loops that own SIGTERM
handling; a `ThreadingHTTPServer` in a daemon thread adds no event loop, installs no signal
handlers, and serves three tiny GET endpoints, which is all a probe and Prometheus need.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], "bool | Mapping[str, bool]"]
"""Returns True/False, or named checks (all must be True to be ready)."""


def _evaluate(check: ReadinessCheck) -> tuple[bool, dict[str, Any]]:
    try:
        result = check()
    except Exception as exc:  # a failing check means "not ready", never a crashed probe
        return False, {"error": type(exc).__name__}
    if isinstance(result, Mapping):
        checks = {name: bool(ok) for name, ok in result.items()}
        return all(checks.values()), {"checks": checks}
    return bool(result), {}


class HealthServer:
    """Serves the three endpoints on `host:port` (port 0 picks a free one; see `.port`)."""

    def __init__(
        self,
        port: int,
        ready: ReadinessCheck,
        *,
        host: str = "0.0.0.0",  # noqa: S104 - probes and Prometheus reach the pod IP
        registry: CollectorRegistry = REGISTRY,
        alive: Callable[[], bool] = lambda: True,
    ) -> None:
        handler = _handler_class(ready, alive, registry)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="health-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> HealthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler_class(
    ready: ReadinessCheck, alive: Callable[[], bool], registry: CollectorRegistry
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                ok = alive()
                self._json(200 if ok else 503, {"status": "ok" if ok else "dead"})
            elif path == "/readyz":
                ok, body = _evaluate(ready)
                self._json(200 if ok else 503, {"status": "ready" if ok else "not ready", **body})
            elif path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            else:
                self._json(404, {"detail": "not found"})

        def _json(self, status: int, body: dict[str, Any]) -> None:
            self._send(status, "application/json", json.dumps(body).encode())

        def _send(self, status: int, content_type: str, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return  # probes every few seconds would drown the app's own logs

    return Handler
