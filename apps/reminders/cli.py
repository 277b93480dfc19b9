"""`reminders run` (task changes -> schedule, and the scheduler) and `reminders migrate`."""

from __future__ import annotations

import threading
from pathlib import Path

import typer
from rich.console import Console

from apps.common.db import DbSettings, migrate
from apps.common.logging import configure_logging
from apps.reminders.settings import APP_NAME

MIGRATIONS = Path(__file__).parent / "migrations"

app = typer.Typer(
    help="Schedule task reminders from task changes and fire them on time (task.reminder.due)."
)
console = Console(stderr=True)


@app.command("migrate")
def migrate_cmd() -> None:
    """Apply the reminders app's pending schema migrations (idempotent)."""
    configure_logging(APP_NAME)
    applied = migrate(DbSettings().conninfo(), APP_NAME, MIGRATIONS)
    console.print(f"reminders: applied {applied or 'nothing (up to date)'}")


@app.command("run")
def run_cmd(
    apply_migrations: bool = typer.Option(
        False, "--migrate", help="Apply pending migrations before consuming."
    ),
) -> None:
    """Consume the tasks topic into the schedule and fire due reminders until SIGTERM."""
    from apps.common.consumer_loop import run_with_probes
    from apps.common.stop import stop_on_signals
    from apps.common.tracing import setup_tracing
    from apps.reminders.consumer import RemindersService
    from apps.reminders.settings import RemindersConfig

    config = RemindersConfig()
    configure_logging(APP_NAME, config.app.log_level)
    setup_tracing(APP_NAME, config.app.otlp_endpoint)
    if apply_migrations:
        migrate(config.db.conninfo(), APP_NAME, MIGRATIONS)
    stop = stop_on_signals(threading.Event(), APP_NAME)
    run_with_probes(RemindersService(config, stop), config.app.port)


if __name__ == "__main__":
    app()
