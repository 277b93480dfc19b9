"""A TCP proxy that loses responses: it forwards each request to the upstream server and, for
the first `drop` connections, closes the client's socket the moment the server's response
starts, so the server has done (and committed) the work but the client never hears of it.

That is the failure a retry must survive: a connection broken after the commit (a load balancer
timeout, a pod killed mid-reply, a flaky mobile network). A real socket and a real server, so
nothing about the request path is simulated."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class DropProxy:
    upstream: tuple[str, int]
    drop: int
    dropped: int = 0
    forwarded: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _take_drop(self) -> bool:
        with self._lock:
            if self.dropped < self.drop:
                self.dropped += 1
                return True
            self.forwarded += 1
            return False

    def handle(self, client: socket.socket) -> None:
        drop = self._take_drop()
        server = socket.create_connection(self.upstream, timeout=30)
        try:
            done = threading.Event()

            def pump_requests() -> None:
                try:
                    while chunk := client.recv(65536):
                        server.sendall(chunk)
                except OSError:
                    pass
                finally:
                    done.set()

            threading.Thread(target=pump_requests, daemon=True).start()
            while chunk := server.recv(65536):
                if drop:
                    # The response has begun: the handler returned, its transaction committed.
                    # Linger 0 makes the close a RST; shutdown() first, because a close() while
                    # the other thread is blocked in recv() on this socket would not take effect.
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    client.shutdown(socket.SHUT_RDWR)
                    return  # nothing of the response is forwarded
                client.sendall(chunk)
        except OSError:
            pass
        finally:
            server.close()
            client.close()


@contextmanager
def drop_proxy(upstream_url: str, drop: int) -> Iterator[tuple[str, DropProxy]]:
    host, port = upstream_url.removeprefix("http://").split(":")
    proxy = DropProxy((host, int(port)), drop)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.1)  # closing a socket does not wake a blocked accept(): poll instead
    stopping = threading.Event()

    def accept() -> None:
        while not stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(30)
            threading.Thread(target=proxy.handle, args=(client,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", proxy
    finally:
        stopping.set()
        thread.join(5)
        listener.close()
