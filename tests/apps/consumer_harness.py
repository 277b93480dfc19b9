"""Helpers for the consumer tests: produce envelopes, read topics, run a consumer in a thread or as
a real subprocess (for SIGKILL/SIGTERM scenarios), and wait for conditions with a deadline.
Processes and waits come from the process kit (`platform_cli.processes`)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry, generate_latest

from apps.common.envelope import EventEnvelope, encode, new_envelope
from platform_cli.processes import OwnsProcess, Process, free_port, poll_until, spawn_python

REPO_ROOT = Path(__file__).resolve().parents[2]

FAST_CONSUMER_ENV = {
    # Tansu + kafka-python: the first group join takes ~3 heartbeats; keep them short.
    "KAFKA_HEARTBEAT_INTERVAL_MS": "300",
    "KAFKA_SESSION_TIMEOUT_MS": "6000",
}


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """True once `predicate` holds, False if it still does not after `timeout` seconds."""
    return poll_until(predicate, timeout, interval)


def envelopes(
    n: int, *, type_: str = "event.received", subjects: int = 7, **data: Any
) -> list[EventEnvelope]:
    return [
        new_envelope(
            type_,  # type: ignore[arg-type]
            source="test",
            subject=f"entity-{i % subjects}",
            correlation_id=f"corr-{uuid.uuid4().hex[:8]}",
            data={"category": "alert", "message": f"message {i}", "n": i, **data},
        )
        for i in range(n)
    ]


def produce(
    bootstrap: str, topic: str, values: Iterable[bytes | EventEnvelope], key: bytes | None = None
) -> int:
    """Publish and flush; envelopes are keyed by subject, raw bytes by `key`."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    count = 0
    try:
        for value in values:
            if isinstance(value, EventEnvelope):
                producer.send(topic, key=value.subject.encode(), value=encode(value))
            else:
                producer.send(topic, key=key, value=value)
            count += 1
        producer.flush(30)
    finally:
        producer.close(5)
    return count


def _partitions(consumer: KafkaConsumer, topic: str, deadline: float) -> list[TopicPartition]:
    partitions = None
    while partitions is None and time.monotonic() < deadline:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            time.sleep(0.1)
    return [TopicPartition(topic, p) for p in sorted(partitions or ())]


def _at_end(consumer: KafkaConsumer, tps: list[TopicPartition]) -> bool:
    """Every partition read up to the high watermark its last fetch reported.

    The Fetch response's high watermark, not ListOffsets (`end_offsets()`): Tansu answers
    ListOffsets with the last batch's base offset, but fills in the fetch's watermark exactly."""
    for tp in tps:
        high = consumer.highwater(tp)
        if high is None or consumer.position(tp) < high:
            return False
    return True


def read_topic(bootstrap: str, topic: str, expect: int = 0, timeout: float = 30.0) -> list[Any]:
    """Every record of `topic` (from the beginning, no group), read to its end once at least
    `expect` are there.

    "Its end" is the high watermark at that moment, so the result is exact for a topic nobody
    writes to any more: make sure of that first (e.g. `group_caught_up` for the consumer that
    dead-letters into it) when the count matters, instead of waiting to see if more arrive."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        deadline = time.monotonic() + timeout
        tps = _partitions(consumer, topic, deadline)
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        got: list[Any] = []
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=200).values():
                got.extend(records)
            if len(got) >= expect and _at_end(consumer, tps):
                return got
        return got
    finally:
        consumer.close()


def group_caught_up(bootstrap: str, group: str, topics: Iterable[str]) -> bool:
    """Whether `group` has committed every record of `topics`: its consumer's work on them is
    durable and finished, so nothing more can come of them (no late duplicate, no late dead
    letter). Reads the committed offsets (OffsetFetch, without joining the group) and compares
    them with each partition's high watermark from a fetch."""
    committed_reader = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    reader = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        deadline = time.monotonic() + 10
        tps = [tp for topic in topics for tp in _partitions(reader, topic, deadline)]
        committed = {tp: committed_reader.committed(tp) or 0 for tp in tps}
        reader.assign(tps)
        for tp, offset in committed.items():
            reader.seek(tp, offset)
        while time.monotonic() < deadline:
            reader.poll(timeout_ms=200, max_records=1)
            if all(reader.highwater(tp) is not None for tp in tps):
                return all(committed[tp] >= (reader.highwater(tp) or 0) for tp in tps)
        return False
    finally:
        reader.close()
        committed_reader.close()


def notifier_idle(database_url: str, bootstrap: str, group: str, topics: Iterable[str]) -> bool:
    """Nothing left that could send or dead-letter: every record committed by `group`, and no
    delivery scheduled or in progress. After this the sink's and the dead-letter topic's counts
    are final, with no waiting to see whether more arrive."""
    import psycopg

    try:
        with psycopg.connect(database_url, connect_timeout=2) as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM notifier_retry_schedule)"
                " + (SELECT count(*) FROM notifier_deliveries"
                "     WHERE status IN ('sending', 'scheduled'))"
            ).fetchone()
    except psycopg.OperationalError:
        return False
    return row == (0,) and group_caught_up(bootstrap, group, topics)


class Runnable(Protocol):
    def run(self) -> None: ...


@contextmanager
def running_in_thread(service: Runnable, stop: threading.Event) -> Iterator[threading.Thread]:
    """Run `service.run()` in a thread; on exit request a stop and join it."""
    errors: list[BaseException] = []

    def _target() -> None:
        try:
            service.run()
        except BaseException as exc:
            errors.append(exc)
            raise

    thread = threading.Thread(target=_target, name="consumer-under-test", daemon=True)
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(20)
    assert not thread.is_alive(), "consumer thread did not stop within 20 s"
    assert not errors, f"consumer thread failed: {errors!r}"


@dataclass
class ConsumerProcess(OwnsProcess):
    """One app consumer (`python -m apps.<app>.cli run`) as a real OS process."""

    app: str
    env: dict[str, str]
    log_path: Path
    port: int = 0
    process: Process | None = None

    def start(self) -> ConsumerProcess:
        self.port = free_port()
        self.process = spawn_python(
            ["-m", f"apps.{self.app}.cli", "run"],
            env={**FAST_CONSUMER_ENV, **self.env, "PORT": str(self.port)},
            log=self.log_path,
            stop_grace_s=30.0,
        )
        return self

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or committed."""
        assert self.process is not None
        self.process.kill()

    def terminate(self) -> float:
        """SIGTERM and wait; returns seconds until the process exited."""
        assert self.process is not None
        started = time.monotonic()
        self.process.terminate()
        return time.monotonic() - started

    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
            return str(r.read().decode())

    def ready(self) -> bool:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop_quietly(self) -> None:
        if self.process is not None and self.process.running():
            self.process.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def assert_stops_cleanly_on_sigterm(process: ConsumerProcess) -> float:
    """SIGTERM: the app logs that it stopped and exits 0 within 10 s; returns how long it took."""
    exit_seconds = process.terminate()
    print(f"{process.app} exited {exit_seconds:.2f} s after SIGTERM under load")
    assert process.returncode() == 0
    assert exit_seconds < 10
    assert f'"msg": "{process.app} stopped"' in process.log()
    return exit_seconds


@contextmanager
def process_starter(
    app: str, env: dict[str, str], log_path: Path
) -> Iterator[Callable[..., ConsumerProcess]]:
    """Starts `app` processes on demand (each with `env` plus its own extras) and stops every
    one it started on exit, however the test ended."""
    started: list[ConsumerProcess] = []

    def start(**extra: str) -> ConsumerProcess:
        process = ConsumerProcess(app, {**env, **extra}, log_path).start()
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.stop_quietly()


def metric_value(metrics_text: str, name: str) -> float:
    """Sum of all samples of `name` (any labels) in a Prometheus text exposition."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head, _, value = line.rpartition(" ")
            if head == name or head.startswith(name + "{"):
                total += float(value)
    return total


def registry_metric(registry: CollectorRegistry, name: str) -> float:
    """`metric_value` of an in-process service's registry, as its /metrics would serve it."""
    return metric_value(generate_latest(registry).decode(), name)


class PacedProducer:
    """Publishes `total` envelopes at about `rate` per second from a background thread."""

    def __init__(self, bootstrap: str, topic: str, total: int, rate: float, **data: Any) -> None:
        self.envelopes = envelopes(total, **data)
        self._bootstrap = bootstrap
        self._topic = topic
        self._rate = rate
        self.sent = 0
        self._thread = threading.Thread(target=self._run, name="paced-producer", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        producer = KafkaProducer(bootstrap_servers=self._bootstrap, acks="all", linger_ms=5)
        started = time.monotonic()
        try:
            for i, envelope in enumerate(self.envelopes):
                ahead = started + i / self._rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
                producer.send(self._topic, key=envelope.subject.encode(), value=encode(envelope))
                self.sent = i + 1
            producer.flush(30)
        except BaseException as exc:
            self._error = exc
        finally:
            producer.close(5)

    def start(self) -> PacedProducer:
        self._thread.start()
        return self

    def join(self, timeout: float = 60) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "producer did not finish"
        assert self._error is None, f"producer failed: {self._error!r}"

    @property
    def ids(self) -> set[str]:
        return {str(e.id) for e in self.envelopes}
