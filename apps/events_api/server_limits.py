"""Edge limits of the HTTP server: request heads are bounded in size, count and time.

uvicorn (0.54, httptools protocol) has none of these: a request head of any size is buffered
(httptools even grows each header value by concatenation), any number of headers is accepted,
and a connection that never finishes its head, or never sends a byte, stays open for good; its
keep-alive timeout only runs between two complete requests. So a handful of slow clients could
hold connections and memory forever. `BoundedHttpToolsProtocol` is uvicorn's own protocol with:

- the head (request line and headers) at most `max_head_bytes`, and at most `max_headers`
  header fields: beyond either, `431 Request Header Fields Too Large` and the connection closes
  (RFC 6585 section 5);
- the head complete within `head_timeout_s` of the connection opening or of its request's first
  byte: otherwise `408 Request Timeout` (if it had sent anything) and the connection closes. A
  slow client therefore holds a connection (a file descriptor and a few KiB) for at most that
  long, and never a task or a worker: requests only reach the app once their head is complete,
  so any number of them cannot starve the event loop.

Why subclass rather than a middleware: an ASGI app only sees a request after its whole head has
been parsed, which is exactly what must not be waited for.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

DEFAULT_MAX_HEAD_BYTES = 16 * 1024
DEFAULT_MAX_HEADERS = 100
DEFAULT_HEAD_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class HeadLimits:
    max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES
    max_headers: int = DEFAULT_MAX_HEADERS
    head_timeout_s: float = DEFAULT_HEAD_TIMEOUT_S


_limits = HeadLimits()


def configure(limits: HeadLimits) -> None:
    """Set the limits every later connection gets (called once by `serve`, and by each worker
    process's app factory: the protocol class is re-imported in a spawned worker)."""
    global _limits
    _limits = limits


class _HeadRefused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with bounded request heads (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = _limits
        self._in_head = True  # from the connection's start: the first request is awaited
        self._head_bytes = 0
        self._header_count = 0
        self._parsed_bytes = 0
        self._head_started = False
        self._head_timer: asyncio.TimerHandle | None = None

    # --- the head timer ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(
                self.limits.head_timeout_s, self._head_timed_out
            )

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_started:
            self._refuse(408, "request head not received in time")
        else:  # an idle connection that never sent a byte: nothing to answer
            self.transport.close()

    # --- parser callbacks ----------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_started = True
        self._header_count = 0
        self._parsed_bytes = 0
        self._arm_head_timer()  # a keep-alive connection's next request starts its own clock

    def on_url(self, url: bytes) -> None:
        self._count_parsed(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            raise _HeadRefused(431, f"more than {self.limits.max_headers} request header fields")
        self._count_parsed(len(name) + len(value) + 4)  # "name: value\r\n"
        super().on_header(name, value)

    def _count_parsed(self, n: int) -> None:
        """A head that arrived in one read is parsed before `data_received` could count it."""
        self._parsed_bytes += n
        if self._parsed_bytes > self.limits.max_head_bytes:
            raise _HeadRefused(431, f"request head exceeds {self.limits.max_head_bytes} bytes")

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # Bytes after this belong to the next request's head (pipelined or keep-alive).
        self._in_head = True
        self._head_started = False

    # --- data ----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """uvicorn's `data_received`, plus the refusals of an over-large head (raised by the
        callbacks above, or counted here while the head is still incomplete)."""
        self._unset_keepalive_if_required()
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadRefused):
                self._refuse(exc.__context__.status, exc.__context__.detail)
            else:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_head and self._head_bytes > self.limits.max_head_bytes:
            self._refuse(431, f"request head exceeds {self.limits.max_head_bytes} bytes")

    def _refuse(self, status: int, detail: str) -> None:
        """Answer `status` with a JSON `detail` (the API's error shape) and close."""
        self._cancel_head_timer()
        if self.transport.is_closing():
            return
        body = b'{"detail": "' + detail.encode("ascii") + b'"}'
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
