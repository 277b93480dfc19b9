"""The whole platform on one machine: what `platform local` runs, step by step.

Embedded parts (from `platform_cli.embedded`): the Tansu broker, PostgreSQL and the AWS emulator
(moto's server, or LocalStack when `LOCALSTACK_ENDPOINT` answers). Then the topics from
`infra.contracts`, one database per app with its migrations, the archive bucket, a webhook sink,
and events-api, notifier and audit as real subprocesses. A demo burst goes through the front door
(events and tasks over HTTP with an API key) plus one poison record straight to Kafka (to show
the dead-letter path). Then the audit log is archived to S3 in short windows, so the whole demo
lands in the bucket within seconds (the deployed archiver uses hour windows).

Every process started here runs in its own session (a Ctrl-C in the terminal reaches only us) and
is stopped by `LocalRun.close()`, which the CLI calls on every exit path.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infra.contracts import (
    APPS,
    AUDIT_DLQ,
    ENVIRONMENTS,
    EVENTS_TOPIC,
    NOTIFIER_DLQ,
    TOPICS,
    app_contract,
)
from platform_cli import embedded
from platform_cli.webhook_sink import count_deliveries

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RUN_DIR = REPO_ROOT / ".local-run"
ARCHIVE_BUCKET = "plat-local-audit-archive"
REGION = "us-east-1"
DEMO_CATEGORIES = ("signup", "payment", "deploy", "alert")

Step = Callable[[str], contextlib.AbstractContextManager[None]]
"""`with step("starting X"):` — the CLI shows progress; tests pass a no-op."""


class LocalRunError(RuntimeError):
    """A part did not start or the demo did not complete; the message says which and why."""


@dataclass(frozen=True)
class LocalOptions:
    events: int = 24
    tasks: int = 8
    archive_window_s: int = 2
    """Archive windows for the demo: short, so they close seconds after the burst."""
    timeout_s: float = 120.0
    plan: bool = True
    run_dir: Path = DEFAULT_RUN_DIR


@dataclass
class PlanSummary:
    stack: str
    resources: int | None
    policy: str


@dataclass
class Report:
    events_accepted: int = 0
    tasks_created: int = 0
    poison_records: int = 0
    audit_rows: int = 0
    notifications_delivered: int = 0
    dead_letters: int = 0
    archive_objects: int = 0
    archived_rows: int = 0
    expected: dict[str, int] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    logs: str = ""
    pids: list[int] = field(default_factory=list)
    plan: list[PlanSummary] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def complete(self) -> bool:
        """Every number matches what the demo sent."""
        return all(getattr(self, key) == value for key, value in self.expected.items())

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "complete": self.complete}, indent=2, sort_keys=True)


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path


def _http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback
            return bool(200 <= response.status < 300)
    except (urllib.error.URLError, OSError):
        return False


def _tail(path: Path, chars: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class LocalRun:
    """Owns every part it starts; `close()` stops them all (idempotent)."""

    def __init__(self, options: LocalOptions, step: Step) -> None:
        self.options = options
        self.step = step
        self.report = Report()
        self.children: list[Child] = []
        self._stack = contextlib.ExitStack()
        self._closed = False
        self._lock = threading.Lock()  # `_spawn` vs `close`: no process may start after close
        self._plan_thread: threading.Thread | None = None
        self.logs = options.run_dir / "logs"
        self.sink_file = options.run_dir / "webhook-deliveries.jsonl"
        self.kafka: embedded.KafkaBroker | None = None
        self.postgres: embedded.PostgresServer | None = None
        self.aws_endpoint = ""
        self.databases: dict[str, str] = {}
        self.demo_key = ""
        """The demo's API key: printed once with --keep-running, never in the report file."""
        self.ports: dict[str, int] = {}

    # --- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the apps, the sink and the plan runs, then the broker, database and emulator."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for child in reversed(self.children):
            _terminate(child.process)
        if self._plan_thread is not None:
            self._plan_thread.join(timeout=30)
        self._stack.close()

    def start(self) -> None:
        started = time.monotonic()
        self._prepare_run_dir()
        if self.options.plan:
            self._plan_thread = threading.Thread(target=self._plan_all, daemon=True)
            self._plan_thread.start()
        with self.step("Kafka-protocol broker (Tansu)"):
            self.kafka = self._stack.enter_context(
                embedded.kafka_broker(log_path=self.logs / "tansu.log")
            )
        with self.step("PostgreSQL (embedded)"):
            pg_dir = Path(tempfile.mkdtemp(prefix="platform-local-pg-"))
            self._stack.callback(shutil.rmtree, pg_dir, True)
            self.postgres = self._stack.enter_context(embedded.postgres_server(pg_dir / "data"))
        with self.step("AWS emulator"):
            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request log lines
            emulator = self._stack.enter_context(embedded.aws_emulator())
            self.aws_endpoint = emulator.endpoint
            self._s3().create_bucket(Bucket=ARCHIVE_BUCKET)
        with self.step(f"topics: {', '.join(t.name for t in TOPICS)}"):
            for partitions in sorted({t.partitions for t in TOPICS}):
                names = [t.name for t in TOPICS if t.partitions == partitions]
                embedded.create_topics(self.kafka.bootstrap, names, partitions=partitions)
        with self.step("databases and migrations"):
            for app in APPS:
                self.databases[app.name] = self.postgres.create_database(app.name.replace("-", "_"))
            self._run_all([(app.name, [*_app_command(app.name), "migrate"]) for app in APPS])
        with self.step("webhook sink"):
            port = embedded.free_port()
            self.ports["webhook-sink"] = port
            self._spawn(
                "webhook-sink",
                [
                    sys.executable,
                    "-m",
                    "platform_cli.webhook_sink",
                    "--port",
                    str(port),
                    "--out",
                    str(self.sink_file),
                ],
                dict(os.environ),
            )
            self._wait_http("webhook-sink", f"http://127.0.0.1:{port}/healthz")
        with self.step("events-api, notifier, audit"):
            for app in APPS:
                self.ports[app.name] = embedded.free_port()
                command = [*_app_command(app.name), "serve" if app.kind == "producer" else "run"]
                self._spawn(app.name, command, self._app_env(app.name))
            for app in APPS:
                self._wait_http(app.name, f"http://127.0.0.1:{self.ports[app.name]}/readyz")
        self.report.urls = self._urls()
        self.report.logs = str(self.logs)
        self.report.elapsed_s = round(time.monotonic() - started, 1)

    # --- the demo ------------------------------------------------------------------------------

    def demo(self) -> Report:
        """Send the burst, wait until every part has processed it, archive, and count."""
        options = self.options
        with self.step(f"demo burst: {options.events} events, {options.tasks} tasks"):
            key = self._create_api_key()
            self.demo_key = key
            self._send_burst(key)
        with self.step("1 poison record straight to Kafka"):
            self._send_poison()
        expected_flow = options.events + options.tasks
        self.report.expected = {
            "events_accepted": options.events,
            "tasks_created": options.tasks,
            "audit_rows": expected_flow,
            "notifications_delivered": expected_flow,
            "dead_letters": 2,  # the poison record, once per consumer's dead-letter topic
            "archived_rows": expected_flow,
        }
        with self.step("waiting for audit, notifier and the dead-letter topics"):
            self._wait_for_pipeline()
        with self.step("archiving the audit log to S3"):
            self._wait_for_windows_to_close()
            window = str(options.archive_window_s)
            self._run_all(
                [("audit-archive", [*_app_command("audit"), "archive", "--window-seconds", window])]
            )
            self.report.archive_objects = self._count_archive_objects()
            self.report.archived_rows = self._archived_rows()
            # Every window the archiver recorded must be an object in the bucket.
            self.report.expected["archive_objects"] = self._archived_windows()
        if self._plan_thread is not None:
            with self.step("offline plan of every stack"):
                self._plan_thread.join(timeout=self.options.timeout_s)
        self.report.pids = [c.process.pid for c in self.children] + self._embedded_pids()
        return self.report

    def _embedded_pids(self) -> list[int]:
        """The broker's and PostgreSQL's server pids (started by `embedded`, stopped by close)."""
        pids = []
        broker = getattr(self.kafka, "_process", None)
        if broker is not None:
            pids.append(broker.pid)
        data_dir = self.postgres.data_dir if self.postgres is not None else None
        if data_dir is not None:
            with contextlib.suppress(OSError, ValueError, IndexError):
                pids.append(int((data_dir / "postmaster.pid").read_text().splitlines()[0]))
        return pids

    def _create_api_key(self) -> str:
        name = f"local-demo-{int(time.time())}"
        result = subprocess.run(
            [
                *_app_command("events-api"),
                "create-key",
                "--name",
                name,
                "--monthly-quota",
                "1000000",
                "--rate-per-minute",
                "100000",
            ],
            env=self._app_env("events-api"),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode != 0:
            raise LocalRunError(f"events-api create-key failed:\n{result.stderr[-1500:]}")
        return result.stdout.strip().splitlines()[-1].strip()

    def _send_burst(self, key: str) -> None:
        import httpx

        base = f"http://127.0.0.1:{self.ports['events-api']}"
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
            for i in range(self.options.events):
                category = DEMO_CATEGORIES[i % len(DEMO_CATEGORIES)]
                response = client.post(
                    "/api/v1/events",
                    json={"category": category, "message": f"demo {category} #{i}"},
                )
                if response.status_code == 202:
                    self.report.events_accepted += 1
            for i in range(self.options.tasks):
                response = client.post(
                    "/api/v1/tasks", json={"title": f"demo task #{i}", "priority": "high"}
                )
                if response.status_code == 201:
                    self.report.tasks_created += 1

    def _send_poison(self) -> None:
        from kafka import KafkaProducer

        assert self.kafka is not None
        producer = KafkaProducer(bootstrap_servers=self.kafka.bootstrap, acks="all")
        try:
            producer.send(EVENTS_TOPIC.name, key=b"poison", value=b"{not json")
            producer.flush(timeout=30)
            self.report.poison_records += 1
        finally:
            producer.close()

    def _wait_for_windows_to_close(self) -> None:
        """Sleep until the archive window holding the newest audit row has ended (DB clock)."""
        age = self._audit_scalar(
            "SELECT extract(epoch FROM now() - max(recorded_at)) FROM audit_log"
        )
        remaining = self.options.archive_window_s + 0.5 - float(age or 0)
        if remaining > 0:
            time.sleep(remaining)

    def _wait_for_pipeline(self) -> None:
        deadline = time.monotonic() + self.options.timeout_s
        while True:
            self._count_pipeline()
            done = all(
                getattr(self.report, key) >= self.report.expected[key]
                for key in ("audit_rows", "notifications_delivered", "dead_letters")
            )
            if done or time.monotonic() > deadline:
                return
            self.check_children()
            time.sleep(0.5)

    # --- counting ------------------------------------------------------------------------------

    def _audit_scalar(self, sql: str) -> Any:
        import psycopg

        with psycopg.connect(self.databases["audit"], connect_timeout=5) as conn:
            row = conn.execute(sql).fetchone()
        return row[0] if row else None

    def _archived_rows(self) -> int:
        return int(self._audit_scalar("SELECT coalesce(sum(row_count), 0) FROM audit_archive"))

    def _archived_windows(self) -> int:
        return int(self._audit_scalar("SELECT count(*) FROM audit_archive"))

    def _count_pipeline(self) -> None:
        self.report.audit_rows = int(self._audit_scalar("SELECT count(*) FROM audit_log"))
        self.report.notifications_delivered = count_deliveries(self.sink_file)
        self.report.dead_letters = self._count_records((NOTIFIER_DLQ.name, AUDIT_DLQ.name))

    def _count_records(self, topics: tuple[str, ...]) -> int:
        from kafka import KafkaConsumer, TopicPartition

        assert self.kafka is not None
        consumer = KafkaConsumer(bootstrap_servers=self.kafka.bootstrap, request_timeout_ms=10000)
        try:
            partitions = [
                TopicPartition(topic, p)
                for topic in topics
                for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            ends = consumer.end_offsets(partitions)
            starts = consumer.beginning_offsets(partitions)
            return int(sum(ends[tp] - starts[tp] for tp in partitions))
        finally:
            consumer.close()

    def _count_archive_objects(self) -> int:
        pages = self._s3().get_paginator("list_objects_v2").paginate(Bucket=ARCHIVE_BUCKET)
        return sum(len(page.get("Contents", [])) for page in pages)

    def _s3(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.aws_endpoint,
            region_name=REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(s3={"addressing_style": "path"}),
        )

    # --- the offline plan ----------------------------------------------------------------------

    def _plan_all(self) -> None:
        with contextlib.suppress(LocalRunError):  # raised by `_spawn` once the run is closing
            for stack in ENVIRONMENTS:
                self._plan_one(stack)

    def _plan_one(self, stack: str) -> None:
        out = self.options.run_dir / f"plan-{stack}.json"
        log = self.logs / f"plan-{stack}.log"
        child = self._spawn(
            f"plan-{stack}",
            [
                sys.executable,
                "-m",
                "platform_cli.main",
                "plan",
                "--stack",
                stack,
                "--quiet",
                "--json",
                str(out),
            ],
            {**os.environ, "COLUMNS": "200"},
            log=log,
        )
        child.process.wait()
        policy = next(
            (ln.strip() for ln in _tail(log, 5000).splitlines() if ln.startswith("policy:")),
            f"plan exited {child.process.returncode}",
        )
        resources = None
        with contextlib.suppress(OSError, ValueError, KeyError):
            resources = int(json.loads(out.read_text())["resourceCount"])
        self.report.plan.append(PlanSummary(stack, resources, policy))

    # --- processes -----------------------------------------------------------------------------

    def _prepare_run_dir(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        for old in (*self.logs.glob("*.log"), self.sink_file):
            old.unlink(missing_ok=True)

    def _app_env(self, name: str) -> dict[str, str]:
        assert self.kafka is not None
        contract = app_contract(name)
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AWS_", "KAFKA_", "DB_", "NOTIFIER_", "AUDIT_", "EVENTS_API_"))
            and key not in ("DATABASE_URL", "PORT")
        }
        env.update(
            PLATFORM_ENVIRONMENT="local",
            PYTHONUNBUFFERED="1",
            LOG_LEVEL="INFO",
            KAFKA_BOOTSTRAP_SERVERS=self.kafka.bootstrap,
            KAFKA_AUTH_MODE="plaintext",
            # Tansu's first group join waits a few heartbeats: keep them short locally.
            KAFKA_HEARTBEAT_INTERVAL_MS="500",
            KAFKA_SESSION_TIMEOUT_MS="6000",
            DATABASE_URL=self.databases[name],
            AWS_REGION=REGION,
            AWS_ENDPOINT_URL=self.aws_endpoint,
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
        )
        port = str(self.ports.get(name, contract.port))
        if name == "events-api":
            env.update(EVENTS_API_HOST="127.0.0.1", EVENTS_API_PORT=port)
        else:
            env["PORT"] = port
        if name == "notifier":
            env["NOTIFIER_WEBHOOK_URL"] = (
                f"http://127.0.0.1:{self.ports.get('webhook-sink', 0)}/hooks/platform"
            )
            env["NOTIFIER_ROUTES"] = json.dumps([{"channels": ["webhook"]}])
        if contract.uses_archive_bucket:
            env["AUDIT_ARCHIVE_BUCKET"] = ARCHIVE_BUCKET
            env["AUDIT_ARCHIVE_GRACE_S"] = "0"  # the demo waits for its windows to close itself
        return env

    def _spawn(
        self, name: str, command: list[str], env: dict[str, str], log: Path | None = None
    ) -> Child:
        log = log or self.logs / f"{name}.log"
        with self._lock, log.open("ab") as handle:
            if self._closed:
                raise LocalRunError(f"not starting {name}: the run is stopping")
            process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            child = Child(name, process, log)
            self.children.append(child)
        return child

    def _run_all(self, commands: list[tuple[str, list[str]]]) -> None:
        """Run one-shot commands in parallel; fail naming the first that failed."""
        started = [
            self._spawn(f"{name}-{command[-1]}", command, self._app_env(_app_of(name)))
            for name, command in commands
        ]
        for child in started:
            try:
                child.process.wait(timeout=self.options.timeout_s)
            except subprocess.TimeoutExpired:
                _terminate(child.process)
            if child.process.returncode != 0:
                raise LocalRunError(
                    f"{child.name} failed ({child.process.returncode}):\n{_tail(child.log)}"
                )

    def _wait_http(self, name: str, url: str) -> None:
        deadline = time.monotonic() + self.options.timeout_s
        while time.monotonic() < deadline:
            if _http_ok(url):
                return
            self.check_children()
            time.sleep(0.2)
        raise LocalRunError(f"{name} not ready at {url} after {self.options.timeout_s:.0f}s")

    def check_children(self) -> None:
        for child in self.children:
            long_running = not child.name.startswith("plan-") and child.name.endswith(
                ("events-api", "notifier", "audit", "webhook-sink")
            )
            if long_running and child.process.poll() is not None:
                raise LocalRunError(
                    f"{child.name} exited with {child.process.returncode}:\n{_tail(child.log)}"
                )

    def alive(self) -> Iterator[Child]:
        return (c for c in self.children if c.process.poll() is None)

    def _urls(self) -> dict[str, str]:
        api = f"http://127.0.0.1:{self.ports['events-api']}"
        urls = {
            "web console": f"{api}/console/",
            "API docs": f"{api}/docs",
            "events-api metrics": f"{api}/metrics",
        }
        for name in ("notifier", "audit"):
            urls[f"{name} metrics"] = f"http://127.0.0.1:{self.ports[name]}/metrics"
        urls["webhook deliveries"] = str(self.sink_file)
        urls["AWS emulator"] = self.aws_endpoint
        assert self.kafka is not None and self.postgres is not None
        urls["Kafka bootstrap"] = self.kafka.bootstrap
        urls["PostgreSQL"] = self.postgres.dsn
        return urls


def _app_of(name: str) -> str:
    for app in APPS:
        if name.startswith(app.name):
            return app.name
    raise KeyError(name)


def _app_command(name: str) -> list[str]:
    """`python -m apps.<package>.cli` for a bundled app."""
    return [sys.executable, "-m", f"apps.{name.replace('-', '_')}.cli"]


def _terminate(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    """SIGTERM the child's process group, then SIGKILL whatever is left."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace_s)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)
