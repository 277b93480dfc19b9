"""The deploy rehearsal: `gitops/<env>/` played in real containers, in Argo CD's order.

What runs is what a cluster would run: the committed manifests, the images built from
`apps/Dockerfile`, each workload's own command, security context, volumes, probes and grace
period. Around them, what the cluster and AWS would provide:

- a container network (podman's bridge) standing in for the pod network; the broker (Tansu),
  PostgreSQL, the AWS emulator (moto), a webhook sink and an OTLP sink listen on its gateway;
- the facts channel: `platform-facts` is built by `infra.contracts.app_environment`, the function
  the Pulumi program uses, with values pointing at those parts (`DB_SSLMODE=disable`: the local
  PostgreSQL has no RDS certificate); every rendered ExternalSecret is synced from the emulator's
  Secrets Manager by a stand-in for External Secrets (`secrets.sync`), as podman secrets of the
  same names and keys;
- the database: the RDS master user (CREATEROLE, not superuser) and its managed secret, and the
  apps' empty credential secrets Pulumi declares; the rendered db-roles Job creates each app's
  own roles and publishes its login, which the apps read from the emulator at each connect;
- controllers: a Deployment's, Job's or CronJob's pod template is played as the Pod its
  controller would create (one replica), Jobs retried up to their `backoffLimit`;
- EKS Pod Identity: credentials and the emulator's endpoint are added to each container's
  environment (`POD_IDENTITY_ENV`).

The only rewrite of a manifest is its image references (to the local build, with
`imagePullPolicy: Never`); the report lists each one, and the environment the stand-in adds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets as token
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from infra.config import PlatformConfig, load_stack_file
from infra.contracts import (
    APPS,
    FACTS_CONFIGMAP,
    FACTS_DB_SECRET,
    TOPICS,
    Fact,
    app_environment,
    db_credentials_secret_id,
)
from infra.platform.facts import db_external_secret_spec
from platform_cli import embedded, images, podman
from platform_cli.progress import Step
from platform_cli.rehearsal import plan as argo
from platform_cli.rehearsal import probes
from platform_cli.rehearsal import secrets as eso
from platform_cli.webhook_sink import make_handler

REPO_ROOT = Path(__file__).resolve().parents[2]
GITOPS_ROOT = REPO_ROOT / "gitops"
DEFAULT_RUN_DIR = REPO_ROOT / ".rehearsal"
LOCK_FILE = Path(tempfile.gettempdir()) / "platform-rehearsal.lock"
DB_USER = "platform_app"
"""The role the apps log in as (the RDS-managed secret's `username`)."""
SECRET_STORE = "aws-secrets-manager"
EMULATOR_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
REMINDER_DUE_IN_S = 5.0
"""The rehearsal's task is due this long after it is created (its reminder fires then)."""
# podman itself writes these into every container; they are not the app's writes.
PODMAN_MANAGED_PATHS = ("/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/run", "/dev")


class RehearsalError(RuntimeError):
    """A part did not start or a check could not run; the message says which and why."""


@dataclass(frozen=True)
class RehearsalOptions:
    env: str = "dev"
    base: images.BaseChoice = "auto"
    run_dir: Path = DEFAULT_RUN_DIR
    events_under_stop: int = 40
    """Events sent while every Deployment is stopped with SIGTERM (the no-loss check)."""
    timeout_s: float = 120.0
    """How long to wait for an event to reach audit and the webhook sink."""


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class PlayedPod:
    workload: argo.Workload
    pod_name: str
    started: float

    def container(self, container: argo.Manifest) -> str:
        return f"{self.pod_name}-{container['name']}"


@dataclass
class Report:
    env: str
    run_id: str = ""
    images: list[images.BuiltImage] = field(default_factory=list)
    commands: list[tuple[str, str, str]] = field(default_factory=list)
    """(app image, command, where it ran) for every played container."""
    rewrites: list[tuple[str, str]] = field(default_factory=list)
    injected_env: list[str] = field(default_factory=list)
    not_played: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks) and not self.leftovers

    def check(self, name: str, ok: bool, detail: str) -> bool:
        self.checks.append(Check(name, ok, detail))
        return ok

    def to_json(self) -> str:
        data = {
            "env": self.env,
            "run_id": self.run_id,
            "ok": self.ok,
            "images": [vars(i) for i in self.images],
            "commands": [list(c) for c in self.commands],
            "rewrites": [list(r) for r in self.rewrites],
            "injected_env": self.injected_env,
            "not_played": self.not_played,
            "checks": [vars(c) for c in self.checks],
            "timings": self.timings,
            "leftovers": self.leftovers,
        }
        return json.dumps(data, indent=2, sort_keys=True)


def _podman_managed(path: str, volumes: set[str]) -> bool:
    """Whether a `podman diff` entry is podman's own file (or a folder holding one), or inside
    a declared volume: anything else is a write by the app to its root filesystem."""
    owned = (*volumes, *PODMAN_MANAGED_PATHS)
    return any(path == p or path.startswith(p + "/") or p.startswith(path + "/") for p in owned)


class _OtlpSink(BaseHTTPRequestHandler):
    """Accepts OTLP/HTTP exports (the collector's port) and counts them; spans are not kept."""

    requests = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).requests += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class Rehearsal:
    """Owns the network, parts, secrets and pods it creates; `close()` removes them all."""

    def __init__(self, options: RehearsalOptions, step: Step) -> None:
        self.options = options
        self.step = step
        self.cfg: PlatformConfig = load_stack_file(options.env)
        self.run_id = uuid.uuid4().hex[:6]
        self.report = Report(env=options.env, run_id=self.run_id)
        self.run_dir = options.run_dir
        self.logs = self.run_dir / "logs"
        self.network = f"platform-rehearsal-{self.run_id}"
        self.keeper = f"rehearsal-net-{self.run_id}"
        self._stack = contextlib.ExitStack()
        self._pods: list[PlayedPod] = []
        self._podman_secrets: list[str] = []
        self._network_created = False
        self.gateway = ""
        self.subnet = ""
        self.local_images: dict[str, str] = {}
        self.config_map_files: list[Path] = []
        self.sink_file = self.run_dir / "webhook-deliveries.jsonl"
        self.db_password = token.token_urlsafe(18)
        self.kafka: embedded.KafkaBroker | None = None
        self.postgres: embedded.PostgresServer | None = None
        self.aws_endpoint = ""
        self.bucket = f"{self.cfg.name_prefix}-audit-archive"
        self.plan: argo.EnvPlan | None = None
        self.first_event = ""
        self._played: Counter[str] = Counter()

    # --- lifecycle -----------------------------------------------------------------------------

    def run(self) -> Report:
        started = time.monotonic()
        self._take_machine_lock()
        self._prepare_run_dir()
        self.plan = argo.load_env(GITOPS_ROOT, self.options.env)
        self.report.not_played = [
            f"{app.name}: {obj}" for app in self.plan.applications for obj in app.not_played
        ]
        with self._timed("images"), self.step("images (buildah, cached by their inputs)"):
            built = images.build_all(self.logs, base=self.options.base)
            self.report.images = built
            self.local_images = {b.app: b.ref for b in built}
        with self._timed("parts"), self.step("container network, broker, PostgreSQL, emulator"):
            self._start_network()
            self._start_parts()
        with self._timed("facts"), self.step("facts channel and secrets (External Secrets)"):
            self._write_facts()
            self._sync_secrets()
        for wave, applications in self.plan.waves():
            names = ", ".join(a.name for a in applications)
            with self._timed(f"wave {wave}"), self.step(f"sync wave {wave}: {names}"):
                self._sync_wave(applications)
        with self._timed("checks"):
            with self.step("topics as the catalog declares them"):
                self._check_topics()
            with self.step("the web console, served by the events-api container"):
                self._check_console()
            with self.step("one event: events-api -> audit row and webhook delivery"):
                key = self._create_api_key()
                self._check_event_path(key)
            with self.step("a task due in seconds: reminders -> notifier -> webhook sink"):
                self._check_reminder_path(key)
            with self.step("one run of each CronJob"):
                self._run_cron_jobs()
            with self.step("security context, read-only root, declared volumes"):
                self._check_confinement()
            with self.step("SIGTERM within the grace period, under load, no loss"):
                self._check_graceful_stop(key)
        self.report.timings["total"] = round(time.monotonic() - started, 1)
        return self.report

    def _take_machine_lock(self) -> None:
        """One rehearsal per machine at a time: podman 4.3's `kube play` publishes each
        containerPort on the host, and the podman secrets are named as the manifests name them,
        so two runs would collide. A second run waits (and says so) instead."""
        import fcntl

        handle = LOCK_FILE.open("w")
        self._stack.callback(handle.close)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with self.step("waiting for another rehearsal on this machine to finish"):
                fcntl.flock(handle, fcntl.LOCK_EX)

    def close(self) -> None:
        """Remove every pod, secret and network made here, stop the parts, list leftovers."""
        for pod in reversed(self._pods):
            self._save_logs(pod)
            podman.run(["podman", "pod", "rm", "--force", "--time", "5", pod.pod_name], check=False)
        for name in self._podman_secrets:
            podman.run(["podman", "secret", "rm", name], check=False)
        podman.run(["podman", "pod", "rm", "--force", self.keeper], check=False)
        if self._network_created:
            podman.run(["podman", "network", "rm", "--force", self.network], check=False)
        self._stack.close()
        self.report.leftovers = self._leftovers()

    def _leftovers(self) -> list[str]:
        found = []
        listing = podman.run(
            ["podman", "ps", "--all", "--format", "{{.Names}}"], check=False
        ).stdout.split()
        found += [f"container {n}" for n in listing if n.endswith(self.run_id) or self.run_id in n]
        networks = podman.run(
            ["podman", "network", "ls", "--format", "{{.Name}}"], check=False
        ).stdout.split()
        found += [f"network {n}" for n in networks if n == self.network]
        if self.kafka is not None and self.kafka.running:
            found.append("process tansu")
        return found

    @contextlib.contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        begun = time.monotonic()
        try:
            yield
        finally:
            self.report.timings[name] = round(time.monotonic() - begun, 1)

    def _prepare_run_dir(self) -> None:
        for sub in ("logs", "pods", "configmaps"):
            path = self.run_dir / sub
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
        self.sink_file.unlink(missing_ok=True)

    # --- network and parts ---------------------------------------------------------------------

    def _start_network(self) -> None:
        podman.run(["podman", "network", "create", self.network])
        self._network_created = True
        info = json.loads(podman.run(["podman", "network", "inspect", self.network]).stdout)[0]
        subnet = info["subnets"][0]
        self.subnet, self.gateway = subnet["subnet"], subnet["gateway"]
        # The bridge (and its gateway address, where the parts listen) exists only while a
        # container is attached: an idle pod keeps it up for the whole run.
        podman.run(["podman", "pod", "create", "--name", self.keeper, "--network", self.network])
        podman.run(["podman", "pod", "start", self.keeper])

    def _start_parts(self) -> None:
        gateway = self.gateway
        self.kafka = self._stack.enter_context(
            embedded.kafka_broker(self.logs / "tansu.log", host=gateway, allow_external=False)
        )
        pg_dir = Path(tempfile.mkdtemp(prefix="rehearsal-pg-"))
        self._stack.callback(shutil.rmtree, pg_dir, True)
        self.postgres = self._stack.enter_context(
            embedded.postgres_server(
                pg_dir / "data",
                listen=("127.0.0.1", gateway),
                # Pods log in with passwords (each app's own, published by the db-roles Job), as
                # they would on RDS.
                hba=(f"host all all {self.subnet} scram-sha-256",),
                allow_external=False,
            )
        )
        self._create_database()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        emulator = self._stack.enter_context(
            embedded.aws_emulator(host=gateway, allow_external=False)
        )
        self.aws_endpoint = emulator.endpoint
        self._aws("s3").create_bucket(
            Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": self.cfg.region}
        )
        self.sink_port = self._serve(make_handler(self.sink_file, threading.Lock()))
        _OtlpSink.requests = 0
        self.otlp_port = self._serve(_OtlpSink)

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> int:
        server = ThreadingHTTPServer((self.gateway, 0), handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self._stack.callback(server.server_close)
        self._stack.callback(server.shutdown)
        return int(server.server_address[1])

    def _create_database(self) -> None:
        import psycopg
        from psycopg import sql

        assert self.postgres is not None
        name = self.cfg.database.database_name
        with psycopg.connect(self.postgres.dsn, autocommit=True) as conn:
            # The RDS master user: not a superuser, but may create roles (as rds_superuser can);
            # the db-roles Job creates the apps' own roles with it.
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD {}").format(
                    sql.Identifier(DB_USER), sql.Literal(self.db_password)
                )
            )
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(name), sql.Identifier(DB_USER)
                )
            )

    def _aws(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.aws_endpoint,
            region_name=self.cfg.region,
            **{k.lower(): v for k, v in EMULATOR_CREDENTIALS.items()},
        )

    @property
    def pod_identity_env(self) -> list[dict[str, str]]:
        """What EKS Pod Identity (credentials) and AWS itself (the endpoint) stand in for."""
        values = {**EMULATOR_CREDENTIALS, "AWS_ENDPOINT_URL": self.aws_endpoint}
        return [{"name": k, "value": v} for k, v in sorted(values.items())]

    # --- facts and secrets ---------------------------------------------------------------------

    def _write_facts(self) -> None:
        assert self.kafka is not None and self.postgres is not None and self.plan is not None
        secret = self._aws("secretsmanager").create_secret(
            # The RDS-managed master secret's shape: JSON with username and password.
            Name=f"rds!db-{self.run_id}",
            SecretString=json.dumps({"username": DB_USER, "password": self.db_password}),
        )
        self.db_secret_arn = secret["ARN"]
        if self.cfg.database.mode == "rds":
            # What Pulumi declares per app (db_credentials): the secret, without a value; the
            # db-roles Job publishes each app's first login into it.
            for app in APPS:
                if app.uses_database:
                    self._aws("secretsmanager").create_secret(
                        Name=db_credentials_secret_id(self.cfg.name_prefix, app.name)
                    )
        data = app_environment(
            {
                Fact.ENVIRONMENT: self.cfg.stack,
                Fact.AWS_REGION: self.cfg.region,
                Fact.KAFKA_BOOTSTRAP_SERVERS: self.kafka.bootstrap,
                # MSK's IAM auth cannot be emulated; the local broker speaks plaintext.
                Fact.KAFKA_AUTH_MODE: "plaintext",
                Fact.DB_HOST: self.gateway,
                Fact.DB_PORT: str(self.postgres.port),
                Fact.DB_NAME: self.cfg.database.database_name,
                Fact.DB_SECRET_REF: self.db_secret_arn,
                # The local PostgreSQL has no certificate from the RDS CA the images trust, so
                # the stand-in asks for no TLS (RDS: verify-full, see infra/platform/layer.py).
                Fact.DB_SSLMODE: "disable",
                Fact.OTEL_EXPORTER_OTLP_ENDPOINT: f"http://{self.gateway}:{self.otlp_port}",
                Fact.AUDIT_ARCHIVE_BUCKET: self.bucket,
            }
        )
        facts = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": FACTS_CONFIGMAP},
            "data": {str(k): str(v) for k, v in data.items()},
        }
        for config_map in [facts, *self.plan.config_maps]:
            path = self.run_dir / "configmaps" / f"{config_map['metadata']['name']}.yaml"
            path.write_text(yaml.safe_dump(config_map, sort_keys=True))
            self.config_map_files.append(path)
        self.report.injected_env = [e["name"] for e in self.pod_identity_env]

    def _sync_secrets(self) -> None:
        assert self.plan is not None
        platform_db = {
            "metadata": {"name": FACTS_DB_SECRET},
            "spec": db_external_secret_spec(SECRET_STORE, self.db_secret_arn),
        }
        client = self._aws("secretsmanager")
        # `platform-db` exists only where the layer syncs it (the local flavour's shared login).
        shared = [] if self.cfg.database.mode == "rds" else [platform_db]
        for external_secret in [*shared, *self.plan.external_secrets]:
            self._seed_remote_secret(external_secret, client)
            data = eso.sync(external_secret, client)
            self._podman_secret(eso.target_name(external_secret), data)

    def _seed_remote_secret(self, external_secret: argo.Manifest, client: Any) -> None:
        """Put what operators store in Secrets Manager for a rendered ExternalSecret (the local
        webhook sink as the notifier's channel); the DB secret exists already."""
        if external_secret["metadata"]["name"] == FACTS_DB_SECRET:
            return
        keys = {item["remoteRef"]["key"] for item in external_secret["spec"].get("data", [])}
        values = {
            item["remoteRef"]["property"]: self._local_secret_value(item["secretKey"])
            for item in external_secret["spec"].get("data", [])
        }
        for key in keys:
            client.create_secret(Name=key, SecretString=json.dumps(values))

    def _local_secret_value(self, setting: str) -> str:
        """Every channel URL points at the local webhook sink; other credentials are random."""
        if setting.endswith("_URL"):
            channel = setting.removeprefix("NOTIFIER_").removesuffix("_URL").lower()
            return f"http://{self.gateway}:{self.sink_port}/hooks/{channel}"
        return token.token_urlsafe(24)

    def _podman_secret(self, name: str, data: dict[str, str]) -> None:
        import base64

        # `envFrom.secretRef` in `podman kube play` reads a podman secret holding a JSON map of
        # key -> base64 value (a Secret document in the played YAML is not readable by envFrom).
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        podman.run(["podman", "secret", "rm", name], check=False)  # a crashed run's leftover
        podman.run(["podman", "secret", "create", name, "-"], input_text=json.dumps(encoded))
        self._podman_secrets.append(name)

    # --- playing workloads ---------------------------------------------------------------------

    def _sync_wave(self, applications: list[argo.ApplicationPlan]) -> None:
        """Applications of one wave sync in parallel, as Argo CD does."""
        with ThreadPoolExecutor(max_workers=len(applications)) as pool:
            for future in [pool.submit(self._sync_application, app) for app in applications]:
                future.result()

    def _sync_application(self, application: argo.ApplicationPlan) -> None:
        for phase in argo.PHASES:
            for workload in (w for w in application.workloads if w.phase == phase):
                if workload.kind == "Job":
                    self._run_job(workload)
                elif workload.kind == "Deployment":
                    self._start_deployment(workload)
                # CronJobs are schedules: one run is played after the Deployments are up.

    def _play(self, workload: argo.Workload) -> PlayedPod:
        # A controller names each pod it creates uniquely; so do we (retries, restarts).
        self._played[workload.name] += 1
        pod_name = f"{workload.name}-{self.run_id}-{self._played[workload.name]}"
        pod, changes = argo.rewrite_images(workload.pod, self.local_images)
        pod["metadata"]["name"] = pod_name
        for container in pod["spec"]["containers"]:
            container.setdefault("env", []).extend(self.pod_identity_env)
        for original, local in changes:
            if (original, local) not in self.report.rewrites:
                self.report.rewrites.append((original, local))
        for source in workload.containers:
            entry = (argo.image_app(source["image"]), " ".join(source["command"]), workload.source)
            if entry not in self.report.commands:
                self.report.commands.append(entry)
        path = self.run_dir / "pods" / f"{pod_name}.yaml"
        path.write_text(yaml.safe_dump(pod, sort_keys=True))
        args = ["podman", "kube", "play", "--network", self.network]
        for config_map in self.config_map_files:
            args += ["--configmap", str(config_map)]
        played = PlayedPod(workload, pod_name, time.monotonic())
        self._pods.append(played)
        podman.run([*args, str(path)], log=self.logs / f"{pod_name}.play.log", timeout=300)
        return played

    def _run_job(self, workload: argo.Workload) -> None:
        """Play the Job's pod until one attempt exits 0, up to `backoffLimit` retries."""
        deadline = workload.active_deadline_s or 900
        failures = []
        for attempt in range(workload.backoff_limit + 1):
            played = self._play(workload)
            container = played.container(workload.containers[0])
            code = self._wait_exit(container, deadline)
            if code == 0:
                self.report.check(
                    f"Job {workload.name}",
                    True,
                    f"exit 0 in {time.monotonic() - played.started:.1f} s"
                    + (f" (after {attempt} failed attempts)" if attempt else ""),
                )
                return
            failures.append(f"attempt {attempt + 1}: exit {code}: {self._log_tail(container)}")
        self.report.check(f"Job {workload.name}", False, "; ".join(failures))
        raise RehearsalError(f"Job {workload.name} failed:\n" + "\n".join(failures))

    def _wait_exit(self, container: str, timeout_s: float) -> int:
        result = podman.run(["podman", "wait", container], check=False, timeout=timeout_s + 30)
        try:
            return int(result.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return -1

    def _start_deployment(self, workload: argo.Workload) -> PlayedPod:
        played = self._play(workload)
        for container in workload.containers:
            name = played.container(container)
            address = self._pod_ip(played)
            try:
                ready = probes.wait_ready(container, address, partial(self._running, name))
            except probes.ProbeError as exc:
                self.report.check(f"Deployment {workload.name} ready", False, str(exc))
                raise RehearsalError(
                    f"{workload.name} not ready: {exc}\n{self._log_tail(name)}"
                ) from None
            self.report.check(
                f"Deployment {workload.name} ready",
                ready.seconds <= ready.budget_s,
                f"{ready.seconds:.1f} s (its probes allow {ready.budget_s:.0f} s)",
            )
        return played

    def _pod_ip(self, played: PlayedPod) -> str:
        infra = podman.run(
            ["podman", "pod", "inspect", "--format", "{{.InfraContainerID}}", played.pod_name]
        ).stdout.strip()
        template = f'{{{{(index .NetworkSettings.Networks "{self.network}").IPAddress}}}}'
        address = podman.run(["podman", "inspect", "--format", template, infra]).stdout.strip()
        if not address:
            raise RehearsalError(f"{played.pod_name}: no address on {self.network}")
        return address

    def _running(self, container: str) -> bool:
        state = podman.run(
            ["podman", "inspect", "--format", "{{.State.Running}}", container], check=False
        )
        return state.stdout.strip() == "true"

    def _log_tail(self, container: str, chars: int = 1500) -> str:
        logs = podman.run(["podman", "logs", container], check=False)
        return (logs.stdout + logs.stderr)[-chars:]

    def _save_logs(self, pod: PlayedPod) -> None:
        for container in pod.workload.containers:
            name = pod.container(container)
            logs = podman.run(["podman", "logs", name], check=False)
            (self.logs / f"{name}.log").write_text(logs.stdout + logs.stderr)

    def _deployments(self) -> list[PlayedPod]:
        """The newest pod of each Deployment."""
        newest: dict[str, PlayedPod] = {}
        for pod in self._pods:
            if pod.workload.kind == "Deployment":
                newest[pod.workload.name] = pod
        return list(newest.values())

    def _deployment(self, name: str) -> PlayedPod:
        for pod in self._deployments():
            if pod.workload.name == name:
                return pod
        raise RehearsalError(f"no Deployment {name!r} in gitops/{self.options.env}")

    # --- checks --------------------------------------------------------------------------------

    def _check_topics(self) -> None:
        from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

        assert self.kafka is not None
        admin = KafkaAdminClient(bootstrap_servers=self.kafka.bootstrap, request_timeout_ms=10000)
        try:
            described = {t["name"]: t for t in admin.describe_topics([t.name for t in TOPICS])}
            for topic in TOPICS:
                found = described.get(topic.name)
                partitions = (
                    len(found["partitions"]) if found and not found.get("error_code") else 0
                )
                configs = admin.describe_configs(
                    [ConfigResource(ConfigResourceType.TOPIC, topic.name)], config_filter="all"
                )
                entries = configs.get("topic", {}).get(topic.name, {})
                retention = entries.get("retention.ms", {}).get("value")
                ok = partitions == topic.partitions and str(retention) == str(topic.retention_ms)
                self.report.check(
                    f"topic {topic.name}",
                    ok,
                    f"{partitions} partitions (want {topic.partitions}), retention.ms "
                    f"{retention} (want {topic.retention_ms})",
                )
        finally:
            admin.close()

    def _create_api_key(self) -> str:
        api = self._deployment("events-api")
        container = api.container(api.workload.containers[0])
        command = [
            *api.workload.containers[0]["command"][:3],
            "create-key",
            "--name",
            f"rehearsal-{self.run_id}",
            "--monthly-quota",
            "1000000",
            "--rate-per-minute",
            "100000",
        ]
        result = podman.run(["podman", "exec", container, *command], check=False)
        if result.returncode != 0:
            raise RehearsalError(f"create-key in {container} failed:\n{result.stderr[-1500:]}")
        return result.stdout.strip().splitlines()[-1].strip()

    def _api_url(self) -> str:
        api = self._deployment("events-api")
        port = probes.http_probe(api.workload.containers[0], "readiness")
        assert port is not None
        return f"http://{self._pod_ip(api)}:{port.port}"

    def _check_console(self) -> None:
        """The bundle ships in the events-api image and is served with its CSP (no inline
        script); a JS asset it links loads too."""
        import re

        import httpx

        with httpx.Client(base_url=self._api_url(), timeout=10) as client:
            page = client.get("/console/")
            policy = page.headers.get("content-security-policy", "")
            script = re.search(r'src="(/console/assets/[^"]+\.js)"', page.text)
            asset = client.get(script.group(1)) if script else None
        ok = (
            page.status_code == 200
            and "script-src 'self'" in policy
            and "unsafe-inline" not in policy
            and asset is not None
            and asset.status_code == 200
        )
        detail = (
            f"/console/ {page.status_code}, CSP {'set' if policy else 'missing'}, "
            f"{script.group(1) if script else 'no script'} "
            f"{asset.status_code if asset is not None else '-'}"
        )
        if page.status_code == 503:
            detail += " (the image has no console bundle: run `make web` before building)"
        self.report.check("web console served with its CSP", ok, detail)

    def _post_event(self, client: Any, key: str, message: str) -> str | None:
        import httpx

        try:
            response = client.post(
                "/api/v1/events",
                headers={"Authorization": f"Bearer {key}"},
                json={"category": "deploy", "message": message},
            )
        except httpx.HTTPError:
            return None
        return str(response.json()["id"]) if response.status_code == 202 else None

    def _check_event_path(self, key: str) -> None:
        import httpx

        with httpx.Client(base_url=self._api_url(), timeout=10) as client:
            event_id = self._post_event(client, key, f"rehearsal {self.run_id}")
        if not self.report.check("POST /api/v1/events", event_id is not None, f"id {event_id}"):
            return
        assert event_id is not None
        self.first_event = event_id
        begun = time.monotonic()
        audited = self._wait(lambda: self._audited({event_id}) == {event_id})
        self.report.check(
            "event -> audit row (PostgreSQL)",
            audited,
            f"{time.monotonic() - begun:.1f} s" if audited else "no row",
        )
        delivered = self._wait(lambda: self._deliveries()[event_id] >= 1)
        self.report.check(
            "event -> notifier -> webhook sink",
            delivered and self._deliveries()[event_id] == 1,
            f"{self._deliveries()[event_id]} delivery, {time.monotonic() - begun:.1f} s",
        )

    def _check_reminder_path(self, key: str) -> None:
        """A task due in a few seconds, reminded at its due time: the reminders app schedules it
        from the task change and fires it; the notifier delivers it to the webhook sink."""
        import httpx

        due = datetime.now(UTC) + timedelta(seconds=REMINDER_DUE_IN_S)
        with httpx.Client(base_url=self._api_url(), timeout=10) as client:
            response = client.post(
                "/api/v1/tasks",
                headers={"Authorization": f"Bearer {key}"},
                json={
                    "title": f"rehearsal {self.run_id}",
                    "due_at": due.isoformat(),
                    "reminders": ["PT0S"],
                },
            )
        created = response.status_code == 201
        if not self.report.check(
            "POST /api/v1/tasks (due in seconds)", created, response.text[:200]
        ):
            return
        task_id = str(response.json()["id"])
        delivered = self._wait(lambda: self._reminders_delivered(task_id) >= 1)
        late = (datetime.now(UTC) - due).total_seconds()
        self.report.check(
            "task due -> reminders -> notifier -> webhook sink",
            delivered and self._reminders_delivered(task_id) == 1,
            f"{self._reminders_delivered(task_id)} reminder delivered, {late:.1f} s after due",
        )

    def _reminders_delivered(self, task_id: str) -> int:
        count = 0
        if self.sink_file.exists():
            for line in self.sink_file.read_text().splitlines():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    body = json.loads(line)["body"]
                    if body["type"] == "task.reminder.due" and body["subject"] == task_id:
                        count += 1
        return count

    def _wait(self, done: Callable[[], bool], timeout_s: float | None = None) -> bool:
        deadline = time.monotonic() + (timeout_s or self.options.timeout_s)
        while time.monotonic() < deadline:
            if done():
                return True
            time.sleep(0.25)
        return done()

    def _db(self) -> Any:
        import psycopg

        assert self.postgres is not None
        # The checks read the apps' tables where the apps keep them: on RDS each app's own
        # schema (apps/db_roles), locally `public`.
        schemas = ",".join([*(app.package for app in APPS if app.uses_database), "public"])
        return psycopg.connect(
            self.postgres.url(self.cfg.database.database_name),
            connect_timeout=5,
            options=f"-c search_path={schemas}",
        )

    def _audited(self, ids: set[str]) -> set[str]:
        with self._db() as conn:
            rows = conn.execute(
                "SELECT event_id::text FROM audit_log WHERE event_id::text = ANY(%s)", (list(ids),)
            ).fetchall()
        return {row[0] for row in rows}

    def _deliveries(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        if self.sink_file.exists():
            for line in self.sink_file.read_text().splitlines():
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    counts[str(json.loads(line)["body"]["id"])] += 1
        return counts

    def _run_cron_jobs(self) -> None:
        assert self.plan is not None
        for workload in (w for w in self.plan.workloads if w.kind == "CronJob"):
            if workload.application == "audit":
                # Backdate the rehearsal's audit row so its archive window is closed.
                with self._db() as conn:
                    conn.execute(
                        "UPDATE audit_log SET recorded_at = now() - interval '3 hours' "
                        "WHERE event_id::text = %s",
                        (self.first_event,),
                    )
            self._run_job(workload)
        objects = self._aws("s3").list_objects_v2(Bucket=self.bucket).get("KeyCount", 0)
        self.report.check("audit archive -> S3 object", objects >= 1, f"{objects} object(s)")

    def _check_confinement(self) -> None:
        for pod in self._pods:
            for container in pod.workload.containers:
                name = pod.container(container)
                self.report.check(
                    f"confined {pod.workload.kind} {pod.workload.name}",
                    *self._confinement(name, pod.workload.pod, container),
                )

    def _confinement(
        self, name: str, pod: argo.Manifest, container: argo.Manifest
    ) -> tuple[bool, str]:
        inspected = json.loads(podman.run(["podman", "inspect", name]).stdout)[0]
        context = {**pod["spec"].get("securityContext", {}), **container.get("securityContext", {})}
        problems = []
        user = str(inspected["Config"].get("User", ""))
        want = f"{context.get('runAsUser')}"
        if user.split(":")[0] != want:
            problems.append(f"user {user!r} (want {want})")
        if context.get("readOnlyRootFilesystem") and not inspected["HostConfig"]["ReadonlyRootfs"]:
            problems.append("root filesystem is writable")
        if inspected.get("EffectiveCaps"):
            problems.append(f"capabilities {inspected['EffectiveCaps']}")
        declared = {m["mountPath"] for m in container.get("volumeMounts", [])}
        mounted = {m["Destination"] for m in inspected.get("Mounts", [])}
        if not mounted <= declared:
            problems.append(f"undeclared mounts {sorted(mounted - declared)}")
        changes = podman.run(["podman", "diff", "--format", "json", name], check=False).stdout
        changed = json.loads(changes or "{}")
        written = sorted(
            path
            for kind in ("changed", "added")
            for path in changed.get(kind) or []
            if not _podman_managed(path, declared)
        )
        if written:
            problems.append(f"wrote outside its volumes: {written[:5]}")
        detail = f"uid {user.split(':')[0]}, read-only root, mounts {sorted(mounted)}"
        return (not problems, "; ".join(problems) or detail)

    def _check_graceful_stop(self, key: str) -> None:
        """Stop every Deployment with SIGTERM while events arrive, start them again, and count:
        each event the API accepted must reach audit and the webhook exactly once."""
        import httpx

        accepted: list[str] = []
        stop_sending = threading.Event()

        def send(url: str) -> None:
            with httpx.Client(base_url=url, timeout=5) as client:
                for i in range(self.options.events_under_stop):
                    if stop_sending.is_set():
                        return
                    event_id = self._post_event(client, key, f"under stop #{i}")
                    if event_id:
                        accepted.append(event_id)
                    time.sleep(0.05)

        sender = threading.Thread(target=send, args=(self._api_url(),), daemon=True)
        sender.start()
        time.sleep(2.0)  # let events flow through every app before the stop
        deployments = self._deployments()
        with ThreadPoolExecutor(max_workers=len(deployments)) as pool:
            outcomes = list(pool.map(self._stop_gracefully, deployments))
        stop_sending.set()
        sender.join(timeout=30)
        for pod, (seconds, grace, code) in zip(deployments, outcomes, strict=True):
            self.report.check(
                f"SIGTERM {pod.workload.name}",
                seconds < grace and code in (0, 143),
                f"stopped in {seconds:.1f} s (grace {grace} s), exit {code}",
            )
        for pod in deployments:
            self._start_deployment(pod.workload)
        expected = {*accepted, self.first_event}
        audited = self._wait(lambda: self._audited(expected) == expected)
        missing_audit = len(expected - self._audited(expected))
        self.report.check(
            "no loss: accepted events in audit after the restart",
            audited,
            f"{len(expected) - missing_audit} of {len(expected)} rows",
        )
        self._wait(lambda: all(self._deliveries()[e] >= 1 for e in expected))
        counts = self._deliveries()
        once = sum(1 for e in expected if counts[e] == 1)
        self.report.check(
            "no loss: accepted events delivered exactly once",
            once == len(expected),
            f"{once} of {len(expected)} delivered once; "
            f"{sum(1 for e in expected if counts[e] > 1)} more than once",
        )

    def _stop_gracefully(self, pod: PlayedPod) -> tuple[float, int, int]:
        grace = int(pod.workload.pod["spec"].get("terminationGracePeriodSeconds", 30))
        container = pod.container(pod.workload.containers[0])
        begun = time.monotonic()
        # The app container alone: its pod's network stays up while it drains, as in Kubernetes
        # (`podman pod stop` would take the network down with it).
        podman.run(["podman", "stop", "--time", str(grace), container], check=False)
        seconds = time.monotonic() - begun
        code = podman.run(
            ["podman", "inspect", "--format", "{{.State.ExitCode}}", container], check=False
        ).stdout.strip()
        return seconds, grace, int(code) if code.lstrip("-").isdigit() else -1
