"""A small HTTP/1.1 keep-alive load generator on asyncio streams.

Why not httpx here: on a 2-core box shared with the servers under test, httpx's per-request
CPU cost made the *generator* the bottleneck (a bare FastAPI endpoint "served" < 200 req/s).
This client only frames a POST and reads a Content-Length response, which is all the
benchmark needs and costs a fraction of that. The apps themselves use httpx.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    accepted: dict[str, float] = field(default_factory=dict)  # event id -> wall time of the 202

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        reused = self.writer is not None
        try:
            return await self._post(path, body, headers)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            # uvicorn closes keep-alive connections idle for 5 s; a request written into such
            # a connection gets no answer at all (it was never read), so resend it once fresh.
            nothing_read = not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial
            if reused and nothing_read:
                return await self._post(path, body, headers)
            raise

    async def _post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n"
        ).encode()
        self.writer.write(head + body)
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            payload = await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.close()
            raise
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = None
        self.writer = None


def _body(i: int) -> bytes:
    return json.dumps(
        {"category": "deploy", "message": f"release {i} rolled out", "fields": {"v": "1"}}
    ).encode()


def _header_cycle(keys: list[str]) -> Callable[[], dict[str, str]]:
    cycle = itertools.cycle([{"Authorization": f"Bearer {k}"} if k else {} for k in keys])
    return lambda: next(cycle)


def _accepted_id(payload: bytes) -> Any:
    return json.loads(payload)["id"]


async def fixed_rate(
    host: str, port: int, keys: list[str], rate: float, seconds: float, max_connections: int
) -> LoadResult:
    """Open loop: request i is due at start + i/rate whatever happened to earlier ones, and its
    latency counts from that due time (no coordinated omission)."""
    result = LoadResult()
    idle: list[Connection] = []
    opened = 0
    available = asyncio.Condition()
    headers = _header_cycle(keys)
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def acquire() -> Connection:
        nonlocal opened
        async with available:
            while not idle and opened >= max_connections:
                await available.wait()
            if idle:
                return idle.pop()
            opened += 1
            return Connection(host, port)

    async def release(conn: Connection) -> None:
        async with available:
            idle.append(conn)
            available.notify()

    async def one(i: int, due: float, hdrs: dict[str, str]) -> None:
        conn = await acquire()
        try:
            status, payload = await conn.post("/api/v1/events", _body(i), hdrs)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            result.errors += 1
            await release(conn)
            return
        await release(conn)
        if status == 202:
            result.ok += 1
            result.latencies_ms.append((loop.time() - due) * 1000)
            result.accepted[_accepted_id(payload)] = time.time()
        else:
            result.errors += 1

    tasks = []
    for i in range(int(rate * seconds)):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i, due, headers())))
        result.sent += 1
    await asyncio.gather(*tasks)
    result.seconds = loop.time() - start
    for conn in idle:
        conn.close()
    return result


async def saturate(
    host: str, port: int, keys: list[str], seconds: float, concurrency: int
) -> LoadResult:
    """Closed loop: `concurrency` clients, one connection each, sending back to back."""
    result = LoadResult()
    counter = itertools.count()
    loop = asyncio.get_running_loop()
    start = loop.time()
    stop_at = start + seconds

    async def worker(w: int) -> None:
        conn = Connection(host, port)
        hdrs = {"Authorization": f"Bearer {keys[w % len(keys)]}"} if keys[0] else {}
        while loop.time() < stop_at:
            sent_at = loop.time()
            try:
                status, _ = await conn.post("/api/v1/events", _body(next(counter)), hdrs)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                result.errors += 1
                continue
            result.sent += 1
            if status == 202:
                result.ok += 1
                result.latencies_ms.append((loop.time() - sent_at) * 1000)
            else:
                result.errors += 1
        conn.close()

    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    result.seconds = loop.time() - start
    return result
