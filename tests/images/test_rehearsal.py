"""The deploy rehearsal, run as a user runs it: `platform rehearse --env dev`, then its report.

dev is the EKS shape (MSK, RDS, Pod Identity); the rehearsal plays its committed manifests in
real containers from the real images (see platform_cli/rehearsal/run.py for what stands in for
the cluster and AWS, and why).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra.contracts import TOPICS
from infra.gitops.catalog import load_images
from platform_cli import podman
from platform_cli.rehearsal.plan import load_env
from platform_cli.rehearsal.run import GITOPS_ROOT

REPO = Path(__file__).resolve().parents[2]
ENV = "dev"


@pytest.fixture(scope="module")
def report(built_images: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("rehearsal") / "report.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "platform_cli.main",
            "rehearse",
            "--env",
            ENV,
            "--report-json",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    print(result.stdout[-6000:])  # the progress and report, shown when a test here fails
    assert out.exists(), result.stdout[-3000:] + result.stderr[-3000:]
    data: dict = json.loads(out.read_text())
    data["exit_code"] = result.returncode
    return data


def _check(report: dict, name: str) -> dict:
    matches = [c for c in report["checks"] if c["name"] == name]
    assert matches, f"no check {name!r}; checks: {[c['name'] for c in report['checks']]}"
    return matches[-1]


def test_the_rehearsal_passes(report: dict) -> None:
    failed = [f"{c['name']}: {c['detail']}" for c in report["checks"] if not c["ok"]]
    assert not failed, "\n".join(failed)
    assert report["ok"] and report["exit_code"] == 0


def test_every_job_exits_zero_and_every_deployment_gets_ready(report: dict) -> None:
    plan = load_env(GITOPS_ROOT, ENV)
    for workload in plan.workloads:
        if workload.kind in ("Job", "CronJob"):
            assert _check(report, f"Job {workload.name}")["detail"].startswith("exit 0")
        else:
            check = _check(report, f"Deployment {workload.name} ready")
            assert check["ok"], check["detail"]


def test_every_rendered_command_ran_in_its_image(report: dict) -> None:
    ran = {(app, command) for app, command, _ in report["commands"]}
    plan = load_env(GITOPS_ROOT, ENV)
    for workload in plan.workloads:
        for container in workload.containers:
            app = container["image"].rsplit("/", 1)[-1].split(":")[0]
            assert (app, " ".join(container["command"])) in ran, workload.source


def test_only_image_references_were_rewritten(report: dict) -> None:
    rendered = {load_images().image(ENV, app) for app in load_images().tags[ENV]}
    originals = {original for original, _ in report["rewrites"]}
    assert originals <= rendered and originals
    assert all(local.startswith("localhost/event-platform/") for _, local in report["rewrites"])
    # The stand-in for Pod Identity adds only credentials and the emulator's endpoint.
    assert set(report["injected_env"]) == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ENDPOINT_URL",
    }


def test_topics_match_the_contracts(report: dict) -> None:
    for topic in TOPICS:
        assert _check(report, f"topic {topic.name}")["ok"]


def test_one_event_reaches_audit_and_the_webhook(report: dict) -> None:
    assert _check(report, "event -> audit row (PostgreSQL)")["ok"]
    delivered = _check(report, "event -> notifier -> webhook sink")
    assert delivered["ok"] and delivered["detail"].startswith("1 delivery")
    assert _check(report, "audit archive -> S3 object")["ok"]


def test_a_task_due_in_seconds_fires_a_reminder_the_webhook_receives(report: dict) -> None:
    assert _check(report, "POST /api/v1/tasks (due in seconds)")["ok"]
    reminded = _check(report, "task due -> reminders -> notifier -> webhook sink")
    assert reminded["ok"] and reminded["detail"].startswith("1 reminder delivered")


def test_sigterm_within_grace_and_no_loss(report: dict) -> None:
    for name in ("events-api", "notifier", "audit", "reminders"):
        assert _check(report, f"SIGTERM {name}")["ok"]
    audited = _check(report, "no loss: accepted events in audit after the restart")
    delivered = _check(report, "no loss: accepted events delivered exactly once")
    assert audited["ok"] and delivered["ok"], (audited, delivered)
    accepted = int(delivered["detail"].split(" of ")[1].split()[0])
    assert accepted > 5  # events really flowed while the apps were stopped


def test_every_container_was_confined(report: dict) -> None:
    confined = [c for c in report["checks"] if c["name"].startswith("confined ")]
    plan = load_env(GITOPS_ROOT, ENV)
    assert len(confined) >= len(plan.workloads)
    assert all(c["ok"] for c in confined), [c for c in confined if not c["ok"]]


def test_nothing_is_left_behind(report: dict) -> None:
    assert report["leftovers"] == []
    run_id = report["run_id"]
    containers = podman.run(["podman", "ps", "--all", "--format", "{{.Names}}"]).stdout.split()
    assert not [c for c in containers if run_id in c]
    networks = podman.run(["podman", "network", "ls", "--format", "{{.Name}}"]).stdout.split()
    assert f"platform-rehearsal-{run_id}" not in networks
    secrets = podman.run(["podman", "secret", "ls", "--format", "{{.Name}}"]).stdout.split()
    assert "platform-db" not in secrets and "notifier-channels" not in secrets


def test_the_notifier_is_configured_only_by_rendered_config_and_its_secret() -> None:
    """What the notifier's pod gets: the rendered config map (routes) and a Secret named as the
    deployed ExternalSecret's target, with the keys it lists."""
    config = yaml.safe_load(
        (GITOPS_ROOT / ENV / "platform-config" / "config-map-notifier-config.yaml").read_text()
    )
    routes = json.loads(config["data"]["NOTIFIER_ROUTES"])
    external = yaml.safe_load(
        (
            GITOPS_ROOT / ENV / "platform-config" / "external-secret-notifier-channels.yaml"
        ).read_text()
    )
    keys = {item["secretKey"] for item in external["spec"]["data"]}
    assert routes == [{"channels": ["webhook"]}]
    assert keys == {"NOTIFIER_WEBHOOK_URL", "NOTIFIER_WEBHOOK_SIGNING_SECRET"}
    deployment = yaml.safe_load(
        (GITOPS_ROOT / ENV / "notifier" / "deployment-notifier.yaml").read_text()
    )
    refs = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert {"secretRef": {"name": external["spec"]["target"]["name"]}} in refs


def test_the_console_ships_in_the_events_api_image(report: dict) -> None:
    """`make test` builds the console (make web) before the images, so the image serves it."""
    check = _check(report, "web console served with its CSP")
    assert check["ok"], check["detail"]
