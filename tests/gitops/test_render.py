"""The renderer: deterministic, pruning, `--check` and `set-image` through the real CLI."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from infra.contracts import APP_NAMES, ENVIRONMENTS
from infra.gitops.catalog import IMAGES_FILE, load_catalog
from infra.gitops.renderer import GITOPS_ROOT, diff_tree, render, write_tree
from platform_cli.main import app as cli

runner = CliRunner()


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of images.json and of the committed tree, so commands can write freely."""
    images = tmp_path / "images.json"
    shutil.copy(IMAGES_FILE, images)
    root = tmp_path / "gitops"
    shutil.copytree(GITOPS_ROOT, root)
    return images, root


def _cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli, ["gitops", *args])
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


@pytest.mark.slow  # a fresh process renders with another hash seed
def test_render_is_byte_identical_across_runs(tmp_path: Path, rendered: dict[str, str]) -> None:
    assert render(load_catalog()) == rendered
    # A separate process with another hash seed: set/dict ordering must not leak into output.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "platform_cli.main",
            "gitops",
            "render",
            "--gitops-dir",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    written = {p.relative_to(tmp_path).as_posix(): p.read_text() for p in tmp_path.rglob("*.yaml")}
    assert written == rendered
    timestamp = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
    assert not [path for path, text in rendered.items() if timestamp.search(text)]


def test_committed_tree_is_current(committed: dict[str, str], rendered: dict[str, str]) -> None:
    diff = diff_tree(GITOPS_ROOT, rendered, ENVIRONMENTS)
    assert diff.clean, "\n".join(diff.lines())
    assert set(committed) == set(rendered)


def test_render_check_cli_is_clean_on_the_committed_tree() -> None:
    code, output = _cli("render", "--check")
    assert code == 0, output
    assert "up to date" in output


def test_check_lists_stale_missing_and_extra_files(workspace: tuple[Path, Path]) -> None:
    images, root = workspace
    (root / "dev/events-api/service-events-api.yaml").write_text("# edited by hand\n")
    (root / "prod/notifier/deployment-notifier.yaml").unlink()
    (root / "staging/audit/configmap-leftover.yaml").write_text("kind: ConfigMap\n")
    code, output = _cli(
        "render", "--check", "--images-file", str(images), "--gitops-dir", str(root)
    )
    assert code == 1
    assert "stale:   dev/events-api/service-events-api.yaml" in output
    assert "missing: prod/notifier/deployment-notifier.yaml" in output
    assert "extra:   staging/audit/configmap-leftover.yaml" in output


def test_render_repairs_and_prunes(workspace: tuple[Path, Path], rendered: dict[str, str]) -> None:
    images, root = workspace
    (root / "dev/events-api/service-events-api.yaml").write_text("# edited by hand\n")
    leftover = root / "dev/retired-app/deployment-retired-app.yaml"
    leftover.parent.mkdir()
    leftover.write_text("kind: Deployment\n")
    code, output = _cli("render", "--images-file", str(images), "--gitops-dir", str(root))
    assert code == 0, output
    assert not leftover.parent.exists(), "files (and folders) no longer produced are removed"
    assert diff_tree(root, rendered, ENVIRONMENTS).clean


def test_render_only_one_env_leaves_the_others(workspace: tuple[Path, Path]) -> None:
    images, root = workspace
    (root / "prod/events-api/service-events-api.yaml").write_text("# edited\n")
    code, _ = _cli(
        "render", "--env", "dev", "--images-file", str(images), "--gitops-dir", str(root)
    )
    assert code == 0
    assert (root / "prod/events-api/service-events-api.yaml").read_text() == "# edited\n"


def test_set_image_promotes_and_rerenders(workspace: tuple[Path, Path]) -> None:
    images, root = workspace
    code, output = _cli(
        "set-image", "--env", "prod", "--app", "notifier", "--tag", "3f9c2ab",
        "--images-file", str(images), "--gitops-dir", str(root),
    )  # fmt: skip
    assert code == 0, output
    data = json.loads(images.read_text())
    assert data["tags"]["prod"]["notifier"] == "3f9c2ab"
    assert data["promoted"]["prod"]["notifier"] == "3f9c2ab"
    deployment = yaml.safe_load((root / "prod/notifier/deployment-notifier.yaml").read_text())
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image.endswith("/notifier:3f9c2ab")
    migrate = (root / "prod/notifier/job-notifier-migrate.yaml").read_text()
    assert "notifier:3f9c2ab" in migrate
    assert "3f9c2ab" not in (root / "dev/notifier/deployment-notifier.yaml").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env", "qa", "--app", "notifier", "--tag", "1.2.3"], "--env: 'qa' is unknown"),
        (["--env", "dev", "--app", "billing", "--tag", "1.2.3"], "--app: 'billing' is unknown"),
        (["--env", "dev", "--app", "notifier", "--tag", "latest"], "mutable tag"),
        (["--env", "dev", "--app", "notifier", "--tag", "feature-x"], "not an immutable tag"),
        (["--env", "dev", "--app", "notifier", "--tag", "1.2"], "not an immutable tag"),
    ],
)
def test_set_image_refuses_before_writing(
    workspace: tuple[Path, Path], args: list[str], message: str
) -> None:
    images, root = workspace
    before_images = images.read_bytes()
    before_tree = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    code, output = _cli("set-image", *args, "--images-file", str(images), "--gitops-dir", str(root))
    assert code == 1
    assert message in " ".join(output.split())
    assert "allowed:" in output
    assert images.read_bytes() == before_images
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before_tree


@pytest.mark.parametrize("tag", ["0.1.0", "v2.3.4-rc.1", "1.0.0+build.7", "3f9c2ab", "a" * 40])
def test_immutable_tag_shapes_are_accepted(tag: str) -> None:
    from infra.gitops.catalog import tag_problem

    assert tag_problem(tag) is None


def test_write_tree_writes_nothing_when_current(tmp_path: Path, rendered: dict[str, str]) -> None:
    first = write_tree(tmp_path, rendered, ENVIRONMENTS)
    assert len(first.missing) == len(rendered)
    second = write_tree(tmp_path, rendered, ENVIRONMENTS)
    assert second.clean


def test_every_env_has_every_app(rendered: dict[str, str]) -> None:
    for env in ENVIRONMENTS:
        for app in APP_NAMES:
            assert f"{env}/{app}.yaml" in rendered
            assert f"{env}/{app}/deployment-{app}.yaml" in rendered
