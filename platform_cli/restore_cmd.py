"""`platform restore points | db | repoint`: RDS disaster recovery into a new instance.

boto3 with the usual credential chain; `AWS_ENDPOINT_URL` points it at an emulator (moto's
server serves every RDS call used here, though its instances are `available` at once and it
reports no `RestoreWindow`; see rds_restore.py). The logic lives in `rds_restore` (AWS) and
`restore_repoint` (facts and commands); this module parses, prints and sets exit codes:
2 for bad input, 1 when the restore or a check failed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from infra.contracts import ENVIRONMENTS

if TYPE_CHECKING:
    from infra.config import PlatformConfig
    from platform_cli.aws_names import ExpectedNames
    from platform_cli.rds_restore import Instance, RestoreRequest

_ENV_HELP = f"Environment (stack): {', '.join(ENVIRONMENTS)}."

restore_app = typer.Typer(
    help="Disaster recovery: restore the stack's RDS instance into a new one, then repoint.",
    no_args_is_help=True,
)


def _fail(console: Console, message: str, code: int = 1) -> NoReturn:
    console.print(f"[red]{escape(message)}[/red]", soft_wrap=True)
    raise typer.Exit(code)


def _stack(env: str, console: Console) -> tuple[PlatformConfig, ExpectedNames]:
    from infra.config import ConfigError, load_stack_file
    from platform_cli.aws_names import expected_names

    try:
        cfg = load_stack_file(env)
    except ConfigError as exc:
        _fail(console, f"--env: {exc}", 2)
    names = expected_names(cfg)
    if not names.database_on_rds:
        _fail(
            console,
            f"--env {env}: platform:database.mode is {cfg.database.mode!r}; only 'rds' stacks "
            "have an RDS instance to restore (in-cluster PostgreSQL recovers with CloudNativePG)",
            2,
        )
    return cfg, names


def _rds(region: str) -> object:
    from platform_cli import aws_session

    return aws_session.client("rds", region)


def _open(env: str) -> tuple[Console, PlatformConfig, ExpectedNames, object]:
    """What every command starts from: its console, the stack's config and names (or a clear
    exit), and an RDS client in the stack's region."""
    console = Console(emoji=False)
    cfg, names = _stack(env, console)
    return console, cfg, names, _rds(cfg.region)


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO-8601 time (e.g. 2026-03-05T10:30:00Z)",
            param_hint="--to-time",
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else "-"


@restore_app.command("points")
def points_command(env: str = typer.Option(..., "--env", help=_ENV_HELP)) -> None:
    """Show what the stack's instance can be restored to: its window and its snapshots."""
    from platform_cli.rds_restore import (
        RestoreError,
        find_instance,
        restorable_window,
        snapshots_of,
    )

    console, cfg, names, rds = _open(env)
    source = find_instance(rds, names.rds_instance)
    if source is None:
        console.print(f"{names.rds_instance}: no such instance in {cfg.region}")
    else:
        try:
            window = restorable_window(rds, source)
            console.print(
                f"{source.identifier} ({source.status}): point-in-time restore from "
                f"{_when(window.earliest)} to {_when(window.latest)} (earliest from the "
                f"{window.source}; backups kept {source.backup_retention_days} days)",
                soft_wrap=True,
            )
        except RestoreError as exc:
            console.print(f"[yellow]{escape(str(exc))}[/yellow]")
    table = Table(title=f"snapshots of {names.rds_instance}")
    for column in ("snapshot", "type", "status", "created", "encrypted"):
        table.add_column(column)
    for snap in snapshots_of(rds, names.rds_instance):
        table.add_row(
            snap.identifier, snap.kind, snap.status, _when(snap.created), str(snap.encrypted)
        )
    console.print(table)


def _plan(
    console: Console,
    cfg: PlatformConfig,
    names: ExpectedNames,
    rds: object,
    to_time: str | None,
    latest: bool,
    snapshot: str | None,
    target: str | None,
) -> tuple[RestoreRequest, Instance | None]:
    from platform_cli import aws_session
    from platform_cli.rds_restore import (
        RestoreError,
        RestoreRequest,
        find_instance,
        find_snapshot,
        instance_identifiers,
        placement_from_stack,
        restorable_window,
        snapshots_of,
        target_identifier,
        with_restore_tags,
    )

    chosen = [
        flag
        for flag, on in (("--to-time", to_time), ("--latest", latest), ("--snapshot", snapshot))
        if on
    ]
    if len(chosen) != 1:
        raise typer.BadParameter(
            f"got {' and '.join(chosen) or 'none'}; allowed: exactly one of --to-time ISO, "
            "--latest or --snapshot ID",
            param_hint="restore point",
        )
    identifier = names.rds_instance
    source = find_instance(rds, identifier)
    if snapshot:
        snap = find_snapshot(rds, snapshot)
        if snap is None:
            known = ", ".join(s.identifier for s in snapshots_of(rds, identifier)) or "none"
            _fail(
                console,
                f"--snapshot: {snapshot!r} not found; snapshots of {identifier}: {known}",
                2,
            )
        if snap.instance != identifier:
            _fail(
                console,
                f"--snapshot: {snapshot!r} is of {snap.instance!r}, not of {identifier!r}",
                2,
            )
        if snap.status != "available":
            _fail(console, f"--snapshot: {snapshot!r} is {snap.status!r}; allowed: 'available'", 2)
        if snap.created is None:
            _fail(console, f"--snapshot: {snapshot!r} reports no creation time")
        point, mode = snap.created, "snapshot"
        try:
            placement = (
                source.placement
                if source is not None
                else placement_from_stack(
                    cfg, aws_session.client("ec2", cfg.region), identifier, snap
                )
            )
        except RestoreError as exc:
            _fail(console, str(exc))
    else:
        if source is None:
            known = ", ".join(instance_identifiers(rds)) or "none"
            _fail(
                console,
                f"unknown instance {identifier!r} in {cfg.region} (instances there: {known}); a "
                "deleted instance restores from its snapshot: --snapshot ID",
                2,
            )
        try:
            window = restorable_window(rds, source)
        except RestoreError as exc:
            _fail(console, str(exc), 2)
        if latest:
            point, mode = window.latest, "latest"
        else:
            assert to_time is not None
            point, mode = _parse_time(to_time), "point-in-time"
            if not window.contains(point):
                _fail(
                    console,
                    f"--to-time {_when(point)} is outside the restorable window of "
                    f"{identifier}: {_when(window.earliest)} to {_when(window.latest)} (from the "
                    f"{window.source})",
                    2,
                )
        placement = source.placement
    name = target or target_identifier(identifier, point)
    try:
        from infra.data.rds_parameters import check_identifier

        check_identifier(name)
    except ValueError as exc:
        _fail(console, f"--target: {exc}", 2)
    if name == identifier:
        _fail(console, f"--target: {name!r} is the source; a restore never overwrites it", 2)
    if find_instance(rds, name) is not None:
        _fail(
            console,
            f"--target: {name!r} already exists; a restore never overwrites: pick another",
            2,
        )
    request = RestoreRequest(identifier, name, point, mode, snapshot, placement)
    return with_restore_tags(request), source


def _print_request(console: Console, request: RestoreRequest) -> None:
    p = request.placement
    table = Table(title=f"restore {request.source} -> {request.target} (new instance)")
    table.add_column("setting")
    table.add_column("value")
    rows = [
        ("restore point", f"{_when(request.point)} ({request.mode})"),
        ("from", request.snapshot or f"{request.source} (point-in-time)"),
        ("subnet group", p.subnet_group),
        ("security groups", ", ".join(p.security_group_ids)),
        ("parameter group", p.parameter_group),
        ("storage KMS key", p.kms_key_id or "-"),
        (
            "master secret",
            f"new RDS-managed secret, KMS key {p.secret_kms_key_id or 'aws/secretsmanager'}",
        ),
        ("class / Multi-AZ", f"{p.instance_class} / {p.multi_az}"),
        (
            "backups / deletion protection",
            f"{p.backup_retention_days} days / {p.deletion_protection}",
        ),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)


def _print_repoint(
    console: Console,
    cfg: PlatformConfig,
    declared: str,
    source: Instance | None,
    restored: Instance,
) -> None:
    from platform_cli.restore_repoint import fact_changes, repoint_steps

    console.print("\n[bold]Facts channel[/bold] (platform-facts ConfigMap, platform-db Secret):")
    for change in fact_changes(source, restored, declared):
        verdict = "[yellow]changes[/yellow]" if change.changes else "unchanged"
        console.print(f"  {change.fact.value}: {verdict}", highlight=False)
        for label, value in (
            ("now", change.current),
            ("restored instance", change.restored),
            ("after the swap", change.after_swap),
        ):
            console.print(
                f"    {label}: {value or '-'}", soft_wrap=True, highlight=False, markup=False
            )
    console.print(
        "These facts come from the stack's RDS instance, not from stack config: there is no "
        "`pulumi config set` for them. Make the restored instance the stack's instance:",
        soft_wrap=True,
    )
    for number, step in enumerate(
        repoint_steps(cfg, declared, restored, source_exists=source is not None), 1
    ):
        console.print(f"\n[bold]{number}. {escape(step.title)}[/bold]")
        for command in step.commands:
            console.print(f"   {command}", soft_wrap=True, highlight=False, markup=False)


@restore_app.command("db")
def db_command(
    env: str = typer.Option(..., "--env", help=_ENV_HELP),
    to_time: str | None = typer.Option(
        None, "--to-time", help="Point in time to restore to (ISO-8601, UTC if naive)."
    ),
    latest: bool = typer.Option(False, "--latest", help="The latest restorable time."),
    snapshot: str | None = typer.Option(
        None, "--snapshot", help="Restore from this DB snapshot (e.g. the instance's -final one)."
    ),
    target: str | None = typer.Option(
        None, "--target", help="New instance identifier; default <instance>-restore-<UTC stamp>."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the restore; start nothing."),
    wait: bool = typer.Option(
        True, "--wait/--no-wait", help="Wait until the instance is available."
    ),
    timeout: float = typer.Option(5400.0, "--timeout", min=1.0, help="Seconds to wait at most."),
    poll: float = typer.Option(15.0, "--poll", min=0.1, help="Seconds between status checks."),
) -> None:
    """Restore the stack's RDS instance to a point in time or a snapshot, into a NEW instance."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from platform_cli.rds_restore import (
        RestoreError,
        check_placement,
        start_restore,
        wait_available,
    )

    console, cfg, names, rds = _open(env)
    request, source = _plan(console, cfg, names, rds, to_time, latest, snapshot, target)
    _print_request(console, request)
    if dry_run:
        console.print("dry run: nothing started")
        return
    try:
        restored = start_restore(rds, request)
        console.print(f"restore started: {request.target} is {restored.status}")
        if wait:
            with Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TextColumn("[bold]{task.fields[status]}[/bold]"),
                TimeElapsedColumn(),
                console=console,
            ) as progress:
                task = progress.add_task(f"waiting for {request.target}", status=restored.status)
                restored = wait_available(
                    rds,
                    request.target,
                    timeout_s=timeout,
                    poll_s=poll,
                    on_status=lambda status, _elapsed: progress.update(task, status=status),
                )
            console.print(f"{request.target} is available at {restored.address}:{restored.port}")
    except RestoreError as exc:
        _fail(console, str(exc))
    if not wait:
        console.print(
            f"not waiting: run `platform restore repoint --env {env} --target {request.target}` "
            "once it is available",
            soft_wrap=True,
        )
        return
    checks = check_placement(request.placement, restored)
    table = Table(title=f"{request.target}: placement as the source's")
    for column in ("check", "expected", "actual", "ok"):
        table.add_column(column)
    for check in checks:
        table.add_row(
            check.what,
            check.expected,
            check.actual,
            "[green]yes[/green]" if check.ok else "[red]NO[/red]",
        )
    console.print(table)
    _print_repoint(console, cfg, names.rds_instance, source, restored)
    if not all(c.ok for c in checks):
        _fail(
            console, "the restored instance differs from its source (see above): do not swap it in"
        )


@restore_app.command("repoint")
def repoint_command(
    env: str = typer.Option(..., "--env", help=_ENV_HELP),
    target: str = typer.Option(..., "--target", help="The restored instance."),
) -> None:
    """Print which facts change and the commands that make a restored instance the stack's."""
    from platform_cli.rds_restore import find_instance

    console, cfg, names, rds = _open(env)
    if target == names.rds_instance:
        _fail(
            console, f"--target: {target!r} is the stack's own instance; name the restored one", 2
        )
    restored = find_instance(rds, target)
    if restored is None:
        _fail(console, f"--target: no instance {target!r} in {cfg.region}", 2)
    if restored.status != "available":
        _fail(console, f"--target: {target!r} is {restored.status!r}; wait until it is 'available'")
    _print_repoint(
        console, cfg, names.rds_instance, find_instance(rds, names.rds_instance), restored
    )


def register(app: typer.Typer) -> None:
    """Add `restore` (points, db, repoint) to the `platform` app."""
    app.add_typer(restore_app, name="restore")
