"""`audit run | migrate | query | archive`."""

from __future__ import annotations

import json
import logging
import signal
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from apps.common.db import DbSettings, migrate
from apps.common.logging import configure_logging

MIGRATIONS = Path(__file__).parent / "migrations"
APP_NAME = "audit"

app = typer.Typer(help="Audit log of every platform event: consume, query, archive to S3.")
out = Console()
err = Console(stderr=True)


def _stop_on_signals(stop: threading.Event) -> None:
    def _handler(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(APP_NAME).info("stop requested", extra={"signal": signum})
        stop.set()

    signal.signal(signal.SIGTERM, _handler)
    signal.signal(signal.SIGINT, _handler)


def _parse_time(value: str | None) -> datetime | None:
    """ISO-8601; a naive value is taken as UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not an ISO-8601 time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command("migrate")
def migrate_cmd() -> None:
    """Apply audit's pending schema migrations (idempotent)."""
    configure_logging(APP_NAME)
    applied = migrate(DbSettings().conninfo(), APP_NAME, MIGRATIONS)
    err.print(f"audit: applied {applied or 'nothing (up to date)'}")


@app.command("run")
def run_cmd(
    apply_migrations: bool = typer.Option(
        False, "--migrate", help="Apply pending migrations before consuming."
    ),
) -> None:
    """Consume the events and tasks topics into audit_log until SIGTERM."""
    from apps.audit.consumer import AuditService
    from apps.audit.settings import AuditConfig
    from apps.common.health import HealthServer
    from apps.common.tracing import setup_tracing

    config = AuditConfig()
    configure_logging(APP_NAME, config.app.log_level)
    setup_tracing(APP_NAME, config.app.otlp_endpoint)
    if apply_migrations:
        migrate(config.db.conninfo(), APP_NAME, MIGRATIONS)
    stop = threading.Event()
    _stop_on_signals(stop)
    service = AuditService(config, stop)
    health = HealthServer(config.app.port, service.ready, registry=service.metrics.registry).start()
    try:
        service.run()
    finally:
        health.stop()


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


if __name__ == "__main__":
    app()
