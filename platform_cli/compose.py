"""compose.yaml, rendered from the catalog and the contracts (like gitops/): never edited by hand.

`platform gitops render` writes it beside gitops/, and `--check` fails when the committed file
differs. What it holds is derived, so it cannot drift from the deployed envs:

- the order a cluster follows: the topics Job (`python -m apps.topics_job` with the rendered
  `TOPICS_SPEC`: the topics' one owner), each app's migrations (its `migrate` command), then
  the workloads, each with the catalog's command (`AppSpec.command`) in its `apps/Dockerfile`
  image;
- every app's environment is the facts channel (`infra.contracts.app_environment`, through
  `platform_cli.local_facts`) pointing at the compose services, with the one shared database;
- ports, topics and health paths come from the contracts and the catalog.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from infra.contracts import APPS, KAFKA_PLAINTEXT_PORT, POSTGRES_PORT, AppContract
from infra.gitops.catalog import APP_SPECS, TOPICS_JOB_COMMAND, AppSpec
from infra.gitops.manifests.jobs import TOPICS_JOB_IMAGE_APP, TOPICS_SPEC_ENV, topics_spec_json
from platform_cli.local_facts import LOCAL_STACK, Database, local_app_environment

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO_ROOT / "compose.yaml"

KAFKA_IMAGE = "apache/kafka:3.9.1"
LOCALSTACK_IMAGE = "localstack/localstack:4.12.0"
"""The same image as localstack/docker-compose.yml (tests/delivery checks both)."""
PYTHON_IMAGE = "python:3.11.14-slim-bookworm"
LOCALSTACK_PORT = 4566
WEBHOOK_SINK_PORT = 9000
KAFKA_HOST_PORT = 29092
"""The broker's listener for clients on the host (the apps use the in-network one)."""
ENVIRONMENT = "compose"
ARCHIVE_BUCKET = "local-audit-archive"
"""Created by LocalStack's init hook (localstack/init/ready.d)."""
TOPICS_SERVICE = "kafka-topics"

HEADER = """\
# RENDERED by `platform gitops render` from platform_cli/compose.py: do not edit by hand
# (`platform gitops render --check` fails when this file is stale).
#
# The local system from real images, for people who prefer containers to `make local`:
# Apache Kafka (KRaft, no ZooKeeper), PostgreSQL, LocalStack and the bundled apps built from
# apps/Dockerfile. In a cluster's order: the topics Job, each app's migrations, then the apps,
# each with the catalog's command and the facts channel's variables (infra/contracts.py).
#
#   docker compose -p event-platform up -d --build
#   docker compose -p event-platform ps          # every service "healthy" (one-shots: exited 0)
#   curl -s http://127.0.0.1:8000/docs          # events-api
#   docker compose -p event-platform down -v
#
# No top-level `name:`: the Compose schema the tests validate against predates it; use `-p`.
"""


def _database() -> Database:
    from infra.config import load_stack_file

    name = load_stack_file(LOCAL_STACK).database.database_name
    # Not a credential: the throwaway server below is created with it.
    return Database("postgres", POSTGRES_PORT, name, "platform", "platform-local-only")


def _postgres_version() -> str:
    from infra.config import load_stack_file

    return load_stack_file(LOCAL_STACK).database.engine_version


def facts_environment() -> dict[str, str]:
    """The facts channel every compose app gets (one ConfigMap's worth, as in a cluster)."""
    return {
        **local_app_environment(
            kafka_bootstrap=f"kafka:{KAFKA_PLAINTEXT_PORT}",
            database=_database(),
            archive_bucket=ARCHIVE_BUCKET,
            environment=ENVIRONMENT,
        ),
        "DB_SSLMODE": "disable",
        "LOG_LEVEL": "INFO",
    }


def _spec(contract: AppContract) -> AppSpec:
    return next(spec for spec in APP_SPECS if spec.name == contract.name)


def _build(contract: AppContract) -> dict[str, Any]:
    return {
        "context": ".",
        "dockerfile": "apps/Dockerfile",
        "args": {"APP": contract.package, "PORT": str(contract.port)},
    }


def _healthy(*services: str) -> dict[str, dict[str, str]]:
    return {name: {"condition": "service_healthy"} for name in services}


def _done(*services: str) -> dict[str, dict[str, str]]:
    return {name: {"condition": "service_completed_successfully"} for name in services}


def _http_check(url: str, interval: str = "10s", retries: int = 12) -> dict[str, Any]:
    probe = f"import urllib.request; urllib.request.urlopen('{url}', timeout=2)"
    return {
        "test": ["CMD", "python", "-c", probe],
        "interval": interval,
        "timeout": "3s",
        "retries": retries,
    }


def _kafka() -> dict[str, Any]:
    port = KAFKA_PLAINTEXT_PORT
    return {
        "image": KAFKA_IMAGE,
        "environment": {
            "KAFKA_NODE_ID": 1,
            "KAFKA_PROCESS_ROLES": "broker,controller",
            "KAFKA_LISTENERS": f"PLAINTEXT://:{port},CONTROLLER://:9093,HOST://:{KAFKA_HOST_PORT}",
            "KAFKA_ADVERTISED_LISTENERS": (
                f"PLAINTEXT://kafka:{port},HOST://127.0.0.1:{KAFKA_HOST_PORT}"
            ),
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": (
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,HOST:PLAINTEXT"
            ),
            "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
            "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
            "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@kafka:9093",
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": 1,
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": 1,
            "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": 1,
            # As on MSK: topics exist because the topics Job creates them.
            "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        },
        "ports": [f"127.0.0.1:{KAFKA_HOST_PORT}:{KAFKA_HOST_PORT}"],
        "healthcheck": {
            "test": [
                "CMD-SHELL",
                "/opt/kafka/bin/kafka-broker-api-versions.sh "
                f"--bootstrap-server localhost:{port} >/dev/null 2>&1",
            ],
            "interval": "5s",
            "timeout": "10s",
            "retries": 30,
            "start_period": "15s",
        },
    }


def _topics_job() -> dict[str, Any]:
    """The PreSync topics Job's command and spec, in the image the Job uses."""
    return {
        "build": _build(next(app for app in APPS if app.name == TOPICS_JOB_IMAGE_APP)),
        "entrypoint": list(TOPICS_JOB_COMMAND),
        "environment": {
            **facts_environment(),
            TOPICS_SPEC_ENV: topics_spec_json(replication_factor=1, min_insync_replicas=1),
        },
        "depends_on": _healthy("kafka"),
        "restart": "no",
    }


def _postgres() -> dict[str, Any]:
    database = _database()
    return {
        "image": f"postgres:{_postgres_version()}-bookworm",
        "environment": {
            "POSTGRES_USER": database.user,
            "POSTGRES_PASSWORD": database.password,
            "POSTGRES_DB": database.name,
        },
        "ports": [f"127.0.0.1:{POSTGRES_PORT}:{POSTGRES_PORT}"],
        "volumes": ["pgdata:/var/lib/postgresql/data"],
        "healthcheck": {
            "test": ["CMD-SHELL", f"pg_isready -U {database.user} -d {database.name}"],
            "interval": "5s",
            "timeout": "3s",
            "retries": 30,
        },
    }


def _localstack() -> dict[str, Any]:
    ready = f"http://127.0.0.1:{LOCALSTACK_PORT}/_localstack/init/ready"
    return {
        "image": LOCALSTACK_IMAGE,
        "environment": {
            "SERVICES": "s3,kms,sts,iam,secretsmanager,logs",
            "AWS_DEFAULT_REGION": facts_environment()["AWS_REGION"],
            "AUDIT_ARCHIVE_BUCKET": ARCHIVE_BUCKET,
        },
        "ports": [f"127.0.0.1:{LOCALSTACK_PORT}:{LOCALSTACK_PORT}"],
        "volumes": ["./localstack/init/ready.d:/etc/localstack/init/ready.d:ro"],
        "healthcheck": {
            "test": ["CMD-SHELL", f"curl -fsS {ready} | grep -q '\"completed\": *true'"],
            "interval": "5s",
            "timeout": "3s",
            "retries": 30,
            "start_period": "10s",
        },
    }


_SINK = f"""\
import http.server
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        print(body.decode(errors="replace"), flush=True)
        self.send_response(204); self.end_headers()
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
http.server.ThreadingHTTPServer(("0.0.0.0", {WEBHOOK_SINK_PORT}), Sink).serve_forever()
"""


def _webhook_sink() -> dict[str, Any]:
    """A receiver for the notifier's webhook channel (prints what it receives)."""
    return {
        "image": PYTHON_IMAGE,
        "command": ["python", "-c", _SINK],
        "healthcheck": _http_check(f"http://127.0.0.1:{WEBHOOK_SINK_PORT}/", "5s", 10),
    }


def _app_environment(contract: AppContract) -> dict[str, str]:
    env = facts_environment()
    port = str(contract.port)
    if contract.kind == "producer":
        env["EVENTS_API_PORT"] = port
    else:
        env["PORT"] = port
    if contract.name == "notifier":
        env["NOTIFIER_WEBHOOK_URL"] = f"http://webhook-sink:{WEBHOOK_SINK_PORT}/hook"
    if contract.uses_archive_bucket:
        env["AWS_ENDPOINT_URL"] = f"http://localstack:{LOCALSTACK_PORT}"
        # LocalStack accepts any key; these are not credentials.
        env["AWS_ACCESS_KEY_ID"] = "test"
        env["AWS_SECRET_ACCESS_KEY"] = "test"
    return env


def _migrate(contract: AppContract) -> dict[str, Any]:
    """The app's PreSync migration Job: its `migrate` command in its image."""
    return {
        "build": _build(contract),
        "entrypoint": list(_spec(contract).command("migrate")),
        "environment": _app_environment(contract),
        "depends_on": _healthy("postgres"),
        "restart": "no",
    }


def _workload(contract: AppContract) -> dict[str, Any]:
    spec = _spec(contract)
    depends = {**_done(TOPICS_SERVICE, f"{contract.name}-migrate"), **_healthy("postgres")}
    if contract.uses_archive_bucket:
        depends.update(_healthy("localstack"))
    if contract.name == "notifier":
        depends.update(_healthy("webhook-sink"))
    check = _http_check(f"http://127.0.0.1:{contract.port}{spec.probes.liveness_path}")
    return {
        "build": _build(contract),
        "entrypoint": list(spec.command()),
        "environment": _app_environment(contract),
        "ports": [f"127.0.0.1:{contract.port}:{contract.port}"],
        "depends_on": depends,
        "healthcheck": {**check, "start_period": "20s"},
    }


def compose_document() -> dict[str, Any]:
    services: dict[str, Any] = {
        "kafka": _kafka(),
        TOPICS_SERVICE: _topics_job(),
        "postgres": _postgres(),
        "localstack": _localstack(),
        "webhook-sink": _webhook_sink(),
    }
    for contract in APPS:
        services[f"{contract.name}-migrate"] = _migrate(contract)
    for contract in APPS:
        services[contract.name] = _workload(contract)
    return {"services": services, "volumes": {"pgdata": {}}}


class _Dumper(yaml.SafeDumper):
    """Block style, multi-line strings as literal blocks, no anchors (each service stands alone)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.SequenceNode:
    # Commands and port lists read best on one line: `[python, -m, apps.topics_job]`.
    inline = all(isinstance(v, str) and "\n" not in v for v in value) and len(str(value)) < 90
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=inline)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(list, _list)


def render_compose() -> str:
    """The full text of compose.yaml."""
    body = yaml.dump(
        compose_document(), Dumper=_Dumper, sort_keys=False, width=100, default_flow_style=False
    )
    return HEADER + "\n" + body
