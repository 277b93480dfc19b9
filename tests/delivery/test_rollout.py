"""`platform rollout`: ArgoCD health gate, smoke test through the real events-api, rollback.

ArgoCD cannot run here: `tests/delivery/argocd_standin.py` answers as its API does (shapes and
sources cited there). The smoke test runs against the real events-api (`serve`, on Tansu and
PostgreSQL), with its key in moto's Secrets Manager. The rollback is checked in a real git
repository with a bare origin: the pushed commit, its message, and the rendered tree.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from typer.testing import CliRunner

from apps.audit.cli import MIGRATIONS as AUDIT_MIGRATIONS
from apps.common.db import migrate
from infra.contracts import APP_NAMES
from infra.gitops.catalog import load_images
from infra.gitops.promote import set_image
from platform_cli.argocd import AppState, assess
from platform_cli.embedded import free_port
from platform_cli.main import app
from platform_cli.rollout import git_reached
from tests.apps.app_env import app_env
from tests.apps.conftest import EventsApiEnv, read_topic
from tests.apps.consumer_harness import ConsumerProcess
from tests.apps.test_events_api_process import _env, _process, _wait_ready
from tests.delivery.argocd_standin import ArgoCdStandIn, application, argocd_standin

# Slow tier: a stand-in Argo CD API server and real waits: seconds per test.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SHA = "3f2c1e0d9b8a7f6e5d4c3b2a1908f7e6d5c4b3a2"
TOKEN = "argocd-test-token-0001"
SMOKE_SECRET = "plat-dev/events-api/smoke-api-key"  # jenkins/delivery.yaml, dev
EXTRA_APPS = ("kafka-topics", "platform-config")  # also labelled part-of=event-platform
GIT_ID = {
    "GIT_AUTHOR_NAME": "ci",
    "GIT_AUTHOR_EMAIL": "ci@example.com",
    "GIT_COMMITTER_NAME": "ci",
    "GIT_COMMITTER_EMAIL": "ci@example.com",
}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        env={**os.environ, **GIT_ID},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@dataclass
class Promoted:
    """A gitops checkout in which dev was just promoted to SHA and pushed (as promote.sh does)."""

    work: Path
    origin: Path
    base: str  # the commit before the bump
    revision: str  # the pushed gitops commit ArgoCD must reach
    revision_file: Path
    previous_images: Path

    def origin_head(self) -> str:
        return git(self.origin, "rev-parse", "main")


@pytest.fixture
def promoted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Promoted:
    for key, value in GIT_ID.items():
        monkeypatch.setenv(key, value)
    origin, work = tmp_path / "origin.git", tmp_path / "work"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    shutil.copytree(REPO / "gitops", work / "gitops")
    (work / "infra" / "gitops").mkdir(parents=True)
    shutil.copy(REPO / "infra" / "gitops" / "images.json", work / "infra" / "gitops")
    git(work, "add", ".")
    git(work, "commit", "-q", "-m", "base")
    git(work, "remote", "add", "origin", str(origin))
    git(work, "push", "-q", "origin", "main")
    base = git(work, "rev-parse", "HEAD")
    previous = tmp_path / "images-before-dev.json"
    shutil.copy(work / "infra" / "gitops" / "images.json", previous)
    for name in APP_NAMES:
        set_image(
            "dev", name, SHA, images_file=work / "infra/gitops/images.json", root=work / "gitops"
        )
    git(work, "commit", "-q", "-am", f"gitops(dev): bundled apps -> {SHA}")
    git(work, "push", "-q", "origin", "main")
    revision = git(work, "rev-parse", "HEAD")
    revision_file = tmp_path / "gitops-dev.rev"
    revision_file.write_text(revision + "\n")
    return Promoted(work, origin, base, revision, revision_file, previous)


def _apps(revision: str, **overrides: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        application(name, "dev", revision, **overrides.get(name, {}))
        for name in (*APP_NAMES, *EXTRA_APPS)
    ]


def _rollout_args(promoted: Promoted) -> list[str]:
    """`platform rollout` of the promoted tag to dev: the options every run names."""
    return [
        "rollout",
        "--env",
        "dev",
        "--tag",
        SHA,
        "--revision-file",
        str(promoted.revision_file),
        "--previous-images",
        str(promoted.previous_images),
    ]


def _rollout(
    promoted: Promoted, argocd_url: str, api_url: str, tmp_path: Path, timeout: float = 1.5
) -> tuple[int, str, dict[str, Any]]:
    report = tmp_path / "rollout.json"
    result = CliRunner().invoke(
        app,
        [
            *_rollout_args(promoted),
            "--report",
            str(report),
            "--argocd-url",
            argocd_url,
            "--api-url",
            api_url,
            "--timeout",
            str(timeout),
            "--poll",
            "0.1",
            "--repo",
            str(promoted.work),
        ],
        env={"ARGOCD_AUTH_TOKEN": TOKEN},
    )
    return result.exit_code, result.output, json.loads(report.read_text())


def _assert_rolled_back(promoted: Promoted, reason_part: str) -> None:
    head = promoted.origin_head()
    assert head != promoted.revision, "no rollback commit was pushed"
    assert git(promoted.origin, "rev-parse", f"{head}^") == promoted.revision
    message = git(promoted.origin, "log", "-1", "--format=%B", head)
    assert message.startswith("rollback(dev): bundled apps back to their previous tags")
    assert f"Why: rollout of {SHA[:12]} to dev failed:" in message
    assert reason_part in message
    # The rendered tree is exactly what it was before the bump, and so are dev's tags.
    assert git(promoted.origin, "diff", "--stat", promoted.base, head, "--", "gitops/") == ""
    shown = git(promoted.origin, "show", f"{head}:infra/gitops/images.json")
    assert json.loads(shown)["tags"]["dev"] == load_images(promoted.previous_images).tags["dev"]


def _closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def _failed_rollout(
    promoted: Promoted,
    tmp_path: Path,
    apps: list[dict[str, Any]],
    token: str = TOKEN,
    timeout: float = 1.5,
) -> tuple[dict[str, Any], ArgoCdStandIn]:
    """A rollout against an ArgoCD stand-in answering `apps` and an events-api nobody serves:
    it must fail (exit 1); returns its report and the stand-in (with the requests it got)."""
    with argocd_standin(token, lambda n: apps) as argocd:
        code, output, report = _rollout(
            promoted, argocd.url, _closed_port_url(), tmp_path, timeout=timeout
        )
    assert code == 1, output
    return report, argocd


# --- ArgoCD verdicts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("states", "timeout", "reasons", "polled"),
    [
        pytest.param(
            {
                "notifier": {
                    "health": "Degraded",
                    "health_message": "Deployment exceeded its progress deadline",
                }
            },
            30.0,
            ["notifier: Degraded", "Deployment exceeded its progress deadline"],
            False,
            id="degraded at the new revision: at once",
        ),
        pytest.param(
            {
                "audit": {
                    "health": "Progressing",
                    "phase": "Running",
                    "operation_message": "waiting for healthy state",
                }
            },
            1.5,
            ["not Synced and Healthy after 1.5 s", "audit: Synced/Progressing"],
            True,
            id="progressing past the timeout",
        ),
        pytest.param(
            {
                "events-api": {
                    "sync": "OutOfSync",
                    "health": "Missing",
                    "phase": "Failed",
                    "operation_message": "one or more objects failed to apply",
                }
            },
            30.0,
            ["events-api: sync operation Failed: one or more objects failed"],
            False,
            id="a failed sync operation: at once",
        ),
    ],
)
def test_an_app_not_healthy_at_the_new_revision_rolls_back(
    promoted: Promoted,
    tmp_path: Path,
    states: dict[str, dict[str, str]],
    timeout: float,
    reasons: list[str],
    polled: bool,
) -> None:
    report, argocd = _failed_rollout(
        promoted, tmp_path, _apps(promoted.revision, **states), timeout=timeout
    )
    if polled:
        assert len(argocd.requests) > 3, "it polled until the timeout"
    else:
        assert len(argocd.requests) == 1, "a terminal state must not be waited for"
    assert argocd.requests[0]["query"]["selector"] == ["app.kubernetes.io/part-of=event-platform"]
    assert report["result"] == "rolled back"
    for reason in reasons:
        assert reason in report["reason"]
    _assert_rolled_back(promoted, reasons[-1])


def test_healthy_at_another_revision_is_not_the_new_rollout(
    promoted: Promoted, tmp_path: Path
) -> None:
    old = "0" * 40
    report, _ = _failed_rollout(promoted, tmp_path, _apps(old))
    assert f"at revision {old[:12]}, want {promoted.revision[:12]}" in report["reason"]
    _assert_rolled_back(promoted, "want")


def test_a_refused_token_fails_without_waiting(promoted: Promoted, tmp_path: Path) -> None:
    report, argocd = _failed_rollout(
        promoted, tmp_path, _apps(promoted.revision), token="another-token", timeout=30
    )
    assert len(argocd.requests) == 1
    assert "ArgoCD refused the token (HTTP 401)" in report["reason"]


def test_healthy_apps_but_an_unreachable_api_roll_back(
    promoted: Promoted, tmp_path: Path, aws_env: str
) -> None:
    _store_smoke_key(aws_env, "not-used")
    report, _ = _failed_rollout(promoted, tmp_path, _apps(promoted.revision))
    assert report["reason"].startswith("smoke: cannot reach")
    _assert_rolled_back(promoted, "smoke: cannot reach")


# --- Healthy: smoke test through the real events-api -------------------------------------------


def _store_smoke_key(endpoint: str, key: str) -> None:
    secrets: Any = boto3.client(
        "secretsmanager",
        region_name="eu-west-1",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    try:
        secrets.create_secret(Name=SMOKE_SECRET, SecretString=json.dumps({"apiKey": key}))
    except secrets.exceptions.ResourceExistsException:
        secrets.put_secret_value(SecretId=SMOKE_SECRET, SecretString=json.dumps({"apiKey": key}))


@pytest.fixture
def audit_consumer(events_api_env: EventsApiEnv, tmp_path: Path) -> Iterator[None]:
    """The real audit consumer on the events-api's database (one database, as deployed): the
    smoke test waits until the event's read API says audit has it."""
    migrate(events_api_env.database_url, "audit", AUDIT_MIGRATIONS)
    env = {
        **app_env(
            events_api_env.bootstrap, events_api_env.database_url, topics=events_api_env.topics
        ),
        "CONSUMER_GROUP": f"audit-{uuid.uuid4().hex[:6]}",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "",
    }
    process = ConsumerProcess("audit", env, tmp_path / "audit.log").start()
    try:
        yield
    finally:
        process.stop_quietly()


@pytest.fixture
def events_api(events_api_env: EventsApiEnv) -> Iterator[str]:
    port = free_port()
    args = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    with _process(args, _env(events_api_env)) as process:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base, process)
        yield base


def test_healthy_rollout_passes_the_smoke_test_and_keeps_the_new_tags(
    promoted: Promoted,
    tmp_path: Path,
    aws_env: str,
    events_api: str,
    events_api_env: EventsApiEnv,
    audit_consumer: None,
) -> None:
    _store_smoke_key(aws_env, events_api_env.create_key("smoke"))

    def answer(n: int) -> list[dict[str, Any]]:
        if n < 2:  # ArgoCD has not fetched the commit yet, then syncs it
            return _apps("0" * 40)
        if n < 4:
            return _apps(promoted.revision, **{"events-api": {"health": "Progressing"}})
        return _apps(promoted.revision)

    with argocd_standin(TOKEN, answer) as argocd:
        code, output, report = _rollout(promoted, argocd.url, events_api, tmp_path, timeout=90)
    assert code == 0, output
    assert len(argocd.requests) == 5
    assert report["result"] == "healthy"
    assert report["smoke"][0] == "GET /readyz 200"
    assert report["smoke"][1].startswith("POST /api/v1/events 202 id=")
    assert report["smoke"][2].startswith("GET /api/v1/events/{id}: audited after")
    assert promoted.origin_head() == promoted.revision, "nothing was rolled back"
    # The smoke event went all the way: outbox -> relay -> Kafka.
    [record] = read_topic(events_api_env.bootstrap, events_api_env.topics.events, 1)
    assert report["smoke"][1].endswith(record.key.decode())


# --- The pure parts -----------------------------------------------------------------------------


def _state(name: str, revision: str, **kw: str) -> AppState:
    item = application(name, "dev", revision, **kw)  # type: ignore[arg-type]
    return AppState.from_api(item)


def test_assess_waits_for_a_missing_app_and_judges_extra_ones() -> None:
    rev = "a" * 40
    verdict = assess([_state("events-api", rev)], APP_NAMES, rev)
    assert not verdict.ready and verdict.failed is None
    assert "notifier: no such Application yet" in verdict.waiting
    extra = [_state(n, rev) for n in APP_NAMES] + [
        _state("platform-config", rev, health="Degraded")
    ]
    assert (
        assess(extra, APP_NAMES, rev).failed
        == "platform-config: Degraded at aaaaaaaaaaaa: no message"
    )


def test_a_later_commit_that_contains_the_revision_counts(promoted: Promoted) -> None:
    (promoted.work / "gitops" / "staging" / "note.txt").write_text("staging promotion\n")
    git(promoted.work, "add", ".")
    git(promoted.work, "commit", "-q", "-m", "gitops(staging): another promotion")
    later = git(promoted.work, "rev-parse", "HEAD")
    reached = git_reached(promoted.work)
    apps = [_state(n, later) for n in APP_NAMES]
    assert assess(apps, APP_NAMES, promoted.revision, reached).ready
    # ...but not the commit before the promotion.
    apps = [_state(n, promoted.base) for n in APP_NAMES]
    assert not assess(apps, APP_NAMES, promoted.revision, reached).ready


def test_missing_token_or_bad_config_fail_before_any_call(
    promoted: Promoted, tmp_path: Path
) -> None:
    args = _rollout_args(promoted)
    result = CliRunner().invoke(app, args, env={"ARGOCD_AUTH_TOKEN": ""})
    assert result.exit_code == 2 and "ARGOCD_AUTH_TOKEN is not set" in result.output
    bad = tmp_path / "delivery.yaml"
    bad.write_text(
        "appSelector: x\nenvironments:\n  dev:\n    argocdUrl: ftp://x\n"
        "    rolloutTimeoutSeconds: 0\n    pollSeconds: 1\n    smokeApiKeySecret: s\n"
    )
    result = CliRunner().invoke(
        app, [*args, "--delivery-file", str(bad)], env={"ARGOCD_AUTH_TOKEN": TOKEN}
    )
    assert result.exit_code == 2
    assert "environments.dev.argocdUrl" in result.output
    assert "environments.dev.rolloutTimeoutSeconds" in result.output
    assert promoted.origin_head() == promoted.revision
