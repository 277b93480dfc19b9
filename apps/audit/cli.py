"""`audit run | migrate | query | archive | restore`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from apps.common.consumer_cli import ConsumerCommands, add_consumer_commands
from apps.common.db import DbSettings
from apps.common.logging import configure_logging

MIGRATIONS = Path(__file__).parent / "migrations"
APP_NAME = "audit"

app = typer.Typer(
    help="Audit log of every platform event: consume, query, archive to S3, restore from it."
)
out = Console()
err = Console(stderr=True)


def _parse_time(value: str | None) -> datetime | None:
    """ISO-8601; a naive value is taken as UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not an ISO-8601 time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _service_classes() -> tuple[Any, Any]:
    from apps.audit.consumer import AuditService
    from apps.audit.settings import AuditConfig

    return AuditConfig, AuditService


add_consumer_commands(
    app,
    ConsumerCommands(
        name=APP_NAME,
        migrations=MIGRATIONS,
        migrate_help="Apply audit's pending schema migrations (idempotent).",
        run_help="Consume the events and tasks topics into audit_log until SIGTERM.",
        load=_service_classes,
    ),
    err,
)


@app.command("query")
def query_cmd(
    entity: str | None = typer.Option(
        None, "--entity", help="Aggregate id (the envelope subject)."
    ),
    event_type: str | None = typer.Option(None, "--type", help="e.g. task.created"),
    since: str | None = typer.Option(None, help="Occurred at or after (ISO-8601, UTC if naive)."),
    until: str | None = typer.Option(None, help="Occurred before (ISO-8601, UTC if naive)."),
    limit: int = typer.Option(100, min=1, max=10_000),
    as_json: bool = typer.Option(False, "--json", help="JSON Lines instead of a table."),
) -> None:
    """List audit entries by entity, type and time range, oldest first."""
    import psycopg

    from apps.audit import store

    q = store.AuditQuery(entity, event_type, _parse_time(since), _parse_time(until), limit)
    with psycopg.connect(DbSettings().conninfo()) as conn:
        rows = store.query(conn, q)
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, sort_keys=True))
        return
    table = Table("occurred_at", "type", "entity", "event_id", "correlation_id")
    for row in rows:
        table.add_row(
            row["occurred_at"], row["type"], row["entity"], row["event_id"], row["correlation_id"]
        )
    out.print(table)
    err.print(f"{len(rows)} entr{'y' if len(rows) == 1 else 'ies'}")


def s3_client(region: str, endpoint_url: str | None) -> Any:
    import boto3
    from botocore.config import Config

    # Emulators (moto, LocalStack) answer on one host: path-style addressing always works there.
    config = Config(s3={"addressing_style": "path"}) if endpoint_url else None
    return boto3.client("s3", region_name=region, endpoint_url=endpoint_url, config=config)


@app.command("archive")
def archive_cmd(
    bucket: str | None = typer.Option(None, help="Defaults to AUDIT_ARCHIVE_BUCKET."),
    window_seconds: int | None = typer.Option(
        None, help="Defaults to AUDIT_ARCHIVE_WINDOW_S (3600)."
    ),
) -> None:
    """Export closed windows of the audit log to S3 as gzip JSON Lines (idempotent)."""
    import psycopg

    from apps.audit.archive import archive_closed_windows
    from apps.audit.settings import AuditSettings

    configure_logging(APP_NAME)
    settings = AuditSettings()
    target = bucket or settings.archive_bucket
    if not target:
        err.print("[red]no bucket: set AUDIT_ARCHIVE_BUCKET or pass --bucket[/red]")
        raise typer.Exit(2)
    s3 = s3_client(settings.aws_region, settings.aws_endpoint_url)
    with psycopg.connect(DbSettings().conninfo(), autocommit=True) as conn:
        done = archive_closed_windows(
            conn,
            s3,
            target,
            prefix=settings.archive_prefix,
            window_s=window_seconds or settings.archive_window_s,
            grace=timedelta(seconds=settings.archive_grace_s),
        )
    table = Table("window_start", "rows", "key")
    for window in done:
        table.add_row(window.start.isoformat(), str(window.rows), f"s3://{target}/{window.key}")
    out.print(table)
    err.print(f"archived {len(done)} window(s)")


def _restore_failed(bucket: str, exc: Exception) -> NoReturn:
    """One clear line for what stopped a restore: the archive, S3 or the database."""
    import psycopg
    from botocore.exceptions import BotoCoreError, ClientError
    from rich.markup import escape

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        why = f"s3://{bucket}: {error.get('Code', 'error')}: {error.get('Message', '')}"
    elif isinstance(exc, BotoCoreError):
        why = f"s3://{bucket}: {exc}"
    elif isinstance(exc, psycopg.Error):
        why = f"database {DbSettings().redacted()}: {str(exc).strip()}"
    else:
        why = str(exc)
    err.print(f"[red]restore stopped: {escape(why)}[/red]", soft_wrap=True)
    err.print(
        "Nothing of the failing object was kept; fix the cause and rerun to resume.",
        soft_wrap=True,
    )
    raise typer.Exit(1) from None


@app.command("restore")
def restore_cmd(
    bucket: str | None = typer.Option(None, help="Defaults to AUDIT_ARCHIVE_BUCKET."),
    prefix: str | None = typer.Option(None, help="Defaults to AUDIT_ARCHIVE_PREFIX (audit)."),
    since: str | None = typer.Option(
        None, help="Only windows starting at or after this time (ISO-8601, UTC if naive)."
    ),
    until: str | None = typer.Option(
        None, help="Only windows starting before this time (ISO-8601, UTC if naive)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="List the archive objects and what a run would do; change nothing."
    ),
) -> None:
    """Rebuild audit_log from the S3 archive: idempotent, resumable, verified per object."""
    import psycopg
    from botocore.exceptions import BotoCoreError, ClientError
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from apps.audit.restore import (
        ArchiveSelection,
        RestoredObject,
        RestoreError,
        RestoreProgress,
        plan_restore,
        restore_archive,
    )
    from apps.audit.settings import AuditSettings

    configure_logging(APP_NAME)
    outages = (BotoCoreError, ClientError, psycopg.Error)
    settings = AuditSettings()
    target = bucket or settings.archive_bucket
    if not target:
        err.print("[red]no bucket: set AUDIT_ARCHIVE_BUCKET or pass --bucket[/red]")
        raise typer.Exit(2)
    root = prefix or settings.archive_prefix
    first, last = _parse_time(since), _parse_time(until)
    if first and last and first >= last:
        raise typer.BadParameter(f"--since {since} is not before --until {until}")
    s3 = s3_client(settings.aws_region, settings.aws_endpoint_url)
    selection = ArchiveSelection(s3, target, root, first, last)
    conninfo = DbSettings().conninfo()

    if dry_run:
        try:
            objects, done, ignored = plan_restore(conninfo, selection)
        except (RestoreError, *outages) as exc:
            _restore_failed(target, exc)
        table = Table("window_start", "rows", "key", "state")
        for obj in objects:
            state = "done (open run)" if obj.key in done else "to restore"
            table.add_row(obj.window_start.isoformat(), str(obj.row_count), obj.key, state)
        out.print(table)
        todo = [o for o in objects if o.key not in done]
        err.print(
            f"dry run: {len(todo)} of {len(objects)} object(s) to restore "
            f"({sum(o.row_count for o in todo)} rows); {len(ignored)} other key(s) ignored",
            soft_wrap=True,
        )
        return

    with Progress(
        TextColumn("[bold]restore[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rows]} rows"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as bar:
        task = bar.add_task(f"s3://{target}/{root}/", total=None, rows=0)

        def on_plan(objects: list[Any], already: int) -> None:
            bar.update(task, total=len(objects), completed=already)

        rows_seen = [0]

        def on_rows(n: int) -> None:
            rows_seen[0] += n
            bar.update(task, rows=rows_seen[0])

        def on_object(_restored: RestoredObject) -> None:
            bar.advance(task)

        try:
            report = restore_archive(
                conninfo, selection, RestoreProgress(on_plan, on_rows, on_object)
            )
        except (RestoreError, *outages) as exc:
            bar.stop()
            _restore_failed(target, exc)

    verb = "resumed" if report.resumed else "started"
    err.print(
        f"run {report.run_id} ({verb}): {len(report.objects)} archive object(s), "
        f"{report.rows_expected} archived rows; {report.already_done} object(s) finished before "
        f"a restart, {len(report.restored)} restored now with {report.rows_inserted} row(s) "
        "inserted (the rest were already present)",
        soft_wrap=True,
    )
    err.print(
        "verified: every object matched its recorded sha256 and row count, and each of its "
        "event ids is in audit_log",
        soft_wrap=True,
    )
    if report.ignored_keys:
        err.print(f"{len(report.ignored_keys)} key(s) under the prefix are not archive windows")


if __name__ == "__main__":
    app()
