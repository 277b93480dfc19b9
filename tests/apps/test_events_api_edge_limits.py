"""Edge limits of events-api's HTTP server (apps/events_api/server_limits.py), over real sockets
against a real uvicorn serving the real app: request heads are bounded in size and field count
(431), a head must arrive within the head timeout (408, then closed), an idle connection is
closed, and many slow clients neither hold connections past that time nor stop the API from
answering. Plus: a bare number as `due_at` is a 422 asking for ISO 8601.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from apps.events_api import server_limits
from apps.events_api.server_limits import BoundedHttpToolsProtocol, HeadLimits
from tests.apps.conftest import EventsApiEnv
from tests.apps.live_server import live_server

LIMITS = HeadLimits(max_head_bytes=8 * 1024, max_headers=40, head_timeout_s=1.5)
SLACK_S = 4.0
"""Allowance for a loaded machine on top of the stated timeout (a bound, not a figure)."""
SLOW_CLIENTS = 200


@pytest.fixture
def server(events_api_env: EventsApiEnv) -> Iterator[tuple[str, int]]:
    server_limits.configure(LIMITS)
    try:
        with live_server(
            events_api_env.app(relay_enabled=False), http=BoundedHttpToolsProtocol
        ) as base:
            host, port = base.removeprefix("http://").split(":")
            yield host, int(port)
    finally:
        server_limits.configure(HeadLimits())


def _connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=SLACK_S + LIMITS.head_timeout_s + 5)
    return sock


def _request(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: test", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    """(status, body) of one response, read until the server closes or Content-Length is met."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, body


def _closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed its side (EOF, or a reset after a refusal)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


def test_too_many_header_fields_is_431_and_the_limit_itself_is_fine(
    server: tuple[str, int],
) -> None:
    # "Host" is one field: 39 more make exactly the limit.
    at_limit = {f"X-F{i}": "v" for i in range(LIMITS.max_headers - 1)}
    with _connect(server) as sock:
        sock.sendall(_request("/healthz", at_limit))
        assert _read_response(sock)[0] == 200
    over = {f"X-F{i}": "v" for i in range(LIMITS.max_headers)}
    with _connect(server) as sock:
        sock.sendall(_request("/healthz", over))
        status, body = _read_response(sock)
        assert status == 431
        assert json.loads(body) == {
            "detail": f"more than {LIMITS.max_headers} request header fields"
        }
        assert _closed_by_server(sock)


@pytest.mark.parametrize("pieces", [1, 64], ids=["in-one-write", "dribbled"])
def test_an_oversized_head_is_431_however_it_arrives(server: tuple[str, int], pieces: int) -> None:
    request = _request("/healthz", {"X-Big": "a" * (2 * LIMITS.max_head_bytes)})
    with _connect(server) as sock:
        step = -(-len(request) // pieces)
        # The server answers as soon as it has seen too much: stop writing once it closed.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            for start in range(0, len(request), step):
                sock.sendall(request[start : start + step])
                time.sleep(0.005)
        status, body = _read_response(sock)
    assert status == 431
    assert f"exceeds {LIMITS.max_head_bytes} bytes" in json.loads(body)["detail"]
    # Just under the limit is served.
    with _connect(server) as sock:
        sock.sendall(_request("/healthz", {"X-Big": "a" * (LIMITS.max_head_bytes - 200)}))
        assert _read_response(sock)[0] == 200


def test_a_head_that_never_completes_is_408_and_closed_in_time(server: tuple[str, int]) -> None:
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /api/v1/events HTTP/1.1\r\nHost: test\r\nContent-")
        status, _ = _read_response(sock)
        took = time.monotonic() - started
        assert _closed_by_server(sock)
    assert status == 408
    assert LIMITS.head_timeout_s * 0.9 <= took < LIMITS.head_timeout_s + SLACK_S


def test_an_idle_connection_is_closed_and_a_kept_alive_one_times_out_its_next_head(
    server: tuple[str, int],
) -> None:
    with _connect(server) as sock:
        started = time.monotonic()
        assert sock.recv(1) == b""  # closed without a word: nothing was asked
        assert time.monotonic() - started < LIMITS.head_timeout_s + SLACK_S
    with _connect(server) as sock:
        sock.sendall(_request("/healthz", {}))
        assert _read_response(sock)[0] == 200
        # The next request on the same connection starts, and stalls: its own clock runs.
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")
        started = time.monotonic()
        status, _ = _read_response(sock)
        assert time.monotonic() - started < LIMITS.head_timeout_s + SLACK_S
    assert status == 408


def test_many_slow_clients_neither_starve_the_api_nor_outlive_the_timeout(
    server: tuple[str, int], events_api_env: EventsApiEnv
) -> None:
    host, port = server
    slow = []
    for i in range(SLOW_CLIENTS):
        sock = _connect(server)
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow-{i}: ".encode())
        slow.append(sock)
    opened = time.monotonic()
    try:
        # Meanwhile the API answers: the slow heads hold sockets, not the event loop or tasks.
        headers = {"Authorization": f"Bearer {events_api_env.create_key()}"}
        answered = time.monotonic()
        response = httpx.post(
            f"http://{host}:{port}/api/v1/events",
            json={"category": "c", "message": "while slow clients wait"},
            headers=headers,
            timeout=LIMITS.head_timeout_s,
        )
        assert response.status_code == 202
        assert time.monotonic() - answered < LIMITS.head_timeout_s  # before any slow one left
        # Every slow client is answered 408 and closed within the stated time.
        closed: list[float] = []
        lock = threading.Lock()

        def wait_closed(sock: socket.socket) -> None:
            status, _ = _read_response(sock)
            assert status == 408
            _closed_by_server(sock)
            with lock:
                closed.append(time.monotonic() - opened)

        threads = [threading.Thread(target=wait_closed, args=(s,)) for s in slow]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(LIMITS.head_timeout_s + SLACK_S + 5)
    finally:
        for sock in slow:
            sock.close()
    assert len(closed) == SLOW_CLIENTS
    assert max(closed) < LIMITS.head_timeout_s + SLACK_S


@pytest.mark.parametrize("due_at", [20000000000, 20000000001, "20000000000", 1.7e9, "1e10"])
def test_a_bare_number_as_due_at_is_422_asking_for_iso_8601(
    events_api_env: EventsApiEnv, due_at: object
) -> None:
    """pydantic would read a number as Unix seconds or milliseconds (switching at 2e10):
    20000000000 was stored as the year 2603 and 20000000001 as a day in 1970."""
    headers = {"Authorization": f"Bearer {events_api_env.create_key()}"}
    with TestClient(events_api_env.app(relay_enabled=False)) as client:
        response = client.post(
            "/api/v1/tasks", json={"title": "t", "due_at": due_at}, headers=headers
        )
        assert response.status_code == 422
        (error,) = response.json()["detail"]
        assert error["loc"] == ["body", "due_at"]
        assert "ISO 8601" in error["msg"]
        ok = client.post(
            "/api/v1/tasks", json={"title": "t", "due_at": "2030-01-31T09:00:00Z"}, headers=headers
        )
        assert ok.status_code == 201, ok.text
        assert ok.json()["due_at"].startswith("2030-01-31T09:00:00")
