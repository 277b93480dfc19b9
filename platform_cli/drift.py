"""`platform drift report`: what `pulumi preview --refresh --json` says differs from the code.

The input is the JSON document `pulumi preview --json` prints: a `PreviewDigest` (pulumi/pulumi,
`sdk/go/common/display/json.go`) with `steps` (each `op`, `urn`, `oldState`/`newState` as
`apitype.ResourceV3`, `diffReasons`, `detailedDiff` mapping a property path to a `PropertyDiff`
{kind, inputDiff}), `diagnostics` and `changeSummary` (count per op). After `--refresh` the old
state is what the cloud holds now, the new state what the program declares: every step whose op
is not `same` (or a read) is drift.

Exit codes: 0 no drift, 3 drift (the drift job marks the build UNSTABLE), 2 the check could not
be made (no JSON, or the preview failed without proposing changes).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

DRIFT_EXIT = 3
CHECK_FAILED_EXIT = 2
NO_CHANGE_OPS = frozenset({"same", "read", "refresh", "read-discard"})
WEBHOOK_ENV = "DRIFT_WEBHOOK_URL"
MAX_VALUE_CHARS = 80
console = Console(soft_wrap=True, highlight=False)
drift = typer.Typer(help="Drift between the Pulumi program and the cloud.")


@dataclass(frozen=True)
class PropertyDrift:
    path: str
    kind: str
    cloud: str
    declared: str


@dataclass(frozen=True)
class DriftedResource:
    urn: str
    type: str
    name: str
    op: str
    properties: tuple[PropertyDrift, ...]


@dataclass(frozen=True)
class DriftReport:
    stack: str
    resources: tuple[DriftedResource, ...]
    change_summary: dict[str, int]
    errors: tuple[str, ...]

    @property
    def drifted(self) -> bool:
        return bool(self.resources)


_PATH_PART = re.compile(r'\["([^"]+)"\]|\[(\d+)\]|([^.\[\]]+)')


def _lookup(state: dict[str, Any] | None, path: str) -> Any:
    """The value at a detailedDiff path (`tags.owner`, `ingress[0].cidrBlocks`) or None."""
    value: Any = state
    for quoted, index, plain in _PATH_PART.findall(path):
        if isinstance(value, dict):
            value = value.get(quoted or plain)
        elif isinstance(value, list) and index and int(index) < len(value):
            value = value[int(index)]
        else:
            return None
    return value


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 3] + "..."


def _name_and_type(urn: str) -> tuple[str, str]:
    # urn:pulumi:<stack>::<project>::<type chain>::<name>
    parts = urn.split("::")
    return (parts[-1], parts[-2].rsplit("$", 1)[-1]) if len(parts) >= 4 else (urn, "")


def parse_preview(document: dict[str, Any], stack: str) -> DriftReport:
    """The drifted resources and properties of one `pulumi preview --json` document."""
    resources = []
    for step in document.get("steps") or []:
        op = str(step.get("op", ""))
        if op in NO_CHANGE_OPS:
            continue
        urn = str(step.get("urn", ""))
        old = step.get("oldState") or {}
        new = step.get("newState") or {}
        cloud = old.get("outputs") or old.get("inputs") or {}
        declared = new.get("inputs") or {}
        detailed: dict[str, Any] = step.get("detailedDiff") or {}
        paths = detailed or {key: {"kind": "update"} for key in step.get("diffReasons") or []}
        properties = tuple(
            PropertyDrift(
                path,
                str((diff or {}).get("kind", "update")),
                _show(_lookup(cloud, path)),
                _show(_lookup(declared, path)),
            )
            for path, diff in sorted(paths.items())
        )
        name, type_ = _name_and_type(urn)
        resources.append(DriftedResource(urn, str(new.get("type") or type_), name, op, properties))
    errors = tuple(
        str(d.get("message", "")).strip()
        for d in document.get("diagnostics") or []
        if d.get("severity") == "error"
    )
    summary = {str(k): int(v) for k, v in (document.get("changeSummary") or {}).items()}
    return DriftReport(stack, tuple(resources), summary, errors)


def markdown(report: DriftReport) -> str:
    if not report.drifted:
        return f"**{report.stack}**: no drift, the cloud matches the program."
    lines = [
        f"**{report.stack}**: {len(report.resources)} resource(s) differ from the program "
        "(cloud -> declared):",
        "",
    ]
    for resource in report.resources:
        lines.append(f"- `{resource.type}` **{resource.name}**: {resource.op}")
        for prop in resource.properties:
            lines.append(f"  - `{prop.path}` ({prop.kind}): {prop.cloud} -> {prop.declared}")
    counts = ", ".join(f"{n} {op}" for op, n in sorted(report.change_summary.items()))
    if counts:
        lines += ["", f"Change summary: {counts}."]
    lines += ["", "Either `pulumi up` to restore the code's state, or change the code to adopt it."]
    return "\n".join(lines)


def post_summary(url: str, text: str) -> int:
    """POST `{"text": ...}` (the incoming-webhook shape chat tools accept); returns the status."""
    import httpx

    response = httpx.post(url, json={"text": text}, timeout=15.0)
    response.raise_for_status()
    return response.status_code


@drift.command("report")
def report_command(
    preview_json: Annotated[Path, typer.Argument(help="Output of pulumi preview --json.")],
    stack: Annotated[str, typer.Option("--stack", help="The stack previewed.")],
    preview_exit: Annotated[
        int, typer.Option("--preview-exit", help="Exit status of the preview.")
    ] = 0,
    markdown_file: Annotated[
        Path | None, typer.Option("--markdown", help="Write the summary here.")
    ] = None,
) -> None:
    """Summarize drift; exit 3 on drift, 2 when the check itself failed, else 0."""
    try:
        document = json.loads(preview_json.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        console.print(f"[red]{stack}: no preview JSON to read ({exc}); the check failed[/red]")
        raise typer.Exit(CHECK_FAILED_EXIT) from None
    if not isinstance(document, dict):
        console.print(f"[red]{stack}: {preview_json} is not a preview document[/red]")
        raise typer.Exit(CHECK_FAILED_EXIT)
    report = parse_preview(document, stack)
    text = markdown(report)
    console.print(text)
    if markdown_file is not None:
        markdown_file.parent.mkdir(parents=True, exist_ok=True)
        markdown_file.write_text(text + "\n")
    if not report.drifted and (preview_exit != 0 or report.errors):
        console.print(
            f"[red]{stack}: pulumi preview failed (exit {preview_exit}) without proposing "
            f"changes: {'; '.join(report.errors) or 'see its log'}[/red]"
        )
        raise typer.Exit(CHECK_FAILED_EXIT)
    if report.drifted:
        url = os.environ.get(WEBHOOK_ENV, "")
        if url:  # read from the environment: the webhook URL is a secret
            post_summary(url, text)
            console.print("summary posted to the drift webhook")
        raise typer.Exit(DRIFT_EXIT)


def register(app: typer.Typer) -> None:
    """Add `platform drift ...` to the `platform` app."""
    app.add_typer(drift, name="drift")
