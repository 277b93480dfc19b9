"""The whole platform on one machine: what `platform local` runs, step by step.

Embedded parts (from `platform_cli.embedded`): the Tansu broker, PostgreSQL and the AWS emulator
(moto's server, or LocalStack when `LOCALSTACK_ENDPOINT` answers). Then what a deployed env runs,
in the same order and with the same commands (the catalog's, `infra.gitops.catalog`): the topics
Job (the topics' one owner), each app's migrations into the one shared database, the archive
bucket, a webhook sink, and every app's workload as a real subprocess. The apps get the facts
channel from `infra.contracts.app_environment` (through `platform_cli.local_facts`), as pods do.

A demo burst goes through the front door (events and tasks over HTTP with an API key) plus one
poison record straight to Kafka (to show the dead-letter path). Then the audit log is archived to
S3 in short windows, so the whole demo lands in the bucket within seconds (the deployed archiver
uses hour windows).

Every process started here comes from the process kit (`platform_cli.processes`): it runs in its
own session (a Ctrl-C in the terminal reaches only us) and is stopped by `LocalRun.close()`,
which the CLI calls on every exit path.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
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
from infra.gitops.catalog import APP_SPECS, TOPICS_JOB_COMMAND, AppSpec
from infra.gitops.manifests.jobs import TOPICS_SPEC_ENV, topics_spec_json
from platform_cli import embedded
from platform_cli.local_facts import (
    LOCAL_REGION,
    Database,
    local_app_environment,
    local_database_name,
)
from platform_cli.processes import HttpProcess, NotReady, Process, last_line_of, poll_until
from platform_cli.webhook_sink import count_deliveries

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RUN_DIR = REPO_ROOT / ".local-run"
ARCHIVE_BUCKET = "plat-local-audit-archive"
REGION = LOCAL_REGION
DEMO_CATEGORIES = ("signup", "payment", "deploy", "alert")
APP_STOP_GRACE_S = 10.0

Step = Callable[[str], contextlib.AbstractContextManager[None]]
"""`with step("starting X"):` — the CLI shows progress; tests pass a no-op."""


class LocalRunError(RuntimeError):
    """A part did not start or the demo did not complete; the message says which and why."""


REMINDER_DUE_IN_S = 3.0
"""The demo's reminder tasks are due this long after they are created."""


@dataclass(frozen=True)
class LocalOptions:
    events: int = 24
    tasks: int = 8
    reminders: int = 1
    """Tasks due in a few seconds with a reminder at their due time (on top of `tasks`)."""
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
    reminders_delivered: int = 0
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
    """A process this run started: a server (`long_running`, must not exit) or a one-shot."""

    name: str
    process: Process | HttpProcess
    log: Path
    long_running: bool = False

    @property
    def pid(self) -> int | None:
        return self.process.started_pid


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
        self.database: Database | None = None
        """The one database every app shares, as in a deployed env."""
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
            child.process.terminate()
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
            self.database = self.postgres.database(local_database_name())
            self.postgres.create_database(self.database.name)
        with self.step("AWS emulator"):
            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request log lines
            emulator = self._stack.enter_context(embedded.aws_emulator())
            self.aws_endpoint = emulator.endpoint
            self._s3().create_bucket(Bucket=ARCHIVE_BUCKET)
        with self.step(f"topics: {', '.join(t.name for t in TOPICS)}"):
            # The topics Job, as the PreSync hook runs it: one replica here, so replication 1.
            topics_env = {
                **self._app_env(APPS[0].name),
                TOPICS_SPEC_ENV: topics_spec_json(replication_factor=1, min_insync_replicas=1),
            }
            self._run_all([("kafka-topics", _python(TOPICS_JOB_COMMAND), topics_env)])
        with self.step("migrations"):
            # In parallel, as the PreSync Jobs run, into the one database all apps share.
            self._run_all(
                [(f"{app.name}-migrate", _command(app.name, "migrate"), None) for app in APPS]
            )
        with self.step("webhook sink"):
            port = embedded.free_port()
            self.ports["webhook-sink"] = port
            sink = self._spawn_server(
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
                f"http://127.0.0.1:{port}/healthz",
            )
            self._wait_ready(sink)
        with self.step(", ".join(app.name for app in APPS)):
            servers = []
            for app in APPS:
                self.ports[app.name] = embedded.free_port()
                servers.append(
                    self._spawn_server(
                        app.name,
                        _command(app.name, _spec(app.name).main_verb),
                        self._app_env(app.name),
                        f"http://127.0.0.1:{self.ports[app.name]}/readyz",
                    )
                )
            for server in servers:
                self._wait_ready(server)
        self.report.urls = self._urls()
        self.report.logs = str(self.logs)
        self.report.elapsed_s = round(time.monotonic() - started, 1)

    # --- the demo ------------------------------------------------------------------------------

    def demo(self) -> Report:
        """Send the burst, wait until every part has processed it, archive, and count."""
        options = self.options
        burst = f"demo burst: {options.events} events, {options.tasks} tasks"
        with self.step(f"{burst}, {options.reminders} due in {REMINDER_DUE_IN_S:.0f} s"):
            key = self._create_api_key()
            self.demo_key = key
            self._send_burst(key)
        with self.step("1 poison record straight to Kafka"):
            self._send_poison()
        # Every event and task change, plus each fired reminder (task.reminder.due), reaches
        # audit and the webhook once.
        expected_flow = options.events + options.tasks + 2 * options.reminders
        self.report.expected = {
            "events_accepted": options.events,
            "tasks_created": options.tasks + options.reminders,
            "audit_rows": expected_flow,
            "notifications_delivered": expected_flow,
            "reminders_delivered": options.reminders,
            "dead_letters": 2,  # the poison record, once per consumer's dead-letter topic
            "archived_rows": expected_flow,
        }
        with self.step("waiting for audit, notifier, reminders and the dead-letter topics"):
            self._wait_for_pipeline()
        with self.step("archiving the audit log to S3"):
            self._wait_for_windows_to_close()
            window = str(options.archive_window_s)
            archive = _command("audit", "archive", "--window-seconds", window)
            self._run_all([("audit-archive", archive, None)])
            self.report.archive_objects = self._count_archive_objects()
            self.report.archived_rows = self._archived_rows()
            # Every window the archiver recorded must be an object in the bucket.
            self.report.expected["archive_objects"] = self._archived_windows()
        if self._plan_thread is not None:
            with self.step("offline plan of every stack"):
                self._plan_thread.join(timeout=self.options.timeout_s)
        self.report.pids = [c.pid for c in self.children if c.pid] + self._embedded_pids()
        return self.report

    def _embedded_pids(self) -> list[int]:
        """The broker's and PostgreSQL's server pids (started by `embedded`, stopped by close)."""
        pids = []
        broker = self.kafka.pid if self.kafka is not None else None
        if broker is not None:
            pids.append(broker)
        data_dir = self.postgres.data_dir if self.postgres is not None else None
        if data_dir is not None:
            with contextlib.suppress(OSError, ValueError, IndexError):
                pids.append(int((data_dir / "postmaster.pid").read_text().splitlines()[0]))
        return pids

    def _create_api_key(self) -> str:
        name = f"local-demo-{int(time.time())}"
        return last_line_of(
            _command(
                "events-api",
                "create-key",
                *("--name", name),
                *("--monthly-quota", "1000000"),
                *("--rate-per-minute", "100000"),
            ),
            what="events-api create-key",
            error=LocalRunError,
            timeout=60,
            cwd=REPO_ROOT,
            env=self._app_env("events-api"),
        )

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
            for i in range(self.options.reminders):
                due = datetime.now(UTC) + timedelta(seconds=REMINDER_DUE_IN_S)
                response = client.post(
                    "/api/v1/tasks",
                    json={
                        "title": f"demo reminder #{i}",
                        "due_at": due.isoformat(),
                        "reminders": ["PT0S"],
                    },
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
        """Until audit, notifier and both dead-letter topics have it all (or the timeout: the
        report then shows what is missing); an app that dies ends the run with its log."""

        def processed() -> bool:
            self.check_children()
            self._count_pipeline()
            return all(
                getattr(self.report, key) >= self.report.expected[key]
                for key in (
                    "audit_rows",
                    "notifications_delivered",
                    "reminders_delivered",
                    "dead_letters",
                )
            )

        poll_until(processed, timeout=self.options.timeout_s, interval=0.5)

    # --- counting ------------------------------------------------------------------------------

    def _audit_scalar(self, sql: str) -> Any:
        import psycopg

        assert self.database is not None
        with psycopg.connect(self.database.url, connect_timeout=5) as conn:
            row = conn.execute(sql).fetchone()
        return row[0] if row else None

    def _archived_rows(self) -> int:
        return int(self._audit_scalar("SELECT coalesce(sum(row_count), 0) FROM audit_archive"))

    def _archived_windows(self) -> int:
        return int(self._audit_scalar("SELECT count(*) FROM audit_archive"))

    def _count_pipeline(self) -> None:
        self.report.audit_rows = int(self._audit_scalar("SELECT count(*) FROM audit_log"))
        self.report.notifications_delivered = count_deliveries(self.sink_file)
        self.report.reminders_delivered = count_deliveries(self.sink_file, "task.reminder.due")
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
        child = self._spawn_one_shot(
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
        assert isinstance(child.process, Process)
        code = child.process.wait(timeout=self.options.timeout_s * 5)
        policy = next(
            (ln.strip() for ln in _tail(log, 5000).splitlines() if ln.startswith("policy:")),
            f"plan exited {code}",
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
        """The facts channel (`local_app_environment`) plus what is local-only: the emulator's
        endpoint and test keys, short consumer heartbeats, the app's port and channels."""
        contract = app_contract(name)
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AWS_", "KAFKA_", "DB_", "NOTIFIER_", "AUDIT_", "EVENTS_API_"))
            and key not in ("PORT", "PLATFORM_ENVIRONMENT", "OTEL_EXPORTER_OTLP_ENDPOINT")
        }
        assert self.kafka is not None and self.database is not None
        env.update(
            local_app_environment(
                kafka_bootstrap=self.kafka.bootstrap,
                database=self.database,
                archive_bucket=ARCHIVE_BUCKET if contract.uses_archive_bucket else "",
            )
        )
        env.update(
            PYTHONUNBUFFERED="1",
            LOG_LEVEL="INFO",
            # Tansu's first group join waits a few heartbeats: keep them short locally.
            KAFKA_HEARTBEAT_INTERVAL_MS="500",
            KAFKA_SESSION_TIMEOUT_MS="6000",
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
            env["AUDIT_ARCHIVE_GRACE_S"] = "0"  # the demo waits for its windows to close itself
        return env

    def _register(self, child: Child) -> Child:
        """Spawn `child` unless the run is closing (no process may start after `close`)."""
        with self._lock:
            if self._closed:
                raise LocalRunError(f"not starting {child.name}: the run is stopping")
            child.process.spawn()
            self.children.append(child)
        return child

    def _spawn_one_shot(
        self, name: str, command: list[str], env: dict[str, str], log: Path | None = None
    ) -> Child:
        log = log or self.logs / f"{name}.log"
        process = Process(command, env=env, cwd=REPO_ROOT, log=log, stop_grace_s=APP_STOP_GRACE_S)
        return self._register(Child(name, process, log))

    def _spawn_server(self, name: str, command: list[str], env: dict[str, str], url: str) -> Child:
        log = self.logs / f"{name}.log"
        process = HttpProcess(
            command,
            url=url,
            env=env,
            cwd=REPO_ROOT,
            log=log,
            ready_timeout_s=self.options.timeout_s,
            stop_grace_s=APP_STOP_GRACE_S,
        )
        return self._register(Child(name, process, log, long_running=True))

    def _wait_ready(self, child: Child) -> None:
        assert isinstance(child.process, HttpProcess)
        try:
            child.process.wait_ready()
        except NotReady as exc:
            raise LocalRunError(f"{child.name} not ready: {exc}\n{_tail(child.log)}") from None

    def _run_all(self, commands: list[tuple[str, list[str], dict[str, str] | None]]) -> None:
        """Run one-shot commands in parallel (env None: the app's own, by name); fail naming
        the first that failed."""
        started = [
            self._spawn_one_shot(name, command, env or self._app_env(_app_of(name)))
            for name, command, env in commands
        ]
        for child in started:
            assert isinstance(child.process, Process)
            code = child.process.wait(timeout=self.options.timeout_s)
            if code != 0:
                raise LocalRunError(f"{child.name} failed ({code}):\n{_tail(child.log)}")

    def check_children(self) -> None:
        """Raise, with its log tail, if a server of this run has exited."""
        for child in self.children:
            if child.long_running and child.process.exited():
                raise LocalRunError(
                    f"{child.name} exited with {child.process.poll()}:\n{_tail(child.log)}"
                )

    def alive(self) -> Iterator[Child]:
        return (c for c in self.children if c.process.running())

    def _urls(self) -> dict[str, str]:
        api = f"http://127.0.0.1:{self.ports['events-api']}"
        urls = {
            "web console": f"{api}/console/",
            "API docs": f"{api}/docs",
            "events-api metrics": f"{api}/metrics",
        }
        for app in APPS:
            if app.name != "events-api":
                urls[f"{app.name} metrics"] = f"http://127.0.0.1:{self.ports[app.name]}/metrics"
        urls["webhook deliveries"] = str(self.sink_file)
        urls["AWS emulator"] = self.aws_endpoint
        assert self.kafka is not None and self.database is not None
        urls["Kafka bootstrap"] = self.kafka.bootstrap
        urls["PostgreSQL"] = self.database.url
        return urls


def _app_of(name: str) -> str:
    for app in APPS:
        if name.startswith(app.name):
            return app.name
    raise KeyError(name)


def _spec(name: str) -> AppSpec:
    return next(spec for spec in APP_SPECS if spec.name == name)


def _python(command: tuple[str, ...]) -> list[str]:
    """A catalog command (`python -m ...`, as the images run it) with this interpreter."""
    head, *rest = command
    return [sys.executable if head == "python" else head, *rest]


def _command(app: str, verb: str, *args: str) -> list[str]:
    """The app's workload command from the catalog (`AppSpec.command`), run with this Python."""
    return [*_python(_spec(app).command(verb)), *args]
