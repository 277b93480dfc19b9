"""Every Jenkins stage script, in dry-run, prints exactly the commands a build would run.

A pull-request build and a main build are replayed stage by stage, in the Jenkinsfile's order, and
the printed commands are compared line for line. Fake credentials are passed in, and the output
must never contain them.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STAGES = REPO / "jenkins" / "stages"
JENKINSFILE = REPO / "jenkins" / "Jenkinsfile"

SHA = "3f2c1e0d9b8a7f6e5d4c3b2a1908f7e6d5c4b3a2"
REGISTRY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/event-platform"
SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAFAKEFAKEFAKE0001",
    "AWS_SECRET_ACCESS_KEY": "fake/secret/access/key/never/printed",
    "GITHUB_TOKEN": "ghp_faketokenfaketokenfaketoken0001",
}
BACKEND = "s3://plat-dev-pulumi-state-123456789012?region=eu-west-1"


def dry_run(command: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run one stage script (as the Jenkinsfile writes it) with DRY_RUN=1 and only PATH, HOME
    and `env` in its environment (`env` may replace PATH)."""
    script, *args = command.split()
    clean_env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "DRY_RUN": "1",
        **env,
    }
    return subprocess.run(
        ["bash", str(REPO / script), *args],
        cwd=REPO,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_stage(command: str, **env: str) -> list[str]:
    """`dry_run` of a stage that must succeed quietly: its printed lines."""
    result = dry_run(command, **env)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    assert result.stderr == "", result.stderr
    return result.stdout.splitlines()


COMMON_STAGES = {
    "jenkins/stages/setup.sh": ["make venv", "make tools", "make localstack-venv"],
    "jenkins/stages/lint.sh": [
        ".venv/bin/ruff check .",
        ".venv/bin/ruff format --check .",
        ".venv/bin/mypy infra platform_cli apps",
        ".venv/bin/shellcheck "
        + " ".join(f"jenkins/stages/{p.name}" for p in sorted(STAGES.glob("*.sh"))),
    ],
    "jenkins/stages/test.sh platform": [
        ".venv/bin/python -m pytest tests --ignore=tests/apps --junitxml=reports/junit-platform.xml"
    ],
    "jenkins/stages/test.sh apps": [
        ".venv/bin/python -m pytest tests/apps --junitxml=reports/junit-apps.xml"
    ],
    "jenkins/stages/gitops.sh": [
        ".venv/bin/platform gitops render --check",
        ".venv-tools/bin/checkov --config-file .checkov.yaml --directory gitops "
        "--output cli --output junitxml --output-file-path console,reports",
    ],
}

PR_CHANGED_FILES = "\n".join(
    ["stacks/Pulumi.dev.yaml", "stacks/Pulumi.prod.yaml", "apps/notifier/service.py", "README.md"]
)

STACKS = ("localstack", "dev", "staging", "prod")


def _plans() -> list[str]:
    return [
        f".venv/bin/platform plan --stack {s} --quiet --json reports/plan-{s}.json "
        f"> reports/plan-{s}.txt"
        for s in STACKS
    ]


PLAN_REPORTS = " ".join(f"reports/plan-{s}.txt" for s in STACKS)

PR_STAGES = {
    "jenkins/stages/pr_plan.sh": ["# affected stacks: dev prod", "mkdir -p reports", *_plans()],
    "jenkins/stages/pr_images.sh": [
        ".venv/bin/platform images build",
        ".venv/bin/platform images check",
    ],
    "jenkins/stages/pr_preview.sh dev": [
        f"pulumi login '{BACKEND}'",
        "pulumi preview --stack dev --diff --non-interactive --policy-pack infra/policies/pack "
        "> reports/preview-dev.txt",
    ],
    "jenkins/stages/pr_preview.sh staging": ["# staging: this change cannot affect it, no preview"],
    "jenkins/stages/pr_preview.sh prod": [
        f"pulumi login '{BACKEND}'",
        "pulumi preview --stack prod --diff --non-interactive --policy-pack infra/policies/pack "
        "> reports/preview-prod.txt",
    ],
    "jenkins/stages/pr_comment.sh": [
        "python3 jenkins/stages/pr_comment.py reports/pr-comment.json --affected 'dev prod' "
        f"{PLAN_REPORTS} reports/preview-dev.txt reports/preview-prod.txt",
        "python3 jenkins/stages/pr_comment.py post reports/pr-comment.json",
    ],
}
"""What a trusted pull request runs (the Jenkinsfile binds the preview roles and the token)."""

UNTRUSTED_PR_STAGES = {
    "jenkins/stages/pr_plan.sh": PR_STAGES["jenkins/stages/pr_plan.sh"],
    "jenkins/stages/pr_images.sh": PR_STAGES["jenkins/stages/pr_images.sh"],
    "jenkins/stages/pr_comment.sh": [
        "python3 jenkins/stages/pr_comment.py reports/pr-comment.json --affected 'dev prod' "
        f"{PLAN_REPORTS} reports/preview-dev.txt reports/preview-prod.txt",
        "# no GITHUB_TOKEN/CHANGE_ID: comment left in reports/pr-comment.md",
    ],
}
"""What a fork's or an untrusted author's pull request runs: no credential of any kind."""


def _images() -> list[str]:
    return [
        "aws ecr get-login-password --region eu-west-1 | podman login --username AWS "
        "--password-stdin 123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        f".venv/bin/platform images push --base official --registry {REGISTRY} --tag {SHA}",
    ]


def _promote(env: str) -> list[str]:
    return [
        "mkdir -p reports",
        f"cp infra/gitops/images.json reports/images-before-{env}.json",
        *(
            f".venv/bin/platform gitops set-image --env {env} --app {app} --tag {SHA}"
            for app in ("events-api", "notifier", "audit", "reminders")
        ),
        f"git add gitops/{env} infra/gitops/images.json",
        f"git commit -m 'gitops({env}): bundled apps -> {SHA}'",
        "git pull --rebase origin main",
        "git push origin HEAD:main",
        f"git rev-parse HEAD > reports/gitops-{env}.rev",
    ]


def _rollout(env: str) -> list[str]:
    return [
        f".venv/bin/platform rollout --env {env} --tag {SHA} --revision-file "
        f"reports/gitops-{env}.rev --previous-images reports/images-before-{env}.json "
        f"--branch main --report reports/rollout-{env}.json"
    ]


def _deploy(env: str) -> list[str]:
    return [
        f"pulumi login '{BACKEND}'",
        f"pulumi up --stack {env} --yes --diff --non-interactive "
        f"--policy-pack infra/policies/pack > reports/up-{env}.txt",
        f".venv/bin/platform verify --env {env}",
    ]


MAIN_STAGES = {
    "jenkins/stages/build_push.sh": _images(),
    "jenkins/stages/image_scan.sh": [
        f".venv/bin/platform image-scan --env dev --tag {SHA} "
        "--allow-list jenkins/scan-allowlist.yaml --report reports/image-scan.json"
    ],
    "jenkins/stages/promote.sh dev": _promote("dev"),
    "jenkins/stages/deploy.sh dev": _deploy("dev"),
    "jenkins/stages/rollout.sh dev": _rollout("dev"),
    "jenkins/stages/promote.sh staging": _promote("staging"),
    "jenkins/stages/deploy.sh staging": _deploy("staging"),
    "jenkins/stages/rollout.sh staging": _rollout("staging"),
    "jenkins/stages/promote.sh prod": _promote("prod"),
    "jenkins/stages/deploy.sh prod": _deploy("prod"),
    "jenkins/stages/rollout.sh prod": _rollout("prod"),
}


def _bind(name: str, param: str, body: str, arg: str) -> str:
    """Helper `name`'s body with `${param}` bound to `arg`; its interpolated "strings" written
    as the plain 'strings' they evaluate to."""
    bound = body.replace("${" + param + "}", arg)
    assert "$" not in bound.replace("$class", ""), f"{name}: a variable left unbound: {bound}"
    return re.sub(r'"([^"]*)"', r"'\1'", bound)


def pipeline_text() -> str:
    """The Jenkinsfile's `pipeline { ... }` as Groovy runs it: each `script { helper('<arg>') }`
    call of a helper defined above the pipeline (`def helper(String param) { ... }`) replaced by
    that helper's body, bound to the argument."""
    text = JENKINSFILE.read_text()
    pipeline = text[text.index("\npipeline {") :]
    helpers = re.findall(r"^def (\w+)\(String (\w+)\) \{\n(.*?)^\}$", text, re.S | re.M)
    assert helpers, "no helper found above the pipeline"
    for name, param, body in helpers:
        pipeline, calls = re.subn(
            rf"script \{{ {name}\('([^']+)'\) \}}",
            lambda call, n=name, p=param, b=body: _bind(n, p, b, call.group(1)),
            pipeline,
        )
        assert calls, f"helper {name} is never called"
    return pipeline


def _jenkinsfile_commands() -> list[str]:
    return re.findall(r"sh '(jenkins/stages/[^']+)'", pipeline_text())


def _stage_blocks() -> dict[str, str]:
    """Top-level text of each `stage('<name>')` block (up to the next stage)."""
    parts = re.split(r"stage\('([^']+)'\)", pipeline_text())
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_the_jenkinsfile_calls_exactly_the_tested_stage_scripts_in_order() -> None:
    expected = [
        *COMMON_STAGES,
        *PR_STAGES,
        "jenkins/stages/pr_comment.sh",  # "PR report": the untrusted twin of "PR comment"
        *MAIN_STAGES,
    ]
    assert _jenkinsfile_commands() == expected
    for command in expected:
        assert (REPO / command.split()[0]).exists(), command


def test_pr_preview_runs_only_on_pull_requests_and_deploys_only_on_main() -> None:
    blocks = _stage_blocks()
    for stage in ("PR trust", "PR plan", "PR images", "PR report"):
        assert "changeRequest()" in blocks[stage], stage
    for stage in ("PR preview", "PR comment"):
        assert "changeRequest()" in blocks[stage]
        assert "expression { env.PR_TRUST == 'trusted' }" in blocks[stage], stage
    assert "expression { env.PR_TRUST != 'trusted' }" in blocks["PR report"]
    for stage in ("Images", "Image scan", "Deploy dev", "Promote to staging", "Promote to prod"):
        assert "when { branch 'main' }" in blocks[stage], stage
    for stage in ("Promote to staging", "Promote to prod"):
        assert re.search(r"\binput \{", blocks[stage]), f"{stage} has no input gate"
        assert re.search(r"submitter '[a-z-]+'", blocks[stage]), f"{stage} has no submitter"


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_each_stack_is_deployed_inside_its_own_lock(env: str) -> None:
    text = pipeline_text()
    lock = text.index(f"lock(resource: 'pulumi-{env}')")
    deploy = text.index(f"sh 'jenkins/stages/deploy.sh {env}'")
    next_lock = text.find("lock(resource:", lock + 1)
    assert lock < deploy and (next_lock == -1 or deploy < next_lock)


def _assert_prints_exactly(stages: dict[str, list[str]], env: dict[str, str]) -> None:
    """Each stage command prints exactly its lines under `env`, and no secret in any of them."""
    printed = {command: run_stage(command, **env) for command in stages}
    assert printed == stages
    everything = "\n".join(line for lines in printed.values() for line in lines)
    for secret in SECRETS.values():
        assert secret not in everything


def test_pr_build_commands() -> None:
    env = {
        "CHANGE_ID": "42",
        "CHANGE_TARGET": "main",
        "BRANCH_NAME": "PR-42",
        "CHANGED_FILES": PR_CHANGED_FILES,
        "PULUMI_BACKEND_URL": BACKEND,
        "GITHUB_REPOSITORY": "example-org/event-platform",
        **SECRETS,
    }
    _assert_prints_exactly({**COMMON_STAGES, **PR_STAGES}, env)


def test_untrusted_pr_build_commands_use_no_credential() -> None:
    """A fork's build: the Jenkinsfile binds nothing, so the scripts see no credential at all."""
    env = {"CHANGE_ID": "42", "CHANGE_TARGET": "main", "CHANGED_FILES": PR_CHANGED_FILES}
    printed = {command: run_stage(command, **env) for command in UNTRUSTED_PR_STAGES}
    assert printed == UNTRUSTED_PR_STAGES
    # Even if the preview stage ran, without credentials it would preview nothing.
    assert run_stage("jenkins/stages/pr_preview.sh dev", **env) == [
        "# dev: no cloud credentials, pulumi preview skipped (the offline plan stands in)"
    ]


def test_pr_touching_every_stack_plans_all_and_comments_on_each_cloud_preview() -> None:
    env = {"CHANGED_FILES": "infra/network/vpc.py", "CHANGE_TARGET": "main"}
    assert run_stage("jenkins/stages/pr_plan.sh", **env) == [
        "# affected stacks: localstack dev staging prod",
        "mkdir -p reports",
        *_plans(),
    ]
    previews = " ".join(f"reports/preview-{s}.txt" for s in ("dev", "staging", "prod"))
    assert run_stage("jenkins/stages/pr_comment.sh", **env) == [
        "python3 jenkins/stages/pr_comment.py reports/pr-comment.json "
        f"--affected 'localstack dev staging prod' {PLAN_REPORTS} {previews}",
        "# no GITHUB_TOKEN/CHANGE_ID: comment left in reports/pr-comment.md",
    ]


def test_pr_touching_no_stack_still_plans_every_stack_but_previews_none() -> None:
    env = {"CHANGED_FILES": "apps/audit/archive.py", "PULUMI_BACKEND_URL": BACKEND, **SECRETS}
    assert run_stage("jenkins/stages/pr_plan.sh", **env) == [
        "# affected stacks: none",
        "mkdir -p reports",
        *_plans(),
    ]
    for stack in ("dev", "staging", "prod"):
        assert run_stage(f"jenkins/stages/pr_preview.sh {stack}", **env) == [
            f"# {stack}: this change cannot affect it, no preview"
        ]


def test_main_build_commands() -> None:
    env = {"BRANCH_NAME": "main", "GIT_COMMIT": SHA, "PULUMI_BACKEND_URL": BACKEND, **SECRETS}
    _assert_prints_exactly({**COMMON_STAGES, **MAIN_STAGES}, env)


def test_stage_scripts_never_enable_shell_tracing() -> None:
    for script in STAGES.glob("*.sh"):
        text = script.read_text()
        assert not re.search(r"^\s*set -[a-z]*x", text, re.MULTILINE), script.name
        assert "source " in text or script.name == "lib.sh", f"{script.name} must source lib.sh"


def test_deploy_refuses_to_run_without_a_backend() -> None:
    result = dry_run("jenkins/stages/deploy.sh dev")
    assert result.returncode != 0
    assert "PULUMI_BACKEND_URL" in result.stderr
