"""The pure function that picks the stacks a pull request can affect."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infra.contracts import ENVIRONMENTS

REPO = Path(__file__).resolve().parents[2]


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "jenkins" / "stages" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


affected = _load("affected_stacks")
pr_comment = _load("pr_comment")


def test_the_script_lists_the_same_stacks_as_infra_contracts() -> None:
    assert affected.ENVIRONMENTS == ENVIRONMENTS


def test_a_stack_file_affects_only_its_stack() -> None:
    assert affected.affected_stacks(["stacks/Pulumi.staging.yaml"]) == ["staging"]
    assert affected.affected_stacks(["stacks/Pulumi.prod.yaml", "stacks/Pulumi.dev.yaml"]) == [
        "dev",
        "prod",
    ]


def test_the_program_and_its_dependencies_affect_every_stack() -> None:
    for path in (
        "infra/data/kafka.py",
        "infra/policies/pack/__main__.py",
        "Pulumi.yaml",
        "pyproject.toml",
        "./infra/program.py",
    ):
        assert affected.affected_stacks([path]) == list(ENVIRONMENTS), path


def test_apps_gitops_docs_and_the_renderer_affect_no_stack() -> None:
    paths = [
        "apps/notifier/service.py",
        "gitops/prod/audit/deployment.yaml",
        "README.md",
        "infra/gitops/images.json",
        "tests/aws/test_verify.py",
        "jenkins/Jenkinsfile",
        "stacks/Pulumi.unknown.yaml",
        "",
    ]
    assert affected.affected_stacks(paths) == []


@pytest.mark.slow  # a fresh interpreter imports the program
def test_the_program_never_imports_the_gitops_renderer() -> None:
    """The rule above holds only while `infra/program.py` does not import `infra/gitops/`."""
    probe = (
        "import sys, infra.program; print([m for m in sys.modules if m.startswith('infra.gitops')])"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


paths = st.lists(
    st.one_of(
        st.sampled_from([f"stacks/Pulumi.{env}.yaml" for env in ENVIRONMENTS]),
        st.sampled_from(
            ["infra/program.py", "apps/audit/app.py", "docs/x.md", "gitops/dev/a.yaml"]
        ),
        st.text(alphabet="abcdefgh/._-", max_size=20),
    ),
    max_size=8,
)


@given(paths)
def test_result_is_ordered_unique_and_monotonic(changed: list[str]) -> None:
    result = affected.affected_stacks(changed)
    assert result == [env for env in ENVIRONMENTS if env in result]
    # Adding files never removes a stack.
    assert set(result) <= set(affected.affected_stacks([*changed, "stacks/Pulumi.dev.yaml"]))


def test_command_line_lists_every_stack_with_all() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "jenkins/stages/affected_stacks.py"), "--all"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == list(ENVIRONMENTS)


def test_command_line_reads_stdin() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "jenkins/stages/affected_stacks.py")],
        input="stacks/Pulumi.dev.yaml\napps/x.py\n",
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == "dev\n"


def test_pr_comment_has_one_section_per_report_without_colours(tmp_path: Path) -> None:
    plan = tmp_path / "plan-dev.txt"
    plan.write_text("\x1b[1mResources\x1b[0m: 42 declared\n")
    preview = tmp_path / "preview-dev.txt"
    preview.write_text("x" * 100_000)
    out = tmp_path / "pr-comment.json"

    assert pr_comment.main([str(out), "--affected", "dev", str(plan), str(preview)]) == 0

    body = json.loads(out.read_text())["body"]
    assert body.startswith(pr_comment.MARKER)
    assert "Stacks this change can affect: **dev**" in body
    assert "<summary>dev: offline plan</summary>" in body
    assert "<summary>dev: pulumi preview --diff</summary>" in body
    assert "Resources: 42 declared" in body and "\x1b" not in body
    assert "(cut; the full report is archived)" in body
    assert len(body) < 65_536
    assert out.with_suffix(".md").read_text() == body


def test_pr_comment_without_reports_says_so(tmp_path: Path) -> None:
    out = tmp_path / "c.json"
    pr_comment.main([str(out), "--affected", "none"])
    body = json.loads(out.read_text())["body"]
    assert "Stacks this change can affect: **none**" in body
    assert "No report was produced." in body


def test_pr_comment_lists_a_preview_that_did_not_run(tmp_path: Path) -> None:
    plan = tmp_path / "plan-dev.txt"
    plan.write_text("dev: 148 declared resources; policy passed\n")
    out = tmp_path / "pr-comment.json"
    pr_comment.main([str(out), "--affected", "dev", str(plan), str(tmp_path / "preview-dev.txt")])
    body = json.loads(out.read_text())["body"]
    assert "<summary>dev: pulumi preview --diff</summary>" in body
    assert "(not run for this build)" in body
    assert "148 declared resources" in body


pr_trust = _load("pr_trust")


def test_pr_trust_list_and_rule() -> None:
    trusted = pr_trust.parse_trust_list("# maintainers\nAlice  # lead\n\n bob\n")
    assert trusted == {"alice", "bob"}
    assert pr_trust.decide("BOB", "", trusted)[0] is True
    assert pr_trust.decide("bob", "bob/event-platform", trusted) == (
        False,
        "built from the fork 'bob/event-platform': forks never get cloud credentials",
    )
    assert pr_trust.decide("carol", "", trusted)[0] is False
    assert pr_trust.decide("  ", "", trusted)[0] is False
