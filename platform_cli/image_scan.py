"""`platform image-scan`: the promotion gate on ECR's scan findings of the images just pushed.

For every bundled app, `<registry>/<app>:<tag>` (registry from infra/gitops/images.json) is
looked up with `describe-image-scan-findings` (paginated; a scan still IN_PROGRESS is waited
for). Promotion is refused on any CRITICAL finding, on any HIGH finding that is not on the
reviewed allow-list (jenkins/scan-allowlist.yaml), and on an image with no completed scan:
an unscanned image proves nothing. Basic scanning reports `findings`, enhanced scanning
(Inspector) `enhancedFindings`; both are read.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel
from rich.console import Console

from infra.config import REPO_ROOT

ALLOW_LIST_FILE = REPO_ROOT / "jenkins" / "scan-allowlist.yaml"
MAX_ALLOW_DAYS = 180
BLOCKING_ALWAYS = frozenset({"CRITICAL"})
BLOCKING_UNLESS_ALLOWED = frozenset({"HIGH"})
FINISHED = frozenset({"COMPLETE", "ACTIVE"})
"""Basic scanning ends COMPLETE; enhanced (continuous) scanning reports ACTIVE with findings."""
console = Console(soft_wrap=True, highlight=False)


class ScanGateError(ValueError):
    """Bad input (allow-list, env); the message names the field."""


class AllowEntry(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )

    id: str = Field(pattern=r"^(CVE-\d{4}-\d{4,}|GHSA-[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4})$")
    package: str | None = None
    reason: str = Field(min_length=20, description="Why shipping with it is acceptable.")
    reviewed_by: str = Field(min_length=2)
    expires: date

    @field_validator("expires")
    @classmethod
    def _not_too_far(cls, value: date) -> date:
        if value > date.today() + timedelta(days=MAX_ALLOW_DAYS):
            raise ValueError(f"{value} is more than {MAX_ALLOW_DAYS} days ahead; review sooner")
        return value


class AllowList(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    allow: tuple[AllowEntry, ...] = ()


def load_allow_list(path: Path) -> AllowList:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        return AllowList.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise ScanGateError(f"{path}: cannot be read: {exc}") from None
    except ValidationError as exc:
        lines = [
            f"  - {'.'.join(str(p) for p in err['loc'])}: {err['msg']} (got {err.get('input')!r})"
            for err in exc.errors()
        ]
        raise ScanGateError(f"{path.name} is invalid:\n" + "\n".join(lines)) from None


@dataclass(frozen=True)
class Finding:
    id: str
    severity: str
    package: str


def findings_of(page: dict[str, Any]) -> list[Finding]:
    """The findings of one `describe_image_scan_findings` page (basic and enhanced scanning)."""
    scan = page.get("imageScanFindings") or {}
    found: list[Finding] = []
    for item in scan.get("findings") or []:
        attributes = {a.get("key"): a.get("value") for a in item.get("attributes") or []}
        found.append(
            Finding(
                str(item.get("name", "")),
                str(item.get("severity", "UNDEFINED")).upper(),
                str(attributes.get("package_name") or ""),
            )
        )
    for item in scan.get("enhancedFindings") or []:
        details = item.get("packageVulnerabilityDetails") or {}
        packages = details.get("vulnerablePackages") or [{}]
        found.append(
            Finding(
                str(details.get("vulnerabilityId") or item.get("title", "")),
                str(item.get("severity", "UNDEFINED")).upper(),
                str(packages[0].get("name") or ""),
            )
        )
    return found


@dataclass(frozen=True)
class ImageVerdict:
    image: str
    status: str
    blocking: tuple[str, ...]
    allowed: tuple[str, ...]
    counts: dict[str, int]


def judge(
    image: str, findings: list[Finding], allow: AllowList, today: date, status: str = "COMPLETE"
) -> ImageVerdict:
    """Which findings block promotion, and which the allow-list lets through."""
    blocking: list[str] = []
    allowed: list[str] = []
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.severity] = counts.get(finding.severity, 0) + 1
        label = f"{finding.severity} {finding.id} in {finding.package or '?'}"
        if finding.severity in BLOCKING_ALWAYS:
            blocking.append(f"{label}: CRITICAL is never allowed")
        elif finding.severity in BLOCKING_UNLESS_ALLOWED:
            entry = next(
                (
                    e
                    for e in allow.allow
                    if e.id == finding.id and e.package in (None, finding.package)
                ),
                None,
            )
            if entry is None:
                blocking.append(f"{label}: not on the allow-list")
            elif entry.expires < today:
                blocking.append(f"{label}: allow-list entry expired on {entry.expires}")
            else:
                allowed.append(f"{label}: allowed until {entry.expires} ({entry.reason})")
    return ImageVerdict(image, status, tuple(blocking), tuple(allowed), counts)


def scan_image(
    ecr: Any, registry_id: str, repository: str, tag: str, wait_s: float, poll_s: float
) -> tuple[str, list[Finding], str]:
    """(status, findings, description) of one image's scan; waits while it is IN_PROGRESS."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            pages = list(
                ecr.get_paginator("describe_image_scan_findings").paginate(
                    registryId=registry_id, repositoryName=repository, imageId={"imageTag": tag}
                )
            )
        except ecr.exceptions.ScanNotFoundException:
            return "NOT_SCANNED", [], "no scan of this image (is scan on push on?)"
        except ecr.exceptions.ImageNotFoundException:
            return "NOT_FOUND", [], "no such image"
        status_block = pages[0].get("imageScanStatus") or {}
        status = str(status_block.get("status", "UNKNOWN"))
        if status in ("IN_PROGRESS", "PENDING") and time.monotonic() < deadline:
            time.sleep(poll_s)
            continue
        findings = [f for page in pages for f in findings_of(page)]
        return status, findings, str(status_block.get("description", ""))


def registry_parts(registry: str) -> tuple[str, str, str]:
    """(account id, region, repository prefix) of `<account>.dkr.ecr.<region>.amazonaws.com/<p>`."""
    host, _, prefix = registry.partition("/")
    labels = host.split(".")
    if len(labels) < 6 or labels[1:3] != ["dkr", "ecr"]:
        raise ScanGateError(f"registry {registry!r} is not an ECR registry; allowed: ECR hosts")
    return labels[0], labels[3], prefix


def run_gate(
    env: str, tag: str, allow: AllowList, wait_s: float, poll_s: float, today: date
) -> list[ImageVerdict]:
    from infra.contracts import APP_NAMES
    from infra.gitops.catalog import load_images
    from platform_cli import aws_session

    registry = load_images().registries.get(env)
    if not registry:
        raise ScanGateError(f"--env {env!r}: no registry in images.json")
    account, region, prefix = registry_parts(registry)
    ecr = aws_session.client("ecr", region)
    verdicts = []
    for app in APP_NAMES:
        repository = f"{prefix}/{app}" if prefix else app
        status, findings, description = scan_image(ecr, account, repository, tag, wait_s, poll_s)
        image = f"{registry}/{app}:{tag}"
        if status not in FINISHED:
            reason = f"scan {status}: {description}".rstrip(": ")
            verdicts.append(ImageVerdict(image, status, (reason,), (), {}))
            continue
        verdicts.append(judge(image, findings, allow, today, status))
    return verdicts


def image_scan_command(
    env: Annotated[str, typer.Option("--env", help="Environment whose registry was pushed to.")],
    tag: Annotated[str, typer.Option("--tag", help="The pushed tag (git sha).")],
    allow_list: Annotated[
        Path, typer.Option("--allow-list", help="Reviewed HIGH findings.")
    ] = ALLOW_LIST_FILE,
    report: Annotated[Path | None, typer.Option("--report", help="Write a JSON report.")] = None,
    wait_seconds: Annotated[
        float, typer.Option("--wait-seconds", help="How long a scan IN_PROGRESS is waited for.")
    ] = 600.0,
    poll_seconds: Annotated[float, typer.Option("--poll-seconds")] = 10.0,
) -> None:
    """Refuse promotion on CRITICAL findings, or HIGH ones not on the reviewed allow-list."""
    try:
        allow = load_allow_list(allow_list)
        verdicts = run_gate(env, tag, allow, wait_seconds, poll_seconds, date.today())
    except ScanGateError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    for verdict in verdicts:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(verdict.counts.items())) or "no findings"
        colour = "red" if verdict.blocking else "green"
        console.print(f"[{colour}]{verdict.image}[/{colour}]: {verdict.status}, {counts}")
        for line in verdict.blocking:
            console.print(f"  [red]blocks:[/red] {line}")
        for line in verdict.allowed:
            console.print(f"  [yellow]allowed:[/yellow] {line}")
    blocked = [v for v in verdicts if v.blocking]
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps([asdict(v) for v in verdicts], indent=2) + "\n")
    if blocked:
        console.print(f"[red]promotion refused: {len(blocked)} image(s) blocked[/red]")
        raise typer.Exit(1)
    console.print("[green]scan gate passed: no CRITICAL, every HIGH reviewed[/green]")


def register(app: typer.Typer) -> None:
    """Add `platform image-scan` to the `platform` app."""
    app.command("image-scan")(image_scan_command)
