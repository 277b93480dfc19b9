"""The compose files (no Docker here): valid against the Compose Specification schema, and
complete: every service the apps need exists, has a health check, and is waited for.

compose.yaml is rendered from the catalog and the contracts (platform_cli/compose.py) and checked
by `platform gitops render --check`; these tests hold it to the same sources: the topics Job's
spec, the catalog's commands and probes, the facts channel.
"""

from __future__ import annotations

import copy
import importlib
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from apps.topics_job.spec import parse
from infra.contracts import APPS, TOPICS, DbSecretKey, Fact
from infra.gitops.catalog import APP_SPECS, TOPICS_JOB_COMMAND

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "tests/delivery/data/compose-spec.schema.json").read_text())
FULL = REPO / "compose.yaml"
LOCALSTACK_ONLY = REPO / "localstack" / "docker-compose.yml"

INFRA_SERVICES = {"kafka", "postgres", "localstack", "webhook-sink"}
ONE_SHOT = {"kafka-topics"} | {f"{app.name}-migrate" for app in APPS}
SPECS = {spec.name: spec for spec in APP_SPECS}


def _load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    return document


def _errors(document: dict[str, Any]) -> list[str]:
    validator_class = jsonschema.validators.validator_for(SCHEMA)
    validator = validator_class(SCHEMA)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


@pytest.mark.parametrize("path", [FULL, LOCALSTACK_ONLY], ids=lambda p: p.name)
def test_compose_file_matches_the_compose_specification(path: Path) -> None:
    assert _errors(_load(path)) == []


def test_the_schema_catches_a_misspelled_key() -> None:
    broken = copy.deepcopy(_load(FULL))
    broken["services"]["kafka"]["healthcheck"]["intervall"] = "5s"
    broken["services"]["audit"]["depends_on"]["postgres"]["condition"] = "healthy"
    errors = _errors(broken)
    assert any("intervall" in e for e in errors), errors
    assert any("depends_on" in e for e in errors), errors


def test_every_part_of_the_system_is_present() -> None:
    services = set(_load(FULL)["services"])
    assert services == INFRA_SERVICES | ONE_SHOT | {app.name for app in APPS}


@pytest.mark.parametrize("path", [FULL, LOCALSTACK_ONLY], ids=lambda p: p.name)
def test_every_long_running_service_has_a_health_check(path: Path) -> None:
    for name, service in _load(path)["services"].items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", name
            continue
        check = service.get("healthcheck", {})
        assert check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), name
        assert check.get("retries", 0) >= 3, name


@pytest.mark.parametrize("app", APPS, ids=lambda a: a.name)
def test_apps_are_built_from_their_dockerfiles_and_wait_for_what_they_need(app: Any) -> None:
    service = _load(FULL)["services"][app.name]
    assert service["build"] == {
        "context": ".",
        "dockerfile": "apps/Dockerfile",
        "args": {"APP": app.package, "PORT": str(app.port)},
    }

    # As in a cluster: the topics Job and the app's migrations finish before the app starts.
    depends = service["depends_on"]
    assert depends["kafka-topics"] == {"condition": "service_completed_successfully"}
    assert depends[f"{app.name}-migrate"] == {"condition": "service_completed_successfully"}
    assert depends["postgres"] == {"condition": "service_healthy"}
    if app.uses_archive_bucket:
        assert depends["localstack"] == {"condition": "service_healthy"}
        assert service["environment"]["AWS_ENDPOINT_URL"] == "http://localstack:4566"
    health = " ".join(service["healthcheck"]["test"])
    assert f"127.0.0.1:{app.port}{SPECS[app.name].probes.liveness_path}" in health
    assert service["ports"] == [f"127.0.0.1:{app.port}:{app.port}"]
    migrate = _load(FULL)["services"][f"{app.name}-migrate"]
    assert migrate["build"] == service["build"]
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}


@pytest.mark.parametrize("app", APPS, ids=lambda a: a.name)
def test_apps_get_the_whole_facts_channel_and_can_log_in(app: Any) -> None:
    services = _load(FULL)["services"]
    env = services[app.name]["environment"]
    channel = {fact.value for fact in Fact} | {key.value for key in DbSecretKey}
    assert channel - set(env) == set()
    assert "DATABASE_URL" not in env
    assert env["KAFKA_AUTH_MODE"] == "plaintext"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    # No tracing backend in compose: an empty endpoint turns the exporter off.
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == ""
    # The one shared database, with the login the postgres service is created with.
    server = services["postgres"]["environment"]
    assert env["DB_HOST"] == "postgres"
    assert (env["DB_NAME"], env["DB_USER"], env["DB_PASSWORD"]) == (
        server["POSTGRES_DB"],
        server["POSTGRES_USER"],
        server["POSTGRES_PASSWORD"],
    )
    assert services[f"{app.name}-migrate"]["environment"] == env


def test_topics_come_from_the_topics_job_with_the_rendered_spec() -> None:
    service = _load(FULL)["services"]["kafka-topics"]
    assert service["entrypoint"] == list(TOPICS_JOB_COMMAND)
    assert service["restart"] == "no"
    spec = parse(service["environment"]["TOPICS_SPEC"])
    assert sorted((t.name, t.partitions, t.retention_ms) for t in spec.topics) == sorted(
        (t.name, t.partitions, t.retention_ms) for t in TOPICS
    )
    assert (spec.replication_factor, spec.min_insync_replicas) == (1, 1)  # one broker
    # The same topics as the Job a cluster runs (its replication aside).
    job = _load(REPO / "gitops/localstack/kafka-topics/job-kafka-topics.yaml")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    cluster = parse(next(e["value"] for e in container["env"] if e["name"] == "TOPICS_SPEC"))
    assert cluster.topics == spec.topics
    assert container["command"] == service["entrypoint"]


def test_kafka_runs_in_kraft_mode_without_auto_created_topics() -> None:
    env = _load(FULL)["services"]["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "ZOOKEEPER" not in " ".join(env)
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_both_files_pin_the_same_localstack_image_and_mount_existing_init_hooks() -> None:
    full = _load(FULL)["services"]["localstack"]
    alone = _load(LOCALSTACK_ONLY)["services"]["localstack"]
    assert full["image"] == alone["image"]
    assert re.fullmatch(r"localstack/localstack:\d+\.\d+\.\d+", full["image"])
    for path, service in ((FULL, full), (LOCALSTACK_ONLY, alone)):
        host_dir = service["volumes"][0].split(":")[0]
        hooks = (path.parent / host_dir).resolve()
        assert sorted(p.name for p in hooks.glob("*.sh")), f"no init hooks in {hooks}"


def test_every_published_port_is_bound_to_loopback() -> None:
    for path in (FULL, LOCALSTACK_ONLY):
        for name, service in _load(path)["services"].items():
            for port in service.get("ports", []):
                assert str(port).startswith("127.0.0.1:"), f"{path.name}: {name} publishes {port}"


@pytest.mark.parametrize("app", APPS, ids=lambda a: a.name)
def test_app_commands_are_the_catalogs_and_valid_invocations_of_the_app_cli(app: Any) -> None:
    """The compose entrypoints are the catalog's commands (what the rendered workloads and
    migration Jobs run; tests/images runs them in the real images), and each names a real
    sub-command with real options."""
    from typer.main import get_command

    services = _load(FULL)["services"]
    assert services[app.name]["entrypoint"] == list(SPECS[app.name].command())
    assert services[f"{app.name}-migrate"]["entrypoint"] == list(SPECS[app.name].command("migrate"))
    package = app.package
    cli: Any = get_command(importlib.import_module(f"apps.{package}.cli").app)
    python, flag, module, sub, *args = services[app.name]["entrypoint"]
    assert (python, flag, module) == ("python", "-m", f"apps.{package}")
    parent = cli.make_context(app.name, [sub, *args])
    command = cli.get_command(parent, sub)
    assert command is not None, f"{app.name}: no sub-command {sub!r}"
    command.make_context(sub, list(args), parent=parent)  # raises on an unknown option
    with pytest.raises(Exception, match="No such option"):
        command.make_context(sub, [*args, "--no-such-option"], parent=parent)


def test_the_committed_file_is_what_the_renderer_writes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from platform_cli.compose import render_compose
    from platform_cli.main import app

    assert FULL.read_text() == render_compose()
    compose, trees = tmp_path / "compose.yaml", ["--gitops-dir", str(tmp_path / "gitops")]
    compose.write_text(FULL.read_text().replace("apache/kafka:", "apache/kafka-edited:"))
    fixed = CliRunner().invoke(app, ["gitops", "render", *trees, "--compose-file", str(compose)])
    assert fixed.exit_code == 0, fixed.output
    assert compose.read_text() == FULL.read_text()

    compose.write_text(FULL.read_text() + "# edited by hand\n")
    check = ["gitops", "render", "--check", *trees, "--compose-file", str(compose)]
    result = CliRunner().invoke(app, check)
    assert result.exit_code == 1
    assert "stale:   compose.yaml" in result.output
