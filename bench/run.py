"""Benchmark of the bundled apps, in one run on one broker and one database.

    .venv/bin/python bench/run.py            # full run (~3-4 min)
    .venv/bin/python bench/run.py --quick    # smaller counts and shorter phases (~1-2 min)

Measures:
- raw kafka-python produce and consume rates (the baseline) on the topic audit reads;
- PostgreSQL alone: audit's own INSERT of the same envelopes with audit's batch size and
  writer count, no Kafka (the ceiling the database puts on the sink);
- audit sink rate (events/s into PostgreSQL, draining the same backlog) and its ratio to raw
  consume;
- events-api accepted requests/s with p50/p99 at a fixed offered load (open loop, latency from
  the scheduled send time, so a slow server cannot hide queueing) and at saturation (closed
  loop), against a bare FastAPI endpoint served the same way;
- end-to-end latency from the 202 to the audit row (`audit_log.recorded_at`, the same host
  clock) at the fixed load;
- notifier delivery rate to a local webhook;
- peak RSS (VmHWM) of every app process.

Uses the embedded Tansu broker and PostgreSQL unless KAFKA_BOOTSTRAP_SERVERS / DB_HOST (with
the other DB_* facts) are set. The apps get the facts channel from the same function as a pod
(`platform_cli.local_facts`) and run under the process kit (`platform_cli.processes`).
Everything (load generator included) shares this machine's cores, which is part of what the
figures say.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from apps.audit.settings import AuditSettings  # noqa: E402
from apps.common.db import migrate  # noqa: E402
from apps.common.envelope import encode, new_envelope  # noqa: E402
from bench.loadgen import fixed_rate, saturate  # noqa: E402
from platform_cli.embedded import (  # noqa: E402
    create_topics,
    free_port,
    kafka_broker,
    postgres_server,
)
from platform_cli.local_facts import Database, local_app_environment  # noqa: E402
from platform_cli.processes import Process, poll_until  # noqa: E402
from platform_cli.processes import http_ok as _http_ok  # noqa: E402

PARTITIONS = 3
RUNS = 3
"""Repeats of the short baseline measurements (raw consume, database alone); median reported."""
LOCAL = "127.0.0.1"
FAST_GROUP = {"KAFKA_HEARTBEAT_INTERVAL_MS": "300", "KAFKA_SESSION_TIMEOUT_MS": "6000"}
TARGETS = {
    "audit_ratio": 0.7,
    "api_p99_ms_at_500": 50.0,
    "e2e_p99_ms_at_500": 500.0,
    "rss_mb": 150.0,
}


# --- helpers ------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """True once `predicate` holds, False after `timeout` (the kit's `poll_until`)."""
    return poll_until(predicate, timeout, interval)


@dataclass
class AppProcess:
    """A Python subprocess (the process kit's) whose peak RSS we report; stopped with SIGTERM."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_dir: Path
    process: Process | None = None

    def start(self) -> AppProcess:
        self.process = Process(
            [sys.executable, *self.args],
            env={**os.environ, **self.env},
            cwd=REPO,
            log=self.log_dir / f"{self.name}.log",
            stop_grace_s=15.0,
        ).spawn()
        return self

    def peak_rss_mb(self) -> float:
        assert self.process is not None
        status = Path(f"/proc/{self.process.started_pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()


def metric(port: int, name: str) -> float:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0.0
    total = 0.0
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head == name or head.startswith(name + "{"):
            total += float(value)
    return total


def http_ok(url: str) -> bool:
    return _http_ok(url)


# --- phase 1: raw kafka-python -------------------------------------------------------------------


def sample_payloads(n: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(n):
        envelope = new_envelope(
            "event.received",
            source="bench",
            subject=str(uuid.uuid4()),
            correlation_id=uuid.uuid4().hex,
            data={"category": "deploy", "message": f"release {i} rolled out", "fields": {"v": "1"}},
        )
        out.append((envelope.subject.encode(), encode(envelope)))
    return out


def raw_produce(bootstrap: str, topic: str, payloads: list[tuple[bytes, bytes]]) -> float:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    producer.send(topic, key=b"warm-up", value=payloads[0][1]).get(30)  # connect first
    started = time.perf_counter()
    for key, value in payloads:
        producer.send(topic, key=key, value=value)
    producer.flush(120)
    took = time.perf_counter() - started
    producer.close(5)
    return len(payloads) / took


def raw_consume(bootstrap: str, topic: str, expected: int) -> float:
    """Drain the topic from the beginning (no group); rate from the first record to the last.

    One drain of 100k records takes about a second, and back-to-back drains of the same topic
    differ by up to 2x here: callers take the median of several (`median_of`)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    got, first_at, first_batch = 0, 0.0, 0
    deadline = time.monotonic() + 300
    while got < expected and time.monotonic() < deadline:
        batch = consumer.poll(timeout_ms=500, max_records=500)
        n = sum(len(records) for records in batch.values())
        if n and not first_at:
            first_at, first_batch = time.perf_counter(), n
        got += n
    took = time.perf_counter() - first_at
    consumer.close()
    return (got - first_batch) / took


def median_of(runs: int, measure: Callable[[], float]) -> tuple[float, list[float]]:
    values = [measure() for _ in range(runs)]
    return statistics.median(values), values


def database_ceiling(
    dsn: str, payloads: list[tuple[bytes, bytes]], batch: int, writers: int
) -> float:
    """Rows/s of audit's own INSERT for the same envelopes, `writers` connections, no Kafka.

    What the audit sink could reach if consuming and validating were free: the database's share
    of the ratio. The table is emptied afterwards so audit inserts every row itself."""
    from apps.audit.store import AuditRecord, insert_batch

    records = [AuditRecord(value, "bench", 0, i) for i, (_, value) in enumerate(payloads)]
    chunks = [records[i : i + batch] for i in range(0, len(records), batch)]

    def write(part: list[list[AuditRecord]]) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for chunk in part:
                with conn.transaction():
                    insert_batch(conn, chunk)

    threads = [threading.Thread(target=write, args=(chunks[k::writers],)) for k in range(writers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - started
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE audit_log")
    return len(records) / took


# --- phase 2: audit sink -------------------------------------------------------------------------


def audit_sink_rate(audit_port: int, expected: int) -> float:
    """Rows/s while audit drains the backlog, from its first committed batch to the last."""
    name = "audit_rows_inserted_total"
    assert wait_for(lambda: metric(audit_port, name) > 0, timeout=120), "audit never wrote"
    first_at, first_value = time.perf_counter(), metric(audit_port, name)
    # Polled every 0.1 s: scraping /metrics costs the audit process CPU too.
    assert wait_for(lambda: metric(audit_port, name) >= expected, 600, interval=0.1)
    return (expected - first_value) / (time.perf_counter() - first_at)


# --- phase 3: HTTP load (see loadgen.py) -------------------------------------------------------


def e2e_latencies(dsn: str, accepted: dict[str, float]) -> list[float]:
    ids = list(accepted)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT event_id::text, recorded_at FROM audit_log WHERE event_id = ANY(%s::uuid[])",
            (ids,),
        ).fetchall()
    found = {eid: recorded.timestamp() for eid, recorded in rows}
    missing = len(ids) - len(found)
    if missing:
        print(f"  warning: {missing} accepted events not in audit_log", file=sys.stderr)
    return [(found[i] - accepted[i]) * 1000 for i in ids if i in found]


# --- orchestration ------------------------------------------------------------------------------


@contextlib.contextmanager
def infrastructure() -> Iterator[tuple[str, str]]:
    with kafka_broker() as broker, postgres_server() as pg:
        dsn = pg.dsn if pg.external else pg.create_database(f"bench_{uuid.uuid4().hex[:8]}")
        yield broker.bootstrap, dsn


def make_keys(dsn: str, n: int) -> list[str]:
    from apps.events_api.keys import create_key

    with psycopg.connect(dsn) as conn:
        return [
            create_key(conn, f"bench-{uuid.uuid4().hex[:8]}", 2_000_000_000, 1_000_000_000)[1]
            for _ in range(n)
        ]


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds")}
    n_events = args.events
    suffix = uuid.uuid4().hex[:6]
    topics = {
        "events": f"events-{suffix}",
        "tasks": f"tasks-{suffix}",
        "audit_dlq": f"audit.dlq-{suffix}",
        "notifier_dlq": f"notifier.dlq-{suffix}",
        "notify_events": f"notify-events-{suffix}",
        "notify_tasks": f"notify-tasks-{suffix}",
    }
    log_dir = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    print(f"logs in {log_dir}", file=sys.stderr)
    procs: list[AppProcess] = []
    with infrastructure() as (bootstrap, dsn):
        create_topics(bootstrap, topics.values(), partitions=PARTITIONS)
        for app, directory in (
            ("events-api", REPO / "apps/events_api/migrations"),
            ("audit", REPO / "apps/audit/migrations"),
            ("notifier", REPO / "apps/notifier/migrations"),
        ):
            migrate(dsn, app, directory)
        base_env = {
            **local_app_environment(kafka_bootstrap=bootstrap, database=Database.from_url(dsn)),
            "LOG_LEVEL": "WARNING",
            **FAST_GROUP,
        }
        try:
            # 1. raw baseline on the topic audit will read
            print(f"[1/6] raw kafka-python, {n_events} envelopes", file=sys.stderr)
            payloads = sample_payloads(n_events - 1)  # + 1 warm-up record = n_events
            results["raw_produce_per_s"] = raw_produce(bootstrap, topics["events"], payloads)
            results["raw_consume_per_s"], results["raw_consume_runs"] = median_of(
                RUNS, lambda: raw_consume(bootstrap, topics["events"], n_events)
            )
            audit_settings = AuditSettings()
            results["db_ceiling_per_s"], results["db_ceiling_runs"] = median_of(
                RUNS,
                lambda: database_ceiling(
                    dsn, payloads, audit_settings.batch_size, audit_settings.writers
                ),
            )
            results["audit_shape"] = {
                "batch_size": audit_settings.batch_size,
                "writers": audit_settings.writers,
            }

            # 2. audit drains the same backlog
            print("[2/6] audit sink", file=sys.stderr)
            audit_port = free_port()
            audit = AppProcess(
                "audit",
                ["-m", "apps.audit.cli", "run"],
                {
                    **base_env,
                    "PORT": str(audit_port),
                    "EVENTS_TOPIC": topics["events"],
                    "TASKS_TOPIC": topics["tasks"],
                    "DEAD_LETTER_TOPIC": topics["audit_dlq"],
                    "CONSUMER_GROUP": f"audit-{suffix}",
                },
                log_dir,
            ).start()
            procs.append(audit)
            results["audit_sink_per_s"] = audit_sink_rate(audit_port, n_events - 1)
            results["audit_ratio"] = results["audit_sink_per_s"] / results["raw_consume_per_s"]
            results["audit_db_ratio"] = results["audit_sink_per_s"] / results["db_ceiling_per_s"]

            # 3. bare FastAPI endpoint
            print("[3/6] bare FastAPI endpoint", file=sys.stderr)
            bare_port = free_port()
            bare = AppProcess(
                "bare-fastapi",
                [
                    *("-m", "uvicorn", "--app-dir", str(REPO / "bench"), "bare_app:app"),
                    *("--host", LOCAL, "--port", str(bare_port)),
                    *("--log-level", "warning", "--no-access-log"),
                ],
                {},
                log_dir,
            ).start()
            procs.append(bare)
            assert wait_for(lambda: http_ok(f"http://127.0.0.1:{bare_port}/healthz"), 30)
            bare_fixed = asyncio.run(
                fixed_rate(LOCAL, bare_port, [""], args.rate, args.seconds, args.concurrency)
            )
            bare_sat = asyncio.run(saturate(LOCAL, bare_port, [""], args.seconds, args.concurrency))
            results["bare_rss_mb"] = bare.peak_rss_mb()
            bare.stop()

            # 4. events-api (relay on), audit still running: fixed load, e2e, then saturation
            print("[4/6] events-api", file=sys.stderr)
            keys = make_keys(dsn, 8)
            api_port = free_port()
            api = AppProcess(
                "events-api",
                ["-m", "apps.events_api.cli", "serve", "--host", LOCAL, "--port", str(api_port)],
                {**base_env, "EVENTS_TOPIC": topics["events"], "TASKS_TOPIC": topics["tasks"]},
                log_dir,
            ).start()
            procs.append(api)
            api_ready = f"http://127.0.0.1:{api_port}/readyz"
            assert wait_for(lambda: http_ok(api_ready), 60), "events-api not ready"
            api_fixed = asyncio.run(
                fixed_rate(LOCAL, api_port, keys, args.rate, args.seconds, args.concurrency)
            )
            target_rows = n_events - 1 + api_fixed.ok
            wait_for(lambda: metric(audit_port, "audit_rows_inserted_total") >= target_rows, 120)
            e2e = e2e_latencies(dsn, api_fixed.accepted)
            api_sat = asyncio.run(saturate(LOCAL, api_port, keys, args.seconds, args.concurrency))
            # Let the relay and audit catch up so their peaks include the saturation backlog.
            wait_for(
                lambda: metric(audit_port, "audit_rows_inserted_total") >= target_rows + api_sat.ok,
                180,
            )

            # 5. notifier drains a backlog to a local webhook
            print("[5/6] notifier", file=sys.stderr)
            results["notifier_per_s"], notifier = notifier_phase(
                bootstrap, base_env, topics, suffix, log_dir, args.notify_events
            )
            procs.append(notifier)

            # 6. peak RSS of each app process
            print("[6/6] peak RSS", file=sys.stderr)
            results["rss_mb"] = {
                "events-api": api.peak_rss_mb(),
                "audit": audit.peak_rss_mb(),
                "notifier": notifier.peak_rss_mb(),
                "bare-fastapi": results.pop("bare_rss_mb"),
            }
        finally:
            for proc in procs:
                proc.stop()
    results["http"] = {
        name: {
            "rate": r.rate,
            "p50_ms": pct(r.latencies_ms, 50),
            "p99_ms": pct(r.latencies_ms, 99),
            "ok": r.ok,
            "errors": r.errors,
            "sent": r.sent,
        }
        for name, r in (
            ("bare_fixed", bare_fixed),
            ("bare_saturation", bare_sat),
            ("api_fixed", api_fixed),
            ("api_saturation", api_sat),
        )
    }
    results["e2e_ms"] = {"p50": pct(e2e, 50), "p99": pct(e2e, 99), "n": len(e2e)}
    results["params"] = {
        "events": n_events,
        "rate": args.rate,
        "seconds": args.seconds,
        "concurrency": args.concurrency,
        "partitions": PARTITIONS,
        "cpus": os.cpu_count(),
    }
    return results


def notifier_phase(
    bootstrap: str,
    base_env: dict[str, str],
    topics: dict[str, str],
    suffix: str,
    log_dir: Path,
    count: int,
) -> tuple[float, AppProcess]:
    from kafka import KafkaProducer

    from tests.apps.webhook_sink import webhook_sink

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for key, value in sample_payloads(count):
        producer.send(topics["notify_events"], key=key, value=value)
    producer.flush(60)
    producer.close(5)
    with webhook_sink() as sink:
        port = free_port()
        notifier = AppProcess(
            "notifier",
            ["-m", "apps.notifier.cli", "run"],
            {
                **base_env,
                "PORT": str(port),
                "EVENTS_TOPIC": topics["notify_events"],
                "TASKS_TOPIC": topics["notify_tasks"],
                "DEAD_LETTER_TOPIC": topics["notifier_dlq"],
                "CONSUMER_GROUP": f"notifier-{suffix}",
                "NOTIFIER_WEBHOOK_URL": f"{sink.url}/hook",
            },
            log_dir,
        ).start()
        assert wait_for(lambda: len(sink.requests) > 0, 120), "notifier never delivered"
        first_at, first_n = time.perf_counter(), len(sink.requests)
        assert wait_for(lambda: len(sink.requests) >= count, 600, interval=0.02)
        rate = (count - first_n) / (time.perf_counter() - first_at)
    return rate, notifier


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def spread(values: list[float]) -> str:
    return f"{min(values) / 1000:,.0f}k-{max(values) / 1000:,.0f}k"


def table(r: dict[str, Any]) -> str:
    h = r["http"]
    shape = r["audit_shape"]
    rss = r["rss_mb"]
    lines = [
        "| Measure | Result | Target |",
        "|---|---|---|",
        f"| raw kafka-python produce | {r['raw_produce_per_s']:,.0f} msg/s | baseline |",
        f"| raw kafka-python consume (median of {RUNS}: {spread(r['raw_consume_runs'])})"
        f" | {r['raw_consume_per_s']:,.0f} msg/s | baseline |",
        f"| PostgreSQL alone: audit's INSERT of the same rows, {shape['writers']} connections x"
        f" {shape['batch_size']} rows (median of {RUNS}: {spread(r['db_ceiling_runs'])})"
        f" | {r['db_ceiling_per_s']:,.0f} rows/s"
        f" = {r['db_ceiling_per_s'] / r['raw_consume_per_s']:.2f}x raw consume | ceiling |",
        f"| audit sink (rows/s into PostgreSQL) | {r['audit_sink_per_s']:,.0f} rows/s"
        f" = **{r['audit_ratio']:.2f}x** raw consume, {r['audit_db_ratio']:.2f}x PostgreSQL alone"
        f" | >= 0.7x raw consume ({verdict(r['audit_ratio'] >= TARGETS['audit_ratio'])}) |",
        f"| bare FastAPI @ {r['params']['rate']} req/s offered | {h['bare_fixed']['rate']:,.0f}"
        f" req/s, p50 {h['bare_fixed']['p50_ms']:.1f} ms, p99 {h['bare_fixed']['p99_ms']:.1f} ms"
        " | reference |",
        f"| events-api @ {r['params']['rate']} req/s offered | {h['api_fixed']['rate']:,.0f}"
        f" req/s, p50 {h['api_fixed']['p50_ms']:.1f} ms, **p99 {h['api_fixed']['p99_ms']:.1f} ms**"
        f" | p99 < 50 ms ({verdict(h['api_fixed']['p99_ms'] < TARGETS['api_p99_ms_at_500'])}) |",
        f"| bare FastAPI saturation ({r['params']['concurrency']} clients)"
        f" | {h['bare_saturation']['rate']:,.0f} req/s, p50 {h['bare_saturation']['p50_ms']:.1f}"
        f" ms, p99 {h['bare_saturation']['p99_ms']:.1f} ms | reference |",
        f"| events-api saturation ({r['params']['concurrency']} clients)"
        f" | {h['api_saturation']['rate']:,.0f} req/s"
        f" (**{h['api_saturation']['rate'] / h['bare_saturation']['rate']:.2f}x** bare),"
        f" p50 {h['api_saturation']['p50_ms']:.1f} ms, p99 {h['api_saturation']['p99_ms']:.1f} ms"
        " | - |",
        f"| end-to-end 202 -> audit row @ {r['params']['rate']} ev/s"
        f" | p50 {r['e2e_ms']['p50']:.0f} ms, **p99 {r['e2e_ms']['p99']:.0f} ms**"
        f" (n={r['e2e_ms']['n']}) | p99 < 500 ms"
        f" ({verdict(r['e2e_ms']['p99'] < TARGETS['e2e_p99_ms_at_500'])}) |",
        f"| notifier delivery to a local webhook | {r['notifier_per_s']:,.0f} deliveries/s | - |",
    ]
    for app in ("events-api", "audit", "notifier"):
        lines.append(
            f"| peak RSS {app} | {rss[app]:.0f} MB | < 150 MB"
            f" ({verdict(rss[app] < TARGETS['rss_mb'])}) |"
        )
    lines.append(f"| peak RSS bare FastAPI | {rss['bare-fastapi']:.0f} MB | reference |")
    errors = sum(v["errors"] for v in h.values())
    lines.append(f"| HTTP errors (non-202 or transport) | {errors} | 0 |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts, short phases")
    parser.add_argument("--events", type=int, help="backlog size for the Kafka/audit phases")
    parser.add_argument("--rate", type=float, default=500, help="fixed offered load, req/s")
    parser.add_argument("--seconds", type=float, help="duration of each HTTP phase")
    parser.add_argument("--concurrency", type=int, default=32, help="clients at saturation")
    parser.add_argument("--notify-events", type=int, help="backlog for the notifier phase")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    args.events = args.events or (20_000 if args.quick else 100_000)
    args.seconds = args.seconds or (5.0 if args.quick else 20.0)
    args.notify_events = args.notify_events or (500 if args.quick else 2_000)
    results = run(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    print(table(results))
    print(
        f"\n{results['when']}; {args.events} events, {args.seconds:.0f} s per HTTP phase, "
        f"{os.cpu_count()} CPUs shared by broker, database, apps and load generator"
    )


if __name__ == "__main__":
    main()
