"""A real local HTTP server standing in for webhook / chat provider endpoints.

It records every request (method, path, headers, body) and answers according to a per-path plan:
fail the first N requests with a status, fail always, fail given idempotency keys N times, fail
a fixed share of attempts (`fail_ratio`, decided by `fails_attempt`, so a test can compute the
exact outcome of every delivery), or answer slowly. Thread-safe; started on a free loopback port and
stopped by the fixture (or the context manager) so no thread is left.

`python -m tests.apps.webhook_sink --port N [--fail-ratio 0.1]` runs one as its own process (the
notifier benchmark's target); `GET /_stats` then answers the counts as JSON.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from platform_cli.processes import poll_until
from tests.conftest import serving


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    def json(self) -> Any:
        return json.loads(self.body)


def fails_attempt(key: str, attempt: int, ratio: float) -> bool:
    """Whether attempt `attempt` (1-based) of idempotency key `key` fails under `fail_ratio`.

    A hash, not a random draw: the same key and attempt always get the same answer, so a test
    knows every delivery's fate in advance, and each attempt fails with probability ~`ratio`
    independently of the others."""
    return zlib.crc32(f"{key}#{attempt}".encode()) % 10_000 < round(ratio * 10_000)


@dataclass
class _Plan:
    status: int = 200
    fail_first: int = 0
    fail_status: int = 500
    delay_s: float = 0.0
    fail_each_first: int = 0
    fail_keys: dict[str, int] = field(default_factory=dict)
    fail_ratio: float = 0.0
    seen: int = 0
    seen_per_key: dict[str, int] = field(default_factory=dict)


@dataclass
class WebhookSink:
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[RecordedRequest] = field(default_factory=list)
    _plans: dict[str, _Plan] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ok: int = 0
    _ok_keys: set[str] = field(default_factory=set)

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
        fail_keys: Mapping[str, int] | None = None,
        fail_ratio: float = 0.0,
    ) -> None:
        """Answer `fail_status` to the first `fail_first` requests on `path`, then 200.

        `fail_each_first=k` fails the first k requests of EVERY idempotency key (each message
        sees k failures, then success); `fail_keys={key: n}` fails the first n requests of
        that idempotency key; `fail_ratio` fails the attempts `fails_attempt` picks;
        `always=<status>` answers that status forever; `delay_s` sleeps before answering.
        """
        with self._lock:
            self._plans[path] = _Plan(
                status=always if always is not None else 200,
                fail_first=fail_first,
                fail_status=fail_status,
                delay_s=delay_s,
                fail_each_first=fail_each_first,
                fail_keys=dict(fail_keys or {}),
                fail_ratio=fail_ratio,
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
            failing = (
                plan.seen <= plan.fail_first
                or per_key <= plan.fail_each_first
                or per_key <= plan.fail_keys.get(key or "", 0)
                or (plan.fail_ratio > 0 and fails_attempt(key or "", per_key, plan.fail_ratio))
            )
            return (plan.fail_status if failing else plan.status), plan.delay_s

    def stats(self) -> dict[str, int]:
        """Counts over every path: requests, 2xx answers, distinct keys answered 2xx, and 2xx
        answers beyond the first per key (duplicates). Kept as it goes: asking is O(1), so a
        benchmark polling it does not slow the sink down as requests pile up."""
        with self._lock:
            return {
                "requests": len(self.requests),
                "ok": self._ok,
                "distinct_ok": len(self._ok_keys),
                "duplicates": self._ok - len(self._ok_keys),
            }

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)
            if request.status < 300:
                self._ok += 1
                self._ok_keys.add(request.headers.get("Idempotency-Key", ""))

    def handler(self) -> type[BaseHTTPRequestHandler]:
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

            def do_GET(self) -> None:
                if self.path != "/_stats":
                    self.send_error(404)
                    return
                payload = json.dumps(sink.stats()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return  # keep test output clean

        return Handler

    @contextmanager
    def running(self) -> Iterator[WebhookSink]:
        """Answer on host:port (0: a free one, then `port` is the one bound) until exit."""
        with serving(self.handler(), self.host, self.port) as server:
            self.port = server.server_address[1]
            yield self


@contextmanager
def webhook_sink() -> Iterator[WebhookSink]:
    with WebhookSink().running() as sink:
        yield sink


def main() -> None:
    parser = argparse.ArgumentParser(description="A webhook target that records and counts.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/hook")
    parser.add_argument("--fail-ratio", type=float, default=0.0)
    args = parser.parse_args()
    sink = WebhookSink(port=args.port)
    sink.plan(args.path, fail_ratio=args.fail_ratio)
    with sink.running():
        threading.Event().wait()  # until killed: the benchmark stops it with SIGTERM


if __name__ == "__main__":
    main()
