"""`platform rehearse` and `platform images`: the terminal side of the deploy rehearsal.

Progress is shown step by step (as `platform local` does), then a report: the checks, the
images, every (image, command) pair that ran, the one rewrite (image references) and what the
stand-ins added. Everything made is removed on every exit path, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from infra.contracts import ENVIRONMENTS
from platform_cli.progress import stepper

if TYPE_CHECKING:
    from platform_cli.images import BuiltImage

images_app = typer.Typer(help="Build the bundled apps' images (buildah, cached).")

BaseOption = Annotated[
    str,
    typer.Option(
        "--base",
        help="Base image: auto (the official one if it can be pulled, else a Debian stand-in), "
        "official, or stand-in.",
    ),
]
BASES = ("auto", "official", "stand-in")


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _check_base(base: str) -> None:
    if base not in BASES:
        raise typer.BadParameter(f"{base!r}; allowed: {', '.join(BASES)}", param_hint="--base")


def _check_env(env: str) -> None:
    if env not in ENVIRONMENTS:
        raise typer.BadParameter(f"{env!r}; allowed: {', '.join(ENVIRONMENTS)}", param_hint="--env")


def _built_images(console: Console, base: str, log_dir: Path) -> list[BuiltImage]:
    """Build (or reuse) every image, or exit: 2 when the tools cannot run here, 1 on failure."""
    from platform_cli import images, podman

    _check_base(base)
    reason = podman.unavailable_reason()
    if reason:
        console.print(f"[red]cannot build or run images here:[/red] {reason}")
        raise typer.Exit(2)
    try:
        return images.build_all(log_dir, base=base, progress=console.print)  # type: ignore[arg-type]
    except (images.ImageBuildError, podman.ContainerToolError) as exc:
        console.print(f"[red]image build failed:[/red] {exc}")
        raise typer.Exit(1) from None


@images_app.command("build")
def build_command(
    base: BaseOption = "auto",
    log_dir: Annotated[Path, typer.Option(help="Where build logs go.")] = Path(".rehearsal/logs"),
) -> None:
    """Build every app image from apps/Dockerfile (an unchanged image is reused in seconds)."""
    console = Console()
    built = _built_images(console, base, log_dir)
    table = Table(title="images")
    for column in ("app", "image", "built"):
        table.add_column(column)
    for image in built:
        how = "cached" if image.cached else f"built in {image.seconds:.0f} s"
        table.add_row(image.app, image.ref, how)
    console.print(table)


@images_app.command("push")
def push_command(
    registry: Annotated[str, typer.Option(help="Registry and path, e.g. <account>.dkr.ecr...")],
    tag: Annotated[str, typer.Option(help="The immutable tag (CI: the git sha).")],
    base: BaseOption = "official",
    log_dir: Annotated[Path, typer.Option(help="Where build logs go.")] = Path(".rehearsal/logs"),
) -> None:
    """Push every app image (built, or reused when unchanged) as <registry>/<app>:<tag>."""
    from infra.gitops.catalog import tag_problem
    from platform_cli import images, podman

    problem = tag_problem(tag)
    if problem:
        raise typer.BadParameter(problem, param_hint="--tag")
    console = Console()
    built = _built_images(console, base, log_dir)
    try:
        for ref in images.push_all(built, registry.rstrip("/"), tag):
            console.print(f"pushed {ref}")
    except podman.ContainerToolError as exc:
        console.print(f"[red]push failed:[/red] {exc}")
        raise typer.Exit(1) from None


@images_app.command("check")
def check_command(
    env: Annotated[
        list[str] | None, typer.Option("--env", help="Envs to check (default: all).")
    ] = None,
    base: BaseOption = "auto",
    log_dir: Annotated[Path, typer.Option(help="Where build logs go.")] = Path(".rehearsal/logs"),
) -> None:
    """Run every command gitops/<env>/ names, with --help, in the image it names."""
    from platform_cli import images
    from platform_cli.rehearsal.run import GITOPS_ROOT

    envs = env or list(ENVIRONMENTS)
    for name in envs:
        _check_env(name)
    console = Console()
    built = _built_images(console, base, log_dir)
    checks = images.check_commands(
        {b.app: b.ref for b in built}, images.rendered_commands(GITOPS_ROOT, envs)
    )
    table = Table(title="rendered commands in their images")
    for column in ("image", "command", "manifests", "result"):
        table.add_column(column)
    for check in checks:
        verdict = "[green]runs[/green]" if check.ok else f"[red]FAILS[/red] {check.output}"
        table.add_row(check.app, " ".join(check.command), str(len(check.sources)), verdict)
    console.print(table)
    raise typer.Exit(0 if all(c.ok for c in checks) else 1)


def rehearse_command(
    env: Annotated[str, typer.Option(help="Which gitops/<env>/ to play.")] = "dev",
    base: BaseOption = "auto",
    report_json: Annotated[
        Path | None, typer.Option("--report-json", help="Also write the report as JSON.")
    ] = None,
) -> None:
    """Play gitops/<env>/ in real containers, in Argo CD's order, and check what a deploy needs."""
    from platform_cli import podman
    from platform_cli.rehearsal.run import Rehearsal, RehearsalError, RehearsalOptions

    _check_env(env)
    _check_base(base)
    console = Console()
    reason = podman.unavailable_reason()
    if reason:
        console.print(f"[yellow]rehearsal skipped:[/yellow] {reason}")
        raise typer.Exit(3)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    rehearsal = Rehearsal(RehearsalOptions(env=env, base=base), stepper(console))  # type: ignore[arg-type]
    exit_code = 0
    try:
        rehearsal.run()
    except KeyboardInterrupt:
        console.print("\n[yellow]interrupted[/yellow]")
        exit_code = 130
    except (RehearsalError, podman.ContainerToolError) as exc:
        console.print(f"[red]rehearsal failed:[/red] {exc}")
        exit_code = 1
    except Exception:  # a bug in the rehearsal itself: show it, still clean up and report
        console.print_exception()
        exit_code = 1
    finally:
        with console.status("removing every pod, secret and network made ..."):
            rehearsal.close()
        signal.signal(signal.SIGTERM, previous)
    report = rehearsal.report
    _print_report(console, report)
    if report_json is not None:
        report_json.write_text(report.to_json())
    raise typer.Exit(exit_code or (0 if report.ok else 1))


def _print_report(console: Console, report: object) -> None:
    from platform_cli.rehearsal.run import Report

    assert isinstance(report, Report)
    checks = Table(title=f"rehearsal of gitops/{report.env}")
    checks.add_column("check")
    checks.add_column("result")
    checks.add_column("detail")
    for check in report.checks:
        verdict = "[green]pass[/green]" if check.ok else "[red]FAIL[/red]"
        checks.add_row(check.name, verdict, check.detail)
    console.print(checks)
    pairs = Table(title="(image, command) pairs that ran")
    for column in ("image", "command", "manifest"):
        pairs.add_column(column)
    for image, command, source in report.commands:
        pairs.add_row(image, command, source)
    console.print(pairs)
    console.print("[bold]rewrites[/bold] (the only change to the manifests):")
    for original, local in report.rewrites:
        console.print(f"  image {original} -> {local} (imagePullPolicy: Never)")
    console.print(
        "[bold]added by the stand-ins[/bold]: EKS Pod Identity and the AWS endpoint as "
        f"container env ({', '.join(report.injected_env)}); podman secrets from the "
        "ExternalSecrets; the platform-facts ConfigMap"
    )
    if report.not_played:
        console.print(
            f"[dim]declared, not played (need a controller or API server): "
            f"{len(report.not_played)} objects[/dim]"
        )
    timings = ", ".join(f"{k} {v:.0f} s" for k, v in report.timings.items())
    console.print(f"timings: {timings}")
    if report.leftovers:
        console.print(f"[red]left behind: {', '.join(report.leftovers)}[/red]")
    else:
        console.print("nothing left running: no pod, container, network or part process")
    verdict = "[green]PASSED[/green]" if report.ok else "[red]FAILED[/red]"
    console.print(f"rehearsal {verdict}")


def register(app: typer.Typer) -> None:
    app.command("rehearse")(rehearse_command)
    app.add_typer(images_app, name="images")
