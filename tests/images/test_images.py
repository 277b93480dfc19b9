"""The built images, run for real: what they contain, how they start, what they refuse.

Every container here runs as Kubernetes runs ours (user 10001, read-only root, no network).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import yaml
from typer.main import get_command

from infra.config import load_stack_file
from infra.contracts import APPS, ENVIRONMENTS, app_contract
from platform_cli import images, podman
from platform_cli.rehearsal.run import GITOPS_ROOT
from tests.images.conftest import run_in

APP_NAMES = [app.name for app in APPS]


def _cli_verbs(package: str) -> set[str]:
    import importlib

    cli = get_command(importlib.import_module(f"apps.{package}.cli").app)
    return set(cli.commands)  # type: ignore[attr-defined]


def test_every_rendered_command_runs_in_the_image_it_names(built_images: dict[str, str]) -> None:
    commands = images.rendered_commands(GITOPS_ROOT, ENVIRONMENTS)
    checks = images.check_commands(built_images, commands)
    failed = [
        f"{c.app}: {' '.join(c.command)} ({c.sources[0]}): {c.output}" for c in checks if not c.ok
    ]
    assert not failed, "\n".join(failed)
    # Every app's workload, migration and the topics job are among them, in every env.
    ran = {(c.app, c.command[2]) for c in checks}
    for app in APPS:
        assert (app.name, f"apps.{app.package}") in ran
    assert ("events-api", "apps.topics_job") in ran
    assert ("events-api", "apps.db_roles") in ran
    rds_envs = [env for env in ENVIRONMENTS if load_stack_file(env).database.mode == "rds"]
    for check in checks:
        # The db-roles Job exists where each app has its own login (RDS); the rest everywhere.
        expected = rds_envs if check.command[2] == "apps.db_roles" else ENVIRONMENTS
        assert len(check.sources) == len(expected), check.command


def _break(root: Path, path: str, command: list[str]) -> None:
    file = root / path
    manifest = yaml.safe_load(file.read_text())
    spec = manifest["spec"]["template"]["spec"]
    spec["containers"][0]["command"] = command
    file.write_text(yaml.safe_dump(manifest))


def test_a_command_its_image_lacks_is_caught(built_images: dict[str, str], tmp_path: Path) -> None:
    """Last round's two bugs, put back on purpose in a copy of gitops/dev."""
    shutil.copytree(GITOPS_ROOT / "dev", tmp_path / "dev")
    # A console script the image does not install, and a module no image ships.
    _break(tmp_path, "dev/events-api/deployment-events-api.yaml", ["events-api", "serve"])
    _break(tmp_path, "dev/kafka-topics/job-kafka-topics.yaml", ["python", "-m", "apps.topics"])
    checks = images.check_commands(built_images, images.rendered_commands(tmp_path, ["dev"]))
    failed = {c.sources[0]: c.output for c in checks if not c.ok}
    assert set(failed) == {
        "dev/events-api/deployment-events-api.yaml",
        "dev/kafka-topics/job-kafka-topics.yaml",
    }
    assert "executable file not found" in failed["dev/events-api/deployment-events-api.yaml"]
    assert "No module named apps.topics" in failed["dev/kafka-topics/job-kafka-topics.yaml"]


@pytest.mark.parametrize("app", APP_NAMES)
def test_image_metadata_is_hardened(built_images: dict[str, str], app: str) -> None:
    contract = app_contract(app)
    inspected = json.loads(podman.run(["podman", "image", "inspect", built_images[app]]).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["python", "-m", "apps"]
    assert f"{contract.port}/tcp" in config["ExposedPorts"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PLATFORM_APP"] == contract.package
    assert env["PORT"] == str(contract.port)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    health = inspected.get("Healthcheck") or config.get("Healthcheck") or {}
    assert health["Test"] == ["CMD", "python", "-m", "apps.common.healthcheck"]


@pytest.mark.parametrize("app", APP_NAMES)
def test_default_entrypoint_is_the_apps_cli(built_images: dict[str, str], app: str) -> None:
    result = run_in(built_images[app], "--help")
    assert result.returncode == 0, result.stderr
    for verb in _cli_verbs(app_contract(app).package):
        assert verb in result.stdout


def _python_in(image: str, code: str) -> str:
    """What `code` prints when run by the image's python, confined as pods run (`run_in`)."""
    result = run_in(image, "-c", code, entrypoint="python")
    assert result.returncode == 0, result.stderr[-2000:]
    return str(result.stdout)


@pytest.mark.parametrize("app", APP_NAMES)
def test_no_installer_or_compiler_ships(built_images: dict[str, str], app: str) -> None:
    probe = (
        "import importlib.util, shutil, json; "
        "print(json.dumps([m for m in ('pip', 'setuptools') if importlib.util.find_spec(m)]"
        " + [b for b in ('gcc', 'cc', 'g++', 'make') if shutil.which(b)]))"
    )
    output = _python_in(built_images[app], probe)
    assert json.loads(output) == []


@pytest.mark.parametrize("app", APP_NAMES)
def test_every_module_the_image_ships_imports(built_images: dict[str, str], app: str) -> None:
    """The requirements cover every import: each module of the app, apps.common, the topics job
    and the db-roles job is imported inside the image."""
    package = app_contract(app).package
    probe = (
        "import importlib, pkgutil; import apps; names = []\n"
        f"for pkg in ('apps.{package}', 'apps.common', 'apps.topics_job', 'apps.db_roles'):\n"
        "    mod = importlib.import_module(pkg)\n"
        "    names += [m.name for m in pkgutil.walk_packages(mod.__path__, pkg + '.')]\n"
        "for name in names:\n"
        "    if not name.endswith('__main__'): importlib.import_module(name)\n"
        "print(len(names))"
    )
    output = _python_in(built_images[app], probe)
    assert int(output.strip()) >= 5


@pytest.mark.parametrize("app", APP_NAMES)
def test_libpq_is_pointed_at_the_shipped_database_ca_folder(
    built_images: dict[str, str], app: str
) -> None:
    """PGSSLROOTCERT names a file in /etc/ssl/certs/rds/, the folder the image ships (the RDS
    bundle itself is placed there by the release build, apps/certs/README.md)."""
    probe = (
        "import os, pathlib; root = os.environ['PGSSLROOTCERT']\n"
        "folder = pathlib.Path(root).parent\n"
        "print(root, folder.is_dir(), sorted(p.name for p in folder.iterdir()))"
    )
    output = _python_in(built_images[app], probe)
    root, is_dir, *_ = output.split(" ", 2)
    assert root == "/etc/ssl/certs/rds/global-bundle.pem"
    assert is_dir == "True"


def test_healthcheck_and_a_notifier_without_channels(built_images: dict[str, str]) -> None:
    """The image's HEALTHCHECK passes on a live app; a notifier with no channel configured says
    so in its log and is not ready (it does not consume), instead of dropping every event."""
    name = f"notifier-no-channels-{int(time.time())}"
    podman.run(
        [
            "podman",
            "run",
            "--detach",
            "--name",
            name,
            "--read-only",
            "--tmpfs",
            "/tmp",
            built_images["notifier"],
            "run",
        ]
    )
    try:
        readyz = (
            "import json, urllib.request, urllib.error\n"
            "for path in ('/healthz', '/readyz'):\n"
            "    try: r = urllib.request.urlopen('http://127.0.0.1:8001' + path, timeout=2); "
            "print(path, r.status, r.read().decode())\n"
            "    except urllib.error.HTTPError as e: print(path, e.code, e.read().decode())\n"
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            health = podman.run(["podman", "healthcheck", "run", name], check=False)
            if health.returncode == 0:
                break
            time.sleep(0.5)
        assert health.returncode == 0, health.stdout + health.stderr
        probe = podman.run(["podman", "exec", name, "python", "-c", readyz])
        lines = dict(line.split(" ", 1) for line in probe.stdout.strip().splitlines())
        assert lines["/healthz"].startswith("200")
        status, body = lines["/readyz"].split(" ", 1)
        assert status == "503"
        assert json.loads(body)["checks"]["channels"] is False
        logs = (
            podman.run(["podman", "logs", name]).stdout
            + podman.run(["podman", "logs", name]).stderr
        )
        assert "no notification channels configured" in logs
        begun = time.monotonic()
        podman.run(["podman", "stop", "--time", "10", name])
        assert time.monotonic() - begun < 10  # SIGTERM ends the wait, no SIGKILL needed
    finally:
        podman.run(["podman", "rm", "--force", name], check=False)


@pytest.mark.parametrize("app", APP_NAMES)
def test_the_rds_ca_bundle_ships_where_libpq_reads_it(
    built_images: dict[str, str], app: str
) -> None:
    probe = (
        "import os, ssl; path = os.environ['PGSSLROOTCERT']; "
        "certs = ssl.create_default_context(cafile=path).get_ca_certs(); "
        "print(len(certs), all('Amazon RDS' in str(c['subject']) for c in certs))"
    )
    output = _python_in(built_images[app], probe)
    count, only_rds = output.split()
    assert int(count) >= 80 and only_rds == "True"
