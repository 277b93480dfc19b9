"""A Server-Sent Events reader for the tests: a background thread parses the stream (per the
WHATWG event-stream format: `field: value` lines, a blank line ends a message, `:` comments)
into a queue, so a test can wait for messages with a deadline and disconnect at will."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Message:
    event: str
    data: str
    id: str | None

    def json(self) -> Any:
        return json.loads(self.data)


class SseReader:
    def __init__(self, url: str, key: str, last_event_id: str | None = None) -> None:
        self.headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
        if last_event_id is not None:
            self.headers["Last-Event-ID"] = last_event_id
        self.url = url
        self.messages: queue.Queue[Message] = queue.Queue()
        self.comments = 0
        self.status_code: int | None = None
        self.response_headers: httpx.Headers | None = None
        self._stop = threading.Event()
        self._response: httpx.Response | None = None
        self._socket: socket.socket | None = None
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sse-reader", daemon=True)

    def __enter__(self) -> SseReader:
        self._thread.start()
        assert self._connected.wait(15), "stream did not answer"
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop.set()
        if self._socket is not None:
            # Closing a socket does not wake a recv() blocked on it in another thread (the
            # reader would sit until the server's next heartbeat, 15 s by default, and the
            # server would not see the disconnect until then); shutdown() wakes it at once and
            # sends the FIN the server waits for.
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
        if self._response is not None:
            self._response.close()
        self._thread.join(10)
        assert not self._thread.is_alive(), "the SSE reader thread did not stop"

    def _run(self) -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(5.0, read=60.0)) as client,
                client.stream("GET", self.url, headers=self.headers) as response,
            ):
                self.status_code = response.status_code
                self.response_headers = response.headers
                self._response = response
                self._socket = response.extensions["network_stream"].get_extra_info("socket")
                self._connected.set()
                if response.status_code != 200:
                    return
                self._parse(response)
        except (httpx.HTTPError, OSError, RuntimeError):
            pass  # closed by `close()`, or the server went away: the test's waits say which
        finally:
            self._connected.set()

    def _parse(self, response: httpx.Response) -> None:
        event, data, last_id = "message", [], None
        lines = response.iter_lines()
        while not self._stop.is_set():
            try:
                line = next(lines)
            except StopIteration:
                return
            if line == "":
                if data:
                    self.messages.put(Message(event, "\n".join(data), last_id))
                event, data = "message", []
            elif line.startswith(":"):
                self.comments += 1
            else:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "event":
                    event = value
                elif name == "data":
                    data.append(value)
                elif name == "id":
                    last_id = value

    def wait_for(
        self, predicate: Callable[[Message], bool], timeout_s: float = 20.0
    ) -> list[Message]:
        """Every message received until one matches `predicate` (included); fails on timeout."""
        seen: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no matching message within {timeout_s}s; got {seen}"
            try:
                message = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            seen.append(message)
            if predicate(message):
                return seen

    def activities(self, count: int, timeout_s: float = 20.0) -> list[dict[str, Any]]:
        """The next `count` activity messages (other kinds are skipped)."""
        found: list[dict[str, Any]] = []
        while len(found) < count:
            message = self.wait_for(lambda m: m.event == "activity", timeout_s)[-1]
            found.append(message.json())
        return found

    def drain(self, quiet_s: float = 1.0) -> list[Message]:
        """Everything that arrives until the stream is quiet for `quiet_s`."""
        got: list[Message] = []
        while True:
            try:
                got.append(self.messages.get(timeout=quiet_s))
            except queue.Empty:
                return got
