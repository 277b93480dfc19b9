"""Notifier throughput as a ratio to a bare HTTP client, and under 10% transient failures.

    .venv/bin/python bench/notifier.py                # ~2-3 min
    .venv/bin/python bench/notifier.py --events 2000  # quicker

One run, one broker (embedded Tansu), one PostgreSQL, one webhook target process
(`tests.apps.webhook_sink`, a ThreadingHTTPServer that records every request):

1. **bare client** (the ceiling): the same POSTs the notifier makes (`WebhookChannel.build` of
   the same envelopes: same bodies, same headers), from `--concurrency` threads sharing one
   httpx.Client (the notifier's HTTP library and pool settings), nothing else.
2. **notifier, no failures**: the envelopes wait in Kafka; the notifier (a real process, its
   `NOTIFIER_CONCURRENCY` = `--concurrency`) drains them. Rate = 2xx answers per second from the
   first delivery until every record is processed (its outcome durable, offset committed: read
   from the broker, so the notifier is not scraped while it is measured).
3. **notifier, 10% transient 500s**: the target answers 500 to ~10% of attempts (a hash of
   idempotency key and attempt, `webhook_sink.fails_attempt`); retries wait in PostgreSQL, not
   in the loop. Same rate definition: deliveries while the backlog drains. The time until the
   last retried event is delivered is reported too (it includes the backoff of the unluckiest
   events: 0.5 s doubling, by design not throughput).

Each comparison is made `--pairs` times, neighbouring phases in alternating order, and the
median ratio is reported with its range. Every delivery is checked exactly once (the target
counts 2xx answers per idempotency key).

The machine is shared (2 cores, other agents' work): absolute rates swing by 2x between runs
and even between neighbouring phases. The ratios compare phases of the same run, which is what
they are for; the range says how far to trust them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from apps.common.db import migrate  # noqa: E402
from apps.common.envelope import EventEnvelope, encode  # noqa: E402
from apps.notifier.channels import WebhookChannel  # noqa: E402
from bench.baselines import PARTITIONS, sample_envelopes  # noqa: E402
from bench.procstat import cpu_seconds  # noqa: E402
from bench.report import verdict  # noqa: E402
from bench.run import FAST_GROUP, AppProcess, infrastructure, wait_for  # noqa: E402
from platform_cli.embedded import create_topics, free_port  # noqa: E402
from platform_cli.local_facts import Database, local_app_environment  # noqa: E402

FAILURE_RATIO = 0.1
TARGETS = {"vs_bare": 0.8, "with_failures": 0.7}


class Target:
    """The webhook target as its own process, so it never shares a GIL with a client."""

    def __init__(self, log_dir: Path, fail_ratio: float = 0.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        args = ["-m", "tests.apps.webhook_sink", "--port", str(self.port), "--path", "/hook"]
        args += ["--fail-ratio", str(fail_ratio)]
        self.process = AppProcess(f"target-{fail_ratio}", args, {}, log_dir).start()
        assert wait_for(self._up, 20), "webhook target did not start"

    def _up(self) -> bool:
        try:
            self.stats()
        except httpx.HTTPError:
            return False
        return True

    def stats(self) -> dict[str, int]:
        stats: dict[str, int] = httpx.get(f"http://127.0.0.1:{self.port}/_stats", timeout=5).json()
        return stats

    def stop(self) -> None:
        self.process.stop()


# --- phase 1: the bare client ------------------------------------------------------------------


def bare_client(target: Target, envelopes: list[EventEnvelope], concurrency: int) -> dict[str, Any]:
    """POST what the notifier would, with nothing else in the way."""
    channel = WebhookChannel(url=target.url)
    requests = [channel.build(e, f"{e.id}:webhook") for e in envelopes]
    client = httpx.Client(
        timeout=10,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
    )

    def post(i: int) -> int:
        r = requests[i]
        return client.post(r.url, content=r.body, headers=r.headers).status_code

    try:
        post(0)  # connect first; the notifier's first delivery is not timed either
        cpu, started = time.process_time(), time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            codes = list(pool.map(post, range(1, len(requests))))
        took = time.perf_counter() - started
        cpu = time.process_time() - cpu
    finally:
        client.close()
    assert all(200 <= c < 300 for c in codes), "the target refused a bare request"
    return {
        "per_s": len(codes) / took,
        "cpu_ms_per_request": cpu * 1000 / len(codes),
    }


# --- phases 2 and 3: the notifier --------------------------------------------------------------


def committed_total(reader: Any, topic: str) -> int:
    """Records of `topic` whose offsets `reader`'s group has committed (offsets start at 0).

    Read from the broker, not the notifier's /metrics: scraping the notifier ten times a second
    would cost it CPU the bare client does not pay."""
    from kafka import TopicPartition

    return sum(reader.committed(TopicPartition(topic, p)) or 0 for p in range(PARTITIONS))


def notifier_phase(
    bootstrap: str,
    dsn: str,
    target: Target,
    envelopes: list[EventEnvelope],
    concurrency: int,
    log_dir: Path,
    label: str,
) -> dict[str, Any]:
    from kafka import KafkaConsumer, KafkaProducer

    suffix = uuid.uuid4().hex[:6]
    group = f"notifier-{suffix}"
    events, tasks, dlq = f"events-{suffix}", f"tasks-{suffix}", f"notifier.dlq-{suffix}"
    create_topics(bootstrap, [events, tasks, dlq], partitions=PARTITIONS)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for envelope in envelopes:
        producer.send(events, key=envelope.subject.encode(), value=encode(envelope))
    producer.flush(60)
    producer.close(5)

    port = free_port()
    notifier = AppProcess(
        f"notifier-{label}",
        ["-m", "apps.notifier.cli", "run"],
        {
            # The facts and credentials as the platform passes them (DB_*, KAFKA_*, ...).
            **local_app_environment(kafka_bootstrap=bootstrap, database=Database.from_url(dsn)),
            "LOG_LEVEL": "WARNING",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "",
            **FAST_GROUP,
            "PORT": str(port),
            "EVENTS_TOPIC": events,
            "TASKS_TOPIC": tasks,
            "DEAD_LETTER_TOPIC": dlq,
            "CONSUMER_GROUP": group,
            "NOTIFIER_WEBHOOK_URL": target.url,
            "NOTIFIER_CONCURRENCY": str(concurrency),
        },
        log_dir,
    ).start()
    n = len(envelopes)
    reader = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        assert wait_for(lambda: target.stats()["ok"] > 0, 120, 0.02), "notifier never delivered"
        first_at, first = time.perf_counter(), target.stats()["ok"]
        cpu_at_first = cpu_seconds(notifier.pid)

        assert wait_for(lambda: committed_total(reader, events) >= n, 600, 0.1), "not processed"
        drained_at, drained = time.perf_counter(), target.stats()["ok"]
        cpu = cpu_seconds(notifier.pid) - cpu_at_first
        assert wait_for(lambda: target.stats()["distinct_ok"] >= n, 600, 0.1), "events missing"
        last_at = time.perf_counter()
        stats = target.stats()
    finally:
        reader.close()
        notifier.stop()
    return {
        "per_s": (drained - first) / (drained_at - first_at),
        "all_delivered_after_s": last_at - first_at,
        "cpu_ms_per_delivery": cpu * 1000 / max(1, drained - first),
        "requests": stats["requests"],
        "failed_answers": stats["requests"] - stats["ok"],
        "duplicates": stats["duplicates"],
        "delivered": stats["distinct_ok"],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    log_dir = Path(tempfile.mkdtemp(prefix="bench-notifier-"))
    print(f"logs in {log_dir}", file=sys.stderr)
    results: dict[str, Any] = {
        "events": args.events,
        "concurrency": args.concurrency,
        "pairs": args.pairs,
        "cpus": os.cpu_count(),
    }
    with infrastructure() as (bootstrap, dsn):
        migrate(dsn, "notifier", REPO / "apps/notifier/migrations")

        def bare() -> dict[str, Any]:
            target = Target(log_dir)
            try:
                return bare_client(target, sample_envelopes(args.events), args.concurrency)
            finally:
                target.stop()

        def notifier(fail_ratio: float) -> dict[str, Any]:
            target = Target(log_dir, fail_ratio)
            try:
                return notifier_phase(
                    bootstrap,
                    dsn,
                    target,
                    sample_envelopes(args.events),
                    args.concurrency,
                    log_dir,
                    f"{fail_ratio}",
                )
            finally:
                target.stop()

        # Pairs of neighbouring phases, their order alternating, so a change in the machine's
        # load between phases shows as spread across pairs rather than as a bias.
        vs_bare, with_failures = [], []
        for i in range(args.pairs):
            print(f"[pair {i + 1}/{args.pairs}] bare client vs notifier", file=sys.stderr)
            first, second = (
                (bare, lambda: notifier(0.0))
                if i % 2 == 0
                else (
                    lambda: notifier(0.0),
                    bare,
                )
            )
            a, b = first(), second()
            ceiling, plain = (a, b) if i % 2 == 0 else (b, a)
            vs_bare.append({"bare": ceiling, "notifier": plain})
        for i in range(args.pairs):
            print(f"[pair {i + 1}/{args.pairs}] notifier vs 10% failures", file=sys.stderr)
            if i % 2 == 0:
                plain, mixed = notifier(0.0), notifier(FAILURE_RATIO)
            else:
                mixed, plain = notifier(FAILURE_RATIO), notifier(0.0)
            with_failures.append({"notifier": plain, "failures": mixed})
    results["vs_bare_pairs"] = vs_bare
    results["with_failures_pairs"] = with_failures
    results["vs_bare"] = [p["notifier"]["per_s"] / p["bare"]["per_s"] for p in vs_bare]
    results["with_failures"] = [
        p["failures"]["per_s"] / p["notifier"]["per_s"] for p in with_failures
    ]
    return results


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(min(values))}-{fmt.format(max(values))}"


def table(r: dict[str, Any]) -> str:
    pairs, mixes = r["vs_bare_pairs"], r["with_failures_pairs"]
    bare = [p["bare"]["per_s"] for p in pairs]
    plain = [p["notifier"]["per_s"] for p in pairs]
    mixed = [p["failures"]["per_s"] for p in mixes]
    plain2 = [p["notifier"]["per_s"] for p in mixes]
    ratio, fail_ratio = statistics.median(r["vs_bare"]), statistics.median(r["with_failures"])
    cpu_bare = statistics.median(p["bare"]["cpu_ms_per_request"] for p in pairs)
    cpu_plain = statistics.median(p["notifier"]["cpu_ms_per_delivery"] for p in pairs)
    cpu_mixed = statistics.median(p["failures"]["cpu_ms_per_delivery"] for p in mixes)
    failed = sum(p["failures"]["failed_answers"] for p in mixes)
    requests = sum(p["failures"]["requests"] for p in mixes)
    tail = statistics.median(p["failures"]["all_delivered_after_s"] for p in mixes)
    tail_plain = statistics.median(p["notifier"]["all_delivered_after_s"] for p in mixes)
    duplicates = sum(p[k]["duplicates"] for p in pairs + mixes for k in p if k != "bare")
    n = len(pairs)
    return "\n".join(
        [
            "| Measure | Result (median of pairs; range) | Target |",
            "|---|---|---|",
            f"| bare httpx client, {r['concurrency']} threads | {statistics.median(bare):,.0f}"
            f" req/s ({spread(bare, '{:,.0f}')}), {cpu_bare:.2f} CPU ms/request | ceiling |",
            f"| notifier, no failures | {statistics.median(plain):,.0f} deliveries/s"
            f" ({spread(plain, '{:,.0f}')}), {cpu_plain:.2f} CPU ms/delivery | - |",
            f"| notifier / bare client, {n} pairs | **{ratio:.2f}x** ({spread(r['vs_bare'])})"
            f" | >= {TARGETS['vs_bare']}x ({verdict(ratio >= TARGETS['vs_bare'])}) |",
            f"| notifier, {FAILURE_RATIO:.0%} transient 500s ({failed} of {requests} answers)"
            f" | {statistics.median(mixed):,.0f} deliveries/s ({spread(mixed, '{:,.0f}')}),"
            f" {cpu_mixed:.2f} CPU ms/delivery; against"
            f" {statistics.median(plain2):,.0f}/s without | - |",
            f"| with failures / without, {n} pairs | **{fail_ratio:.2f}x**"
            f" ({spread(r['with_failures'])}) | >= {TARGETS['with_failures']}x"
            f" ({verdict(fail_ratio >= TARGETS['with_failures'])}) |",
            f"| last retried event delivered (after the first delivery) | {tail:.1f} s"
            f" (no failures: {tail_plain:.1f} s) | - |",
            f"| exactly once | every event delivered in every phase, {duplicates} duplicates"
            " | 0 duplicates |",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=3000, help="envelopes per phase")
    parser.add_argument("--pairs", type=int, default=3, help="repeats of each comparison")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    results = run(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(table(results))
    print(
        f"\n{args.events} events per phase, {args.pairs} pairs per comparison, {os.cpu_count()}"
        " CPUs shared by broker, database, target, client/notifier and other work on this"
        " machine: compare the ratios, and mind their range."
    )


if __name__ == "__main__":
    main()
