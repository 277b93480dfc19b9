"""The reminders app: how late reminders fire, and what a big schedule costs in memory.

    .venv/bin/python bench/reminders.py                 # both (~4 min)
    .venv/bin/python bench/reminders.py --only precision --json out.json
    .venv/bin/python bench/reminders.py --only capacity --scheduled 1000000

One real `python -m apps.reminders run` process (the shipped command) on the embedded
PostgreSQL and Tansu, sharing this machine's cores with them.

precision: N reminders (default 10,000) all due within the same minute (uniformly), put in the
  schedule before it starts. Lateness of each = when the scheduler claimed it - its time, by
  the database clock (`late_ms`, what the event carries), and when a consumer of the topic
  received it - its time (host clock). Reported as p50/p99/max and as ratios: p99 / the 1 s
  target, and p99 / the broker's own produce->ack->consume p99 measured in the same run (the
  ceiling: no scheduler can publish faster than the broker acknowledges). A second phase puts
  the same N due in ONE second: the burst the scheduler drains as fast as it can.
capacity: the service's resident memory (VmRSS, sampled every 0.5 s) with an empty schedule,
  then with M scheduled reminders (default 1,000,000, due over the next year) while it keeps
  firing the ones that come due; the ratio RSS(with M) / RSS(empty), measured in the same run,
  says whether memory depends on the schedule (1.0: it does not).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.procstat import peak_rss_mb  # noqa: E402
from bench.report import pct  # noqa: E402
from bench.run import AppProcess, infrastructure  # noqa: E402
from bench.run import wait_for as wait_until  # noqa: E402
from platform_cli.local_facts import Database, local_app_environment  # noqa: E402

TARGET_P99_S = 1.0

# Reminders straight into the schedule, as the task-change handler writes them (the bench is
# about firing, not about consuming task changes); `fire_at` spread by `step` seconds from `at`.
_SEED = """
INSERT INTO reminders (id, task_id, task_version, offset_s, due_at, fire_at, status, tenant,
                       title, correlation_id)
SELECT gen_random_uuid(), gen_random_uuid(), 1, 0, t, t, 'pending', 'bench', 'bench ' || g,
       'bench-' || g
FROM generate_series(0, %(n)s - 1) AS g,
     LATERAL (SELECT %(at)s::timestamptz + make_interval(secs => g * %(step)s)) AS s(t)
"""


def _migrate(dsn: str) -> None:
    from apps.common.db import migrate
    from apps.reminders.cli import MIGRATIONS

    migrate(dsn, "reminders", MIGRATIONS)


def _seed(dsn: str, n: int, at: datetime, step_s: float) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(_SEED, {"n": n, "at": at, "step": step_s})


def _fired(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM reminders WHERE status = 'fired'").fetchone()
    return int(row[0]) if row else 0


def _service(bootstrap: str, dsn: str, topic: str, log_dir: Path, name: str) -> AppProcess:
    suffix = uuid.uuid4().hex[:6]
    return AppProcess(
        name,
        ["-m", "apps.reminders", "run"],
        {
            # The facts channel, as every local run and pod gets it (no DATABASE_URL).
            **local_app_environment(kafka_bootstrap=bootstrap, database=Database.from_url(dsn)),
            "TASKS_TOPIC": f"bench-tasks-{suffix}",
            "REMINDERS_TOPIC": topic,
            "DEAD_LETTER_TOPIC": f"bench-reminders.dlq-{suffix}",
            "CONSUMER_GROUP": f"bench-reminders-{suffix}",
            "PORT": "0",
            "LOG_LEVEL": "WARNING",
        },
        log_dir,
    ).start()


class TopicReader(threading.Thread):
    """Receives the reminders as they are published and notes when (host clock)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        from kafka import KafkaConsumer

        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=20)
        self.topic = topic
        self.late_s: dict[str, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        from kafka import TopicPartition

        parts = None
        while parts is None and not self.stop.is_set():
            parts = self.consumer.partitions_for_topic(self.topic)
            time.sleep(0.05)
        tps = [TopicPartition(self.topic, p) for p in sorted(parts or ())]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)
        while not self.stop.is_set():
            for records in self.consumer.poll(timeout_ms=100).values():
                now = time.time()
                for record in records:
                    body = json.loads(record.value)
                    fire_at = datetime.fromisoformat(body["data"]["fire_at"]).timestamp()
                    self.late_s.setdefault(body["id"], now - fire_at)
        self.consumer.close()


def broker_round_trip_p99(bootstrap: str, n: int = 2000) -> float:
    """The ceiling: produce -> acks=all -> consume of single records, p99 in seconds."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    from platform_cli.embedded import create_topics

    topic = f"bench-rtt-{uuid.uuid4().hex[:6]}"
    create_topics(bootstrap, [topic], partitions=1)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=20)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_end(tp)
    consumer.poll(timeout_ms=100)
    samples = []
    for i in range(n):
        started = time.perf_counter()
        producer.send(topic, value=str(i).encode()).get(10)
        got = False
        while not got:
            got = any(consumer.poll(timeout_ms=50).values())
        samples.append(time.perf_counter() - started)
        if i % 10 == 9:
            time.sleep(0.005)  # a paced flow, as the scheduler's batches are
    producer.close()
    consumer.close()
    return pct(samples, 99)


def precision(bootstrap: str, dsn: str, log_dir: Path, n: int, window_s: float) -> dict[str, Any]:
    from platform_cli.embedded import create_topics

    topic = f"bench-reminders-{uuid.uuid4().hex[:6]}"
    create_topics(bootstrap, [topic], partitions=6)
    with psycopg.connect(dsn) as conn:
        conn.execute("TRUNCATE reminders")
    start = datetime.now(UTC).timestamp() + 15  # time to start the service and the reader
    _seed(dsn, n, datetime.fromtimestamp(start, UTC), window_s / n)
    reader = TopicReader(bootstrap, topic)
    reader.start()
    service = _service(bootstrap, dsn, topic, log_dir, f"reminders-precision-{int(window_s)}s")
    peak_rss = float("nan")
    try:
        wait_until(lambda: _fired(dsn) >= n, timeout=start - time.time() + window_s + 120)
        wait_until(lambda: len(reader.late_s) >= n, timeout=60)
        peak_rss = peak_rss_mb(service.pid)
    finally:
        service.stop()
        reader.stop.set()
        reader.join(10)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT late_ms FROM reminders WHERE status = 'fired'").fetchall()
        duplicates = conn.execute(
            "SELECT count(*) FROM reminders WHERE status <> 'fired'"
        ).fetchone()
    claimed = [int(r[0]) / 1000 for r in rows]
    received = list(reader.late_s.values())
    return {
        "reminders": n,
        "window_s": window_s,
        "fired": len(claimed),
        "not_fired": int(duplicates[0]) if duplicates else 0,
        "received": len(received),
        "claimed_late_s": {q: round(pct(claimed, p), 3) for q, p in (("p50", 50), ("p99", 99))}
        | {"max": round(max(claimed), 3)},
        "received_late_s": {q: round(pct(received, p), 3) for q, p in (("p50", 50), ("p99", 99))}
        | {"max": round(max(received), 3)},
        "peak_rss_mb": round(peak_rss, 1),
    }


def _rss_mb(service: AppProcess) -> float:
    for line in Path(f"/proc/{service.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _sample(service: AppProcess, seconds: float) -> list[float]:
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        samples.append(_rss_mb(service))
        time.sleep(0.5)
    return samples


def _capacity_phase(
    bootstrap: str, dsn: str, log_dir: Path, topic: str, name: str, sample_s: float
) -> tuple[list[float], int]:
    """Start the service with 2,000 reminders coming due over the sampling window (so it fires
    all along, producer included) and sample its RSS; returns (samples, fired)."""
    _seed(dsn, 2000, datetime.fromtimestamp(time.time() + 3, UTC), sample_s / 2000)
    service = _service(bootstrap, dsn, topic, log_dir, name)
    try:
        time.sleep(5)  # imports, pools, the first fired batch (the producer), group join
        samples = _sample(service, sample_s)
    finally:
        service.stop()
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM reminders WHERE status = 'fired'").fetchone()
        conn.execute("DELETE FROM reminders WHERE status = 'fired'")
    return samples, int(row[0]) if row else 0


def capacity(
    bootstrap: str, dsn: str, log_dir: Path, scheduled: int, sample_s: float
) -> dict[str, Any]:
    """The same firing load twice: with an empty schedule, then with M more scheduled."""
    from platform_cli.embedded import create_topics

    topic = f"bench-reminders-{uuid.uuid4().hex[:6]}"
    create_topics(bootstrap, [topic], partitions=6)
    with psycopg.connect(dsn) as conn:
        conn.execute("TRUNCATE reminders")
    baseline, fired_empty = _capacity_phase(
        bootstrap, dsn, log_dir, topic, "reminders-capacity-empty", sample_s
    )
    seeded = time.monotonic()
    # M reminders due over the next year (after the sampling window).
    _seed(dsn, scheduled, datetime.fromtimestamp(time.time() + 3600, UTC), 365 * 86400 / scheduled)
    with psycopg.connect(dsn) as conn:
        conn.execute("ANALYZE reminders")
        pending = conn.execute("SELECT count(*) FROM reminders WHERE status = 'pending'").fetchone()
    seed_s = time.monotonic() - seeded
    loaded, fired_full = _capacity_phase(
        bootstrap, dsn, log_dir, topic, "reminders-capacity-scheduled", sample_s
    )
    return {
        "scheduled": int(pending[0]) if pending else 0,
        "seed_s": round(seed_s, 1),
        "fired_while_sampling": {"empty": fired_empty, "scheduled": fired_full},
        "rss_mb_empty": {"median": round(pct(baseline, 50), 1), "max": round(max(baseline), 1)},
        "rss_mb_scheduled": {"median": round(pct(loaded, 50), 1), "max": round(max(loaded), 1)},
        "rss_ratio_scheduled_to_empty": round(pct(loaded, 50) / pct(baseline, 50), 3),
        "rss_growth_while_sampling_mb": {
            "empty": round(baseline[-1] - baseline[0], 1),
            "scheduled": round(loaded[-1] - loaded[0], 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--only", choices=("precision", "capacity"))
    parser.add_argument("--reminders", type=int, default=10_000)
    parser.add_argument("--scheduled", type=int, default=1_000_000)
    parser.add_argument("--sample-seconds", type=float, default=30.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-reminders-"))
    print(f"logs in {log_dir}", file=sys.stderr)
    results: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds")}
    with infrastructure() as (bootstrap, dsn):
        _migrate(dsn)
        if args.only in (None, "precision"):
            ceiling = broker_round_trip_p99(bootstrap)
            minute = precision(bootstrap, dsn, log_dir, args.reminders, 60.0)
            burst = precision(bootstrap, dsn, log_dir, args.reminders, 1.0)
            for phase in (minute, burst):
                p99 = phase["received_late_s"]["p99"]
                phase["p99_over_target"] = round(p99 / TARGET_P99_S, 3)
                phase["p99_over_broker_round_trip_p99"] = round(p99 / ceiling, 1)
            results["broker_round_trip_p99_s"] = round(ceiling, 4)
            results["precision_one_minute"] = minute
            results["precision_one_second_burst"] = burst
        if args.only in (None, "capacity"):
            results["capacity"] = capacity(
                bootstrap, dsn, log_dir, args.scheduled, args.sample_seconds
            )
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
