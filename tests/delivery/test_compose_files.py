"""The compose files (no Docker here): valid against the Compose Specification schema, and
complete: every service the apps need exists, has a health check, and is waited for.
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

from infra.contracts import APPS, TOPICS, Fact

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "tests/delivery/data/compose-spec.schema.json").read_text())
FULL = REPO / "compose.yaml"
LOCALSTACK_ONLY = REPO / "localstack" / "docker-compose.yml"

INFRA_SERVICES = {"kafka", "postgres", "localstack", "webhook-sink"}
ONE_SHOT = {"kafka-topics"}


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

    depends = service["depends_on"]
    assert depends["kafka-topics"] == {"condition": "service_completed_successfully"}
    assert depends["postgres"] == {"condition": "service_healthy"}
    if app.uses_archive_bucket:
        assert depends["localstack"] == {"condition": "service_healthy"}
        assert service["environment"]["AWS_ENDPOINT_URL"] == "http://localstack:4566"
    health = " ".join(service["healthcheck"]["test"])
    assert f"127.0.0.1:{app.port}/healthz" in health
    assert service["ports"] == [f"127.0.0.1:{app.port}:{app.port}"]


@pytest.mark.parametrize("app", APPS, ids=lambda a: a.name)
def test_apps_get_every_fact_of_their_contract(app: Any) -> None:
    env = _load(FULL)["services"][app.name]["environment"]
    # No tracing backend in compose: the apps run without an OTLP endpoint there.
    wanted = {fact.value for fact in app.facts} - {Fact.OTEL_EXPORTER_OTLP_ENDPOINT.value}
    assert wanted - set(env) == set()
    assert env["KAFKA_AUTH_MODE"] == "plaintext"


def test_topics_job_creates_exactly_the_contract_topics() -> None:
    command = "\n".join(_load(FULL)["services"]["kafka-topics"]["command"])
    specs = re.search(r"for spec in ([^;]+);", command)
    assert specs is not None
    declared = sorted(tuple(s.split(":")) for s in specs.group(1).split())
    assert declared == sorted((t.name, str(t.partitions), str(t.retention_ms)) for t in TOPICS)


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
def test_app_commands_are_valid_invocations_of_the_app_cli(app: Any) -> None:
    """The compose `command` (appended to the image's `python -m apps` entrypoint, which runs
    the CLI of the image's app; the real images are run by tests/images) names a real
    sub-command with real options."""
    from typer.main import get_command

    package = app.package
    cli: Any = get_command(importlib.import_module(f"apps.{package}.cli").app)
    sub, *args = _load(FULL)["services"][app.name]["command"]
    parent = cli.make_context(app.name, [sub, *args])
    command = cli.get_command(parent, sub)
    assert command is not None, f"{app.name}: no sub-command {sub!r}"
    command.make_context(sub, list(args), parent=parent)  # raises on an unknown option
    with pytest.raises(Exception, match="No such option"):
        command.make_context(sub, [*args, "--no-such-option"], parent=parent)
