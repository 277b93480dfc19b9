"""Benchmark of the bundled apps: every figure of issue 17, in one run, on one broker and one
database, each as a ratio to a ceiling measured in the same run.

    .venv/bin/python bench/run.py                 # full run (~12 min)
    .venv/bin/python bench/run.py --quick         # smaller counts, shorter phases (~4 min)
    .venv/bin/python bench/run.py --json FILE --readme --history

Phases and what each reports:
1. audit ceiling: raw kafka-python produce/consume of N envelopes (references) and the two
   idempotent bulk loads of the same rows into PostgreSQL (bench/baselines.py), interleaved,
   median of 3 each; the ceiling is the faster.
2. audit sink drains those N envelopes: rows/s, as a ratio to the ceiling; CPU ms per event
   and peak RSS over the first 10k events and over all N (cost, bench/procstat.py).
3. events-api at saturation against the SAME server's trivial endpoint (`GET /healthz`), with
   wrk (C), 3 interleaved pairs, medians: the ratio, and events-api's CPU ms per accepted event
   (the in-process outbox relay included). wrk's own CPU is reported.
4. end-to-end at half of the measured saturation rate: open-loop Python generator (its CPU is
   reported), API latency and 202 -> audit row (`audit_log.recorded_at`) p50/p99.
5. events-api cost from 10k to 100k accepted events (hey, fixed counts): CPU ms per event and
   peak RSS after 10k and after 100k.
6. notifier drains N_notify envelopes to a local webhook: deliveries/s, and its cost after 10%
   and after all of them.
The machine's 1-minute load average is sampled throughout and reported per phase.

Uses the embedded Tansu broker and PostgreSQL unless KAFKA_BOOTSTRAP_SERVERS / DB_HOST (with
the other DB_* facts) are set. The apps get the facts channel from the same function as a pod
(`platform_cli.local_facts`) and run under the process kit (`platform_cli.processes`).
Everything shares this machine's cores: the loaders' CPU is reported so it can be discounted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import statistics
import sys
import tempfile
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
from bench import report  # noqa: E402
from bench.baselines import (  # noqa: E402
    PARTITIONS,
    database_ceilings,
    median_of,
    raw_consume,
    raw_produce,
    sample_payloads,
)
from bench.http_load import GeneratorMissing, HttpRun, available, hey_post_events, wrk  # noqa: E402
from bench.loadgen import fixed_rate  # noqa: E402
from bench.procstat import CostWindow, LoadSampler  # noqa: E402
from platform_cli.embedded import (  # noqa: E402
    create_topics,
    free_port,
    kafka_broker,
    postgres_server,
)
from platform_cli.local_facts import Database, local_app_environment  # noqa: E402
from platform_cli.processes import OwnsProcess, Process, poll_until, spawn_python  # noqa: E402
from platform_cli.processes import http_ok as _http_ok  # noqa: E402

RUNS = 3
"""Repeats of each ceiling measurement (raw consume, each bulk load); medians reported."""
PAIRS = 3
"""Interleaved (trivial endpoint, events) saturation pairs; medians reported."""
LOCAL = "127.0.0.1"
FAST_GROUP = {"KAFKA_HEARTBEAT_INTERVAL_MS": "300", "KAFKA_SESSION_TIMEOUT_MS": "6000"}
COST_FIRST = 10_000
"""The first cost checkpoint (events); the second is the phase's full count."""


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """True once `predicate` holds, False after `timeout` (the kit's `poll_until`)."""
    return poll_until(predicate, timeout, interval)


def http_ok(url: str) -> bool:
    return _http_ok(url)


@dataclass
class AppProcess(OwnsProcess):
    """A Python subprocess (the process kit's), stopped with SIGTERM."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_dir: Path
    process: Process | None = None

    def start(self) -> AppProcess:
        self.process = spawn_python(
            self.args, env=self.env, log=self.log_dir / f"{self.name}.log", stop_grace_s=15.0
        )
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()


TOPICS = {
    "events": "events",
    "tasks": "tasks",
    "audit_dlq": "audit.dlq",
    "notifier_dlq": "notifier.dlq",
    "notify_events": "notify-events",
    "notify_tasks": "notify-tasks",
}
"""The run's topics by role; each name gets the run's suffix, so runs never share a topic."""


@dataclass(frozen=True)
class BenchEnv:
    """What every phase runs against: the broker, the database, the apps' environment, this
    run's topics and consumer-group suffix, and the folder of the apps' logs."""

    bootstrap: str
    dsn: str
    base_env: dict[str, str]
    topics: dict[str, str]
    suffix: str
    log_dir: Path

    def consumer_env(
        self, app: str, port: int, events: str, tasks: str, dead_letters: str
    ) -> dict[str, str]:
        """A consumer app's environment: its port, topics (by role) and its own group."""
        return {
            **self.base_env,
            "PORT": str(port),
            "EVENTS_TOPIC": self.topics[events],
            "TASKS_TOPIC": self.topics[tasks],
            "DEAD_LETTER_TOPIC": self.topics[dead_letters],
            "CONSUMER_GROUP": f"{app}-{self.suffix}",
        }


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


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- cost windows ---------------------------------------------------------------------------


def drain_with_costs(
    pid: int, progress: Callable[[], float], total: int, first: int, timeout_s: float
) -> dict[str, Any]:
    """Wait for `progress()` to reach `total`; the rate from the first progress to the end, and
    the process's cost over its first `first` events and over all of them. The window opens at
    the first progress, so start-up (imports, the group join) is not counted as per-event."""
    if not wait_for(lambda: progress() > 0, 180):
        raise RuntimeError("no progress within 180 s")
    window = CostWindow(pid).start()
    opened_at, opened_value = time.perf_counter(), progress()
    checkpoints: dict[str, dict[str, float]] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = progress() - opened_value
        if "first" not in checkpoints and done >= first:
            checkpoints["first"] = window.sample(int(done))
        if progress() >= total:
            break
        time.sleep(0.1)  # scraping /metrics costs the app CPU too: not faster than this
    took = time.perf_counter() - opened_at
    done = progress() - opened_value
    checkpoints["all"] = window.sample(int(done))
    # A backlog drained within one poll has no earlier checkpoint: the first is the whole.
    checkpoints.setdefault("first", checkpoints["all"])
    return {"rate": done / took, "events": int(done), "cost": checkpoints}


# --- phases -----------------------------------------------------------------------------------


def saturation_pairs(
    api_port: int, api_pid: int, keys: list[str], seconds: float, connections: int
) -> dict[str, Any]:
    """PAIRS x (GET /healthz, POST /api/v1/events) with wrk, interleaved; events-api's CPU
    per accepted event over each events run."""
    base = f"http://{LOCAL}:{api_port}"
    trivial: list[HttpRun] = []
    events: list[HttpRun] = []
    cpu_ms: list[float] = []
    for _ in range(PAIRS):
        trivial.append(wrk(f"{base}/healthz", seconds, connections))
        window = CostWindow(api_pid).start()
        run = wrk(base, seconds, connections, post_event_keys=keys)
        events.append(run)
        accepted = run.requests - run.failed
        cpu_ms.append(window.sample(accepted)["cpu_ms_per_event"])
    trivial_rate = statistics.median(r.rate for r in trivial)
    events_rate = statistics.median(r.rate for r in events)
    return {
        "trivial": [vars(r) | {"generator_cores": r.generator_cores} for r in trivial],
        "events": [vars(r) | {"generator_cores": r.generator_cores} for r in events],
        "trivial_rate": trivial_rate,
        "events_rate": events_rate,
        "ratio": events_rate / trivial_rate,
        "pair_ratios": [e.rate / t.rate for t, e in zip(trivial, events, strict=True)],
        "cpu_ms_per_event": statistics.median(cpu_ms),
        "cpu_ms_runs": cpu_ms,
        "failed": sum(r.failed for r in trivial + events),
    }


def e2e_latencies(dsn: str, accepted: dict[str, float]) -> tuple[list[float], int]:
    ids = list(accepted)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT event_id::text, recorded_at FROM audit_log WHERE event_id = ANY(%s::uuid[])",
            (ids,),
        ).fetchall()
    found = {eid: recorded.timestamp() for eid, recorded in rows}
    return [(found[i] - accepted[i]) * 1000 for i in ids if i in found], len(ids) - len(found)


def end_to_end(
    api_port: int,
    keys: list[str],
    rate: float,
    seconds: float,
    connections: int,
    dsn: str,
    audit_port: int,
) -> dict[str, Any]:
    rows_before = metric(audit_port, "audit_rows_inserted_total")
    cpu_before, started = self_cpu(), time.perf_counter()
    result = asyncio.run(fixed_rate(LOCAL, api_port, keys, rate, seconds, connections))
    generator_cores = (self_cpu() - cpu_before) / (time.perf_counter() - started)
    target = rows_before + result.ok
    wait_for(lambda: metric(audit_port, "audit_rows_inserted_total") >= target, 120)
    e2e, missing = e2e_latencies(dsn, result.accepted)
    return {
        "offered": rate,
        "rate": result.rate,
        "ok": result.ok,
        "errors": result.errors,
        "api_p50_ms": report.pct(result.latencies_ms, 50),
        "api_p99_ms": report.pct(result.latencies_ms, 99),
        "e2e_p50_ms": report.pct(e2e, 50),
        "e2e_p99_ms": report.pct(e2e, 99),
        "e2e_n": len(e2e),
        "e2e_missing": missing,
        "generator_cores": generator_cores,
    }


def api_costs(
    api_port: int, api_pid: int, key: str, total: int, connections: int
) -> dict[str, Any]:
    """hey: `COST_FIRST` (or a tenth for small totals) accepted events, then the rest; events-api's
    CPU ms per event and peak RSS after each, the window opened before the first."""
    url = f"http://{LOCAL}:{api_port}/api/v1/events"
    first = min(COST_FIRST, total // 10)
    window = CostWindow(api_pid).start()
    head = hey_post_events(url, first, connections, key)
    at_first = window.sample(head.requests - head.failed)
    rest = hey_post_events(url, total - head.requests, connections, key)
    accepted = head.requests - head.failed + rest.requests - rest.failed
    return {
        "cost": {"first": at_first, "all": window.sample(accepted)},
        "rate": accepted / (head.seconds + rest.seconds),
        "failed": head.failed + rest.failed,
        "generator_cores": (head.generator_cpu_s + rest.generator_cpu_s)
        / (head.seconds + rest.seconds),
    }


def notifier_phase(env: BenchEnv, count: int) -> tuple[dict[str, Any], AppProcess]:
    from kafka import KafkaProducer

    from tests.apps.webhook_sink import webhook_sink

    producer = KafkaProducer(bootstrap_servers=env.bootstrap, acks="all", linger_ms=5)
    for key, value in sample_payloads(count):
        producer.send(env.topics["notify_events"], key=key, value=value)
    producer.flush(120)
    producer.close(5)
    with webhook_sink() as sink:
        notifier = AppProcess(
            "notifier",
            ["-m", "apps.notifier.cli", "run"],
            {
                **env.consumer_env(
                    "notifier", free_port(), "notify_events", "notify_tasks", "notifier_dlq"
                ),
                "NOTIFIER_WEBHOOK_URL": f"{sink.url}/hook",
            },
            env.log_dir,
        ).start()
        drained = drain_with_costs(
            notifier.pid,
            lambda: float(len(sink.requests)),
            count,
            first=max(1, count // 10),
            timeout_s=3600,
        )
    return drained, notifier


# --- orchestration ----------------------------------------------------------------------------


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


class Phases:
    """Wall-clock spans of the phases, for the load report."""

    def __init__(self, load: LoadSampler) -> None:
        self.load = load
        self.spans: dict[str, tuple[float, float]] = {}

    @contextlib.contextmanager
    def __call__(self, name: str, step: str) -> Iterator[None]:
        print(f"[{step}] {name}", file=sys.stderr, flush=True)
        started = time.time()
        try:
            yield
        finally:
            self.spans[name] = (started, time.time())

    def loads(self) -> dict[str, dict[str, float]]:
        return {name: self.load.summary(a, b) for name, (a, b) in self.spans.items()}


def run(args: argparse.Namespace) -> dict[str, Any]:
    if not available():
        raise GeneratorMissing("the saturation phases need wrk and hey: apt-get install wrk hey")
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "params": {
            "events": args.events,
            "api_events": args.api_events,
            "notify_events": args.notify_events,
            "seconds": args.seconds,
            "connections": args.connections,
            "partitions": PARTITIONS,
            "cpus": os.cpu_count(),
        },
    }
    n = args.events
    suffix = uuid.uuid4().hex[:6]
    topics = {role: f"{name}-{suffix}" for role, name in TOPICS.items()}
    log_dir = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    print(f"logs in {log_dir}", file=sys.stderr)
    load = LoadSampler().start()
    phase = Phases(load)
    procs: list[AppProcess] = []
    try:
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
                env = BenchEnv(bootstrap, dsn, base_env, topics, suffix, log_dir)
                run_phases(args, results, phase, procs, env, n)
            finally:
                for proc in procs:
                    proc.stop()
    finally:
        load.stop()
    results["load"] = {"run": load.summary(), "phases": phase.loads()}
    return results


def run_phases(
    args: argparse.Namespace,
    results: dict[str, Any],
    phase: Phases,
    procs: list[AppProcess],
    env: BenchEnv,
    n: int,
) -> None:
    bootstrap, dsn, topics = env.bootstrap, env.dsn, env.topics
    settings = AuditSettings()
    with phase("audit ceiling", "1/6"):
        payloads = sample_payloads(n - 1)  # + 1 warm-up record = n
        results["raw_produce_per_s"] = raw_produce(bootstrap, topics["events"], payloads)
        results["raw_consume_per_s"], results["raw_consume_runs"] = median_of(
            RUNS, lambda: raw_consume(bootstrap, topics["events"], n)
        )
        results["bulk_loads"] = database_ceilings(
            dsn, payloads, settings.batch_size, settings.writers, RUNS
        )
        results["audit_shape"] = {"batch_size": settings.batch_size, "writers": settings.writers}

    with phase("audit sink", "2/6"):
        audit_port = free_port()
        audit = AppProcess(
            "audit",
            ["-m", "apps.audit.cli", "run"],
            env.consumer_env("audit", audit_port, "events", "tasks", "audit_dlq"),
            env.log_dir,
        ).start()
        procs.append(audit)
        results["audit"] = drain_with_costs(
            audit.pid,
            lambda: metric(audit_port, "audit_rows_inserted_total"),
            n - 1,  # the warm-up record repeats the first envelope: n - 1 distinct rows
            first=min(COST_FIRST, n // 10),
            timeout_s=1200,
        )

    with phase("events-api saturation", "3/6"):
        keys = make_keys(dsn, 8)
        api_port = free_port()
        api = AppProcess(
            "events-api",
            ["-m", "apps.events_api.cli", "serve", "--host", LOCAL, "--port", str(api_port)],
            {**env.base_env, "EVENTS_TOPIC": topics["events"], "TASKS_TOPIC": topics["tasks"]},
            env.log_dir,
        ).start()
        procs.append(api)
        if not wait_for(lambda: http_ok(f"http://{LOCAL}:{api_port}/readyz"), 60):
            raise RuntimeError(f"events-api not ready; see {env.log_dir / 'events-api.log'}")
        results["saturation"] = saturation_pairs(
            api_port, api.pid, keys, args.seconds, args.connections
        )

    with phase("end-to-end", "4/6"):
        rate = max(1.0, results["saturation"]["events_rate"] / 2)
        results["e2e"] = end_to_end(
            api_port, keys, rate, args.e2e_seconds, args.connections, dsn, audit_port
        )

    with phase("events-api cost", "5/6"):
        results["api_cost"] = api_costs(
            api_port, api.pid, keys[0], args.api_events, args.connections
        )
        # audit keeps up with what the API accepted (its cost at the API's rate is in phase 2)
        rows = metric(audit_port, "audit_rows_inserted_total")
        wait_for(lambda: metric(audit_port, "audit_rows_inserted_total") >= rows, 60)

    with phase("notifier", "6/6"):
        results["notifier"], notifier = notifier_phase(env, args.notify_events)
        procs.append(notifier)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, shorter phases")
    parser.add_argument("--events", type=int, help="audit backlog (default 100k; quick 20k)")
    parser.add_argument(
        "--api-events", type=int, help="events-api cost phase (default 100k; quick 20k)"
    )
    parser.add_argument(
        "--notify-events", type=int, help="notifier backlog (default 20k; quick 3k)"
    )
    parser.add_argument("--seconds", type=float, help="each saturation run (default 10; quick 5)")
    parser.add_argument("--e2e-seconds", type=float, help="end-to-end phase (default 20; quick 8)")
    parser.add_argument("--connections", type=int, default=32, help="HTTP connections")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument(
        "--readme", action="store_true", help="rewrite README.md's <!-- bench --> block"
    )
    parser.add_argument(
        "--history", action="store_true", help="append the run to docs/benchmarks.md"
    )
    args = parser.parse_args()
    # SIGTERM (a timeout, a Ctrl-C'd parent) unwinds like an exception, so the apps, the broker
    # and the database started here are stopped, not orphaned.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.events = args.events or (20_000 if args.quick else 100_000)
    args.api_events = args.api_events or (20_000 if args.quick else 100_000)
    args.notify_events = args.notify_events or (3_000 if args.quick else 20_000)
    args.seconds = args.seconds or (5.0 if args.quick else 10.0)
    args.e2e_seconds = args.e2e_seconds or (8.0 if args.quick else 20.0)
    results = run(args)
    results["command"] = "bench/run.py" + (" --quick" if args.quick else "")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    print(report.table(results))
    print()
    print(report.footer(results))
    if args.readme:
        report.write_readme(REPO / "README.md", results)
    if args.history:
        report.append_history(REPO / "docs" / "benchmarks.md", results)


if __name__ == "__main__":
    main()
