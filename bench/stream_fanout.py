"""Fan-out of the live stream (GET /api/v1/stream): connected SSE clients x events/s.

    .venv/bin/python bench/stream_fanout.py            # clients 1..200 (~2 min)
    .venv/bin/python bench/stream_fanout.py --quick    # clients 1..50, shorter phases
    .venv/bin/python bench/stream_fanout.py --json out.json

One real events-api process (uvicorn, relay on) on the embedded PostgreSQL and Tansu. For each
client count N, N stream clients on one key (in a separate process) while a load generator
offers events at a fixed rate (open loop, bench/loadgen.py). Reported, each against a ceiling
measured in the same run:
- delivery = client-events/s received / (N x events/s accepted): 1.00 means every client got
  every event as fast as it was accepted (the ceiling is the raw accepted event rate, times N);
- complete = the smallest share of the accepted events any client had once the phase drained;
- latency p50/p99 from each event's 202 to its arrival at client 0 (same host clock);
- accept cost = events-api's saturated accept rate (closed loop) with the most clients
  connected / the same with none: what fanning out costs the write path.
Everything (server, database, broker, clients, load) shares this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.loadgen import fixed_rate, saturate  # noqa: E402
from bench.procstat import peak_rss_mb  # noqa: E402
from bench.report import pct  # noqa: E402
from bench.run import AppProcess, http_ok, infrastructure, make_keys, metric  # noqa: E402
from bench.run import wait_for as wait_until  # noqa: E402

LOCAL = "127.0.0.1"
MARK = b"event: activity"
EVENT_ID = re.compile(rb"\nid: (\d+-\d+)\n")
ACTIVITY_ID = re.compile(rb'"cursor":"[0-9-]+","id":"([0-9a-f-]{36})"')


# --- the clients (a separate process, so their parsing does not slow the load generator) ---


async def _client(
    port: int,
    key: str,
    index: int,
    counts: list[int],
    arrivals: dict[str, float],
    span: list[float],
    reconnects: list[int],
) -> None:
    """One stream client; like the console, it reconnects with Last-Event-ID when cut off."""
    last_id: str | None = None
    while True:
        reader, writer = await asyncio.open_connection(LOCAL, port)
        resume = f"Last-Event-ID: {last_id}\r\n" if last_id else ""
        writer.write(
            (
                f"GET /api/v1/stream HTTP/1.1\r\nHost: {LOCAL}:{port}\r\n"
                f"Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n{resume}\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"client {index}: {head[:80]!r}")
        tail = b""
        while chunk := await reader.read(1 << 16):
            # Count across chunk boundaries: `tail` repeats the end of the previous chunk.
            joined = tail + chunk
            found = joined.count(MARK) - tail.count(MARK)
            now = time.time()
            if found:
                counts[index] += found
                span[0] = min(span[0], now)
                span[1] = max(span[1], now)
            ids = EVENT_ID.findall(joined)
            if ids:
                last_id = ids[-1].decode()
            if index == 0:
                for match in ACTIVITY_ID.finditer(joined):
                    arrivals.setdefault(match[1].decode(), now)
            tail = joined[-256:]
        writer.close()
        reconnects[0] += 1


def clients_worker(port: int, key: str, n: int, pipe: Connection) -> None:
    counts = [0] * n
    arrivals: dict[str, float] = {}
    span = [float("inf"), 0.0]  # first and last arrival of any activity, wall clock
    reconnects = [0]

    async def main() -> None:
        tasks = [
            asyncio.create_task(_client(port, key, i, counts, arrivals, span, reconnects))
            for i in range(n)
        ]
        await asyncio.sleep(0.5)
        failed = [t for t in tasks if t.done() and t.exception()]
        pipe.send({"connected": n - len(failed)})
        while not pipe.poll():
            await asyncio.sleep(0.05)
        pipe.recv()
        for task in tasks:
            task.cancel()

    asyncio.run(main())
    pipe.send({"counts": counts, "arrivals": arrivals, "span": span, "reconnects": reconnects[0]})


@contextmanager
def connected_clients(port: int, key: str, n: int) -> Iterator[Connection]:
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    process = ctx.Process(target=clients_worker, args=(port, key, n, theirs), daemon=True)
    process.start()
    try:
        ready = ours.recv()
        if ready["connected"] != n:
            raise RuntimeError(f"only {ready['connected']} of {n} clients connected")
        yield ours
    finally:
        process.join(30)
        if process.is_alive():
            process.kill()


# --- phases ------------------------------------------------------------------------------------


def phase(port: int, dsn: str, n: int, rate: float, seconds: float) -> dict[str, Any]:
    (key,) = make_keys(dsn, 1)  # a fresh key: no earlier events in this phase's stream
    with connected_clients(port, key, n) as pipe:
        load = asyncio.run(fixed_rate(LOCAL, port, [key], rate, seconds, 32))
        accepted = load.ok
        time.sleep(1.0)  # let the last events reach the clients
        pipe.send("report")
        report = pipe.recv()
    counts: list[int] = report["counts"]
    arrivals: dict[str, float] = report["arrivals"]
    latencies = [
        (arrivals[event_id] - at) * 1000
        for event_id, at in load.accepted.items()
        if event_id in arrivals
    ]
    received = sum(counts)
    first, last = report["span"]
    accepted_times = sorted(load.accepted.values())
    # Both rates over their own first-to-last span: accepted at the server, received by clients.
    accepted_rate = (accepted - 1) / (accepted_times[-1] - accepted_times[0])
    delivered_rate = (received - n) / (last - first) if last > first else 0.0
    return {
        "clients": n,
        "offered_per_s": rate,
        "accepted_per_s": round(accepted_rate, 1),
        "client_events_per_s": round(delivered_rate, 1),
        "delivery": round(delivered_rate / (n * accepted_rate), 3) if accepted_rate else 0.0,
        "complete": round(min(counts) / accepted, 4) if accepted else 0.0,
        "p50_ms": round(pct(latencies, 50), 1) if latencies else None,
        "p99_ms": round(pct(latencies, 99), 1) if latencies else None,
        "reconnects": report["reconnects"],
    }


def saturated(port: int, dsn: str, n: int, seconds: float) -> float:
    (key,) = make_keys(dsn, 1)
    if n == 0:
        return asyncio.run(saturate(LOCAL, port, [key], seconds, 32)).rate
    with connected_clients(port, key, n) as pipe:
        rate = asyncio.run(saturate(LOCAL, port, [key], seconds, 32)).rate
        pipe.send("report")
        pipe.recv()
    return rate


def run(args: argparse.Namespace) -> dict[str, Any]:
    from apps.common.db import migrate
    from apps.events_api.cli import MIGRATIONS_DIR
    from platform_cli.embedded import create_topics, free_port
    from platform_cli.local_facts import Database, local_app_environment

    results: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds")}
    client_counts = [1, 10, 50] if args.quick else [1, 10, 50, 100, 200]
    seconds = 4.0 if args.quick else args.seconds
    with infrastructure() as (bootstrap, dsn), tempfile.TemporaryDirectory() as logs:
        migrate(dsn, "events-api", MIGRATIONS_DIR)
        suffix = uuid.uuid4().hex[:6]
        topics = {"events": f"events-{suffix}", "tasks": f"tasks-{suffix}"}
        create_topics(bootstrap, list(topics.values()))
        port = free_port()
        api = AppProcess(
            "events-api",
            ["-m", "apps.events_api.cli", "serve", "--host", LOCAL, "--port", str(port)],
            {
                **local_app_environment(kafka_bootstrap=bootstrap, database=Database.from_url(dsn)),
                "EVENTS_TOPIC": topics["events"],
                "TASKS_TOPIC": topics["tasks"],
                "LOG_LEVEL": "WARNING",
                "STREAM_HISTORY": "0",
                "STREAM_MAX_CLIENTS": "1000",
            },
            Path(logs),
        ).start()
        try:
            assert wait_until(lambda: http_ok(f"http://{LOCAL}:{port}/readyz"), 60)
            print(f"[fan-out] {client_counts} clients at {args.rate}/s", file=sys.stderr)
            results["phases"] = [phase(port, dsn, n, args.rate, seconds) for n in client_counts]
            most = client_counts[-1]
            print(f"[saturation] 0 and {most} clients", file=sys.stderr)
            alone = saturated(port, dsn, 0, seconds)
            loaded = saturated(port, dsn, most, seconds)
            results["saturated_accept_per_s"] = {"0": round(alone, 1), str(most): round(loaded, 1)}
            results["accept_cost_ratio"] = round(loaded / alone, 3) if alone else 0.0
            results["catchups"] = metric(port, "events_api_stream_catchups_total")
            results["server_rss_mb"] = round(peak_rss_mb(api.pid), 1)
        finally:
            api.stop()
    return results


def table(r: dict[str, Any]) -> str:
    lines = [
        f"stream fan-out, {r['when']} (1 events-api process; all on this machine's cores)",
        "clients  offered/s  accepted/s  client-events/s  delivery  complete  p50 ms  p99 ms"
        "  reconnects",
    ]
    for p in r["phases"]:
        lines.append(
            f"{p['clients']:>7}  {p['offered_per_s']:>9.0f}  {p['accepted_per_s']:>10.1f}  "
            f"{p['client_events_per_s']:>15.1f}  {p['delivery']:>8.3f}  {p['complete']:>8.4f}  "
            f"{p['p50_ms']!s:>6}  {p['p99_ms']!s:>6}  {p['reconnects']:>10}"
        )
    sat = r["saturated_accept_per_s"]
    most = max(sat, key=int)
    lines.append(
        f"saturated accepts/s: {sat['0']} with no client, {sat[most]} with {most} clients "
        f"(accept cost ratio {r['accept_cost_ratio']}); queue overflows (catch-ups): "
        f"{r['catchups']:.0f}; server peak RSS {r['server_rss_mb']} MB"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rate", type=float, default=200.0, help="offered events/s")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each phase")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = run(args)
    print(table(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
