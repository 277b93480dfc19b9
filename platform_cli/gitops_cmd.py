"""`platform gitops`: render the catalog into gitops/<env>/ (and compose.yaml), check it, promote
an image tag."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

gitops = typer.Typer(help="Rendered GitOps manifests (gitops/<env>/) from the app catalog.")
# soft_wrap: file paths and problem lines stay on one line each, whatever the terminal width.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

EnvOption = Annotated[
    list[str] | None, typer.Option("--env", help="Only this environment (repeatable).")
]
ImagesOption = Annotated[
    Path | None, typer.Option("--images-file", help="images.json to use (default: the catalog's).")
]
RootOption = Annotated[
    Path | None, typer.Option("--gitops-dir", help="Output root (default: <repo>/gitops).")
]
ComposeOption = Annotated[
    Path | None,
    typer.Option(
        "--compose-file",
        help="compose.yaml to render or check (default: <repo>/compose.yaml, unless "
        "--gitops-dir names another tree).",
    ),
]


def _envs(envs: list[str] | None) -> list[str]:
    from infra.contracts import ENVIRONMENTS

    chosen = envs or list(ENVIRONMENTS)
    unknown = [env for env in chosen if env not in ENVIRONMENTS]
    if unknown:
        err_console.print(
            f"[red]--env: unknown {unknown}; allowed: {', '.join(ENVIRONMENTS)}[/red]"
        )
        raise typer.Exit(2)
    return chosen


def _render(envs: list[str], images_file: Path | None) -> dict[str, str]:
    from infra.config import ConfigError
    from infra.gitops.catalog import IMAGES_FILE, CatalogError, load_catalog
    from infra.gitops.renderer import render

    try:
        return render(load_catalog(images_file or IMAGES_FILE), envs)
    except (CatalogError, ConfigError) as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


@gitops.command("render")
def render_cmd(
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; fail listing stale/missing/extra files.")
    ] = False,
    env: EnvOption = None,
    images_file: ImagesOption = None,
    gitops_dir: RootOption = None,
    compose_file: ComposeOption = None,
) -> None:
    """Render gitops/<env>/ for every stack and compose.yaml (or check both are current)."""
    from infra.gitops.renderer import GITOPS_ROOT, diff_tree, write_tree
    from platform_cli.compose import COMPOSE_FILE, render_compose

    envs = _envs(env)
    root = gitops_dir or GITOPS_ROOT
    files = _render(envs, images_file)
    compose = compose_file or (COMPOSE_FILE if gitops_dir is None else None)
    compose_text = render_compose() if compose is not None else ""
    if check:
        diff = diff_tree(root, files, envs)
        compose_stale = compose is not None and _read(compose) != compose_text
        if diff.clean and not compose_stale:
            console.print(f"gitops/ is up to date ({len(files)} files, envs: {', '.join(envs)})")
            if compose is not None:
                console.print(f"{compose.name} is up to date")
            return
        for line in diff.lines():
            err_console.print(line)
        if compose_stale and compose is not None:
            err_console.print(f"stale:   {compose.name}")
        err_console.print("[red]gitops/ is out of date: run `platform gitops render`[/red]")
        raise typer.Exit(1)
    changed = write_tree(root, files, envs)
    console.print(
        f"rendered {len(files)} files for {', '.join(envs)}: "
        f"{len(changed.missing)} new, {len(changed.stale)} updated, {len(changed.extra)} removed"
    )
    if compose is not None:
        updated = _read(compose) != compose_text
        if updated:
            compose.write_text(compose_text)
        console.print(f"{compose.name}: {'updated' if updated else 'unchanged'}")


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


@gitops.command("set-image")
def set_image_cmd(
    env: Annotated[str, typer.Option("--env", help="Environment whose tag changes.")],
    app: Annotated[str, typer.Option("--app", help="Bundled app name.")],
    tag: Annotated[str, typer.Option("--tag", help="Immutable tag: git sha or semver.")],
    images_file: ImagesOption = None,
    gitops_dir: RootOption = None,
) -> None:
    """Set one app's image tag in one env (the promotion step), then re-render everything."""
    from infra.gitops.catalog import IMAGES_FILE, CatalogError
    from infra.gitops.promote import set_image
    from infra.gitops.renderer import GITOPS_ROOT

    try:
        changed = set_image(
            env, app, tag, images_file=images_file or IMAGES_FILE, root=gitops_dir or GITOPS_ROOT
        )
    except CatalogError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(
        f"{app} in {env} -> {tag}: {len(changed.stale)} files updated, "
        f"{len(changed.missing)} new, {len(changed.extra)} removed"
    )


def register(app: typer.Typer) -> None:
    """Add `platform gitops ...` to the `platform` app."""
    app.add_typer(gitops, name="gitops")
