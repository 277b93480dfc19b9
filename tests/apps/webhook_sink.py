"""A real local HTTP server standing in for webhook / chat provider endpoints.

It records every request (method, path, headers, body) and answers according to a per-path plan:
fail the first N requests with a status, fail always, or answer slowly. Thread-safe; started on a
free loopback port and stopped by the fixture (or the context manager) so no thread is left.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from platform_cli.processes import poll_until


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Plan:
    status: int = 200
    fail_first: int = 0
    fail_status: int = 500
    delay_s: float = 0.0
    fail_each_first: int = 0
    seen: int = 0
    seen_per_key: dict[str, int] = field(default_factory=dict)


@dataclass
class WebhookSink:
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[RecordedRequest] = field(default_factory=list)
    _plans: dict[str, _Plan] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def plan(
        self,
        path: str,
        *,
        fail_first: int = 0,
        fail_status: int = 500,
        always: int | None = None,
        delay_s: float = 0.0,
        fail_each_first: int = 0,
    ) -> None:
        """Answer `fail_status` to the first `fail_first` requests on `path`, then 200.

        `fail_each_first=k` fails the first k requests of EVERY idempotency key (each message
        sees k failures, then success); `always=<status>` answers that status forever;
        `delay_s` sleeps before answering.
        """
        with self._lock:
            self._plans[path] = _Plan(
                status=always if always is not None else 200,
                fail_first=fail_first,
                fail_status=fail_status,
                delay_s=delay_s,
                fail_each_first=fail_each_first,
            )

    def received(self, path: str | None = None, status: int | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (path is None or r.path == path) and (status is None or r.status == status)
            ]

    def wait_for(
        self, count: int, path: str | None = None, status: int | None = None, timeout: float = 30.0
    ) -> list[RecordedRequest]:
        poll_until(lambda: len(self.received(path, status)) >= count, timeout, interval=0.05)
        return self.received(path, status)

    def _respond(self, path: str, key: str | None) -> tuple[int, float]:
        with self._lock:
            plan = self._plans.setdefault(path, _Plan())
            plan.seen += 1
            per_key = plan.seen_per_key[key or ""] = plan.seen_per_key.get(key or "", 0) + 1
            failing = plan.seen <= plan.fail_first or per_key <= plan.fail_each_first
            return (plan.fail_status if failing else plan.status), plan.delay_s

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def start(self) -> None:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle on, the body waits for the
            # client's delayed ACK (~40 ms per request), which would dominate every timing.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                status, delay = sink._respond(self.path, self.headers.get("Idempotency-Key"))
                if delay:
                    time.sleep(delay)
                sink._record(
                    RecordedRequest("POST", self.path, dict(self.headers.items()), body, status)
                )
                payload = b'{"ok":true}' if status < 300 else b'{"ok":false}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return  # keep test output clean

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)


@contextmanager
def webhook_sink() -> Iterator[WebhookSink]:
    sink = WebhookSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()
