"""The events-api image: multi-stage, slim pinned base, non-root, HEALTHCHECK, pinned deps."""

from __future__ import annotations

from infra.contracts import app_contract
from tests.apps.image_rules import REPO, check_dockerfile, check_requirements


def test_dockerfile_follows_the_image_rules() -> None:
    check_dockerfile("events_api", app_contract("events-api").port)


def test_image_requirements_are_pyproject_pins_and_cover_every_import() -> None:
    check_requirements("events_api")


def test_healthcheck_uses_python_not_curl() -> None:
    text = (REPO / "apps" / "events_api" / "Dockerfile").read_text()
    healthcheck = text[text.index("HEALTHCHECK") :].split("\n\n")[0]
    assert '"python", "-c"' in healthcheck
    assert "curl" not in healthcheck and "wget" not in healthcheck


def test_entrypoint_module_runs() -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "apps.events_api.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    for command in ("serve", "relay", "migrate", "create-key"):
        assert command in result.stdout
