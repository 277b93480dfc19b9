"""`platform rollout`: the health gate after a deploy, and the rollback when it fails.

1. Wait (up to the environment's `rolloutTimeoutSeconds`, jenkins/delivery.yaml) until ArgoCD
   reports every bundled app Synced and Healthy at the gitops commit `promote.sh` pushed.
2. Smoke-test the deployed events-api with the smoke API key from Secrets Manager: `/readyz`,
   one event (`POST /api/v1/events`, 202), then its read API (`GET /api/v1/events/{id}`) until
   it says audit has the event: the whole path API -> outbox -> Kafka -> audit -> PostgreSQL;
   and a task created, read back by id, and deleted.
3. On any failure: put each app's previous image tag back (`set-image`, from the catalog as it
   was before the bump), commit with the reason, push, and exit 1 so the build is red.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from infra.config import REPO_ROOT
from infra.contracts import APP_NAMES
from platform_cli.argocd import ArgoCdClient, Assessment, assess

console = Console(soft_wrap=True, highlight=False)
TOKEN_ENV = "ARGOCD_AUTH_TOKEN"


class RolloutError(RuntimeError):
    """The rollout did not reach a healthy, working state; the message says why."""


# --- 1. ArgoCD -----------------------------------------------------------------------------------


def wait_until_healthy(
    read: Callable[[], Assessment],
    timeout_s: float,
    poll_s: float,
    progress: Callable[[str], None] = lambda _: None,
) -> Assessment:
    """Poll `read` until ready; raise RolloutError on a failed verdict or at the timeout."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        try:
            verdict = read()
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code in (401, 403):  # waiting will not fix a refused token
                raise RolloutError(
                    f"ArgoCD refused the token (HTTP {exc.response.status_code})"
                ) from None
            verdict = Assessment(False, None, (f"ArgoCD API: {exc}",))
        except httpx.HTTPError as exc:  # a flaky API read is waited out like a slow sync
            verdict = Assessment(False, None, (f"ArgoCD API: {exc}",))
        if verdict.failed:
            raise RolloutError(verdict.failed)
        if verdict.ready:
            return verdict
        if verdict.describe() != last:
            last = verdict.describe()
            progress(f"waiting: {last}")
        if time.monotonic() >= deadline:
            raise RolloutError(
                f"not Synced and Healthy after {timeout_s:g} s: {verdict.describe()}"
            )
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))


def git_reached(repo: Path) -> Callable[[str, str], bool]:
    """`actual` is `wanted` or a later commit containing it (needs both in the local clone)."""

    def reached(actual: str, wanted: str) -> bool:
        if actual == wanted:
            return True
        result = subprocess.run(
            ["git", "-C", str(repo), "merge-base", "--is-ancestor", wanted, actual],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    return reached


# --- 2. Smoke test -------------------------------------------------------------------------------


@dataclass
class SmokeResult:
    steps: list[str] = field(default_factory=list)


def _expect(response: httpx.Response, status: int, what: str) -> Any:
    if response.status_code != status:
        raise RolloutError(
            f"smoke: {what} answered HTTP {response.status_code} (want {status}): "
            f"{response.text[:300]}"
        )
    return response.json() if response.content else None


def _wait_audited(api: httpx.Client, event_id: str, within_s: float) -> str:
    """Poll the event's read API until audit has it; the seconds it took, or RolloutError."""
    started = time.monotonic()
    while True:
        found = _expect(api.get(f"/api/v1/events/{event_id}"), 200, "GET /api/v1/events/{id}")
        if found.get("audited") is None:
            raise RolloutError("smoke: the API cannot see audit's records (audited is null)")
        if found["audited"]:
            return f"{time.monotonic() - started:.1f}"
        if time.monotonic() - started > within_s:
            raise RolloutError(f"smoke: event {event_id} not audited within {within_s:.0f} s")
        time.sleep(0.5)


def smoke_test(
    api_url: str, api_key: str, label: str, timeout_s: float = 15.0, audit_within_s: float = 60.0
) -> SmokeResult:
    """One event (accepted, then seen audited through the read API) and one task round trip
    through the deployed API; raises RolloutError."""
    result = SmokeResult()
    headers = {"Authorization": f"Bearer {api_key}"}
    try:
        with httpx.Client(base_url=api_url.rstrip("/"), headers=headers, timeout=timeout_s) as api:
            _expect(api.get("/readyz"), 200, "GET /readyz")
            result.steps.append("GET /readyz 200")
            event = _expect(
                api.post(
                    "/api/v1/events",
                    json={
                        "category": "smoke",
                        "message": f"rollout smoke test {label}",
                        "fields": {"source": "platform rollout"},
                    },
                ),
                202,
                "POST /api/v1/events",
            )
            if event.get("status") != "accepted":
                raise RolloutError(f"smoke: event not accepted: {event}")
            uuid.UUID(str(event.get("id")))
            result.steps.append(f"POST /api/v1/events 202 id={event['id']}")
            took = _wait_audited(api, str(event["id"]), audit_within_s)
            result.steps.append(f"GET /api/v1/events/{{id}}: audited after {took} s")
            title = f"rollout smoke {label} {uuid.uuid4().hex[:8]}"
            task = _expect(
                api.post("/api/v1/tasks", json={"title": title, "tags": ["smoke"]}),
                201,
                "POST /api/v1/tasks",
            )
            read = _expect(api.get(f"/api/v1/tasks/{task['id']}"), 200, "GET /api/v1/tasks/{id}")
            if read.get("title") != title:
                raise RolloutError(f"smoke: task read back as {read.get('title')!r}, not {title!r}")
            result.steps.append(f"task {task['id']} created and read back")
            _expect(api.delete(f"/api/v1/tasks/{task['id']}"), 204, "DELETE /api/v1/tasks/{id}")
            result.steps.append("task deleted")
    except httpx.HTTPError as exc:
        raise RolloutError(f"smoke: cannot reach {api_url}: {exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise RolloutError(f"smoke: unexpected answer: {exc}") from None
    return result


def smoke_api_key(secret_id: str, region: str) -> str:
    """The smoke key: a plain SecretString, or JSON with an `apiKey` field."""
    from botocore.exceptions import BotoCoreError, ClientError

    from platform_cli import aws_session

    try:
        value = aws_session.client("secretsmanager", region).get_secret_value(SecretId=secret_id)
    except (ClientError, BotoCoreError) as exc:
        raise RolloutError(f"smoke: cannot read the smoke API key {secret_id}: {exc}") from None
    text = str(value.get("SecretString") or "")
    if text.startswith("{"):
        text = str(json.loads(text).get("apiKey") or "")
    if not text:
        raise RolloutError(f"smoke: secret {secret_id} holds no API key")
    return text


# --- 3. Rollback ---------------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RolloutError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def rollback(
    env: str, previous_images: Path, reason: str, repo: Path, branch: str, push: bool = True
) -> dict[str, str]:
    """Set every app of `env` back to its tag in `previous_images`; commit (and push) with why.

    Returns the tags restored; an empty dict when they were already in place (nothing to commit).
    """
    from infra.gitops.catalog import CatalogError, load_images
    from infra.gitops.promote import set_image

    images_file = repo / "infra" / "gitops" / "images.json"
    try:
        previous = load_images(previous_images).tags.get(env, {})
        current = load_images(images_file).tags.get(env, {})
    except (CatalogError, OSError) as exc:
        raise RolloutError(f"rollback: cannot read the image catalogs: {exc}") from None
    restore = {app: previous[app] for app in APP_NAMES if app in previous}
    missing = [app for app in APP_NAMES if app not in previous]
    if missing:
        raise RolloutError(f"rollback: {previous_images} has no {env} tag for {missing}")
    if restore == {app: current.get(app) for app in APP_NAMES}:
        return {}
    for app, tag in restore.items():
        set_image(env, app, tag, images_file=images_file, root=repo / "gitops")
    _git(repo, "add", f"gitops/{env}", "infra/gitops/images.json")
    tags = ", ".join(f"{app} {tag}" for app, tag in restore.items())
    _git(
        repo,
        "commit",
        "-m",
        f"rollback({env}): bundled apps back to their previous tags",
        "-m",
        f"Why: {reason}\n\nRestored: {tags}",
    )
    if push:
        _git(repo, "pull", "--rebase", "origin", branch)
        _git(repo, "push", "origin", f"HEAD:{branch}")
    return restore


# --- The command ---------------------------------------------------------------------------------


def _api_url(env: str) -> str:
    from infra.config import load_stack_file

    hosts = load_stack_file(env).ingress.hosts
    if not hosts:
        raise RolloutError(f"--env {env}: the stack has no ingress host; give --api-url")
    return f"https://{hosts[0]}"


def rollout_command(
    env: Annotated[str, typer.Option("--env", help="Environment just deployed.")],
    tag: Annotated[str, typer.Option("--tag", help="The image tag promoted (git sha).")],
    revision_file: Annotated[
        Path, typer.Option("--revision-file", help="The gitops commit promote.sh pushed.")
    ],
    previous_images: Annotated[
        Path, typer.Option("--previous-images", help="images.json as it was before the bump.")
    ],
    branch: Annotated[str, typer.Option("--branch", help="Branch a rollback is pushed to.")] = (
        "main"
    ),
    report: Annotated[Path | None, typer.Option("--report", help="Write a JSON report.")] = None,
    api_url: Annotated[
        str | None, typer.Option("--api-url", help="events-api URL (default: its ingress host).")
    ] = None,
    argocd_url: Annotated[
        str | None, typer.Option("--argocd-url", help="Override jenkins/delivery.yaml.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", help="Seconds; override delivery.yaml.")
    ] = None,
    poll: Annotated[float | None, typer.Option("--poll", help="Seconds between reads.")] = None,
    repo: Annotated[Path, typer.Option("--repo", help="The gitops checkout.")] = REPO_ROOT,
    push: Annotated[bool, typer.Option("--push/--no-push", help="Push a rollback.")] = True,
    delivery_file: Annotated[
        Path | None, typer.Option("--delivery-file", help="Default: jenkins/delivery.yaml.")
    ] = None,
) -> None:
    """Wait for ArgoCD to report the apps healthy, smoke-test the API; roll back on failure."""
    import os

    from infra.config import ConfigError, load_stack_file
    from platform_cli.delivery_config import (
        DELIVERY_FILE,
        DeliveryConfigError,
        load_delivery_config,
    )

    try:
        config = load_delivery_config(delivery_file or DELIVERY_FILE)
        settings = config.for_env(env)
        region = load_stack_file(env).region
    except (DeliveryConfigError, ConfigError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    token = os.environ.get(TOKEN_ENV, "")
    if not token:
        console.print(f"[red]{TOKEN_ENV} is not set (the ArgoCD API token)[/red]")
        raise typer.Exit(2)
    try:
        revision = revision_file.read_text().strip()
    except OSError as exc:
        console.print(f"[red]--revision-file: {exc}[/red]")
        raise typer.Exit(2) from None

    outcome: dict[str, Any] = {"env": env, "tag": tag, "revision": revision}
    try:
        with ArgoCdClient(argocd_url or settings.argocd_url, token) as argocd:
            reached = git_reached(repo)
            verdict = wait_until_healthy(
                lambda: assess(
                    argocd.applications(config.app_selector), APP_NAMES, revision, reached
                ),
                timeout if timeout is not None else settings.rollout_timeout_seconds,
                poll if poll is not None else settings.poll_seconds,
                progress=lambda line: console.print(f"[dim]{line}[/dim]"),
            )
        console.print(f"[green]ArgoCD: {verdict.describe()} at {revision[:12]}[/green]")
        key = smoke_api_key(settings.smoke_api_key_secret, region)
        smoke = smoke_test(api_url or _api_url(env), key, f"{env} {tag[:12]}")
        outcome |= {"result": "healthy", "smoke": smoke.steps}
        console.print("[green]smoke test passed:[/green] " + "; ".join(smoke.steps))
    except RolloutError as exc:
        reason = f"rollout of {tag[:12]} to {env} failed: {exc}"
        console.print(f"[red]{reason}[/red]")
        outcome |= {"result": "rolled back", "reason": str(exc)}
        try:
            restored = rollback(env, previous_images, reason, repo, branch, push=push)
        except RolloutError as rollback_exc:
            outcome |= {"result": "rollback failed", "rollback_error": str(rollback_exc)}
            console.print(f"[red bold]ROLLBACK FAILED: {rollback_exc}[/red bold]")
            _write(report, outcome)
            raise typer.Exit(2) from None
        outcome["restored"] = restored
        console.print(
            f"[yellow]rolled back {env}: "
            + (", ".join(f"{a} -> {t}" for a, t in restored.items()) or "tags already in place")
            + "[/yellow]"
        )
        _write(report, outcome)
        raise typer.Exit(1) from None
    _write(report, outcome)


def _write(report: Path | None, outcome: dict[str, Any]) -> None:
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(outcome, indent=2, default=str) + "\n")


def register(app: typer.Typer) -> None:
    """Add `platform rollout` to the `platform` app."""
    app.command("rollout")(rollout_command)
