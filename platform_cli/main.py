"""The `platform` command: one entry point for everything a platform engineer runs by hand or CI.

Each area registers its own sub-commands from its module, so the modules stay small and
independent: `gitops` (render, check, set-image), `plan` (offline inventory + policies),
`bootstrap` / `verify` (state backend and post-deploy checks), `local` (the whole system on
embedded parts), `destroy` (safe teardown order), `rehearse` and `images` (the real images and
the rendered manifests in real containers), `dlq` (dead-letter replay), `restore` (RDS disaster
recovery into a new instance), and the delivery gates: `image-scan` (ECR findings), `rollout`
(ArgoCD health + smoke test, rollback) and `drift report`.
"""

from __future__ import annotations

import typer

from platform_cli import (
    aws_cmd,
    destroy_cmd,
    dlq_cmd,
    drift,
    gitops_cmd,
    image_scan,
    local_cmd,
    plan_cmd,
    rehearse_cmd,
    restore_cmd,
    rollout,
)

app = typer.Typer(
    name="platform",
    help="Event platform: offline plan, GitOps rendering, state bootstrap, local runs.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """Event platform: offline plan, GitOps rendering, state bootstrap, local runs."""


for module in (
    gitops_cmd,
    plan_cmd,
    aws_cmd,
    local_cmd,
    destroy_cmd,
    image_scan,
    rollout,
    drift,
    rehearse_cmd,
    dlq_cmd,
    restore_cmd,
):
    module.register(app)


@app.command("stacks")
def list_stacks() -> None:
    """List the stacks and whether their config validates."""
    from rich.console import Console

    from infra.config import ConfigError, load_stack_file
    from infra.contracts import ENVIRONMENTS

    console = Console()
    failed = False
    for env in ENVIRONMENTS:
        try:
            cfg = load_stack_file(env)
        except ConfigError as exc:
            failed = True
            console.print(f"[red]{env}: invalid[/red]\n{exc}")
            continue
        console.print(
            f"[green]{env}[/green]: region={cfg.region} cluster={cfg.cluster.mode} "
            f"kafka={cfg.kafka.mode} database={cfg.database.mode}"
        )
    raise typer.Exit(1 if failed else 0)


if __name__ == "__main__":
    app()
