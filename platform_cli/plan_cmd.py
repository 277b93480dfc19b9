"""`platform plan`: what a stack would DECLARE, and which policy rules it breaks, with no cloud.

The Pulumi program runs under the SDK's mock monitor (`platform_cli.offline.run_stack`): no
Pulumi CLI, no credentials, no cluster. The output is the declared resource tree, counts per type
and the policy results; `--json` writes the stable inventory, `--diff` compares with an earlier
one and `--graph` writes the resource graph. It is not `pulumi preview`: nothing is compared
with live state, so a resource that drifted in the cloud does not show up here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from infra.contracts import ENVIRONMENTS

if TYPE_CHECKING:
    from infra.policies import PolicyReport

DECLARED_NOTE = (
    "These are the resources the program DECLARES (run offline under Pulumi's mock monitor), "
    "not a diff against live cloud state; use `pulumi preview` with credentials for that."
)
REFRESH_COMMAND = "platform plan --stack {stack} --json tests/snapshots/{stack}.json"
"""Refreshes one stack's snapshot (`make snapshots` refreshes all four)."""


def _tree(inventory: dict[str, Any]) -> Tree:
    resources = inventory["resources"]
    by_parent: dict[str | None, list[dict[str, Any]]] = {}
    known = {r["urn"] for r in resources}
    for resource in resources:
        parent = resource["parent"] if resource["parent"] in known else None
        by_parent.setdefault(parent, []).append(resource)
    root = Tree(f"[bold]stack {inventory['stack']}[/bold] (declared)")

    def add(node: Tree, parent: str | None) -> None:
        # Components first, then resources, each by name: a stable, scannable order.
        children = sorted(
            by_parent.get(parent, []), key=lambda r: (r["custom"], r["type"], r["name"])
        )
        for resource in children:
            style = "bold cyan" if not resource["custom"] else "white"
            flags = " [red]protect[/red]" if resource["protect"] else ""
            label = f"[{style}]{resource['name']}[/{style}] [dim]{resource['type']}[/dim]{flags}"
            add(node.add(label), resource["urn"])

    add(root, None)
    return root


def _counts_table(inventory: dict[str, Any]) -> Table:
    table = Table(title="Declared resources per type", show_lines=False)
    table.add_column("type")
    table.add_column("count", justify="right")
    for type_, count in inventory["counts"].items():
        table.add_row(type_, str(count))
    table.add_row("[bold]total[/bold]", f"[bold]{inventory['resourceCount']}[/bold]")
    return table


def _policy_table(report: PolicyReport) -> Table | None:
    if not report.violations:
        return None
    table = Table(title="Policy violations", show_lines=True)
    table.add_column("severity")
    table.add_column("rule")
    table.add_column("resource")
    table.add_column("message")
    for violation in report.violations:
        colour = "red" if violation.severity == "mandatory" else "yellow"
        table.add_row(
            f"[{colour}]{violation.severity}[/{colour}]",
            violation.rule,
            violation.resource,
            violation.message,
        )
    return table


def _write_graph(inventory: dict[str, Any], path: Path, console: Console) -> None:
    from platform_cli.inventory import to_dot

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_dot(inventory), encoding="utf-8")
    console.print(f"graph: wrote {path}")
    dot = shutil.which("dot")
    if dot is None:
        console.print("graph: graphviz `dot` not installed; SVG skipped (DOT file is complete)")
        return
    svg = path.with_suffix(".svg")
    result = subprocess.run(
        [dot, "-Tsvg", str(path), "-o", str(svg)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        console.print(f"[red]graph: dot failed: {result.stderr.strip()}[/red]")
        raise typer.Exit(1)
    console.print(f"graph: wrote {svg}")


def plan_command(
    stack: Annotated[str, typer.Option("--stack", "-s", help=f"Stack: {', '.join(ENVIRONMENTS)}.")],
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write the stable inventory (JSON) here.")
    ] = None,
    diff_file: Annotated[
        Path | None,
        typer.Option("--diff", help="Compare with an earlier inventory; print what changed."),
    ] = None,
    graph_file: Annotated[
        Path | None,
        typer.Option(
            "--graph", help="Write the resource graph as DOT (and SVG when `dot` exists)."
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Skip the resource tree; print counts and policy.")
    ] = False,
) -> None:
    """Show what a stack declares and check it against the policy rules, offline."""
    from infra.config import ConfigError, load_stack_file
    from infra.policies import evaluate, views_from_declared
    from platform_cli.inventory import build_inventory, diff_inventories, dumps
    from platform_cli.offline import run_stack

    console = Console()
    if stack not in ENVIRONMENTS:
        console.print(f"[red]--stack: unknown {stack!r}; allowed: {', '.join(ENVIRONMENTS)}[/red]")
        raise typer.Exit(2)
    try:
        cfg = load_stack_file(stack)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None

    started = time.perf_counter()
    declared = run_stack(cfg)
    report = evaluate(views_from_declared(declared), stack)
    inventory = build_inventory(declared, stack)
    elapsed = time.perf_counter() - started

    console.print(f"[yellow]{DECLARED_NOTE}[/yellow]")
    if not quiet:
        console.print(_tree(inventory))
    console.print(_counts_table(inventory))

    table = _policy_table(report)
    if table is not None:
        console.print(table)
    verdict = "[green]passed[/green]" if report.passed else "[red]FAILED[/red]"
    console.print(
        f"policy: {verdict}: {len(report.rules)} rules, {report.checks_run} checks on "
        f"{inventory['resourceCount']} declared resources; {len(report.mandatory)} mandatory and "
        f"{len(report.advisory)} advisory violations ({elapsed:.1f} s)"
    )

    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(dumps(inventory), encoding="utf-8")
        console.print(f"inventory: wrote {json_file}")
    if diff_file is not None:
        try:
            previous = json.loads(diff_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            console.print(f"[red]--diff: cannot read {diff_file}: {exc}[/red]")
            raise typer.Exit(2) from None
        # Round-trip through the canonical text so both sides went through the same encoding.
        changes = diff_inventories(previous, json.loads(dumps(inventory)))
        if changes.empty:
            console.print(f"diff: no change against {diff_file}")
        else:
            console.print(
                f"diff against {diff_file}: {len(changes.added)} added, {len(changes.removed)} "
                f"removed, {len(changes.changed)} changed"
            )
            for line in changes.lines():
                style = {"+": "green", "-": "red", "~": "yellow"}.get(line[:1], "")
                console.print(f"[{style}]{line}[/{style}]" if style else line, markup=bool(style))
    if graph_file is not None:
        _write_graph(inventory, graph_file, console)

    raise typer.Exit(exit_code(report))


def exit_code(report: PolicyReport) -> int:
    """1 when a mandatory rule is broken (the plan fails CI), else 0; advisory never fails."""
    return 0 if report.passed else 1


def register(app: typer.Typer) -> None:
    """Add `platform plan` to the `platform` app."""
    app.command("plan")(plan_command)
