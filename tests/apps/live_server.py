"""An ASGI app served by a real uvicorn on a free loopback port, in a thread of the test.

Streaming responses need a real server: flow control (a slow reader), disconnects and
reconnects are what the stream tests are about, and an in-process transport has none of them.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from platform_cli.processes import free_port, poll_until


@contextmanager
def live_server(
    app: Any, timeout_s: float = 20.0, send_buffer_bytes: int | None = None, **config: Any
) -> Iterator[str]:
    """Serve `app` (lifespan included); yields its base URL and stops it on exit.

    `send_buffer_bytes` caps the kernel send buffer of every accepted connection (Linux copies
    it from the listening socket), so a test can make a non-reading client block the server
    after kilobytes instead of the megabytes loopback autotuning allows. `config` goes to
    `uvicorn.Config` (e.g. `http=` a protocol class).
    """
    port = free_port()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if send_buffer_bytes is not None:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)
    listener.bind(("127.0.0.1", port))
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=1,
        **config,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listener]}, name=f"uvicorn-{port}", daemon=True
    )
    thread.start()
    poll_until(lambda: server.started or not thread.is_alive(), timeout_s, interval=0.02)
    if not server.started:
        raise RuntimeError(f"uvicorn did not start on port {port}")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        listener.close()
