"""`platform bootstrap` and `platform verify`: the state backend and the post-deploy smoke check.

Both talk to AWS through boto3 with the usual credential chain; `AWS_ENDPOINT_URL` points them at
an emulator (LocalStack or moto's server). Resource names come from the stack config through
`platform_cli.aws_names`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from infra.contracts import ENVIRONMENTS

if TYPE_CHECKING:
    from infra.config import PlatformConfig
    from platform_cli.aws_names import ExpectedNames

_ENV_HELP = f"Environment (stack): {', '.join(ENVIRONMENTS)}."

_ACTION_STYLE = {"created": "green", "unchanged": "dim", "repaired": "yellow", "problem": "red"}
_STATUS_STYLE = {"pass": "green", "fail": "red", "not emulated": "yellow", "skipped": "dim"}


def _load_names(env: str, console: Console) -> tuple[PlatformConfig, ExpectedNames]:
    from infra.config import ConfigError, load_stack_file
    from platform_cli.aws_names import expected_names

    try:
        cfg = load_stack_file(env)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    return cfg, expected_names(cfg)


def bootstrap_command(
    env: str = typer.Option(..., "--env", help=_ENV_HELP),
    repair: bool = typer.Option(
        False, "--repair", help="Fix an existing non-compliant bucket instead of stopping."
    ),
) -> None:
    """Create (idempotently) the env's Pulumi state bucket and secrets KMS key."""
    from platform_cli import aws_session
    from platform_cli.state_backend import bootstrap, pulumi_commands

    console = Console()
    cfg, names = _load_names(env, console)
    endpoint = aws_session.endpoint_override()
    where = f" via {endpoint}" if endpoint else ""
    console.print(
        f"Bootstrapping the Pulumi state backend of [bold]{env}[/bold] in {cfg.region}{where}"
    )
    result = bootstrap(names, {**cfg.base_tags, **cfg.tags}, repair=repair)

    table = Table(title=f"state backend: {env}")
    for column in ("resource", "name", "action", "detail"):
        table.add_column(column)
    for step in result.steps:
        style = _ACTION_STYLE[step.action]
        table.add_row(step.resource, step.name, f"[{style}]{step.action}[/{style}]", step.detail)
    console.print(table)

    if not result.ok:
        console.print(
            "[red]Not compliant: the existing resources above were NOT reused.[/red] Fix them, "
            "delete them, or re-run with --repair to apply the missing settings."
        )
        raise typer.Exit(1)
    if not result.changed:
        console.print("Nothing changed: the backend was already in place and compliant.")
    console.print("\nNext, point Pulumi at it:")
    for command in pulumi_commands(result, endpoint):
        console.print(f"  {command}", soft_wrap=True, highlight=False)


def verify_command(env: str = typer.Option(..., "--env", help=_ENV_HELP)) -> None:
    """Post-deploy smoke check: EKS, MSK, RDS, ECR and the state bucket; exit 1 on failure."""
    from platform_cli import aws_session
    from platform_cli.verify import exit_code, run_checks, summarize

    console = Console()
    cfg, names = _load_names(env, console)
    endpoint = aws_session.endpoint_override()
    where = f" via {endpoint}" if endpoint else ""
    checks = run_checks(names)
    table = Table(title=f"verify {env} ({cfg.region}{where})")
    for column in ("area", "resource", "status", "detail"):
        table.add_column(column)
    for check in checks:
        style = _STATUS_STYLE[check.status.value]
        table.add_row(
            check.area, check.name, f"[{style}]{check.status.value}[/{style}]", check.detail
        )
    console.print(table)
    counts = summarize(checks)
    console.print(", ".join(f"{n} {status}" for status, n in counts.items() if n))
    raise typer.Exit(exit_code(checks))


def register(app: typer.Typer) -> None:
    """Add `bootstrap` and `verify` to the `platform` app."""
    app.command("bootstrap")(bootstrap_command)
    app.command("verify")(verify_command)
